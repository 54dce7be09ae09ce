"""kubo's RPC API, a read-only subset, on ``etdb serve``: ``POST /api/v0/{get,cat,ls,version}``.

So that IPFS clients written for a kubo node (``ipfs-api``, which the original ETDB-downloads
CLI uses for ``files.get``, and ``kubo-rpc-client``) download from an etdb server. The four
commands answer as kubo v0.43.1 answers them (``core/commands/{get,cat,ls,version}.go`` over
go-ipfs-cmds): the same status codes, headers (``X-Stream-Output``, ``X-Chunked-Output``,
``X-Content-Length``, ``Trailer: X-Stream-Error``), JSON shapes, tar stream
(``etdb.content.tarstream``) and errors: ``{"Message", "Code", "Type": "error"}`` with 500
(``Code`` 0) or 400 (``Code`` 1) once a command runs, kubo's plain-text 400 for a bad option
value or a missing ``arg`` (``kubo_rpc_query``), ``404 page not found`` for every other path
under ``/api/v0`` (nothing here writes: ``add``, ``pin``, ``files/write``... do not exist), and
``405`` for any method but POST (as kubo, which refuses GET).

Differences, all deliberate: ``version`` reports etdb's own version and runtime; an error in
the middle of a stream cannot be an ``X-Stream-Error`` trailer (HTTP/1.1 here sends none), so
the connection is cut and the client sees a truncated body, never a complete-looking one; the
server's stream slots full is 429 (``Code`` 3, rate limited) with ``Retry-After``; a tar leaves
out unsafe symlinks and stops on unsafe names (``tarstream``); ``ls`` without ``stream`` lists
at most :data:`MAX_LISTING` entries and reads at most :data:`MAX_LISTING_BYTES` of child blocks
(``stream=true`` lists any directory); IPNS names are not resolved.

Content comes from the gateway's accessor (``GatewayState.store``, set up by the ``gateway``
app part, which this part needs) and streams hold the gateway's slots and work budget
(``web/gateway_stream.py``, ``web/gateway_budget.py``): every block re-hashed as read, a
client that goes away stops the work at the next block.
"""

from __future__ import annotations

import functools
import json
import logging
import platform
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from etdb._version import __version__
from etdb.content.blockstore import BlockGetter
from etdb.content.cid import CID
from etdb.content.errors import BlockNotFoundError, ContentError
from etdb.content.exporter import iter_file
from etdb.content.nodes import Kind, Node
from etdb.content.readthrough import read_ahead
from etdb.content.tarstream import TarFormat, check_member, tar_stream
from etdb.web.gateway_budget import ResponseBudget
from etdb.web.gateway_stream import RETRY_AFTER, SlotStream, StreamSlots
from etdb.web.kubo_rpc_query import COMMANDS, Query, QueryError, parse_query
from etdb.web.kubo_rpc_unixfs import (
    EMPTY_STORE,
    CatPart,
    RpcError,
    announced_size,
    cat_plan,
    ls_entries,
    resolve,
    split_path,
)

__all__ = ["MAX_LISTING", "MAX_LISTING_BYTES", "PREFIX", "install"]

log = logging.getLogger(__name__)

PREFIX = "/api/v0"
#: Entries one ``ls`` without ``stream`` answers (it sorts them, so it holds them all).
MAX_LISTING = 100_000
#: Bytes of child blocks one ``ls`` without ``stream`` may read to learn types and sizes.
MAX_LISTING_BYTES = 1 << 30
_EXPOSED = "X-Stream-Output, X-Chunked-Output, X-Content-Length"
#: Headers go-ipfs-cmds puts on every answer of a command (its "preamble").
_PREAMBLE = (
    ("Access-Control-Allow-Headers", _EXPOSED),
    ("Access-Control-Expose-Headers", _EXPOSED),
    ("Trailer", "X-Stream-Error"),
)
_ALLOW = {"Allow": "OPTIONS, POST"}
_GZIP_DEFAULT = 6  # Go's gzip.DefaultCompression
_RATE_LIMITED = 3  # go-ipfs-cmds ErrRateLimited


