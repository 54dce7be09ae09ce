"""The web application: the JSON API, the oipd-compatible API, docs, and later parts.

:func:`create_app` builds one FastAPI app from named *parts*. A part is ``"module:attr"``
where ``attr`` is an ``APIRouter`` (included as is) or a callable taking the app (for mounts
and handlers). Parts are named, not imported here, because the gateway, kubo RPC and portal
live in ``etdb.web``, above this package; every named part must load: a missing module or
attribute is an ImportError when the app is built (``etdb serve`` stops), never a part quietly
left out. Order matters: the portal's catch-all routes come last. Every part finds the
catalog and settings in ``request.app.state.etdb`` (:class:`etdb.api.context.AppContext`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.routing import APIRoute
from starlette.types import Receive, Scope, Send

from etdb._version import __version__
from etdb.api.context import DEFAULT_EXPORT_ROWS, DEFAULT_MAX_AGE, AppContext
from etdb.api.errors import HANDLERS
from etdb.config import Settings
from etdb.index.query import CatalogReader
from etdb.ledger import Ledger

OPENAPI_URL = "/api/openapi.json"
#: Response headers browsers may read: the API's, and those kubo RPC clients read (web/kubo_rpc.py).
EXPOSED_HEADERS = ("ETag", "Link", "X-Total-Count", "X-Row-Limit", "X-Truncated")
RPC_HEADERS = ("X-Stream-Output", "X-Chunked-Output", "X-Content-Length")

#: name -> "module:attr"; each must exist (see the module docstring).
PARTS: dict[str, str] = {
    "v1": "etdb.api.v1:router",
    "compat": "etdb.api.compat:router",
    "docs": "etdb.api.docs:install",
    "gateway": "etdb.web.gateway:install",  # /ipfs/<cid>/<path>
    "kubo_rpc": "etdb.web.kubo_rpc:install",  # POST /api/v0/{get,cat,ls,version} (needs gateway)
    "portal": "etdb.web:install",  # / (catch-all: keep last)
}
DEFAULT_PARTS: tuple[str, ...] = tuple(PARTS)

DESCRIPTION = """\
Search and read the etdb catalog: electron-tomography records published on a public ledger,
their files stored by content address (IPFS CIDs).

* `/api/v1/...` is the API; every answer is JSON (search results also as CSV and NDJSON).
* `/api/v2/...` answers the calls of the original ETDB front-end (oipd / oip-js) in their shape.
* Errors: `{"error": {"parameter": ..., "message": ...}}` with status 400 (bad parameter,
  named), 404, 409 (ambiguous id prefix, with `candidates`).
* Caching: `ETag` (the indexed ledger height) and a short `max-age`; CORS is open for `GET`
  (and `POST` /api/v2/search, a read).
"""


def create_app(
    catalog: CatalogReader,
    *,
    settings: Settings,
    ledger: Ledger | None = None,
    parts: Sequence[str] = DEFAULT_PARTS,
    max_age: int = DEFAULT_MAX_AGE,
    export_rows: int = DEFAULT_EXPORT_ROWS,
) -> FastAPI:
    """The app over ``catalog``; ``ledger`` (optional) lets ``/api/v1/status`` show the tip."""
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise ValueError(f"unknown app part(s) {unknown} (known: {', '.join(PARTS)})")
    app = FastAPI(
        title="etdb",
        version=__version__,
        description=DESCRIPTION,
        openapi_url=OPENAPI_URL,
        docs_url=None,  # docs.py serves them without a CDN
        redoc_url=None,
        exception_handlers=HANDLERS,
    )
    app.state.etdb = AppContext(
        catalog=catalog,
        settings=settings,
        ledger=ledger,
        max_age=max_age,
        export_rows=export_rows,
    )
    for name in parts:
        target = _load(PARTS[name])
        if isinstance(target, APIRouter):
            _allow_head(target)
            app.include_router(target)
        else:
            target(app)
    # Links to files only where this server has an IPFS gateway part to answer them.
    app.state.etdb.extra["gateway"] = any(
        getattr(route, "path", "").startswith("/ipfs") for route in app.routes
    )
    # Third-party front-ends are a stated use case: any origin may read (never write). POST
    # only for reads: oip-js's /api/v2/search, a JSON body (so a preflight from a browser).
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"],
        allow_methods=["GET", "HEAD", "OPTIONS", "POST"],
        allow_headers=["*"],
        expose_headers=[*EXPOSED_HEADERS, *RPC_HEADERS],
        max_age=3600,
    )
    # Level 5, not 9: ~3x faster for ~10% more bytes (a 25 MB list: 0.18 s instead of 0.5 s).
    app.add_middleware(GZipExceptFiles, minimum_size=1024, compresslevel=5)
    app.openapi = _openapi_with_our_errors(app)  # type: ignore[method-assign]
    return app


class GZipExceptFiles(GZipMiddleware):
    """Gateway files (``/ipfs/``) and kubo RPC streams (``/api/v0/``) go out as stored: their
    ETag and byte ranges name those exact bytes, and gzipping a multi-GB tilt series would
    take a core for little gain."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(("/ipfs/", "/api/v0/")):
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def _allow_head(router: APIRouter) -> None:
    """HEAD wherever GET is allowed (link checkers, caches, `curl -I`), as Starlette's plain
    routes do; FastAPI's answer 405. Twin routes, left out of the OpenAPI document."""
    if getattr(router, "_etdb_head", False):  # module-level routers: once per process
        return
    for route in list(router.routes):
        if isinstance(route, APIRoute) and "GET" in (route.methods or ()):
            router.add_api_route(
                route.path.removeprefix(router.prefix),
                route.endpoint,
                methods=["HEAD"],
                name=f"{route.name}_head",
                include_in_schema=False,
            )
    router._etdb_head = True  # type: ignore[attr-defined]


def _load(target: str) -> APIRouter | Callable[[FastAPI], None]:
    """The part ``module:attr`` names; ImportError if either is missing or unusable."""
    module_name, attr = target.split(":")
    module = importlib.import_module(module_name)
    part = getattr(module, attr, None)
    if not isinstance(part, APIRouter) and not callable(part):
        raise ImportError(f"app part {target}: {module_name} has no router or installer {attr!r}")
    return part


def _openapi_with_our_errors(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """FastAPI documents a 422 with its own body on every route; we answer 400 with ours."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = original()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        error_schema = (
            {"$ref": "#/components/schemas/ErrorBody"}
            if "ErrorBody" in components
            else {"type": "object", "properties": {"error": {"type": "object"}}}
        )
        for ops in schema.get("paths", {}).values():
            for op in ops.values():
                responses = op.get("responses", {})
                if responses.pop("422", None) is not None and "400" not in responses:
                    responses["400"] = {
                        "description": "A parameter is invalid (it is named).",
                        "content": {"application/json": {"schema": error_schema}},
                    }
        app.openapi_schema = schema
        return schema

    return openapi
