"""A seekable, read-only, verified stream over a UnixFS file held by remote peers.

``RemoteFile`` reads through a :class:`~etdb.content.filefetch.FilePlan` (the file's leaves
and their offsets, from its small internal nodes): a read fetches only the leaves covering
the requested range, each verified against its CID by the getter (a ``BlockFetcher`` drops a
peer whose bytes do not hash to the CID), and keeps the last few in a small LRU so that
libraries reading a header field by field (``mrcfile``) do not fetch the same leaf twice.

Nothing is ever written to disk; a 5 GB reconstruction's 1 KiB header costs one leaf.
"""

from __future__ import annotations

import bisect
import io
from collections import OrderedDict
from typing import TYPE_CHECKING

from etdb.content.blockstore import BlockGetter
from etdb.content.cid import CID, RAW
from etdb.content.errors import InvalidNodeError
from etdb.content.exporter import Kind, load_node, seek_position

if TYPE_CHECKING:
    from etdb.content.filefetch import FilePlan

#: Leaves kept in memory per open file (UnixFS leaves are at most 1 MiB: a few MiB at most).
DEFAULT_CACHED_LEAVES = 8


class RemoteFile(io.RawIOBase):
    """Read-only seekable stream over ``plan``'s file; every leaf verified before use.

    Reads never return short except at end of file, so it can be handed to code that expects
    a buffered file (``readinto`` fills the whole buffer). ``leaves_fetched`` counts the leaf
    fetches (cache misses): what a header-only read costs.
    """

    def __init__(
        self,
        getter: BlockGetter,
        plan: FilePlan,
        *,
        name: str | None = None,
        cached_leaves: int = DEFAULT_CACHED_LEAVES,
    ) -> None:
        super().__init__()
        if cached_leaves < 1:
            raise ValueError(f"cached_leaves must be at least 1, not {cached_leaves}")
        self._getter = getter
        self._plan = plan
        self._starts = [leaf.offset for leaf in plan.leaves]
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._cache_size = cached_leaves
        self._pos = 0
        self.name = name or str(plan.cid)
        self.leaves_fetched = 0
        _check_plan(plan)

    @property
    def cid(self) -> CID:
        return self._plan.cid

    @property
    def size(self) -> int:
        return self._plan.size

    # -- io.RawIOBase -------------------------------------------------------------------------

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def write(self, b: object) -> int:
        raise io.UnsupportedOperation("a RemoteFile is read-only (content is immutable)")

    def tell(self) -> int:
        self._check_open()
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._check_open()
        self._pos = seek_position(self._pos, self.size, offset, whence)
        return self._pos

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        self._check_open()
        out = memoryview(b).cast("B")
        done = 0
        while done < len(out) and self._pos < self.size:
            index = bisect.bisect_right(self._starts, self._pos) - 1
            leaf = self._plan.leaves[index]
            data = self._leaf_bytes(index)
            lo = self._pos - leaf.offset
            n = min(len(data) - lo, len(out) - done)
            out[done : done + n] = data[lo : lo + n]
            done += n
            self._pos += n
        return done

    def readall(self) -> bytes:
        self._check_open()
        parts = []
        while self._pos < self.size:
            chunk = self.read(min(self.size - self._pos, 1 << 20))
            if not chunk:
                break
            parts.append(chunk)
        return b"".join(parts)

    def close(self) -> None:
        self._cache.clear()
        super().close()

    def __repr__(self) -> str:
        return f"<RemoteFile {self.name!r} size={self.size}>"

    # -- leaves -------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file")

    def _leaf_bytes(self, index: int) -> bytes:
        cached = self._cache.get(index)
        if cached is not None:
            self._cache.move_to_end(index)
            return cached
        leaf = self._plan.leaves[index]
        data = leaf_data(self._getter, leaf.cid)
        if len(data) != leaf.size:
            raise InvalidNodeError(
                leaf.cid, f"leaf at offset {leaf.offset} holds {len(data)} bytes, not {leaf.size}"
            )
        self.leaves_fetched += 1
        self._cache[index] = data
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return data


def leaf_data(getter: BlockGetter, cid: CID) -> bytes:
    """A leaf's file bytes: the block itself (raw leaves, CIDv1 profiles) or the UnixFS data
    of a dag-pb node (CIDv0 / ``--raw-leaves=false`` leaves, or a node's own bytes before its
    children's, which a plan lists as a leaf of their own)."""
    if cid.codec == RAW:
        return getter.get(cid)
    node = load_node(getter, cid)
    if node.kind != Kind.FILE or node.unixfs is None:
        raise InvalidNodeError(cid, f"a file's leaf is a {node.kind}")
    return node.unixfs.data or b""


def _check_plan(plan: FilePlan) -> None:
    """The leaves must tile ``[0, size)`` in order: a plan with gaps would return wrong bytes."""
    offset = 0
    for leaf in plan.leaves:
        if leaf.offset != offset:
            raise InvalidNodeError(
                plan.cid, f"leaf {leaf.cid} starts at {leaf.offset}, expected {offset}"
            )
        offset += leaf.size
    if offset != plan.size:
        raise InvalidNodeError(plan.cid, f"leaves cover {offset} bytes of {plan.size}")
