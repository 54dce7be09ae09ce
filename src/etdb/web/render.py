"""Rendering portal pages: Jinja2 templates, and the JSON twin every page has.

Every page is also JSON (as datasette does it): ``/browse.json`` or ``Accept:
application/json`` answers the data the page shows, so a script never has to scrape HTML.
A route handler builds one context dict, and :func:`page` renders it either way: the HTML
from a template, the JSON from ``context["data"]`` (plain JSON values only; the template may
use everything else in the context, such as helper objects).

Record fields are untrusted public data. Templates are autoescaped (every ``{{ }}`` is HTML-
escaped), undefined names are errors, and nothing from a record ever reaches a ``<script>``:
the Content-Security-Policy (``security.py``) allows scripts from our own ``/static`` only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from etdb import __version__

__all__ = ["TEMPLATES", "env", "human_bytes", "page", "twin", "wants_json"]

TEMPLATES = Path(__file__).with_name("templates")
JSON_SUFFIX = ".json"


def human_bytes(n: int | float | None) -> str:
    """1536 -> "1.5 KB" (SI units, as file managers and the paper's "1-5 GB" use)."""
    if n is None:
        return ""
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(value) < 1000 or unit == "PB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} PB"  # unreachable; keeps type checkers calm


def utc_date(ts: int | None, fmt: str = "%Y-%m-%d") -> str:
    """Unix seconds -> a UTC date (records store dates as unix seconds)."""
    if ts is None:
        return ""
    try:
        return datetime.fromtimestamp(int(ts), UTC).strftime(fmt)
    except (OverflowError, OSError, ValueError):
        return ""


def _make_env() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html", "xml"], default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["bytes"] = human_bytes
    environment.filters["date"] = utc_date
    environment.globals["version"] = __version__
    return environment


env = _make_env()


def wants_json(request: Request) -> bool:
    """``/path.json``, or an ``Accept`` header that prefers JSON over HTML."""
    if request.url.path.endswith(JSON_SUFFIX):
        return True
    accept = request.headers.get("accept", "")
    if "application/json" not in accept:
        return False
    return "text/html" not in accept or accept.find("application/json") < accept.find("text/html")


def page(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The page as HTML (``template``) or as its JSON twin (``context["data"]``).

    ``Vary: Accept``: one URL answers HTML or JSON by the Accept header, so caches must key
    on it."""
    merged = {"Vary": "Accept", **(headers or {})}
    if wants_json(request):
        return JSONResponse(context.get("data", {}), status_code=status, headers=merged)
    html = env.get_template(template).render(request=request, **context)
    return HTMLResponse(html, status_code=status, headers=merged)


def json_href(request: Request) -> str:
    """The URL of this page's JSON twin (same query)."""
    url = request.url
    path = url.path.rstrip("/") or "/index"
    if not path.endswith(JSON_SUFFIX):
        path += JSON_SUFFIX
    return str(url.replace(path=path))


env.globals["json_href"] = json_href
env.globals["active"] = ""  # the nav entry a page marks as current; pages set it


def twin(router: APIRouter, path: str, **kwargs: Any) -> Callable[[Callable], Callable]:
    """Register a GET handler at ``path`` and at ``path + ".json"`` (``/`` -> ``/index.json``);
    both also answer HEAD. Portal pages stay out of the OpenAPI document (the API is /api)."""

    def register(endpoint: Callable) -> Callable:
        json_path = ("/index" if path == "/" else path) + JSON_SUFFIX
        for p in (path, json_path):
            router.add_api_route(p, endpoint, methods=["GET", "HEAD"],
                                 include_in_schema=False, **kwargs)  # fmt: skip
        return endpoint

    return register


def dumps(value: Any) -> str:
    """JSON for a ``<pre>`` block (escaped by the template like any other text)."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


env.filters["json"] = dumps