_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]  # rpc() refuses most


def install(app: FastAPI) -> None:
    for path in (PREFIX, PREFIX + "/{command:path}"):
        app.router.add_route(path, rpc, methods=_METHODS, include_in_schema=False)


async def rpc(request: Request) -> Response:
    """Method check, command lookup and query parsing in kubo's order, then the command."""
    if request.method == "OPTIONS":
        return Response(status_code=204, headers=_ALLOW)
    if request.method != "POST":
        return _plain(405, "405 - Method Not Allowed", _ALLOW)
    name, _, inline_arg = request.path_params.get("command", "").partition("/")
    command = COMMANDS.get(name)
    if command is None or "/" in inline_arg:
        return _plain(404, "404 page not found")
    items = request.query_params.multi_items()
    if inline_arg:  # kubo takes /api/v0/cat/<cid> as cat?arg=<cid>
        items.insert(0, ("arg", inline_arg))
    try:
        query = parse_query(command, items)
    except QueryError as exc:
        return _plain(exc.status, str(exc))
    try:
        return await _HANDLERS[name](request, query)
    except RpcError as exc:
        return _error(exc.message, exc.code, None, **exc.headers)


# -- commands -----------------------------------------------------------------------------------


async def _version(request: Request, query: Query) -> Response:
    info = {
        "Version": __version__,
        "Commit": "",
        "Repo": "",
        "System": f"{platform.machine().lower()}/{sys.platform}",
        "Golang": f"python{platform.python_version()}",  # honest: no Go here
    }
    encoding = query["encoding"]
    if encoding == "json":
        return _json(info)
    if encoding in ("text", "textnl"):
        text = info["Version"] if query["number"] else f"etdb version {info['Version']}"
        return Response(text + "\n", headers={**dict(_PREAMBLE), "Content-Type": "text/plain"})
    raise RpcError(f"etdb answers version in json or text, not {encoding}", 1)


async def _cat(request: Request, query: Query) -> Response:
    store, slots = _content(request)
    length = query["length"] if "length" in query.given else None
    parts, total = await _reading(cat_plan, store, query.args, query["offset"] or 0, length)
    headers = [*_PREAMBLE, ("Content-Type", "text/plain"), ("X-Content-Length", str(total))]
    body = functools.partial(_cat_pieces, parts=parts)
    return RpcStream(body, store, slots, [*headers, ("X-Stream-Output", "1")], empty=total == 0)


async def _get(request: Request, query: Query) -> Response:
    store, slots = _content(request)
    level = _compression(query)
    node = await _reading(resolve, store, query.args[0])
    size = str(announced_size(node))
    archive = bool(query["archive"])
    if level is not None and not archive and node.kind == Kind.DIRECTORY:
        raise RpcError("file is not regular", headers={"X-Content-Length": size})
    cid_text, names = split_path(query.args[0])
    name = names[-1] if names else cid_text
    try:
        check_member(name)
    except ContentError as exc:
        raise RpcError(str(exc)) from None
    fmt = TarFormat.USTAR if archive else TarFormat.PAX
    body = functools.partial(_get_pieces, node=node, name=name, fmt=fmt, level=level, tar=archive)
    headers = [
        *_PREAMBLE,
        ("Content-Type", "application/x-tar" if level is None else "application/gzip"),
        ("X-Content-Length", size),
        ("X-Stream-Output", "1"),
    ]
    return RpcStream(body, store, slots, headers)


