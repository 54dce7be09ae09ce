"""Reading UnixFS back: ``CID[/path]`` resolution, stat, directory listing, file streams.

Modelled on boxo's path resolver and ``unixfs/io``: paths walk plain directories and HAMT
shards; files are read through their DAG using ``blocksizes`` to skip every subtree outside the
requested range, so a seek into a 5 GB file reads only the few blocks on the way to one leaf.
Every block comes from ``store.get``, which re-hashes it; the structure is checked too (a
parent's ``blocksizes`` must match what its children hold), so a lying DAG raises
``InvalidNodeError`` instead of returning wrong bytes. Writing trees to disk is in ``export_tree``;
the node model (``Node``, ``load_node``, kept importable from here) is in ``nodes``.
"""

from __future__ import annotations

import io
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from etdb.content import hamt
from etdb.content.blockstore import BlockGetter
from etdb.content.cid import CID, RAW, CIDError
from etdb.content.dagpb import DagPBError, PBLink
from etdb.content.errors import (
    ContentError,
    InvalidNodeError,
    InvalidPathError,
    NotADirError,
    NotAFileError,
    PathNotFoundError,
)
from etdb.content.nodes import MAX_DEPTH as MAX_DEPTH
from etdb.content.nodes import Kind as Kind
from etdb.content.nodes import Node as Node
from etdb.content.nodes import load_node as load_node


class Stat(NamedTuple):
    cid: CID
    kind: Kind
    size: int | None  # see Node.size
    sharded: bool


class DirEntry(NamedTuple):
    name: str
    cid: CID
    kind: Kind | None  # None when listed with resolve_kinds=False
    size: int | None  # file size; None for directories (and unresolved entries)


# -- paths ----------------------------------------------------------------------------------


