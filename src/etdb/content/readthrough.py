"""Reading content a node does not hold through its upstream peers, verified, optionally kept.

``ReadThrough`` is a ``BlockGetter`` that answers a block from the node's own blockstore, else
from its peer cache (``peercache.PeerCache``: a folder of its own, bounded, least recently used
out), else from the upstream peers (etdb nodes, kubo gateways, any trustless gateway) through a
``BlockFetcher``, which verifies every block against its CID, drops a peer that lies and asks
the others (``fetch.py``). A fetched block is kept in the cache when there is one. So whatever
reads through it (the path gateway, the slice viewer, the RPC API) never sends a byte that does
not hash to the CID it was asked for: an upstream's lie never reaches a client.

Bounds, because every request may name a block nobody holds:

* at most ``concurrency`` upstream block requests at once (a thread pool), and at most
  ``MAX_PENDING_PER_FETCH * concurrency`` blocks waiting for one; past that ``UpstreamBusy``;
* one fetch per CID at a time: requests wanting a block already being fetched wait for that
  fetch (per process; several ``--workers`` may each fetch it once);
* a request waits at most ``wait`` seconds for a block (``UpstreamTimeout``; a caller that must
  answer sooner, a page, asks through ``waiting_at_most``); one block request takes at most
  ``UPSTREAM_TIMEOUT`` seconds and each peer ``UPSTREAM_RETRIES`` more tries;
* a block no peer could deliver is answered with that failure for ``FAILURE_MEMORY`` seconds
  (``FAILURES_KEPT`` of them at most) instead of asking the peers again for every request of a
  burst (a page reloaded, a player retrying).

Streams read ahead (``reading``): the exporter reads a file's blocks one after another, and one
upstream round trip per 256 KiB leaf would be slow. A read-ahead (``readahead.py``) asks the
best peer for the range as one verified CAR stream, at the first block not held, and holds at
most ``READAHEAD_BYTES`` of its blocks ahead of the reader; what the stream does not bring is
read through block by block. At most ``READAHEAD_STREAMS`` read-aheads run at once; other
streams read block by block.

``HeldBlocks`` is the node's blockstore and cache without the network: what the trustless
gateway answers other peers from (see ``web/gateway_trustless.py`` for why).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

from etdb.content.blockstore import BlockGetter
from etdb.content.cid import CID
from etdb.content.errors import BlockNotFoundError, ContentError, CorruptBlockError
from etdb.content.fetch import BlockFetcher, FetchError
from etdb.content.nodes import Node
from etdb.content.peercache import PeerCache
from etdb.content.readahead import ReadAhead

__all__ = [
    "DEFAULT_CONCURRENCY",
    "UPSTREAM_ERRORS",
    "BlockHolder",
    "HeldBlocks",
    "ReadThrough",
    "UpstreamBusy",
    "UpstreamTimeout",
    "open_read_through",
    "read_ahead",
    "upstream_status",
    "waiting_at_most",
]

#: Upstream block requests at once, per server process.
DEFAULT_CONCURRENCY = 16
#: Blocks that may wait for a fetch, per upstream request slot.
MAX_PENDING_PER_FETCH = 8
#: Seconds for one block request to one peer, connect to last byte (a CAR stream: per read).
UPSTREAM_TIMEOUT = 10.0
#: Further tries each peer gets for one block after a transient failure.
UPSTREAM_RETRIES = 1
#: The longest a request waits for one block, however many peers and tries that takes.
DEFAULT_WAIT = 60.0
#: Seconds a block no peer could deliver is answered with that failure without asking again.
FAILURE_MEMORY = 10.0
FAILURES_KEPT = 1024
#: Read-aheads (one CAR stream each) at once, per server process.
READAHEAD_STREAMS = 4
#: File ranges shorter than this are read block by block (a video's seek, an MRC header).
READAHEAD_MIN = 1 << 20
#: Verified leaves one read-ahead holds ahead of its reader, at most.
READAHEAD_BYTES = 8 << 20
#: Fetched blocks waiting to be written into the peer cache, at most.
KEEP_QUEUE = 32

log = logging.getLogger(__name__)


class UpstreamBusy(ContentError):
    """Too many blocks are waiting for the upstream peers already; try again shortly."""


class UpstreamTimeout(ContentError):
    """A block did not arrive from the upstream peers in the time a request may wait."""


#: What each upstream failure is to an HTTP client: the one table the web layer answers from.
UPSTREAM_ERRORS: dict[type[ContentError], int] = {
    FetchError: 502,  # no peer had it, or every one failed or lied
    UpstreamBusy: 503,
    UpstreamTimeout: 504,
}


def upstream_status(exc: BaseException) -> int | None:
    """The HTTP status for an upstream failure (``UPSTREAM_ERRORS``); None for anything else."""
    for kind, status in UPSTREAM_ERRORS.items():
        if isinstance(exc, kind):
            return status
    return None


class BlockHolder(BlockGetter, Protocol):
    """A getter that can also say, cheaply, whether it holds a block (without the network)."""

    def has(self, cid: CID) -> bool: ...


class HeldBlocks:
    """The node's own blocks (``local``, which may hold nothing yet) and then its peer cache:
    never the network. A damaged local block is answered from the cache if it holds a good
    copy, else raised (``CorruptBlockError``).

    ``keep`` hands a fetched block to a writer thread, so that writing the cache (a new file
    per block) runs beside the stream that fetched it; at most ``KEEP_QUEUE`` blocks wait
    (then ``keep`` waits), and they are held (answered) while they wait. ``flush`` waits until
    every block handed over is written."""

    def __init__(self, local: BlockHolder, cache: PeerCache | None) -> None:
        self.local = local
        self.cache = cache
        self._queue: queue.Queue[tuple[CID, bytes]] = queue.Queue(KEEP_QUEUE)
        self._waiting: dict[CID, bytes] = {}  # handed to keep, not written yet
        self._writer: threading.Thread | None = None
        self._writer_lock = threading.Lock()

    def find(self, cid: CID) -> bytes | None:
        """The block if held here (verified), else None."""
        try:
            return self.get(cid)
        except (BlockNotFoundError, CorruptBlockError):
            return None

    def get(self, cid: CID) -> bytes:
        if cid.is_identity:
            return cid.digest
        damaged: CorruptBlockError | None = None
        try:
            return self.local.get(cid)
        except BlockNotFoundError:
            pass
        except CorruptBlockError as exc:
            damaged = exc
        block = self._cached(cid)
        if block is not None:
            return block
        raise damaged or BlockNotFoundError(cid)

    def has(self, cid: CID) -> bool:
        if self.local.has(cid):
            return True
        return self.cache is not None and (cid in self._waiting or self.cache.has(cid))

    def _cached(self, cid: CID) -> bytes | None:
        if self.cache is None:
            return None
        block = self._waiting.get(cid)
        return block if block is not None else self.cache.get(cid)

    def keep(self, cid: CID, block: bytes) -> None:
        """Keep a block fetched and verified elsewhere: in the cache, never the blockstore."""
        if self.cache is None:
            return
        if self._writer is None:
            with self._writer_lock:
                if self._writer is None:
                    self._writer = threading.Thread(
                        target=self._write, name="etdb-peer-cache", daemon=True
                    )
                    self._writer.start()
        self._waiting[cid] = block
        self._queue.put((cid, block))

    def flush(self) -> None:
        """Wait until every block handed to ``keep`` is in the cache."""
        self._queue.join()

    def _write(self) -> None:
        assert self.cache is not None
        while True:
            cid, block = self._queue.get()
            try:
                self.cache.put(cid, block, verify=False)  # verified by whoever fetched it
            except OSError as exc:  # a full or unwritable disk: the block is just not kept
                log.warning("peer cache: cannot keep %s: %s", cid, exc)
            finally:
                self._waiting.pop(cid, None)
                self._queue.task_done()


class ReadThrough:
    """Held blocks first, then the upstream peers (see the module docstring). Thread-safe."""

    def __init__(
        self,
        held: HeldBlocks,
        fetcher: BlockFetcher,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        wait: float = DEFAULT_WAIT,
        readahead_streams: int = READAHEAD_STREAMS,
    ) -> None:
        self.held = held
        self.fetcher = fetcher
        self.wait = wait
        self.concurrency = concurrency
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="etdb-readthrough")
        self._max_pending = MAX_PENDING_PER_FETCH * concurrency
        self._inflight: dict[CID, Future[bytes]] = {}
        self._failed: OrderedDict[CID, tuple[float, Future[bytes]]] = OrderedDict()  # until when
        self._lock = threading.Lock()
        self._readaheads = threading.BoundedSemaphore(readahead_streams)

    # -- BlockGetter ----------------------------------------------------------------------------

    def get(self, cid: CID) -> bytes:
        block = self.held.find(cid)
        if block is not None:
            return block
        return self._result(cid, self._fetch(cid))

    def has(self, cid: CID) -> bool:
        """Whether the block is held here (the upstream peers are not asked)."""
        return self.held.has(cid)

    def waiting(self, seconds: float) -> BlockGetter:
        """This getter, but waiting at most ``seconds`` for a block (``UpstreamTimeout``); the
        fetch goes on, so the block is there for the next request."""
        return _Waiting(self, seconds)

    def get_many(self, cids: Iterable[CID]) -> Iterator[tuple[CID, bytes]]:
        """``(cid, block)`` for each CID, in order, up to ``concurrency`` fetched at once."""
        return self.in_order(cids, self.concurrency)

    def in_order(self, cids: Iterable[CID], window: int) -> Iterator[tuple[CID, bytes]]:
        """``(cid, block)`` in the order given, with up to ``window`` fetches started ahead."""
        ahead: deque[tuple[CID, bytes | Future[bytes]]] = deque()
        for cid in cids:
            block = self.held.find(cid)
            ahead.append((cid, block if block is not None else self._fetch(cid)))
            while len(ahead) > window:
                yield self._ready(*ahead.popleft())
        while ahead:
            yield self._ready(*ahead.popleft())

    # -- streams --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def reading(self, node: Node, start: int, end: int) -> Iterator[BlockGetter]:
        """A getter for reading bytes ``[start, end)`` of the file ``node`` in order: a
        read-ahead when the range is long and one is free, else this getter itself."""
        if end - start < READAHEAD_MIN or not self._readaheads.acquire(blocking=False):
            yield self
            return
        ahead = ReadAhead(self, node, start, end, READAHEAD_BYTES, done=self._readaheads.release)
        try:
            yield ahead
        finally:
            ahead.close()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.fetcher.close()

    # -- one fetch per CID ----------------------------------------------------------------------

    def _fetch(self, cid: CID) -> Future[bytes]:
        """The fetch of ``cid`` running now, or a new one (``UpstreamBusy`` past the bound)."""
        with self._lock:
            future = self._inflight.get(cid)
            if future is not None:
                return future
            failed = self._failed.pop(cid, None)
            if failed is not None and time.monotonic() < failed[0]:
                self._failed[cid] = failed
                return failed[1]
            if len(self._inflight) >= self._max_pending:
                raise UpstreamBusy(
                    f"block {cid}: {len(self._inflight)} blocks are waiting for the upstream "
                    "peers already; try again shortly"
                )
            try:
                future = self._pool.submit(self._fetch_and_keep, cid)
            except RuntimeError:  # the pool is shut down: the server is stopping
                raise FetchError(cid, {}, "the server is shutting down") from None
            self._inflight[cid] = future
        future.add_done_callback(lambda done: self._forget(cid, done))
        return future

    def _fetch_and_keep(self, cid: CID) -> bytes:
        block = self.fetcher.get(cid)  # held again (it may have come meanwhile), else verified
        self.held.keep(cid, block)
        return block

    def _forget(self, cid: CID, future: Future[bytes]) -> None:
        """A fetch ended: no longer in flight; remembered a while if no peer delivered."""
        with self._lock:
            if self._inflight.get(cid) is future:
                del self._inflight[cid]
            if not future.cancelled() and isinstance(future.exception(), FetchError):
                self._failed[cid] = (time.monotonic() + FAILURE_MEMORY, future)
                while len(self._failed) > FAILURES_KEPT:
                    self._failed.popitem(last=False)

    def _result(self, cid: CID, future: Future[bytes], wait: float | None = None) -> bytes:
        wait = self.wait if wait is None else wait
        try:
            return future.result(timeout=wait)
        except TimeoutError:
            raise UpstreamTimeout(
                f"block {cid}: not delivered by the upstream peers within {wait:g} s"
            ) from None
        except CancelledError:
            raise FetchError(cid, {}, "the server is shutting down") from None

    def _ready(self, cid: CID, block: bytes | Future[bytes]) -> tuple[CID, bytes]:
        return cid, block if isinstance(block, bytes) else self._result(cid, block)


class _Waiting:
    """A read-through that waits at most ``seconds`` for a block (``ReadThrough.waiting``)."""

    def __init__(self, through: ReadThrough, seconds: float) -> None:
        self.through, self.seconds = through, seconds

    def get(self, cid: CID) -> bytes:
        block = self.through.held.find(cid)
        if block is not None:
            return block
        return self.through._result(cid, self.through._fetch(cid), self.seconds)


def waiting_at_most(getter: BlockGetter, seconds: float) -> BlockGetter:
    """``getter``, waiting at most ``seconds`` for a block if it reads through peers."""
    return getter.waiting(seconds) if isinstance(getter, ReadThrough) else getter


def read_ahead(
    getter: BlockGetter, node: Node, start: int, end: int
) -> contextlib.AbstractContextManager[BlockGetter]:
    """``getter.reading(node, start, end)`` for a read-through, else ``getter`` itself: what a
    stream of bytes ``[start, end)`` of ``node`` reads its blocks through."""
    if isinstance(getter, ReadThrough):
        return getter.reading(node, start, end)
    return contextlib.nullcontext(getter)


def open_read_through(
    local: BlockHolder,
    peers: Sequence[str],
    cache_path: Path | None,
    cache_bytes: int,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    wait: float = DEFAULT_WAIT,
) -> ReadThrough:
    """A read-through over ``local`` and ``peers`` (at least one), keeping what it fetches in a
    cache at ``cache_path`` of ``cache_bytes`` (0: nothing kept)."""
    if not peers:
        raise ValueError("a read-through needs at least one upstream peer")
    cache = PeerCache(cache_path, cache_bytes) if cache_path is not None and cache_bytes else None
    held = HeldBlocks(local, cache)
    fetcher = BlockFetcher(  # keeps nothing itself: whoever reads a block keeps it (off the
        peers,  # CAR stream's thread, which verifies the next block meanwhile)
        local=held,
        concurrency=concurrency,
        timeout=UPSTREAM_TIMEOUT,
        retries=UPSTREAM_RETRIES,
    )
    return ReadThrough(held, fetcher, concurrency=concurrency, wait=wait)
