"""``/static/neuroglancer/``: the Neuroglancer web client, served by the node itself (no CDN).

The client is the prebuilt one the ``neuroglancer`` PyPI package ships in
``neuroglancer/static/client/`` (``index.html``, ``main.<hash>.js``, chunk scripts, ``*.wasm``
decoders, a stylesheet). Only those files are used: the package's Python module is never
imported (it would pull in its server, tornado and numpy extensions for nothing); the folder is
found with ``importlib.util.find_spec`` on the installed distribution. Contracts, enforced here:

- the folder is a dependency: :func:`client_folder` raises :class:`ViewerClientMissing` when it
  is absent, and :func:`install` calls it when the app is built, so ``etdb serve`` stops with a
  message instead of serving a portal whose 3-D button leads to a 404;
- file names carrying a content hash (``main.8608d1fc21b22785.js``, ``09f21dcf7b4f13e8.wasm``)
  are cached ``immutable`` for a year: a new client release has new names; ``index.html``
  (which names them) is ``no-cache``, so browsers always revalidate it;
- content types are fixed per suffix, not guessed from the host's ``mime.types``: browsers
  compile WebAssembly by streaming only from ``application/wasm``, and ``nosniff`` (set on every
  answer) makes a wrong script type fatal.

The shipped client is Neuroglancer's *Python-integration* build: it finds its server from its
own address, which must be ``<prefix>/v/<token>/`` (else it stops: "Failed to determine token
from URL"), and it keeps an ``EventSource`` open on ``<prefix>/events/<token>`` through which a
Python kernel would push state (when that stream fails it shows "Disconnected from Python
server" and retries forever). So the client is served at :data:`CLIENT_PATH`
(``/static/neuroglancer/v/etdb/``), and :func:`events` answers that stream: open, silent (a
comment every :data:`HEARTBEAT` seconds keeps proxies from cutting it), ended after
:data:`EVENTS_LIFETIME` (the client reconnects at once) and at most :data:`MAX_EVENT_STREAMS`
at a time (beyond: 204, which tells an EventSource not to come back). The viewer's state comes
only from its URL fragment; nothing is ever sent on the stream, and the client's state POSTs
are never made (the Python build makes them only for state a kernel registered).
``/static/neuroglancer/`` redirects to the client (the fragment survives a redirect).

The Content-Security-Policy these files get (what the viewer must have beyond the portal's) is
chosen by path in ``security.py`` (:data:`etdb.web.security.VIEWER_POLICY`).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.types import Scope

__all__ = [
    "CLIENT_PATH",
    "CONTENT_TYPES",
    "EVENTS_PATH",
    "ViewerClientMissing",
    "client_folder",
    "install",
]

PREFIX = "/static/neuroglancer"
TOKEN = "etdb"
#: Where the client is served (the viewer route redirects to ``CLIENT_PATH + "#!<state>"``).
CLIENT_PATH = f"{PREFIX}/v/{TOKEN}/"
EVENTS_PATH = f"{PREFIX}/events/{TOKEN}"
HEARTBEAT = 30.0  # seconds
EVENTS_LIFETIME = 3600.0  # seconds
MAX_EVENT_STREAMS = 256
#: Every suffix the shipped client has; anything else is served as bytes.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".wasm": "application/wasm",
    ".map": "application/json",
}
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
#: A webpack content hash: 16 hex digits as one dot-separated part of the name.
_HASHED = re.compile(r"(?:^|\.)[0-9a-f]{16}\.")


class ViewerClientMissing(RuntimeError):
    """The ``neuroglancer`` distribution (its prebuilt client) is not installed."""


def client_folder() -> Path:
    """The shipped client's folder (``.../neuroglancer/static/client``), found without importing
    the package; :class:`ViewerClientMissing` if the package or its ``index.html`` is absent."""
    spec = importlib.util.find_spec("neuroglancer")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        folder = Path(location) / "static" / "client"
        if (folder / "index.html").is_file():
            return folder
    where = ", ".join(locations) or "not installed"
    raise ViewerClientMissing(
        f"the Neuroglancer web client (neuroglancer/static/client/index.html) is missing "
        f"(package: {where}); it is a dependency of etdb: pip install 'neuroglancer>=2.41'"
    )


def cache_control(name: str) -> str:
    """``immutable`` for a content-hashed file name, ``no-cache`` for anything else."""
    return IMMUTABLE if _HASHED.search(name) else REVALIDATE


class ClientFiles(StaticFiles):
    """StaticFiles over the client folder with fixed content types and the caching rule."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        name = os.path.basename(full_path)
        suffix = os.path.splitext(name)[1]
        response.headers["content-type"] = CONTENT_TYPES.get(suffix, "application/octet-stream")
        response.headers["cache-control"] = cache_control(name)
        return response


def install(app: FastAPI) -> None:
    """Mount the client at :data:`CLIENT_PATH` and its event stream. Call before the portal's
    ``/static`` mount: the first matching route answers."""
    folder = client_folder()
    for path in (PREFIX, PREFIX + "/", CLIENT_PATH.rstrip("/")):
        # index.html names its scripts relative to itself: its URL must end in "/".
        app.add_api_route(path, _to_client, methods=["GET", "HEAD"], include_in_schema=False)
    app.add_api_route(EVENTS_PATH, events, methods=["GET"], include_in_schema=False)
    app.mount(CLIENT_PATH.rstrip("/"), ClientFiles(directory=folder, html=True), name="viewer")


async def _to_client(request: Request) -> Response:
    query = f"?{request.url.query}" if request.url.query else ""
    return RedirectResponse(CLIENT_PATH + query, status_code=301)


class _Streams:
    open = 0


async def events(request: Request) -> Response:
    """The Python-integration client's state stream: open and silent (see the docstring)."""
    if _Streams.open >= MAX_EVENT_STREAMS:
        return Response(status_code=204, headers={"Cache-Control": "no-store"})
    return StreamingResponse(
        _silence(request),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _silence(request: Request) -> AsyncIterator[bytes]:
    _Streams.open += 1
    try:
        yield b": etdb: the viewer's state is in its URL; nothing is sent here\n\n"
        deadline = time.monotonic() + EVENTS_LIFETIME
        while time.monotonic() < deadline and not await request.is_disconnected():
            await asyncio.sleep(HEARTBEAT)
            yield b":\n\n"
    finally:
        _Streams.open -= 1
