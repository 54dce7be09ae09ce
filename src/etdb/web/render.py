"""Rendering portal pages: Jinja2 templates, and the JSON twin every page has.

Every page is also JSON (as datasette does it): ``/browse.json`` or ``Accept:
application/json`` answers the data the page shows, so a script never has to scrape HTML.
A route handler builds one context dict, and :func:`page` renders it either way: the HTML
from a template, the JSON from ``context["data"]`` (plain JSON values only; the template may
use everything else in the context, such as helper objects).

Record fields are untrusted public data. Templates are autoescaped (every ``{{ }}`` is HTML-
escaped), undefined names are errors, and nothing from a record ever reaches a ``<script>``:
the Content-Security-Policy (``security.py``) allows scripts from our own ``/static`` only.
Pages echo the request (the search box, filter chips, error messages, the JSON twin's query),
so every rendered value goes through ``api.errors.safe_text`` (the template's ``finalize``),
and a JSON twin through ``safe_json`` when the request carries such text: no page carries a
NUL, another C0 control or a lone surrogate (record text cannot have them: the text rule).
Record text may carry bidi overrides and isolates (U+202A-U+202E, U+2066-U+2069): it is
accepted as published, and templates show it with the ``bdi`` filter (``<bdi>…</bdi>``), so it
cannot reorder the page's own text around it (``evil\u202egpj.exe`` beside its size or link).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from etdb._version import __version__
from etdb.api.errors import safe_json, safe_text
from etdb.record.decoding import UNSAFE_TEXT
from etdb.units import human_bytes

__all__ = ["TEMPLATES", "env", "human_bytes", "page", "site_url", "twin", "wants_json"]

TEMPLATES = Path(__file__).with_name("templates")
JSON_SUFFIX = ".json"


def utc_date(ts: int | None, fmt: str = "%Y-%m-%d") -> str:
    """Unix seconds -> a UTC date (records store dates as unix seconds)."""
    if ts is None:
        return ""
    try:
        return datetime.fromtimestamp(int(ts), UTC).strftime(fmt)
    except (OverflowError, OSError, ValueError):
        return ""


def _safe_value(value: Any) -> Any:
    """Every ``{{ }}`` value: text made safe (:func:`safe_text`) before it is escaped."""
    if isinstance(value, Markup):
        return Markup(safe_text(str(value)))
    return safe_text(value) if isinstance(value, str) else value


def bdi(value: Any) -> Markup:
    """Record text in its own bidi isolate (``<bdi>``, escaped): its overrides and isolates
    end with it. Text content only: not for attributes or ``<title>``."""
    return Markup("<bdi>%s</bdi>") % ("" if value is None else value)


def _make_env() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        finalize=_safe_value,
        autoescape=select_autoescape(["html", "xml"], default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["bytes"] = human_bytes
    environment.filters["date"] = utc_date
    environment.filters["bdi"] = bdi
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
        data = context.get("data", {})
        if _unsafe_request(request):  # the data may echo it (the query, the path)
            data = safe_json(data)
        return JSONResponse(data, status_code=status, headers=merged)
    html = env.get_template(template).render(request=request, **context)
    return HTMLResponse(html, status_code=status, headers=merged)


def _unsafe_request(request: Request) -> bool:
    texts = [request.url.path, *(t for item in request.query_params.multi_items() for t in item)]
    return any(UNSAFE_TEXT.search(text) for text in texts)


def site_url(request: Request) -> str:
    """This site's absolute URL without a trailing slash (``http://host:port``), for what runs
    elsewhere and must come back here: ``etdb download --server``, the 3-D viewer's data URL."""
    return str(request.base_url).rstrip("/")


def json_href(request: Request) -> str:
    """The URL of this page's JSON twin (same query)."""
    url = request.url
    path = url.path.rstrip("/") or "/index"
    if not path.endswith(JSON_SUFFIX):
        path += JSON_SUFFIX
    # url.path is decoded: quote it again, or a "%3F" in it would end the link's path.
    return str(url.replace(path=quote(path, safe="/!$&'()*+,;=:@~")))


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
