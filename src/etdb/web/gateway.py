"""The path gateway: ``GET/HEAD /ipfs/<cid>[/<path>]`` from this server's blockstore.

What the portal's download links, key movies and snapshots point at. Files are streamed in
byte ranges (``gateway_stream.py``), never loaded whole; every block is re-hashed as it is read,
so the bytes sent are the bytes the CID names. The answer follows the IPFS path-gateway
conventions that matter to browsers and download tools: ``ETag: "<cid>"`` with an immutable
``Cache-Control`` (content addressing means a CID's bytes never change), ``Range`` (206 / 416,
which video playback needs), ``If-None-Match`` (304), ``?filename=`` (and ``&download=true``)
for the Content-Disposition, and an escaped HTML listing for directories.

Dataset files are untrusted: an ``index.html`` is listed, never rendered, and HTML, SVG and XML
are served as plain text (see :func:`etdb.web.gateway_http.content_type_of`); the security
middleware adds a sandbox CSP on ``/ipfs/``. Paths are names inside the content DAG, never file
system paths: ``..`` is refused, and the blockstore is only ever read by CID.

Errors are JSON (``{"error": {...}}``, as the API's), not portal pages: bad CID or path 400,
not here 404, damaged content 500, too many streams 429.

With upstream peers (the ``peers`` setting) the path gateway reads through them what this node
does not hold (``content/readthrough.py``: verified, kept in the bounded peer cache, streams
read ahead): ``GatewayState.store()``. Their failures are 502 (no peer could deliver a block,
or every one lied), 503 (too many blocks waiting for them), 504 (a block took too long); once
a file's bytes are being sent, an upstream failure aborts the stream (a truncated body, never
wrong bytes). The trustless formats answer from ``GatewayState.held()`` only: this node's
blockstore and cache, never its peers (why: ``gateway_trustless.py``).

The trustless formats (``?format=raw|car``, ``Accept: application/vnd.ipld.raw|car``) are
answered by a responder per format in :data:`FORMATS` (``gateway_trustless.py``); a format we
do not make is a clear 400 (``?format=``) or 406 (``Accept``), so no client takes UnixFS bytes
for a raw block or a CAR.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from etdb._version import __version__
from etdb.api.errors import ApiError, BadParameter
from etdb.config import Settings
from etdb.content.blockstore import BlockGetter, FSBlockstore
from etdb.content.cid import CID, CIDError
from etdb.content.errors import (
    BlockNotFoundError,
    ContentError,
    CorruptBlockError,
    InvalidNodeError,
    InvalidPathError,
    PathNotFoundError,
)
from etdb.content.exporter import Kind, Node, iter_links, load_node, parse_path, resolve_node
from etdb.content.readthrough import BlockHolder, ReadThrough, open_read_through, upstream_status
from etdb.web.gateway_http import (
    ByteRange,
    RangeNotSatisfiable,
    content_disposition,
    content_type_of,
    etag_matches,
    if_range_allows,
    parse_range,
)
from etdb.web.gateway_stream import DEFAULT_STREAMS, StreamSlots, UnixFSStream
from etdb.web.gateway_trustless import RESPONDERS, negotiate
from etdb.web.render import env, human_bytes

__all__ = ["FORMATS", "GatewayState", "install"]

IMMUTABLE = "public, max-age=29030400, immutable"
#: Entries a directory listing shows (each costs one block read for its kind and size).
MAX_LISTING = 2000
#: ``?format=`` name (or the ``Accept`` type it stands for) -> responder: raw blocks, CAR.
FORMATS: dict[str, Callable[..., Response]] = dict(RESPONDERS)


class LocalBlocks:
    """The node's blockstore, opened once, on first use after its folder exists: a server that
    indexes but stores no content (no blockstore folder yet) still starts, and serves what
    ``etdb add``/``etdb publish`` adds later. Without the folder every block is not found."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._store: FSBlockstore | None = None
        self._lock = threading.Lock()

    def store(self) -> FSBlockstore | None:
        if self._store is None:
            with self._lock:
                if self._store is None and self.path.is_dir():
                    # create=False: a reader never writes SHARDING/_README into a folder.
                    self._store = FSBlockstore(self.path, create=False)
        return self._store

    def get(self, cid: CID) -> bytes:
        store = self.store()
        if store is None:
            raise BlockNotFoundError(cid, "this server keeps no blockstore")
        return store.get(cid)

    def has(self, cid: CID) -> bool:
        store = self.store()
        return store is not None and store.has(cid)


