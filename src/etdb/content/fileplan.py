"""A UnixFS file's download plan: its leaves in file order, found by fetching internal nodes only.

``plan_file`` fetches only the file's internal nodes (a few hundred bytes per 174 leaves) and
lists its leaves: where each one's bytes go, how many there are, and their CID. Internal nodes
are fetched a level at a time (``get_many`` when the getter has it), so planning a 5 GB file
costs a handful of round trips, not a walk of 20,000 blocks. The plan is what ``filefetch``
(leaf by leaf) and ``carfetch`` (runs of leaves as CAR streams) both fetch from.

A DAG is hostile input: a few KB of nodes that each link many times to one child name
astronomically many leaves (5 levels of 1000 links: 10^15). So a plan holds at most
``leaf_bound(size)`` leaves and pending children at any moment (at most ``FREE_LEAVES`` plus one
per ``MIN_LEAF_BYTES`` of the size the root declares, and never more than ``MAX_LEAVES``); a DAG
naming more is refused with an ``InvalidNodeError`` naming its root, before memory fills.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from etdb.content.blockstore import MAX_BLOCK_SIZE, BlockGetter
from etdb.content.cid import CID, RAW
from etdb.content.dagpb import PBLink
from etdb.content.errors import InvalidNodeError, NotAFileError
from etdb.content.exporter import MAX_DEPTH, Kind, Node, load_node, resolve_node

__all__ = [
    "MAX_LEAVES",
    "MIN_LEAF_BYTES",
    "FilePlan",
    "Leaf",
    "leaf_bound",
    "load_nodes",
    "plan_file",
]

#: A dag-pb leaf's link Tsize exceeds its file bytes by its framing: at most 14 bytes for any
#: block under 2 MiB. An internal node adds at least one 36-byte link. Between the two: a leaf.
_LEAF_FRAME_MAX = 32
#: Fewer file bytes per leaf on average than this is no chunker's doing (kubo's default is
#: 256 KiB, a rabin chunker's minimum a third of its average): a DAG naming more is refused.
MIN_LEAF_BYTES = 1 << 10
#: Leaves any file may have whatever its size (small files cut by a test's tiny chunker).
FREE_LEAVES = 1 << 10
#: Leaves a plan lists at most, whatever size the root declares: 256 GiB in 256 KiB leaves,
#: about 100 MB of plan.
MAX_LEAVES = 1 << 20


@dataclass
class Leaf:
    """``size`` file bytes at ``offset``, held by the block ``cid`` (a raw block, or the Data of
    a dag-pb node)."""

    offset: int
    size: int
    cid: CID


@dataclass
class FilePlan:
    """A file's root, size, and its leaves in file order (internal nodes already fetched).
    ``internal``: the CIDs of those internal nodes (blocks a CAR of the file may also hold)."""

    cid: CID
    size: int
    leaves: list[Leaf]
    internal: set[CID] = field(default_factory=set, compare=False)


def plan_file(getter: BlockGetter, path: str | CID) -> FilePlan:
    """Resolve ``CID`` or ``CID/sub/path`` to a file and list its leaves (see module doc)."""
    root = resolve_node(getter, path)
    if not root.is_file:
        raise NotAFileError(f"{path} is a {root.kind}, not a file")
    size = root.size or 0
    named = _Named(root.cid, size)
    named.add()  # the root, pending
    leaves: list[Leaf] = []
    internal = {root.cid}
    level: list[tuple[Node, int]] = [(root, 0)]
    depth = 0
    while level:
        if depth > MAX_DEPTH:
            raise InvalidNodeError(root.cid, f"file DAG deeper than {MAX_DEPTH}")
        wanted: dict[CID, list[tuple[int, int, CID]]] = {}  # child -> (offset, size, parent)
        for node, offset in level:
            named.settle()  # this occurrence becomes its own bytes and its children
            own = _own_bytes(node)
            if own:
                named.add()
                leaves.append(Leaf(offset, own, node.cid))
            if node.kind == Kind.RAW:
                continue
            assert node.pb is not None and node.unixfs is not None
            child_offset = offset + own
            for link, child_size in zip(node.pb.links, node.unixfs.blocksizes, strict=True):
                if child_size:
                    named.add()
                if child_size and _is_leaf(link, child_size):
                    leaves.append(Leaf(child_offset, child_size, link.cid))
                elif child_size:
                    wanted.setdefault(link.cid, []).append((child_offset, child_size, node.cid))
                child_offset += child_size
        level = []
        for child in load_nodes(getter, list(wanted)):
            cid = child.cid
            internal.add(cid)
            for offset, child_size, parent in wanted[cid]:
                if not child.is_file:
                    raise InvalidNodeError(parent, f"file links to a {child.kind} ({cid})")
                if child.size != child_size:
                    raise InvalidNodeError(
                        parent, f"child {cid} holds {child.size} bytes, blocksizes say {child_size}"
                    )
                level.append((child, offset))
        depth += 1
    leaves.sort(key=lambda leaf: leaf.offset)
    _check_coverage(root.cid, size, leaves)
    return FilePlan(root.cid, size, leaves, internal)


def leaf_bound(size: int) -> int:
    """The most leaves a plan of a file declaring ``size`` bytes may list (see module doc)."""
    return min(MAX_LEAVES, FREE_LEAVES + max(size, 0) // MIN_LEAF_BYTES)


class _Named:
    """Counts the leaves and pending children a plan holds; past ``leaf_bound`` the file is
    refused (checked at every one added, so a plan never holds more)."""

    def __init__(self, root: CID, size: int) -> None:
        self.root, self.size = root, size
        self.bound = leaf_bound(size)
        self.count = 0

    def add(self) -> None:
        self.count += 1
        if self.count > self.bound:
            raise InvalidNodeError(
                self.root,
                f"file DAG names more than {self.bound} leaves for its {self.size} bytes "
                f"(at most {FREE_LEAVES} plus one per {MIN_LEAF_BYTES} bytes, {MAX_LEAVES} in "
                "all): refused",
            )

    def settle(self) -> None:
        self.count -= 1


def _own_bytes(node: Node) -> int:
    if node.kind == Kind.RAW:
        return len(node.block)
    return len(node.unixfs.data or b"") if node.unixfs is not None else 0


def _is_leaf(link: PBLink, size: int) -> bool:
    """Whether a child can be planned as a leaf without fetching it. A raw child always is; a
    dag-pb child when its Tsize says "just framing" (no Tsize: fetched to find out). A wrong
    Tsize cannot corrupt the file: ``download_file`` checks each leaf holds ``size`` bytes; and
    a child said to hold more than a block can is fetched, whatever its Tsize says."""
    if size > MAX_BLOCK_SIZE:
        return False
    if link.cid.codec == RAW:
        return True
    return link.tsize is not None and 0 <= link.tsize - size <= _LEAF_FRAME_MAX


def load_nodes(getter: BlockGetter, cids: list[CID]) -> Iterator[Node]:
    """The nodes of ``cids``, in the order their blocks arrive: one ``get_many`` (concurrent
    on a ``BlockFetcher``) where the getter has it, else one ``get`` each."""
    if not cids:
        return
    get_many = getattr(getter, "get_many", None)
    pairs = get_many(cids) if get_many is not None else ((c, getter.get(c)) for c in cids)
    for cid, block in pairs:
        yield load_node(_OneBlock(cid, block), cid)


class _OneBlock:
    """A BlockGetter holding one already-verified block (to decode it with ``load_node``)."""

    def __init__(self, cid: CID, block: bytes) -> None:
        self.cid, self.block = cid, block

    def get(self, cid: CID) -> bytes:
        assert cid == self.cid
        return self.block


def _check_coverage(root: CID, size: int, leaves: list[Leaf]) -> None:
    at = 0
    for leaf in leaves:
        if leaf.offset != at:
            raise InvalidNodeError(root, f"leaves leave a gap or overlap at byte {at}")
        at += leaf.size
    if at != size:
        raise InvalidNodeError(root, f"leaves hold {at} bytes, the file is {size}")
