"""The balanced file layout (boxo ``ipld/unixfs/importer/balanced``), built level by level.

All leaves sit at the same depth; each internal node has at most ``max_links`` children; the
result equals packing the leaves in groups of ``max_links``, then those nodes again, until one
node remains, always wrapping even a final group of one (IPIP-0499 "balanced", as opposed to
Singularity's "balanced-packed"). A one-leaf file is the leaf itself (``reduceSingleLeafToSelf``).

Streaming: a level is flushed into a parent as soon as it holds ``max_links`` links, so at most
``max_links`` pending links are kept per level and nothing else.

Internal node bytes (kubo): ``PBNode{Links: [{Hash, Name: "", Tsize}...], Data: UnixFS{Type:
File, filesize: Σ, blocksizes: [file bytes under each child...]}}``; Tsize of a link is the
child's block length plus its own children's Tsizes. ``Name=""`` is written (``12 00``): it is
part of kubo's CIDs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from etdb.content.cid import CID
from etdb.content.dagpb import PBLink, PBNode, UnixFSData, UnixFSType, encode_node, encode_unixfs


class Link(NamedTuple):
    cid: CID
    tsize: int  # cumulative serialized size of the sub-DAG
    filesize: int  # file bytes under it


def file_node(children: list[Link]) -> tuple[bytes, int, int]:
    """Encode an internal File node; return (block, Σ child tsize, Σ child filesize)."""
    sizes = tuple(c.filesize for c in children)
    filesize = sum(sizes)
    data = encode_unixfs(UnixFSData(UnixFSType.FILE, filesize=filesize, blocksizes=sizes))
    links = tuple(PBLink(c.cid, "", c.tsize) for c in children)
    return encode_node(PBNode(links, data)), sum(c.tsize for c in children), filesize


class BalancedBuilder:
    """Collects leaf links in file order; ``finish()`` returns the root link.

    ``emit(block)`` stores an internal node (children were emitted before) and returns its CID.
    """

    def __init__(self, max_links: int, emit: Callable[[bytes], CID]) -> None:
        self.max_links = max_links
        self.emit = emit
        self.levels: list[list[Link]] = [[]]

    def add(self, link: Link) -> None:
        self._push(0, link)

    def _push(self, level: int, link: Link) -> None:
        if level == len(self.levels):
            self.levels.append([])
        pending = self.levels[level]
        pending.append(link)
        if len(pending) == self.max_links:
            parent = self._flush(pending)
            pending.clear()
            self._push(level + 1, parent)

    def _flush(self, children: list[Link]) -> Link:
        block, child_tsize, filesize = file_node(children)
        return Link(self.emit(block), len(block) + child_tsize, filesize)

    def finish(self) -> Link:
        levels = self.levels
        while True:
            nonempty = [i for i, pending in enumerate(levels) if pending]
            if not nonempty:
                raise ValueError("a file has at least one leaf (the empty chunk)")
            low, top = nonempty[0], nonempty[-1]
            if low == top and len(levels[top]) == 1:
                return levels[top][0]
            # Wrap the lowest partial level (even a single link) so all leaves keep one depth.
            parent = self._flush(levels[low])
            levels[low].clear()
            self._push(low + 1, parent)
