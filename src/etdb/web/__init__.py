"""The web portal (``/``): server-rendered pages over the catalog, every page also JSON.

:func:`install` is the ``portal`` part of :func:`etdb.api.create_app`: it mounts the static
assets (served by etdb itself: no CDN, works offline and behind firewalls), the page routers,
the security headers and the friendly error pages. Pages live one module per concern:

- ``pages.py``: home, featured tomograms, challenges, about, contact;
- ``browse.py``: search, facets, ranges, sort, pages;
- ``dataset.py``: one dataset (key movie, metadata, files, provenance);
- ``slices.py``: the in-browser slice viewer's images;
- ``viewer.py``: a dataset's pyramid opened in Neuroglancer (``viewer_client.py`` serves the
  client under ``/static/neuroglancer/``);
- ``gateway.py``: ``/ipfs/<cid>/<path>`` (its own app part, ``etdb.api.app.PARTS``).

Every module in ``ROUTERS`` must load and have a ``router``: a missing one is an ImportError
when the app is built, never a page quietly absent. (They are named rather than imported at
the top because each imports :func:`scope_of` from this package.)
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from types import ModuleType
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from etdb.web.render import page, wants_json
from etdb.web.scope import PortalScope
from etdb.web.security import SecurityHeaders
from etdb.web.viewer_client import install as install_viewer_client

__all__ = ["ROUTERS", "STATIC", "install"]

STATIC = Path(__file__).with_name("static")
#: Page modules, each with a module-level ``router`` (an APIRouter). Order: specific first.
ROUTERS = (
    "etdb.web.slices",
    "etdb.web.viewer",
    "etdb.web.dataset",
    "etdb.web.browse",
    "etdb.web.pages",
)
_PASS_THROUGH = ("/api/", "/ipfs/", "/static/")


def install(app: FastAPI) -> None:
    ctx = app.state.etdb
    ctx.extra["portal_scope"] = PortalScope.from_settings(ctx.settings)
    install_viewer_client(app)  # /static/neuroglancer/: before /static (first match answers)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    # Browsers ask for /favicon.ico whatever the page says; answer rather than log a 404.
    app.add_api_route("/favicon.ico", _favicon, methods=["GET", "HEAD"], include_in_schema=False)
    for name in ROUTERS:
        module = importlib.import_module(name)
        app.include_router(_router(module))
        # A page module's checks when the app is built (pages.py reads its data files):
        # a mistake then stops `etdb serve` with a message, not a visitor's page.
        setup = getattr(module, "setup", None)
        if callable(setup):
            setup(app)
    api_handler = app.exception_handlers.get(StarletteHTTPException)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        path = request.url.path
        if api_handler is not None and (path.startswith(_PASS_THROUGH) or path == "/api"):
            answer = api_handler(request, exc)  # Starlette allows a plain function too
            return await answer if inspect.isawaitable(answer) else answer
        return error_page(request, exc.status_code, str(exc.detail))

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_middleware(SecurityHeaders)


async def _favicon() -> Response:
    return RedirectResponse("/static/favicon.svg", status_code=301)


def error_page(request: Request, status: int, message: str) -> Response:
    """The friendly error page (404.html for "not found", error.html otherwise)."""
    data = {"error": {"status": status, "message": message, "path": request.url.path}}
    if wants_json(request):
        return page(request, "404.html", {"data": data}, status=status)
    template = "404.html" if status == 404 else "error.html"
    return page(request, template, {"data": data, "status": status, "message": message},
                status=status)  # fmt: skip


def scope_of(request: Request) -> PortalScope:
    scope: Any = request.app.state.etdb.extra.get("portal_scope")
    return scope if isinstance(scope, PortalScope) else PortalScope()


def _router(module: ModuleType) -> APIRouter:
    router = getattr(module, "router", None)
    if not isinstance(router, APIRouter):
        raise ImportError(f"portal page module {module.__name__} has no APIRouter 'router'")
    return router