class GatewayState:
    """What this server reads content through, what it answers other peers from, the slots.

    Without ``peers`` both are the node's blockstore (None until its folder exists: 404).
    With them, ``store()`` is a ``ReadThrough`` over the blockstore, the peer cache and the
    peers, made here (the cache's folder is opened and scanned at start, not on a request),
    and ``held()`` its blockstore and cache without the peers.
    """

    def __init__(self, settings: Settings, streams: int = DEFAULT_STREAMS) -> None:
        self.local = LocalBlocks(settings.blockstore_path)
        self.slots = StreamSlots(streams)
        self._through: ReadThrough | None = None
        if settings.peer_urls:
            cache_bytes = settings.peer_cache_bytes
            self._through = open_read_through(
                self.local,
                settings.peer_urls,
                settings.peer_cache_path if cache_bytes else None,
                cache_bytes,
            )

    def store(self) -> BlockGetter | None:
        """The getter this server reads content through (files, listings, slices, the RPC
        API): the read-through when it has peers, else its blockstore (None: it has none)."""
        return self._through or self.local.store()

    def held(self) -> BlockHolder | None:
        """What this server holds: its blockstore and peer cache, never the network (what the
        trustless gateway answers other peers from)."""
        return self._through.held if self._through is not None else self.local.store()


def install(app: FastAPI) -> None:
    ctx = app.state.etdb
    ctx.extra["gateway_state"] = GatewayState(ctx.settings, _streams(ctx.settings))
    for path in ("/ipfs/{cid}", "/ipfs/{cid}/{path:path}"):
        app.add_api_route(path, serve, methods=["GET", "HEAD"], include_in_schema=False)


def _streams(settings: Settings) -> int:
    """The ``gateway_streams`` setting: how many files may be sent at once (default 64)."""
    value = settings.extra.get("gateway_streams", str(DEFAULT_STREAMS))
    try:
        streams = int(value)
    except ValueError:
        streams = 0
    if streams < 1:
        raise ValueError(f"setting gateway_streams: expected a positive integer, got {value!r}")
    return streams


def serve(request: Request, cid: str, path: str = "") -> Response:
    """One file (streamed, ranged), one directory listing, or a trustless raw block or CAR.
    A plain ``def``: resolving walks blocks on disk, so FastAPI runs it in a worker thread."""
    wanted = negotiate(request)  # a trustless format, or None for a file / listing
    state: GatewayState = request.app.state.etdb.extra["gateway_state"]
    try:
        root = CID.decode(cid)
    except CIDError as exc:
        raise BadParameter("cid", f"{cid!r} is not a CID: {exc}") from None
    content_path = f"{root}/{path}"
    try:
        _, segments = parse_path(content_path)
    except InvalidPathError as exc:
        raise BadParameter("path", str(exc)) from None
    # Trustless requests (other peers' fetchers) get held blocks only, never the upstream
    # peers: no loops between nodes, no amplification (gateway_trustless.py's docstring).
    store = state.store() if wanted is None else state.held()
    if store is None:
        raise ApiError(404, f"{root} is not stored on this server (it keeps no blockstore)")
    try:
        if wanted is not None:
            return FORMATS[wanted.format](request, store, state.slots, root, segments, wanted)
        node = resolve_node(store, content_path)
        if node.kind == Kind.DIRECTORY:
            return _listing(request, store, node, root, segments)
        if node.kind == Kind.SYMLINK:
            raise ApiError(404, f"/{'/'.join(segments)} is a symlink; this gateway does not follow")
        return _file(request, state.slots, store, node, segments)
    except (BlockNotFoundError, PathNotFoundError) as exc:
        raise ApiError(404, _not_found(exc, root), "path" if segments else "cid") from None
    except (CorruptBlockError, InvalidNodeError) as exc:
        raise ApiError(500, f"stored content is damaged: {exc}") from None
    except ContentError as exc:
        status = upstream_status(exc)
        if status is not None:
            raise ApiError(status, f"cannot read {root} from the upstream peers: {exc}") from None
        raise ApiError(500, f"cannot read {root}: {exc}") from None


