"""What the kubo RPC commands read, worked out as kubo v0.43.1 works it out.

* :func:`resolve`: an ``ipfs-path`` argument (``/ipfs/<cid>/a``, ``ipfs://<cid>/a`` or
  ``<cid>/a``), cleaned lexically as Go's ``path.Clean`` does, then walked name by name;
* :func:`cat_plan`: which bytes of which files ``cat`` sends for ``offset``/``length`` across
  several paths (kubo's arithmetic, quirks included: a length of 0 reads nothing at all);
* :func:`ls_entries`: ``ls``'s ``Links`` objects (``Name, Hash, Size, Type, Target, Mode,
  ModTime``), children resolved as kubo's core API resolves them (a raw child is a file of its
  link's ``Tsize``, never fetched; a dag-pb child is fetched only when types or sizes are
  wanted);
* :func:`announced_size`: the ``X-Content-Length`` kubo announces for ``get``.

Failures are :class:`RpcError` (kubo's ``{"Message", "Code", "Type": "error"}``), or content
errors (``BlockNotFoundError``...) that the routes turn into one.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from etdb.content.blockstore import BlockGetter
from etdb.content.cid import CID, DAG_PB, RAW, CIDError
from etdb.content.dagpb import DagPBError, UnixFSType, decode_node, decode_unixfs
from etdb.content.errors import BlockNotFoundError, InvalidNodeError
from etdb.content.exporter import iter_links, lookup
from etdb.content.nodes import Kind, Node, load_node
from etdb.content.tarstream import unixfs_mtime
from etdb.web.kubo_rpc_query import go_quote

__all__ = [
    "EMPTY_STORE",
    "ZERO_TIME",
    "CatPart",
    "RpcError",
    "announced_size",
    "cat_plan",
    "ls_entries",
    "resolve",
    "split_path",
]

#: Go's zero ``time.Time`` in JSON: what ``ModTime`` says when nothing is stored.
ZERO_TIME = "0001-01-01T00:00:00Z"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: UnixFS type -> kubo's ``ls`` ``Type`` (unixfs_pb: 1 directory, 2 file, 4 symlink).
_LS_TYPES = {
    UnixFSType.RAW: 2,
    UnixFSType.FILE: 2,
    UnixFSType.DIRECTORY: 1,
    UnixFSType.HAMT_SHARD: 1,
    UnixFSType.METADATA: 1,
    UnixFSType.SYMLINK: 4,
}
_MODE_DIR, _MODE_SYMLINK = 1 << 31, 1 << 27  # Go's os.ModeDir, os.ModeSymlink


class RpcError(Exception):
    """A command failed: ``Code`` 0 (kubo answers 500) or 1, the client's fault (400)."""

    def __init__(self, message: str, code: int = 0, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.headers = headers or {}  # what kubo had set before failing (X-Content-Length)


class _EmptyStore:
    """The content of a server that keeps no blockstore (yet): no block at all."""

    def get(self, cid: CID) -> bytes:
        raise BlockNotFoundError(cid, "this server keeps no blockstore")


EMPTY_STORE = _EmptyStore()


# -- paths --------------------------------------------------------------------------------------


def split_path(arg: str) -> tuple[str, list[str]]:
    """(CID text, names) of an ``ipfs-path`` argument, cleaned as ``path.Clean`` cleans."""
    text = arg
    for scheme, prefix in (("ipfs://", "/ipfs/"), ("ipns://", "/ipns/")):
        if text.startswith(scheme):
            text = prefix + text[len(scheme) :]
    if text.startswith("/ipns/"):
        raise RpcError(f"invalid path {go_quote(arg)}: etdb serves /ipfs paths, not IPNS names")
    if not text.startswith("/ipfs/"):
        text = "/ipfs/" + text
    parts = posixpath.normpath(text).split("/")[2:]  # "", "ipfs", then the CID and names
    if not parts or not parts[0]:
        raise RpcError(f"invalid path {go_quote(arg)}: path does not have enough components")
    return parts[0], parts[1:]


def resolve(store: BlockGetter, arg: str) -> Node:
    """The node an ``ipfs-path`` names (symlinks are not followed, as in kubo)."""
    cid_text, names = split_path(arg)
    try:
        cid = CID.decode(cid_text)
    except CIDError as exc:
        raise RpcError(f"invalid path {go_quote(arg)}: {exc}") from None
    node = load_node(store, cid)
    for name in names:
        if node.kind != Kind.DIRECTORY:
            raise RpcError(f"cannot resolve {go_quote(name)}: {node.cid} is a {node.kind}")
        child = lookup(store, node, name)
        if child is None:
            raise RpcError(f"no link named {go_quote(name)} under {node.cid}")
        node = load_node(store, child)
    return node


def announced_size(node: Node) -> int:
    """kubo's ``Size()`` of a get: a file's size, a symlink's target length, a directory's
    cumulative DAG size (its block plus every link's ``Tsize``, as claimed)."""
    if node.kind != Kind.DIRECTORY:
        return node.size or 0
    assert node.pb is not None
    return len(node.block) + sum(link.tsize or 0 for link in node.pb.links)


# -- cat ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CatPart:
    node: Node  # a file or a symlink (whose bytes are its target)
    start: int
    end: int


def cat_plan(
    store: BlockGetter, args: list[str], offset: int, length: int | None
) -> tuple[list[CatPart], int]:
    """The parts ``cat`` sends and their total, as kubo's ``cat()``: ``offset`` skips whole
    files and then into one, ``length`` (None: all) stops the plan, resolving no further."""
    if offset < 0:
        raise RpcError("cannot specify negative offset")
    if length is not None and length < 0:
        raise RpcError("cannot specify negative length")
    parts: list[CatPart] = []
    total = 0
    if length == 0:
        return parts, total
    for arg in args:
        node = resolve(store, arg)
        if node.kind == Kind.DIRECTORY:
            raise RpcError("this dag node is a directory")
        size = node.size or 0
        if offset > size:
            offset -= size
            continue
        start, offset = offset, 0
        total += size - start
        if length is not None and total >= length:
            parts.append(CatPart(node, start, size - (total - length)))
            return parts, length
        parts.append(CatPart(node, start, size))
    return parts, total


# -- ls -----------------------------------------------------------------------------------------


def ls_entries(store: BlockGetter, node: Node, resolve_children: bool) -> Iterator[dict[str, Any]]:
    """``Links`` of ``node`` in its own order: a directory's entries, a file's chunks (kubo
    lists those too), nothing for a symlink or a raw block."""
    if node.kind == Kind.DIRECTORY:
        for name, link in iter_links(store, node):
            yield _entry(store, name, link.cid, link.tsize, resolve_children)
    elif node.kind == Kind.FILE and node.pb is not None:
        for link in node.pb.links:
            yield _entry(store, link.name or "", link.cid, link.tsize, resolve_children)


def _entry(
    store: BlockGetter, name: str, cid: CID, tsize: int | None, resolve_children: bool
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "Name": name,
        "Hash": str(cid),
        "Size": 0,
        "Type": 0,
        "Target": "",
        "Mode": 0,
        "ModTime": ZERO_TIME,
    }
    if cid.codec == RAW:  # a file whose bytes are the block: its link says how many
        entry.update(Size=tsize or 0, Type=2)
    elif cid.codec == DAG_PB and resolve_children:
        block = store.get(cid)
        try:
            data = decode_node(block).data
            fs = decode_unixfs(data or b"")
        except DagPBError as exc:
            raise InvalidNodeError(cid, str(exc)) from None
        kind = _LS_TYPES.get(fs.type, 0)
        entry["Type"] = kind
        if kind == 4:
            entry["Target"] = (fs.data or b"").decode("utf-8", errors="replace")
            entry["Size"] = len(fs.data or b"")
        elif kind == 2:
            entry["Size"] = fs.filesize or 0
        entry["Mode"] = _go_file_mode(fs.mode, fs.type)
        entry["ModTime"] = _go_time(unixfs_mtime(fs))
    return entry


def _go_file_mode(mode: int | None, fstype: UnixFSType) -> int:
    """The 12 UnixFS permission bits as Go's ``os.FileMode`` (kubo's JSON ``Mode``)."""
    perms = (mode or 0) & 0xFFF
    if not perms:
        return 0
    value = (perms & 0x1FF) | ((perms & 0xC00) << 12) | ((perms & 0x200) << 11)
    if fstype in (UnixFSType.DIRECTORY, UnixFSType.HAMT_SHARD):
        value |= _MODE_DIR
    elif fstype == UnixFSType.SYMLINK:
        value |= _MODE_SYMLINK
    return value


def _go_time(mtime: tuple[int, int] | None) -> str:
    """RFC 3339 with trimmed nanoseconds, in UTC; Go's zero time where none or unprintable."""
    if mtime is None:
        return ZERO_TIME
    seconds, nanos = mtime
    try:
        when = _EPOCH + timedelta(seconds=seconds)
    except OverflowError:
        return ZERO_TIME
    fraction = f".{nanos:09d}".rstrip("0") if nanos else ""
    return (
        f"{when.year:04d}-{when.month:02d}-{when.day:02d}T"
        f"{when.hour:02d}:{when.minute:02d}:{when.second:02d}{fraction}Z"
    )
