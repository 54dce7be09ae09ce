"""A read-only zarr store over a UnixFS folder: every byte read through a ``BlockGetter``.

:class:`UnixFSZarrStore` is the one store for OME-Zarr pyramids held as content (a
``<sid>.ome.zarr`` folder in a dataset's DAG). What it reads through decides what it guarantees:

- the portal's slice viewer hands it the gateway's ``store()`` (the blockstore, or a
  read-through that verifies what upstream peers send);
- ``etdb.Client.pyramid()`` hands it the client's :class:`~etdb.content.fetch.BlockFetcher`,
  which drops any peer whose bytes do not hash to the CID asked for.

Either way the store never trusts a peer: a key is resolved from the folder's CID, one
directory block per path segment (directory nodes kept in a small LRU, so reading the chunks
of one folder costs one lookup each), and a chunk's bytes come from the exporter, which checks
each node's sizes. Contracts, enforced here:

- read-only (``set``/``delete`` raise); keys are ``/``-separated names without ``.``/``..``
  or empty segments and at most :data:`MAX_KEY` characters (anything else reads as missing);
- a key that names no file is ``None`` (zarr's "missing": a chunk never written is the fill
  value); a block the source cannot supply is an error, never a silent ``None``;
- one ``get`` returns at most :data:`MAX_OBJECT` bytes (a hostile "chunk" of many GB is refused,
  not read into memory); byte ranges (``RangeByteRequest``, offset, suffix) read only the
  leaves they cover;
- listings are bounded (:data:`MAX_LISTED` keys per call to ``list``/``list_prefix``).

Blocking reads run in worker threads (``asyncio.to_thread``), so zarr's event loop fetches
the chunks of one selection concurrently.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable, Iterator

from zarr.abc.store import (
    ByteRequest,
    OffsetByteRequest,
    RangeByteRequest,
    Store,
    SuffixByteRequest,
)
from zarr.core.buffer import Buffer, BufferPrototype, default_buffer_prototype

from etdb.content import exporter
from etdb.content.blockstore import BlockGetter
from etdb.content.cid import CID
from etdb.content.errors import ContentError, NotADirError
from etdb.content.nodes import Kind, Node, load_node

__all__ = ["MAX_KEY", "MAX_LISTED", "MAX_OBJECT", "UnixFSZarrStore"]

#: Longest key accepted (NGFF keys are short: ``0/12/3/4``).
MAX_KEY = 1024
#: Most bytes one ``get`` returns (a 64^3 float32 chunk is 1 MiB; 256 MiB is far past any).
MAX_OBJECT = 256 << 20
#: Most keys one listing yields (a 4 GB volume in 64^3 chunks has ~5,000 of them).
MAX_LISTED = 1 << 20
#: Directory nodes kept (each a small block): the folders of a pyramid being read.
DIRECTORY_CACHE = 4096

Keys = list[str]  # (the class defines a method named list)
Buffers = list[Buffer | None]


class UnixFSZarrStore(Store):
    """Zarr store over the UnixFS folder at ``root`` (``CID`` or ``CID/path``) in ``getter``.

    ``root`` is resolved once, when the store is made (a missing or non-folder root raises the
    exporter's ``ContentError``); later reads start from the folder's CID.
    """

    supports_writes = False
    supports_deletes = False
    supports_listing = True

    def __init__(self, getter: BlockGetter, root: str | CID, *, max_object: int = MAX_OBJECT):
        super().__init__(read_only=True)
        node = exporter.resolve_node(getter, root)
        if node.kind != Kind.DIRECTORY:
            raise NotADirError(f"{root}: a zarr store's root must be a folder, not a {node.kind}")
        self.getter = getter
        self.root = node.cid
        self.max_object = max_object
        self._root_node = node
        self._dirs: OrderedDict[str, Node] = OrderedDict()
        self._lock = threading.Lock()

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, UnixFSZarrStore)
            and other.root == self.root
            and other.getter is self.getter
        )

    def __hash__(self) -> int:
        return hash(self.root)

    def __str__(self) -> str:
        return f"ipfs://{self.root}"

    def __repr__(self) -> str:
        return f"UnixFSZarrStore({str(self)!r})"

    def with_read_only(self, read_only: bool = False) -> UnixFSZarrStore:
        if not read_only:
            raise ValueError("a UnixFSZarrStore is read-only: content is immutable")
        return self

    # -- reading ------------------------------------------------------------------------------

    async def get(
        self,
        key: str,
        prototype: BufferPrototype | None = None,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        data = await asyncio.to_thread(self.read, key, byte_range)
        if data is None:
            return None
        return (prototype or default_buffer_prototype()).buffer.from_bytes(data)

    async def get_partial_values(
        self,
        prototype: BufferPrototype,
        key_ranges: Iterable[tuple[str, ByteRequest | None]],
    ) -> Buffers:
        return list(await asyncio.gather(*(self.get(k, prototype, r) for k, r in key_ranges)))

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._file_node, key) is not None

    def read(self, key: str, byte_range: ByteRequest | None = None) -> bytes | None:
        """The bytes of file ``key`` (in ``byte_range``), or None when no file has that key."""
        node = self._file_node(key)
        if node is None:
            return None
        size = node.size or 0
        start, end = _bounds(byte_range, size)
        if end - start > self.max_object:
            raise ContentError(
                f"{self.root}/{key}: {end - start:,} bytes is more than a zarr store reads at "
                f"once ({self.max_object:,})"
            )
        return b"".join(exporter.iter_file(self.getter, node, start, end))

    # -- listing ------------------------------------------------------------------------------

    async def list(self) -> AsyncIterator[str]:
        for key in await asyncio.to_thread(self._walk_keys, ""):
            yield key

    async def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        folder = prefix.rstrip("/").rpartition("/")[0] if "/" in prefix.rstrip("/") else ""
        for key in await asyncio.to_thread(self._walk_keys, folder):
            if key.startswith(prefix):
                yield key

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:
        for name in await asyncio.to_thread(self._names, prefix.strip("/")):
            yield name

    def _names(self, folder: str) -> Keys:
        node = self._dir_node(folder)
        return [] if node is None else [name for name, _ in exporter.iter_links(self.getter, node)]

    def _walk_keys(self, folder: str) -> Keys:
        keys: Keys = []
        for key in self._iter_files(folder):
            keys.append(key)
            if len(keys) > MAX_LISTED:
                raise ContentError(f"{self.root}: more than {MAX_LISTED:,} keys to list")
        return keys

    def _iter_files(self, folder: str) -> Iterator[str]:
        node = self._dir_node(folder)
        if node is None:
            return
        for name, link in exporter.iter_links(self.getter, node):
            key = f"{folder}/{name}" if folder else name
            child = load_node(self.getter, link.cid)
            if child.kind == Kind.DIRECTORY:
                self._remember(key, child)
                yield from self._iter_files(key)
            elif child.is_file:
                yield key

    # -- resolving keys -----------------------------------------------------------------------

    def _node(self, path: str) -> Node | None:
        """The node at ``path`` below the root (its folder's node cached), or None."""
        segments = _segments(path)
        if not segments:
            return None
        parent = self._dir_node("/".join(segments[:-1]))
        if parent is None:
            return None
        cid = exporter.lookup(self.getter, parent, segments[-1])
        return None if cid is None else load_node(self.getter, cid)

    def _file_node(self, key: str) -> Node | None:
        node = self._node(key)
        return node if node is not None and node.is_file else None

    def _dir_node(self, folder: str) -> Node | None:
        """The directory node at ``folder`` ("" is the root), or None when there is none."""
        if folder == "":
            return self._root_node
        with self._lock:
            cached = self._dirs.get(folder)
            if cached is not None:
                self._dirs.move_to_end(folder)
                return cached
        node = self._node(folder)
        if node is None or node.kind != Kind.DIRECTORY:
            return None
        self._remember(folder, node)
        return node

    def _remember(self, folder: str, node: Node) -> None:
        with self._lock:
            self._dirs[folder] = node
            while len(self._dirs) > DIRECTORY_CACHE:
                self._dirs.popitem(last=False)

    # -- read-only ----------------------------------------------------------------------------

    async def set(self, key: str, value: Buffer) -> None:
        self._check_writable()

    async def delete(self, key: str) -> None:
        self._check_writable()


def _segments(key: str) -> list[str]:
    """The names of a key; [] for the root or a key that cannot name content (read as missing)."""
    if not key or len(key) > MAX_KEY:
        return []
    segments = key.split("/")
    if any(s in ("", ".", "..") for s in segments):
        return []
    return segments


def _bounds(byte_range: ByteRequest | None, size: int) -> tuple[int, int]:
    """``[start, end)`` of a file of ``size`` bytes, clamped to it."""
    if byte_range is None:
        start, end = 0, size
    elif isinstance(byte_range, RangeByteRequest):
        start, end = byte_range.start, byte_range.end
    elif isinstance(byte_range, OffsetByteRequest):
        start, end = byte_range.offset, size
    elif isinstance(byte_range, SuffixByteRequest):
        start, end = size - byte_range.suffix, size
    else:
        raise ValueError(f"unexpected byte range {byte_range!r}")
    start = min(max(start, 0), size)
    return start, min(max(end, start), size)