def parse_path(path: str | CID) -> tuple[CID, list[str]]:
    """Split ``[/ipfs/]CID[/a/b]`` (or ``ipfs://CID/a``) into the CID and the name segments."""
    if isinstance(path, CID):
        return path, []
    text = path
    for prefix in ("ipfs://", "/ipfs/"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
            break
    head, _, rest = text.partition("/")
    try:
        root = CID.decode(head)
    except CIDError as exc:
        raise InvalidPathError(f"{path!r}: {exc}") from None
    segments = [s for s in rest.split("/") if s]
    for s in segments:
        if s in (".", ".."):
            raise InvalidPathError(f"{path!r}: '.' and '..' are not allowed in content paths")
    return root, segments


def lookup(store: BlockGetter, directory: Node, name: str) -> CID | None:
    """The CID of entry ``name`` in a plain or HAMT directory node, or None."""
    assert directory.pb is not None
    if directory.sharded:
        try:
            link = hamt.hamt_lookup(store.get, directory.pb, name)
        except DagPBError as exc:
            raise InvalidNodeError(directory.cid, f"bad HAMT shard: {exc}") from None
        return None if link is None else link.cid
    for link in directory.pb.links:
        if link.name == name:
            return link.cid
    return None


def resolve_node(store: BlockGetter, path: str | CID) -> Node:
    """Walk ``CID/a/b`` to its node (symlinks are not followed, as in the gateway spec)."""
    cid, segments = parse_path(path)
    node = load_node(store, cid)
    walked = str(cid)
    for name in segments:
        if node.kind != Kind.DIRECTORY:
            raise PathNotFoundError(f"{walked} is a {node.kind}, cannot look up {name!r} in it")
        child = lookup(store, node, name)
        if child is None:
            raise PathNotFoundError(f"no entry {name!r} in {walked}")
        walked += "/" + name
        node = load_node(store, child)
    return node


def resolve(store: BlockGetter, path: str | CID) -> tuple[CID, Kind]:
    node = resolve_node(store, path)
    return node.cid, node.kind


def stat(store: BlockGetter, path: str | CID) -> Stat:
    node = resolve_node(store, path)
    return Stat(node.cid, node.kind, node.size, node.sharded)


# -- directories --------------------------------------------------------------------------------


def iter_links(store: BlockGetter, directory: Node) -> Iterator[tuple[str, PBLink]]:
    """(name, link) of every entry of a plain or HAMT directory, in node order."""
    if directory.kind != Kind.DIRECTORY:
        raise NotADirError(f"{directory.cid} is a {directory.kind}, not a directory")
    assert directory.pb is not None
    if directory.sharded:
        try:
            yield from hamt.hamt_entries(store.get, directory.pb)
        except DagPBError as exc:
            raise InvalidNodeError(directory.cid, f"bad HAMT shard: {exc}") from None
        return
    for link in directory.pb.links:
        if link.name is None:
            raise InvalidNodeError(directory.cid, "directory link without a name")
        yield link.name, link


def list_dir(store: BlockGetter, path: str | CID, *, resolve_kinds: bool = True) -> list[DirEntry]:
    """Entries sorted by name bytes. ``resolve_kinds`` fetches each entry's root block to
    report its kind and size (as ``ipfs ls`` does); raw entries never need a fetch."""
    directory = resolve_node(store, path)
    out = []
    for name, link in iter_links(store, directory):
        kind: Kind | None = None
        size: int | None = None
        if link.cid.codec == RAW:
            kind, size = Kind.RAW, link.tsize
        if resolve_kinds:
            child = load_node(store, link.cid)
            kind, size = child.kind, child.size
        out.append(DirEntry(name, link.cid, kind, size))
    out.sort(key=lambda e: e.name.encode("utf-8"))
    return out


# -- files --------------------------------------------------------------------------------------


def walk_file(
    store: BlockGetter,
    root: Node,
    start: int = 0,
    end: int | None = None,
    *,
    done: dict[CID, int] | None = None,
) -> Iterator[tuple[Node, memoryview]]:
    """Visit, in DFS pre-order, each block of a file needed for bytes ``[start, end)``.

    Yields (node, piece): ``piece`` is the part of the file's bytes held by that block itself
    within the range (empty for internal nodes). With the full range every block is visited,
    including zero-length ones; the CAR writer uses this for ``dag-scope=entity``.

    ``done`` (a ``dups=n`` CAR's, which sends a block once) maps each subtree whose every block
    was visited to its size: a subtree met again is not read (its size is checked against the
    parent's ``blocksizes``, its pieces are not yielded), so a run of repeated chunks costs one
    read. A subtree visited only in part, at the edge of the range, is not entered in it.
    """
    if not root.is_file:
        raise NotAFileError(f"{root.cid} is a {root.kind}, not a file")
    size = root.size or 0
    full = start <= 0 and (end is None or end >= size)
    stop = size if end is None else min(end, size)
    yield from _walk(store, root, 0, _Want(max(start, 0), stop, full, done), 0)


@dataclass(frozen=True)
class _Want:
    """What a file walk visits: bytes ``[start, end)``, or every block if ``full``."""

    start: int
    end: int
    full: bool
    done: dict[CID, int] | None  # see walk_file


def _walk(
    store: BlockGetter, node: Node, offset: int, want: _Want, depth: int
) -> Generator[tuple[Node, memoryview], None, bool]:
    """``walk_file`` below ``node``; returns whether every block under it was visited."""
    if depth > MAX_DEPTH:
        raise InvalidNodeError(node.cid, f"file DAG deeper than {MAX_DEPTH}")
    own = _own_bytes(node)
    lo, hi = max(want.start - offset, 0), max(min(want.end - offset, len(own)), 0)
    yield node, own[lo:hi] if lo < hi else own[:0]
    whole = True
    if node.kind != Kind.RAW:
        whole = yield from _walk_children(store, node, offset + len(own), want, depth)
    if whole and want.done is not None:
        want.done[node.cid] = node.size or 0
    return whole


def _own_bytes(node: Node) -> memoryview:
    """The file bytes ``node`` holds itself: all of a raw block, a dag-pb node's Data."""
    if node.kind == Kind.RAW:
        return memoryview(node.block)
    assert node.unixfs is not None  # load_node gives every dag-pb node its UnixFS data
    return memoryview(node.unixfs.data or b"")


def _walk_children(
    store: BlockGetter, node: Node, child_offset: int, want: _Want, depth: int
) -> Generator[tuple[Node, memoryview], None, bool]:
    assert node.pb is not None and node.unixfs is not None
    whole = True
    for link, child_size in zip(node.pb.links, node.unixfs.blocksizes, strict=True):
        child_end = child_offset + child_size
        if want.done is not None and link.cid in want.done:  # all visited before: not read
            _check_child_size(node, link.cid, want.done[link.cid], child_size)
        elif want.full or (child_offset < want.end and child_end > want.start):
            child = load_node(store, link.cid)
            if not child.is_file:
                raise InvalidNodeError(node.cid, f"file links to a {child.kind} ({child.cid})")
            _check_child_size(node, child.cid, child.size, child_size)
            whole &= yield from _walk(store, child, child_offset, want, depth + 1)
        else:
            whole = False
            if child_offset >= want.end:
                break
        child_offset = child_end
    return whole


def _check_child_size(parent: Node, child: CID, size: int | None, claimed: int) -> None:
    if size != claimed:
        raise InvalidNodeError(
            parent.cid, f"child {child} holds {size} bytes, blocksizes say {claimed}"
        )


def open_node(store: BlockGetter, path: str | CID) -> Node:
    node = resolve_node(store, path)
    if not node.is_file:
        raise NotAFileError(f"{path} is a {node.kind}, not a file")
    return node


def iter_file(
    store: BlockGetter, path: str | CID | Node, start: int = 0, end: int | None = None
) -> Iterator[memoryview]:
    """The file's bytes in ``[start, end)`` as a stream of pieces (each at most one leaf)."""
    node = path if isinstance(path, Node) else open_node(store, path)
    for _node, piece in walk_file(store, node, start, end):
        if piece:
            yield piece


def read_range(store: BlockGetter, path: str | CID, start: int, end: int | None = None) -> bytes:
    """Bytes ``[start, end)`` of a file (``end=None``: to the end). Builds one bytes object;
    stream with ``iter_file`` or ``open_file`` for large ranges."""
    return b"".join(iter_file(store, path, start, end))


def seek_position(current: int, size: int, offset: int, whence: int) -> int:
    """Where ``seek(offset, whence)`` lands in a stream of ``size`` bytes now at ``current``
    (``io`` semantics: past the end is allowed, before the start is an error)."""
    if whence == io.SEEK_SET:
        pos = offset
    elif whence == io.SEEK_CUR:
        pos = current + offset
    elif whence == io.SEEK_END:
        pos = size + offset
    else:
        raise ValueError(f"invalid whence {whence}")
    if pos < 0:
        raise ValueError(f"negative seek position {pos}")
    return pos


class UnixFSFileReader(io.RawIOBase):
    """A seekable read-only stream over a UnixFS file.

    Holds at most one leaf plus the internal nodes on the path to it: sequential reads resume
    the DAG walk, a seek elsewhere restarts it from the root (a few small blocks).
    """

    def __init__(self, store: BlockGetter, node: Node) -> None:
        super().__init__()
        if not node.is_file:
            raise NotAFileError(f"{node.cid} is a {node.kind}, not a file")
        self._store = store
        self.node = node
        self.size = node.size or 0
        self._pos = 0
        self._pieces: Iterator[memoryview] | None = None
        self._buf = memoryview(b"")
        self._buf_start = 0  # file offset of _buf[0]

    @property
    def cid(self) -> CID:
        return self.node.cid

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._pos = seek_position(self._pos, self.size, offset, whence)
        return self._pos

    def _fill(self) -> bool:
        """Make ``_buf`` hold the byte at ``_pos``; False at end of file."""
        pos = self._pos
        if pos >= self.size:
            return False
        buf_end = self._buf_start + len(self._buf)
        if self._buf_start <= pos < buf_end:
            return True
        if self._pieces is None or pos != buf_end:
            self._pieces = iter_file(self._store, self.node, pos)
            buf_end = pos
        piece = next(self._pieces, None)
        if piece is None:  # cannot happen with consistent blocksizes, which _walk checks
            raise InvalidNodeError(self.node.cid, f"file ends before its size {self.size}")
        self._buf, self._buf_start = piece, buf_end
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        out = memoryview(b).cast("B")
        done = 0
        while done < len(out) and self._fill():
            lo = self._pos - self._buf_start
            n = min(len(self._buf) - lo, len(out) - done)
            out[done : done + n] = self._buf[lo : lo + n]
            done += n
            self._pos += n
        return done

    def readall(self) -> bytes:
        parts = []
        while self._fill():
            lo = self._pos - self._buf_start
            parts.append(bytes(self._buf[lo:]))
            self._pos += len(self._buf) - lo
        return b"".join(parts)

    def close(self) -> None:
        self._pieces = None
        self._buf = memoryview(b"")
        super().close()


def open_file(store: BlockGetter, path: str | CID) -> UnixFSFileReader:
    """A seekable stream over the file at ``CID[/path]`` (NotAFileError for dirs/symlinks)."""
    return UnixFSFileReader(store, open_node(store, path))


def read_symlink(store: BlockGetter, node: Node) -> str:
    if node.kind != Kind.SYMLINK or node.unixfs is None:
        raise ContentError(f"{node.cid} is a {node.kind}, not a symlink")
    try:
        return (node.unixfs.data or b"").decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidNodeError(node.cid, "symlink target is not UTF-8") from None
