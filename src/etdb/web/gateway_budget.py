"""The work one streamed gateway response may do, and the switch that stops it when the client goes.

A body is produced in a worker thread, block by block, from DAGs anyone could have published:
a node whose links all name the same child, nested 40 deep, is 2^40 paths over 41 blocks, and a
file can hold zero-length subtrees that cost reads but add no byte. Every block a streamed
response reads goes through :meth:`ResponseBudget.guard`, which is where the limits below are
enforced, so no walk (path gateway file, CAR of any scope) can run unbounded:

* **idle work**: at most :data:`MAX_IDLE_READS` block reads, or :data:`MAX_IDLE_BYTES` bytes
  read and re-hashed, in a row without a byte of body produced. An honest file walk reads its
  internal nodes (at most the DAG depth) before each leaf it sends; a ``dups=n`` CAR does not
  walk again a subtree it sent whole (``walk_file(done=)``), so repeated chunks cost no reads.
* **duplicates** (``dups=y`` CARs, :func:`limit_duplicates`): the spec makes a gateway repeat a
  block every time the DFS walk meets it, so a tiny DAG can name an unbounded CAR. The repeats
  a response may send are bounded by the DAG's real size, what it sent once: at most
  :data:`DUP_RATIO` times the distinct blocks (and bytes) plus :data:`DUP_SPARE_BLOCKS`
  (:data:`DUP_SPARE_BYTES`).

Past a limit :class:`BudgetSpent` ends the stream: the status line is long gone, so the
connection is aborted and the client sees a truncated body, never a complete-looking one.

When the client disconnects, the response calls :meth:`ResponseBudget.stop`; the worker thread
raises :class:`StreamStopped` at its next block read (or next piece), so nothing keeps reading
and hashing a body nobody will receive, and the stream slot is given back at once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator

from etdb.content.blockstore import BlockGetter
from etdb.content.cid import CID

__all__ = [
    "DUP_RATIO",
    "DUP_SPARE_BLOCKS",
    "DUP_SPARE_BYTES",
    "MAX_IDLE_BYTES",
    "MAX_IDLE_READS",
    "BudgetSpent",
    "ResponseBudget",
    "StreamStopped",
    "limit_duplicates",
]

#: Block reads in a row that add no byte to the body (an honest walk: at most its depth, 64).
MAX_IDLE_READS = 4096
#: Bytes read and re-hashed in a row that add no byte to the body (the same bound for DAGs
#: of few, large blocks: an honest walk reads a few small internal nodes before each leaf).
MAX_IDLE_BYTES = 256 << 20
#: A ``dups=y`` CAR may repeat up to this many times what it sent once, plus the spares.
DUP_RATIO = 4
DUP_SPARE_BLOCKS = 4096
DUP_SPARE_BYTES = 256 << 20


class StreamStopped(Exception):
    """The client went away; production stops here (not an error: nothing is logged)."""


class BudgetSpent(RuntimeError):
    """The response has done all the work it may; the stream is ended (aborted)."""


class ResponseBudget:
    """One streamed response's idle-work counters and stop switch.

    ``stop`` is called from the event loop, the rest from the one worker thread producing the
    body at a time, so only the switch needs to be thread-safe.
    """

    def __init__(self) -> None:
        self._stopped = threading.Event()
        self.idle_reads = 0
        self.idle_bytes = 0

    def stop(self) -> None:
        self._stopped.set()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def guard(self, store: BlockGetter) -> BlockGetter:
        """``store`` with every read counted against this budget."""
        return _GuardedStore(store, self)

    def check(self) -> None:
        if self._stopped.is_set():
            raise StreamStopped("the client disconnected")

    def count_read(self, size: int) -> None:
        self.idle_reads += 1
        self.idle_bytes += size
        if self.idle_reads > MAX_IDLE_READS or self.idle_bytes > MAX_IDLE_BYTES:
            raise BudgetSpent(
                f"read {self.idle_reads} blocks ({self.idle_bytes} bytes) without sending a byte "
                f"(limits {MAX_IDLE_READS} blocks, {MAX_IDLE_BYTES} bytes); stream ended"
            )

    def metered(self, pieces: Iterable[bytes | memoryview]) -> Iterator[bytes | memoryview]:
        """``pieces``, each non-empty one resetting the idle counters (it is body produced)."""
        for piece in pieces:
            self.check()
            if piece:
                self.idle_reads = self.idle_bytes = 0
                yield piece


class _GuardedStore:
    """A BlockGetter that stops when the client is gone and counts each read as idle work."""

    def __init__(self, store: BlockGetter, budget: ResponseBudget) -> None:
        self.store = store
        self.budget = budget

    def get(self, cid: CID) -> bytes:
        self.budget.check()
        block = self.store.get(cid)
        self.budget.count_read(len(block))
        return block


def limit_duplicates(blocks: Iterable[tuple[CID, bytes]]) -> Iterator[tuple[CID, bytes]]:
    """``blocks`` (a ``dups=y`` CAR's), raising :class:`BudgetSpent` once the repeats exceed
    :data:`DUP_RATIO` times the distinct blocks or bytes sent, plus the spares."""
    seen: set[bytes] = set()
    distinct_blocks = distinct_bytes = dup_blocks = dup_bytes = 0
    for cid, block in blocks:
        key = bytes(cid)
        if key not in seen:
            seen.add(key)
            distinct_blocks += 1
            distinct_bytes += len(block)
        else:
            dup_blocks += 1
            dup_bytes += len(block)
            if (
                dup_blocks > DUP_RATIO * distinct_blocks + DUP_SPARE_BLOCKS
                or dup_bytes > DUP_RATIO * distinct_bytes + DUP_SPARE_BYTES
            ):
                raise BudgetSpent(
                    f"dups=y: {dup_blocks} repeated blocks ({dup_bytes} bytes) over "
                    f"{distinct_blocks} distinct ({distinct_bytes} bytes) is past the "
                    f"limit ({DUP_RATIO}x + {DUP_SPARE_BLOCKS} blocks / {DUP_SPARE_BYTES} bytes);"
                    " stream ended: ask dups=n for this DAG"
                )
        yield cid, block