async def _ls(request: Request, query: Query) -> Response:
    if query["sort-size"] and query["stream"]:
        raise RpcError("cannot use --sort-size with --stream", 1)
    if query["sort-size"] and not query["size"]:
        raise RpcError("cannot use --sort-size with --size=false", 1)
    if query["encoding"] != "json":
        raise RpcError(f"etdb answers ls in json only, not {query['encoding']}", 1)
    store, slots = _content(request)
    children = bool(query["resolve-type"] or query["size"])
    nodes = await _reading(lambda: [resolve(store, arg) for arg in query.args])
    if query["stream"]:
        body = functools.partial(_ls_lines, args=query.args, nodes=nodes, children=children)
        headers = [*_PREAMBLE, ("Content-Type", "application/json"), ("X-Chunked-Output", "1")]
        return RpcStream(body, store, slots, headers)
    if not slots.try_acquire():  # a listing is read before the answer: it holds a slot meanwhile
        return _busy(slots.limit)
    try:
        listed = _Counted(store)
        objects = await _reading(_ls_objects, listed, query, nodes, children)
    finally:
        slots.release()
    return _json({"Objects": objects})


_HANDLERS: dict[str, Callable[[Request, Query], Any]] = {
    "version": _version,
    "cat": _cat,
    "get": _get,
    "ls": _ls,
}


def _compression(query: Query) -> int | None:
    """The gzip level of a get, or None (kubo's getCompressOptions)."""
    if not query["compress"]:
        return None
    if "compression-level" not in query.given:
        return _GZIP_DEFAULT
    level = query["compression-level"]
    if not 1 <= level <= 9:
        raise RpcError("compression level must be between 1 and 9")
    return level


# -- bodies (run in a worker thread, reading through the stream's budget) ----------------------


class _Reading:
    """What a streamed body reads through: the store, every read counted by the stream's
    budget; a file's bytes read ahead when the store reads through upstream peers."""

    def __init__(self, store: BlockGetter, budget: ResponseBudget) -> None:
        self.raw = store
        self.budget = budget
        self.store = budget.guard(store)

    def bytes_of(
        self, node: Node, start: int = 0, end: int | None = None
    ) -> Iterator[bytes | memoryview]:
        """A file's bytes, or a symlink's target (kubo reads a symlink as its target)."""
        end = (node.size or 0) if end is None else end
        if node.kind == Kind.SYMLINK:
            assert node.unixfs is not None
            yield (node.unixfs.data or b"")[start:end]
            return
        with read_ahead(self.raw, node, start, end) as store:
            yield from iter_file(self.budget.guard(store), node, start, end)


def _cat_pieces(read: _Reading, parts: list[CatPart]) -> Iterator[bytes | memoryview]:
    for part in parts:
        yield from read.bytes_of(part.node, part.start, part.end)


def _get_pieces(
    read: _Reading, node: Node, name: str, fmt: TarFormat, level: int | None, tar: bool
) -> Iterable[bytes | memoryview]:
    if level is not None and not tar:  # compress without archive: the file itself, gzipped
        pieces: Iterable[bytes | memoryview] = read.bytes_of(node)
    else:
        pieces = tar_stream(read.store, node, name, fmt, read_file=read.bytes_of)
    return pieces if level is None else _gzip(pieces, level)


def _gzip(pieces: Iterable[bytes | memoryview], level: int) -> Iterator[bytes]:
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)  # wbits 31: a gzip member
    for piece in pieces:
        out = compressor.compress(piece)
        if out:
            yield out
    yield compressor.flush()


def _ls_lines(
    read: _Reading, args: list[str], nodes: list[Node], children: bool
) -> Iterator[bytes]:
    """``stream=true``: one ``{"Objects": [{"Hash", "Links": [entry]}]}`` line per entry."""
    for arg, node in zip(args, nodes, strict=True):
        for entry in ls_entries(read.store, node, children):
            yield go_json({"Objects": [{"Hash": arg, "Links": [entry]}]})


def _ls_objects(
    store: _Counted, query: Query, nodes: list[Node], children: bool
) -> list[dict[str, Any]]:
    objects = []
    listed = 0
    for arg, node in zip(query.args, nodes, strict=True):
        links = []
        for entry in ls_entries(store, node, children):
            listed += 1
            if listed > MAX_LISTING:
                raise RpcError(f"more than {MAX_LISTING} entries to list: ask with stream=true")
            links.append(entry)
        if query["sort-size"]:
            links.sort(key=lambda e: (-e["Size"], e["Name"].encode("utf-8")))
        else:
            links.sort(key=lambda e: e["Name"].encode("utf-8"))
        objects.append({"Hash": arg, "Links": links})
    return objects


