"""The UnixFS node model: a block decoded as a file, directory or symlink, with its size checked.

``load_node`` fetches a block (verified by the store), decodes its dag-pb and UnixFS data and
names its kind; ``Node.size`` of a file checks that ``filesize`` agrees with the parts its
``blocksizes`` list. The readers (``exporter``, ``traversal``) walk DAGs of these nodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from etdb.content.blockstore import BlockGetter
from etdb.content.cid import CID, DAG_PB, RAW
from etdb.content.dagpb import (
    DagPBError,
    PBNode,
    UnixFSData,
    UnixFSType,
    decode_node,
    decode_unixfs,
)
from etdb.content.errors import InvalidNodeError

# Deeper than any balanced DAG (174^8 leaves of 256 KiB is far past any file) or HAMT
# (64-bit hash, 8 bits per level): a deeper chain is hostile, and Python recursion is finite.
MAX_DEPTH = 64


class Kind(StrEnum):
    FILE = "file"  # a dag-pb UnixFS file
    RAW = "raw"  # a raw-codec block: a file whose bytes are the block
    DIRECTORY = "directory"  # plain or HAMT-sharded
    SYMLINK = "symlink"


@dataclass(frozen=True)
class Node:
    """A decoded block. ``pb``/``unixfs`` are None for raw blocks."""

    cid: CID
    kind: Kind
    block: bytes
    pb: PBNode | None = None
    unixfs: UnixFSData | None = None

    @property
    def sharded(self) -> bool:
        return self.unixfs is not None and self.unixfs.type == UnixFSType.HAMT_SHARD

    @property
    def is_file(self) -> bool:
        return self.kind in (Kind.FILE, Kind.RAW)

    @property
    def size(self) -> int | None:
        """File size in bytes, symlink target length, None for a directory."""
        if self.kind == Kind.RAW:
            return len(self.block)
        if self.kind == Kind.FILE:
            return _file_size(self)
        if self.kind == Kind.SYMLINK:
            return len(self.unixfs.data or b"") if self.unixfs else 0
        return None


_KINDS = {
    UnixFSType.FILE: Kind.FILE,
    UnixFSType.RAW: Kind.FILE,  # old go-ipfs leaves: file bytes in a dag-pb node
    UnixFSType.DIRECTORY: Kind.DIRECTORY,
    UnixFSType.HAMT_SHARD: Kind.DIRECTORY,
    UnixFSType.SYMLINK: Kind.SYMLINK,
}


def load_node(store: BlockGetter, cid: CID) -> Node:
    """Fetch (verified) and decode one block as a UnixFS node."""
    block = store.get(cid)
    if cid.codec == RAW:
        return Node(cid, Kind.RAW, block)
    if cid.codec != DAG_PB:
        raise InvalidNodeError(cid, f"unsupported codec {cid.codec_name}")
    try:
        pb = decode_node(block)
        if pb.data is None:
            raise InvalidNodeError(cid, "dag-pb node without UnixFS data")
        fs = decode_unixfs(pb.data)
    except DagPBError as exc:
        raise InvalidNodeError(cid, str(exc)) from None
    kind = _KINDS.get(fs.type)
    if kind is None:
        raise InvalidNodeError(cid, f"unsupported UnixFS type {fs.type.name}")
    return Node(cid, kind, block, pb, fs)


def _file_size(node: Node) -> int:
    """Size of a dag-pb file node, checking that ``filesize`` agrees with its parts."""
    assert node.unixfs is not None and node.pb is not None
    fs = node.unixfs
    if len(fs.blocksizes) != len(node.pb.links):
        raise InvalidNodeError(
            node.cid, f"{len(node.pb.links)} links but {len(fs.blocksizes)} blocksizes"
        )
    size = len(fs.data or b"") + sum(fs.blocksizes)
    if fs.filesize is not None and fs.filesize != size:
        raise InvalidNodeError(node.cid, f"filesize {fs.filesize} != sum of parts {size}")
    return size
