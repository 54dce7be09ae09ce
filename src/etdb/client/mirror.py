"""Mirroring: keep every block of a selection of datasets in the local blockstore.

A mirror walks each dataset's DAG from its folder CID, breadth first: blocks already held are
read locally (re-hashed by the blockstore; a corrupt one is deleted and fetched again), the
rest are fetched concurrently from the peers through a verifying ``BlockFetcher`` and put in
the store. Raw leaves held locally are not even read (their parents' links are enough), so
re-mirroring a complete 5 GB dataset reads only its few internal nodes. The store is synced
after each dataset: a crash loses at most the dataset in progress, never a half-written block.

``Mirror.follow`` re-queries the node's API for records published since the newest one seen
and mirrors them as they appear; the local ``etdb serve`` then serves them from its gateway.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from etdb.content.blockstore import TEMP_DIR, Blockstore, FSBlockstore
from etdb.content.cid import CID, DAG_PB, RAW
from etdb.content.dagpb import DagPBError, decode_node
from etdb.content.errors import ContentError, CorruptBlockError, InvalidNodeError
from etdb.content.fsutil import fsync_dir, write_temp

if TYPE_CHECKING:
    from etdb.client.client import Client
    from etdb.index.query import RecordSummary


class BlockSource(Protocol):
    """What mirroring needs from a fetcher: verified blocks, concurrently, in any order."""

    def get_many(self, cids: Iterable[CID]) -> Iterator[tuple[CID, bytes]]: ...


@dataclass
class DagResult:
    """What mirroring one DAG did: blocks visited, fetched (and their bytes), already held,
    and local blocks that were corrupt and replaced."""

    root: CID
    blocks: int = 0
    fetched: int = 0
    fetched_bytes: int = 0
    held: int = 0
    repaired: int = 0


def mirror_dag(
    store: Blockstore,
    source: BlockSource,
    root: CID,
    *,
    on_block: Callable[[CID, int, bool], None] | None = None,
) -> DagResult:
    """Make ``store`` hold every block of the DAG under ``root``; return what it took.

    ``on_block(cid, size, fetched)`` is called per block (``size`` is 0 for a held raw leaf,
    which is not read). Raises the fetcher's ``FetchError`` when no peer delivers a block, and
    ``InvalidNodeError`` for a block that is not dag-pb or raw. Does not sync the store.
    """
    result = DagResult(root)
    seen: set[bytes] = set()
    level: list[CID] = [root]
    while level:
        wanted: list[CID] = []
        following: list[CID] = []
        for cid in level:
            if cid.is_identity or cid.multihash in seen:
                continue
            seen.add(cid.multihash)
            result.blocks += 1
            if cid.codec not in (RAW, DAG_PB):
                raise InvalidNodeError(cid, f"cannot mirror codec {cid.codec_name}")
            if not store.has(cid):
                wanted.append(cid)
            elif cid.codec == RAW:
                result.held += 1
                _notify(on_block, cid, 0, False)
            else:
                try:
                    block = store.get(cid)
                except CorruptBlockError:
                    store.delete(cid)  # replaced by a verified copy below
                    result.repaired += 1
                    wanted.append(cid)
                    continue
                result.held += 1
                _notify(on_block, cid, len(block), False)
                following.extend(_links(cid, block))
        for cid, block in source.get_many(wanted):
            if not store.has(cid):  # a fetcher with keep=store has put it already
                store.put(cid, block)
            result.fetched += 1
            result.fetched_bytes += len(block)
            _notify(on_block, cid, len(block), True)
            if cid.codec == DAG_PB:
                following.extend(_links(cid, block))
        level = following
    return result


def _links(cid: CID, block: bytes) -> list[CID]:
    try:
        return [link.cid for link in decode_node(block).links]
    except DagPBError as exc:
        raise InvalidNodeError(cid, str(exc)) from None


def _notify(
    callback: Callable[[CID, int, bool], None] | None, cid: CID, size: int, fetched: bool
) -> None:
    if callback is not None:
        callback(cid, size, fetched)


# -- a selection of records, followed -------------------------------------------------------


@dataclass
class MirroredDataset:
    """One record's outcome: ``error`` is None when every block is held and synced."""

    id: str
    title: str
    location: str | None
    total_bytes: int
    dag: DagResult | None = None
    seconds: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_json(self) -> dict[str, Any]:
        dag = self.dag
        return {
            "id": self.id,
            "title": self.title,
            "location": self.location,
            "total_bytes": self.total_bytes,
            "blocks": dag.blocks if dag else 0,
            "fetched_blocks": dag.fetched if dag else 0,
            "fetched_bytes": dag.fetched_bytes if dag else 0,
            "held_blocks": dag.held if dag else 0,
            "repaired_blocks": dag.repaired if dag else 0,
            "seconds": round(self.seconds, 3),
            "error": self.error,
        }


