"""One stream's read-ahead: a file range's missing leaves fetched ahead of its reader, verified.

A path gateway response reads a file's blocks in file order through the exporter, one ``get``
at a time. Over the network that would be one round trip per leaf. ``ReadAhead`` is the getter
such a stream reads through instead; on its first ``get`` it

1. plans the file (``filefetch.plan_file``: its internal nodes, a few round trips) and lists
   the leaves of the range the node does not hold;
2. opens one CAR stream of those leaves from the peers (``carfetch.car_leaves`` with a single
   run: one request, blocks in file order, each verified, a lying peer dropped and the rest of
   the run asked of another), which its own thread reads ahead of the reader;
3. once that stream has ended, fetches whatever it did not bring block by block, in order,
   ``concurrency`` at a time (peers without CAR support, a run given up after failures).

A ``get`` of a leaf still to come pulls from those sources, keeping each leaf in the peer cache
and holding the ones wanted later (a repeated leaf, one that came early) in a buffer of at most
``limit`` bytes. Anything else — internal nodes, held blocks, a leaf the sources gave up on or
that is further ahead than the buffer holds — is read through the ``ReadThrough`` itself. So a
read-ahead only ever makes a stream faster, never wrong: every block it hands out was verified
against its CID by the fetcher or the CAR reader that brought it. No thread of its own: the
reader's thread does this work, the CAR stream's thread only reads and verifies.

``close`` (the response ended, or the client went away) shuts the CAR stream down on a short
helper thread (so the event loop never waits for it) and then gives the read-ahead slot back.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING

from etdb.content.carfetch import car_leaves
from etdb.content.cid import CID
from etdb.content.filefetch import FilePlan, plan_file
from etdb.content.nodes import Node

if TYPE_CHECKING:
    from etdb.content.readthrough import ReadThrough

__all__ = ["ReadAhead"]

log = logging.getLogger(__name__)

#: A source of verified leaves: ``(cid, block, already kept in the cache)``.
_Source = Iterator[tuple[CID, bytes, bool]]


class ReadAhead:
    """A ``BlockGetter`` for reading bytes ``[start, end)`` of ``node`` in order (see the
    module docstring); ``done`` is called once, after ``close``, when its stream has ended.
    One reader at a time (a stream's body is produced by one thread at a time)."""

    def __init__(
        self,
        through: ReadThrough,
        node: Node,
        start: int,
        end: int,
        limit: int,
        *,
        done: Callable[[], None],
    ) -> None:
        self._through = through
        self._want = (node, start, end)
        self._limit = limit
        self._done = done
        self._lock = threading.Lock()  # a get against close
        self._buffer: dict[CID, list] = {}  # cid -> [block, reads still expected]
        self._buffered = 0
        self._pending: Counter[CID] | None = None  # leaves still to come; None: not planned
        self._sources: list[Callable[[], _Source]] = []  # sources not opened yet, in order
        self._source: _Source | None = None
        self._closed = False

    def get(self, cid: CID) -> bytes:
        with self._lock:
            if self._closed:
                raise ValueError("read-ahead used after close")
            if self._pending is None:
                self._plan()
            assert self._pending is not None
            entry = self._buffer.get(cid)
            if entry is None and self._pending[cid] > 0:
                entry = self._pull(cid)
            if entry is not None:
                return self._take(cid, entry)
            if self._pending[cid] > 0:
                self._pending[cid] -= 1  # read directly: no need to hold it when it comes
        return self._through.get(cid)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._buffer.clear()
            source, self._source = self._source, None
        if source is None:
            self._done()
            return
        # Closing the CAR stream joins its thread: not on the caller's (the event loop's).
        threading.Thread(target=self._close_source, args=(source,), daemon=True).start()

    def _close_source(self, source: _Source) -> None:
        try:
            with contextlib.suppress(Exception):
                source.close()  # type: ignore[attr-defined]
        finally:
            self._done()

    # -- planning -------------------------------------------------------------------------------

    def _plan(self) -> None:
        node, start, end = self._want
        try:
            plan = plan_file(self._through, node.cid)
        except Exception as exc:  # the reader reads through and meets the error itself
            log.debug("read-ahead of %s: no plan: %s", node.cid, exc)
            self._pending = Counter()
            return
        missing = self._missing(plan, start, end)
        self._pending = Counter(plan.leaves[i].cid for i in missing)
        if missing:
            self._sources = [
                partial(self._car, plan, missing),
                partial(self._by_block, plan, missing),
            ]

    def _missing(self, plan: FilePlan, start: int, end: int) -> list[int]:
        """Indices of the leaves covering ``[start, end)`` that are not held here."""
        offsets = [leaf.offset for leaf in plan.leaves]
        first = max(bisect.bisect_right(offsets, start) - 1, 0)
        last = bisect.bisect_left(offsets, end)
        held = self._through.held
        leaves = plan.leaves
        return [
            i
            for i in range(first, last)
            if not leaves[i].cid.is_identity and not held.has(leaves[i].cid)
        ]

    def _car(self, plan: FilePlan, missing: list[int]) -> _Source:
        """The missing leaves as one CAR stream (verified by the CAR reader)."""
        fetcher = self._through.fetcher
        leaves = car_leaves(fetcher, plan, missing, run_bytes=plan.size)
        try:
            for cid, block, _indices in leaves:
                yield cid, block, False
        finally:
            leaves.close()

    def _by_block(self, plan: FilePlan, missing: list[int]) -> _Source:
        """What the CAR stream did not bring, block by block, in file order (kept by the
        read-through's fetches)."""
        assert self._pending is not None
        wanted = dict.fromkeys(plan.leaves[i].cid for i in missing)
        left = [cid for cid in wanted if self._pending[cid] > 0]
        for cid, block in self._through.in_order(left, self._through.concurrency):
            yield cid, block, True

    # -- pulling --------------------------------------------------------------------------------

    def _pull(self, cid: CID) -> list | None:
        """Pull from the sources until ``cid`` comes (its buffer entry); None if it will not
        come soon enough (the buffer is full, or the sources are done or failed)."""
        assert self._pending is not None
        while self._buffered < self._limit:
            if self._source is None:
                if not self._sources:
                    return None
                self._source = self._sources.pop(0)()
            try:
                got, block, kept = next(self._source)
            except StopIteration:
                self._source = None
                continue
            except Exception as exc:  # the reader reads through and meets the error itself
                log.debug("read-ahead of %s stopped: %s", self._want[0].cid, exc)
                self._source, self._sources = None, []
                return None
            if not kept:
                self._through.held.keep(got, block)
            reads = self._pending.pop(got, 0)
            if reads > 0:  # else it was read directly meanwhile
                entry = self._buffer.setdefault(got, [block, 0])
                self._buffered += len(block) if entry[1] == 0 else 0
                entry[1] += reads
            if got == cid:
                return self._buffer.get(cid)
        return None

    def _take(self, cid: CID, entry: list) -> bytes:
        entry[1] -= 1
        if entry[1] <= 0:
            del self._buffer[cid]
            self._buffered -= len(entry[0])
        return entry[0]