def _not_found(exc: ContentError, root: Any) -> str:
    if isinstance(exc, BlockNotFoundError):
        return f"{root} (or a block under it) is not stored on this server"
    return str(exc)


# -- files ------------------------------------------------------------------------------------


def _file(
    request: Request, slots: StreamSlots, store: BlockGetter, node: Node, segments: list[str]
) -> Response:
    size = node.size or 0
    tag = f'"{node.cid}"'
    filename = request.query_params.get("filename")
    name = filename or (segments[-1] if segments else "")
    headers: dict[str, str] = {
        "ETag": tag,
        "Cache-Control": IMMUTABLE,
        "Accept-Ranges": "bytes",
    }
    if etag_matches(request.headers.get("if-none-match"), tag):
        return Response(status_code=304, headers=headers)
    headers["Content-Type"] = content_type_of(name)
    if filename or _truthy(request.query_params.get("download")):
        headers["Content-Disposition"] = content_disposition(
            name or str(node.cid), attachment=_truthy(request.query_params.get("download"))
        )
    wanted: ByteRange | None = None
    if if_range_allows(request.headers.get("if-range"), tag):
        try:
            wanted = parse_range(request.headers.get("range"), size)
        except RangeNotSatisfiable:
            return Response(
                f"range not satisfiable: the file has {size} bytes\n",
                status_code=416,
                media_type="text/plain",
                headers={"Content-Range": f"bytes */{size}", "ETag": tag},
            )
    status, start, end = 200, 0, size
    if wanted is not None:
        status, start, end = 206, wanted.start, wanted.end
        headers["Content-Range"] = wanted.content_range
    headers["Content-Length"] = str(end - start)
    return UnixFSStream(
        store,
        node,
        start,
        end,
        status=status,
        headers=list(headers.items()),
        slots=slots,
        head=request.method == "HEAD",
    )


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


# -- directories ------------------------------------------------------------------------------


def _listing(
    request: Request, store: BlockGetter, node: Node, root: Any, segments: list[str]
) -> Response:
    tag = f'"DirIndex-{__version__}_CID-{node.cid}"'
    headers = {"ETag": tag, "Cache-Control": "public, max-age=3600"}
    if etag_matches(request.headers.get("if-none-match"), tag):
        return Response(status_code=304, headers=headers)
    base = "/ipfs/" + "/".join(quote(s, safe="") for s in [str(root), *segments])
    entries = []
    links = itertools.islice(iter_links(store, node), MAX_LISTING + 1)
    for name, link in sorted(links, key=lambda item: item[0].encode("utf-8")):
        child = load_node(store, link.cid)
        entries.append(
            {
                "name": name,
                "href": f"{base}/{quote(name, safe='')}",
                "kind": "directory" if child.kind == Kind.DIRECTORY else child.kind.value,
                "size": human_bytes(child.size) if child.size is not None else "",
                "cid": str(link.cid),
            }
        )
    truncated = len(entries) > MAX_LISTING
    parent = base.rsplit("/", 1)[0] if segments else None
    html = env.get_template("gateway_listing.html").render(
        path="/".join([str(root), *segments]),
        cid=str(node.cid),
        entries=entries[:MAX_LISTING],
        truncated=truncated,
        parent=parent,
        has_index="index.html" in {e["name"] for e in entries},
    )
    return HTMLResponse(html, headers=headers)