class _Counted:
    """A store that stops a listing past :data:`MAX_LISTING_BYTES` of blocks read."""

    def __init__(self, store: BlockGetter) -> None:
        self.store = store
        self.read = 0

    def get(self, cid: CID) -> bytes:
        block = self.store.get(cid)
        self.read += len(block)
        if self.read > MAX_LISTING_BYTES:
            raise RpcError(f"listing read over {MAX_LISTING_BYTES} bytes: ask with stream=true")
        return block


# -- responses ----------------------------------------------------------------------------------


class RpcStream(SlotStream):
    """A streamed answer (cat, get, ls with stream=true) holding one of the gateway's slots.

    ``body(read)`` makes the pieces, reading through ``read`` (a :class:`_Reading`).
    A content error mid-stream (a block gone, damaged, a hostile name in a tar) is logged on
    one line and cuts the connection: the client sees a truncated body.
    """

    def __init__(
        self,
        body: Callable[[_Reading], Iterable[bytes | memoryview]],
        store: BlockGetter,
        slots: StreamSlots,
        headers: list[tuple[str, str]],
        *,
        empty: bool = False,
    ) -> None:
        super().__init__(status=200, headers=headers, slots=slots, empty=empty)
        self.make_pieces = body  # not ``body``: Response.body is the bytes of a whole answer
        self.store = store

    def pieces(self) -> Iterator[bytes | memoryview]:
        return iter(self.make_pieces(_Reading(self.store, self.budget)))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.head and self.slots.active >= self.slots.limit:
            await _busy(self.slots.limit)(scope, receive, send)  # kubo's shape, not the gateway's
            return
        try:
            await super().__call__(scope, receive, send)
        except ContentError as exc:
            log.warning("kubo RPC %s: stream cut: %s", scope.get("path"), exc)


async def _reading(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a worker thread (it reads blocks), content errors as kubo's errors."""
    return await anyio.to_thread.run_sync(functools.partial(_as_rpc_errors, fn, *args))


def _as_rpc_errors(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except BlockNotFoundError as exc:
        message = f"block was not found locally (offline): ipld: could not find {exc.cid}"
        raise RpcError(message) from None
    except ContentError as exc:
        raise RpcError(str(exc)) from None


def _content(request: Request) -> tuple[BlockGetter, StreamSlots]:
    state = request.app.state.etdb.extra.get("gateway_state")
    if state is None:
        raise RpcError("this server serves no content (its gateway part is not installed)")
    return state.store() or EMPTY_STORE, state.slots


def go_json(value: Any) -> bytes:
    """JSON as Go's ``json.Encoder`` writes it: compact, HTML characters escaped, a newline."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escaped)
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return (text + "\n").encode("utf-8")


def _json(value: Any) -> Response:
    return Response(go_json(value), headers={**dict(_PREAMBLE), "Content-Type": "application/json"})


def _error(message: str, code: int, status: int | None = None, **headers: str) -> Response:
    body = go_json({"Message": message, "Code": code, "Type": "error"})
    status = status or (400 if code == 1 else 500)
    return Response(body, status, {**dict(_PREAMBLE), **headers}, media_type="application/json")


def _busy(limit: int) -> Response:
    message = f"this server is already sending {limit} streams; retry in {RETRY_AFTER} s"
    return _error(message, _RATE_LIMITED, 429, **{"Retry-After": str(RETRY_AFTER)})


def _plain(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """Go's ``http.Error``: the message and a newline, as plain text."""
    extra = {"X-Content-Type-Options": "nosniff", **(headers or {})}
    return Response(message + "\n", status, extra, media_type="text/plain; charset=utf-8")
