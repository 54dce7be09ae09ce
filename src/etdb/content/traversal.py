"""Walking a DAG in the block order of a CAR: what ``etdb car export`` and the gateway stream.

Order is DFS pre-order without duplicates and without identity CIDs (the trustless gateway
spec's ``order=dfs; dups=n``): for ``CID/a/b`` first the blocks the path walks through (directory
nodes, HAMT shard nodes), then the target's ``dag-scope``. Blocks come from ``store.get``, so
each is verified; the generator can be streamed straight into an HTTP response.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from etdb.content.blockstore import BlockGetter
from etdb.content.cid import CID, DAG_PB, RAW
from etdb.content.dagpb import DagPBError, decode_node
from etdb.content.errors import InvalidNodeError
from etdb.content.exporter import MAX_DEPTH, Node, load_node, resolve_node, walk_file

Scope = Literal["all", "entity", "block"]
SCOPES: tuple[str, ...] = ("all", "entity", "block")


def entity_range(size: int, first: int, last: int | None) -> tuple[int, int]:
    """Gateway ``entity-bytes=first:last`` (inclusive, ``None`` = ``*``, negative = from the
    end) as a half-open ``[start, end)`` clamped to the file; may be empty."""
    if first >= 0 and last is not None and last >= 0 and first > last:
        raise ValueError(f"entity-bytes {first}:{last}: from is after to")
    start = first if first >= 0 else max(size + first, 0)
    end = size if last is None else (last + 1 if last >= 0 else size + last + 1)
    return min(start, size), max(min(end, size), 0)


class _Recorder:
    """A BlockGetter that remembers what it fetched: the blocks a path resolution walked."""

    def __init__(self, store: BlockGetter) -> None:
        self.store = store
        self.log: list[tuple[CID, bytes]] = []

    def get(self, cid: CID) -> bytes:
        block = self.store.get(cid)
        self.log.append((cid, block))
        return block


def car_blocks(
    store: BlockGetter,
    path: str | CID,
    *,
    scope: Scope = "all",
    entity_bytes: tuple[int, int | None] | None = None,
    dups: bool = False,
) -> Iterator[tuple[CID, bytes]]:
    """The (cid, block) pairs of a CAR for ``CID[/path]``, in DFS order.

    The path is resolved now (so a missing root or path raises before anything is streamed);
    the blocks of the path come first, then the target's ``scope``: ``block`` = its block only,
    ``entity`` = a whole file (or the blocks covering ``entity_bytes``), a directory's node and
    HAMT shard nodes, ``all`` = the whole DAG below it. A block missing later raises mid-stream.
    """
    if scope not in SCOPES:
        raise ValueError(f"unknown dag-scope {scope!r}")
    if entity_bytes is not None:  # as in the gateway spec, entity-bytes implies entity
        scope = "entity"
    recorder = _Recorder(store)
    target = resolve_node(recorder, path)
    walked = recorder.log[:-1]  # the last fetch is the target itself
    return _dedup(_chain(walked, _scope_blocks(store, target, scope, entity_bytes, dups)), dups)


def _chain(
    first: list[tuple[CID, bytes]], rest: Iterator[tuple[CID, bytes]]
) -> Iterator[tuple[CID, bytes]]:
    yield from first
    yield from rest


def _dedup(blocks: Iterator[tuple[CID, bytes]], dups: bool) -> Iterator[tuple[CID, bytes]]:
    seen: set[CID] = set()
    for cid, block in blocks:
        if cid.is_identity:  # never in a CAR: the CID is the data
            continue
        if not dups:
            if cid in seen:
                continue
            seen.add(cid)
        yield cid, block


def _scope_blocks(
    store: BlockGetter,
    target: Node,
    scope: str,
    entity_bytes: tuple[int, int | None] | None,
    dups: bool,
) -> Iterator[tuple[CID, bytes]]:
    if scope == "block":
        yield target.cid, target.block
    elif scope == "all":
        yield from _all_blocks(store, target.cid, target.block, dups)
    elif target.is_file:
        start, end = 0, None
        if entity_bytes is not None:
            start, end = entity_range(target.size or 0, *entity_bytes)
        # dups=n: a subtree sent whole is not walked again (a run of zero chunks is one read)
        done: dict[CID, int] | None = None if dups else {}
        for node, _piece in walk_file(store, target, start, end, done=done):
            yield node.cid, node.block
    elif target.sharded:
        yield from _hamt_shard_blocks(store, target)
    else:  # plain directory or symlink: the node is the entity
        yield target.cid, target.block


def _all_blocks(
    store: BlockGetter, cid: CID, block: bytes, dups: bool
) -> Iterator[tuple[CID, bytes]]:
    """Every block reachable from ``cid``, pre-order; a shared subtree is walked once unless
    ``dups`` (then it is repeated wherever it occurs, as ``dups=y`` asks)."""
    seen: set[CID] = set()
    stack: list[Iterator[CID]] = []
    current: tuple[CID, bytes] | None = (cid, block)
    while current is not None or stack:
        if current is not None:
            cid, block = current
            current = None
            if not dups:
                if cid in seen:
                    continue
                seen.add(cid)
            yield cid, block
            if cid.codec == DAG_PB:
                try:
                    links = decode_node(block).links
                except DagPBError as exc:
                    raise InvalidNodeError(cid, str(exc)) from None
                stack.append(iter([link.cid for link in links]))
            elif cid.codec != RAW:
                pass  # other codecs are copied, not traversed (we only make dag-pb and raw)
            continue
        child = next(stack[-1], None)
        if child is None:
            stack.pop()
        elif dups or child not in seen:
            current = (child, store.get(child))


def _hamt_shard_blocks(store: BlockGetter, root: Node) -> Iterator[tuple[CID, bytes]]:
    """A HAMT directory's own shard nodes (not its entries), in DFS pre-order."""
    yield root.cid, root.block
    stack = [iter(_sub_shards(root))]
    while stack:
        cid = next(stack[-1], None)
        if cid is None:
            stack.pop()
            continue
        child = load_node(store, cid)
        if not child.sharded:
            raise InvalidNodeError(root.cid, f"HAMT sub-shard {cid} is a {child.kind}")
        yield child.cid, child.block
        if len(stack) > MAX_DEPTH:
            raise InvalidNodeError(root.cid, f"HAMT deeper than {MAX_DEPTH}")
        stack.append(iter(_sub_shards(child)))


def _sub_shards(shard: Node) -> list[CID]:
    assert shard.pb is not None and shard.unixfs is not None
    pad = len(f"{(shard.unixfs.fanout or 256) - 1:X}")  # a sub-shard link is named by its slot
    return [link.cid for link in shard.pb.links if link.name is not None and len(link.name) == pad]