@dataclass
class Mirror:
    """Mirrors the records ``client.search(**filters)`` lists into ``store``, fetching from
    ``source`` (a ``BlockFetcher`` over the peers). Remembers what it completed, so a
    following pass only looks at new records."""

    client: Client
    store: Blockstore
    source: BlockSource
    filters: Mapping[str, Any] = field(default_factory=dict)
    on_block: Callable[[CID, int, bool], None] | None = None
    on_start: Callable[[RecordSummary], None] | None = None
    on_done: Callable[[MirroredDataset], None] | None = None
    done: set[str] = field(default_factory=set)
    newest: int | None = None  # the newest publication time seen: where polling resumes

    def pass_once(self) -> list[MirroredDataset]:
        """Mirror every selected record not completed yet (oldest first); return outcomes."""
        filters = dict(self.filters)
        if self.newest is not None:
            # Inclusive: a record published in the same second as the newest may be new.
            filters["published_from"] = str(self.newest)
        hits = [h for h in self.client.search(**filters) if h.id not in self.done]
        hits.sort(key=lambda h: (h.published or 0, h.id))
        outcomes = [self.mirror_record(hit) for hit in hits]
        # Resume the next pass after the newest record mirrored, but never past a failed one:
        # it is retried by the next pass.
        times = [h.published or 0 for h, o in zip(hits, outcomes, strict=True) if o.ok]
        failed = [h.published or 0 for h, o in zip(hits, outcomes, strict=True) if not o.ok]
        if times:
            newest = max([*times, self.newest or 0])
            self.newest = min([newest, *failed])
        return outcomes

    def mirror_record(self, hit: RecordSummary) -> MirroredDataset:
        outcome = MirroredDataset(hit.id, hit.title, hit.location, hit.total_bytes)
        if self.on_start is not None:
            self.on_start(hit)
        started = time.monotonic()
        try:
            if not hit.location:
                raise ContentError(f"record {hit.id} has no storage.location")
            outcome.dag = mirror_dag(
                self.store, self.source, CID.decode(hit.location), on_block=self.on_block
            )
            self.store.sync()
        except (ContentError, ValueError) as exc:  # FetchError is a ContentError
            outcome.error = str(exc) or type(exc).__name__
        outcome.seconds = time.monotonic() - started
        if outcome.ok:
            self.done.add(hit.id)
        if self.on_done is not None:
            self.on_done(outcome)
        return outcome

    def follow(
        self,
        interval: float,
        stop: threading.Event | None = None,
        *,
        on_error: Callable[[Exception], None] | None = None,
    ) -> Iterator[list[MirroredDataset]]:
        """Pass after pass, ``interval`` seconds apart, until ``stop`` is set; yields each
        pass's outcomes (empty when nothing was new). A pass that cannot list the records
        (server down, 5xx) is reported to ``on_error`` and retried next interval; without
        ``on_error``, or when the server refuses the selection (4xx), it raises."""
        from etdb.client.client import ClientError

        stop = stop or threading.Event()
        while not stop.is_set():
            try:
                yield self.pass_once()
            except ClientError as exc:
                if on_error is None or (exc.status is not None and exc.status < 500):
                    raise  # a refused selection will not get better by retrying
                on_error(exc)
            stop.wait(interval)


# -- repair -----------------------------------------------------------------------------------


class BlockFetch(Protocol):
    def get(self, cid: CID) -> bytes: ...


@dataclass
class Repair:
    """One corrupt block: ``error`` is None once a verified copy replaced it."""

    cid: CID
    path: str | None
    error: str | None = None


def repair_block(store: FSBlockstore, source: BlockFetch, cid: CID) -> None:
    """Replace the corrupt block file of ``cid`` with a verified copy from ``source``.

    Atomic: the copy is written to a temp file, fsynced and renamed over the bad one, so a
    reader sees the old (corrupt, detected) block or the good one, never a missing or partial
    one. ``FSBlockstore.put`` cannot do this: it takes a same-size file as already present.
    """
    block = source.get(cid)
    if not cid.verify(block):  # the fetcher verifies; a bad source must not get past here
        raise CorruptBlockError(cid, "the fetched copy")
    target = store.path_of(cid)
    temp_dir = store.root / TEMP_DIR
    temp_dir.mkdir(exist_ok=True)
    name = write_temp(temp_dir, "repair-", block, fsync=True)
    target.parent.mkdir(exist_ok=True)
    os.replace(name, target)
    fsync_dir(target.parent)


def repair_blocks(
    store: FSBlockstore,
    source: BlockFetch,
    corrupt: Iterable[tuple[CID, os.PathLike[str] | str | None]],
    *,
    on_repair: Callable[[Repair], None] | None = None,
) -> list[Repair]:
    """Repair each corrupt block from ``source``; failures are reported, not raised."""
    out = []
    for cid, path in corrupt:
        repair = Repair(cid, str(path) if path is not None else None)
        try:
            repair_block(store, source, cid)
        except (ContentError, OSError) as exc:
            repair.error = str(exc) or type(exc).__name__
        out.append(repair)
        if on_repair is not None:
            on_repair(repair)
    return out
