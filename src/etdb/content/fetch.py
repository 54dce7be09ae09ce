"""Verified blocks from several untrusted sources at once: the downloader's engine.

``BlockFetcher`` asks IPFS Trustless Gateways (etdb nodes, kubo, public gateways) for raw
blocks, ``GET {peer}/ipfs/{cid}?format=raw`` with ``Accept: application/vnd.ipld.raw``
(https://specs.ipfs.tech/http-gateways/trustless-gateway/), and hands back a block only after
its bytes hash to the CID: content addressing is what lets us trust no one. Around that:

* Peer choice, health and speed live in ``peers.py``: requests go to the peer expected to
  finish soonest, so healthy peers share the load and slow ones get less of it.
* A peer that sends bytes not matching the CID (or more than ``MAX_BLOCK_SIZE``) has lied and
  is dropped for good; the block is asked of the others at once. A 404 means "not here": the
  block is asked elsewhere and the peer stays in good standing. Transport errors, timeouts and
  5xx are retried with exponential backoff and jitter, preferring other peers; each peer gets
  ``retries`` further tries per block. When no peer is left for a block: ``FetchError``, which
  names the block and says what each source did.
* ``get_many`` runs requests on a bounded thread pool (hashing in ``hashlib`` releases the GIL)
  and keeps at most ``2 * concurrency`` blocks between the network and the caller, so memory
  stays bounded by ``2 * concurrency * MAX_BLOCK_SIZE`` whatever the file size.

A ``BlockFetcher`` is a ``BlockGetter`` (``get``/``has``), so the exporter and the CAR writer
work over the network unchanged. ``on_event`` is called from worker threads.
"""

from __future__ import annotations

import http.client
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from enum import Enum

from etdb.content.blockstore import BlockGetter, Blockstore
from etdb.content.cid import CID, SHA2_256
from etdb.content.errors import BlockNotFoundError, ContentError, CorruptBlockError
from etdb.content.peers import (
    MAX_BLOCK_SIZE,
    RAW_MEDIA,
    BlockTooLarge,
    Peer,
    PeerSet,
    PeerStats,
    exchange,
)

__all__ = [
    "MAX_BLOCK_SIZE",
    "BlockFetched",
    "BlockFetcher",
    "FetchError",
    "FetchEvent",
    "PeerDropped",
    "PeerStats",
    "Retry",
]

FIRST_BACKOFF = 0.1
MAX_BACKOFF = 5.0


class FetchError(ContentError):
    """A block no source could deliver. ``outcomes`` maps each source to what it did."""

    def __init__(self, cid: CID, outcomes: dict[str, str], reason: str | None = None) -> None:
        self.cid = cid
        self.outcomes = outcomes
        detail = "; ".join(f"{url}: {what}" for url, what in outcomes.items())
        why = reason or "no source could deliver it"
        super().__init__(f"block {cid}: {why}" + (f" ({detail})" if detail else ""))


@dataclass(frozen=True)
class BlockFetched:
    """A block arrived and hashed to its CID."""

    cid: CID
    peer: str
    bytes: int
    seconds: float


@dataclass(frozen=True)
class PeerDropped:
    """A source will not be asked again (it lied, or does not speak the protocol)."""

    url: str
    reason: str


@dataclass(frozen=True)
class Retry:
    """A request for a block failed transiently; it will be asked again (maybe elsewhere)."""

    cid: CID
    peer: str
    reason: str


FetchEvent = BlockFetched | PeerDropped | Retry


class _Outcome(Enum):
    OK = "ok"
    ABSENT = "absent"  # the peer does not have it (404): ask others, no blame
    FAILED = "failed"  # transient: retry with backoff
    LIED = "lied"  # bytes that are not the block: drop the peer
    REFUSED = "refused"  # not a trustless gateway: drop the peer, but it did not lie


class BlockFetcher:
    """Verified multi-source block fetching. See the module docstring.

    ``peers``: base URLs (``"http://127.0.0.1:8780"``, a path prefix is kept); ``local``: blocks
    already held, never fetched; ``keep``: where fetched blocks are stored (None: not kept);
    ``timeout``: seconds for one block request, connect to last byte.
    """

    def __init__(
        self,
        peers: Sequence[str],
        *,
        local: BlockGetter | None = None,
        keep: Blockstore | None = None,
        concurrency: int = 16,
        timeout: float = 30.0,
        retries: int = 4,
        on_event: Callable[[FetchEvent], None] | None = None,
    ) -> None:
        if isinstance(peers, str):
            raise TypeError("peers must be a sequence of URLs, not one string")
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout}")
        if retries < 0:
            raise ValueError(f"retries must be 0 or more, not {retries}")
        self._peers = PeerSet(peers, timeout)  # raises ValueError for a URL that is not http(s)
        self._local = local
        self._keep = keep
        self._concurrency = concurrency
        self._timeout = timeout
        self._retries = retries
        self._on_event = on_event
        self._closed = False
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    # -- BlockGetter ----------------------------------------------------------------------------

    def get(self, cid: CID) -> bytes:
        """The block's bytes, from ``local`` if held there, else from the peers (verified)."""
        return self._get_one(cid)[1]

    def has(self, cid: CID) -> bool:
        """True if ``local`` holds the block or a live peer says it has it (``HEAD``)."""
        if cid.is_identity or self._local_block(cid) is not None:
            return True
        for peer in self._peers.by_score():
            try:
                status, _headers, _body = exchange(peer, "HEAD", cid, 0)
            except (OSError, http.client.HTTPException):
                continue
            if status == 200:
                return True
        return False

    def get_many(self, cids: Iterable[CID]) -> Iterator[tuple[CID, bytes]]:
        """Fetch every distinct CID concurrently; yield ``(cid, block)`` as each is verified, in
        any order. Raises ``FetchError`` for the first block that cannot be had (the blocks in
        flight are abandoned). Closing the iterator early cancels what was not started."""
        window = 2 * self._concurrency
        pool = self._executor()
        seen: set[CID] = set()
        source = iter(cids)
        more = True
        pending: set[Future[tuple[CID, bytes]]] = set()
        try:
            while True:
                while more and len(pending) < window:
                    cid = next(source, None)
                    if cid is None:
                        more = False
                    elif cid not in seen:
                        seen.add(cid)
                        pending.add(pool.submit(self._get_one, cid))
                if not pending:
                    return
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        finally:
            for future in pending:
                future.cancel()

    # -- for multi-block requests (``carfetch``) -------------------------------------------------

    @property
    def peer_set(self) -> PeerSet:
        """The live sources and the choice among them, shared with CAR streams."""
        return self._peers

    @property
    def concurrency(self) -> int:
        return self._concurrency

    @property
    def retries(self) -> int:
        return self._retries

    @property
    def local(self) -> BlockGetter | None:
        return self._local

    def emit(self, event: FetchEvent) -> None:
        """Report an event that happened outside ``get``/``get_many`` (a CAR stream's)."""
        self._emit(event)

    def keep(self, cid: CID, block: bytes) -> None:
        """Store a block verified elsewhere (a CAR stream's) where fetched blocks are kept."""
        if self._keep is not None:
            self._keep.put(cid, block, verify=False)

    def peers(self) -> list[PeerStats]:
        """A snapshot of every source's statistics, in the order given."""
        return self._peers.snapshot()

    def close(self) -> None:
        self._closed = True
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        self._peers.close()

    def __enter__(self) -> BlockFetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one block ------------------------------------------------------------------------------

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._closed:
                raise ContentError("the block fetcher is closed")
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._concurrency, thread_name_prefix="etdb-fetch")
            return self._pool

    def _local_block(self, cid: CID) -> bytes | None:
        if self._local is None:
            return None
        try:
            return self._local.get(cid)
        except BlockNotFoundError:
            return None
        except CorruptBlockError:
            return None  # a damaged local copy: fetch a good one

    def _get_one(self, cid: CID) -> tuple[CID, bytes]:
        if cid.is_identity:
            return cid, cid.digest
        if cid.hash_code != SHA2_256:
            raise FetchError(
                cid, {}, f"hash function 0x{cid.hash_code:x} is not supported (sha2-256 only)"
            )
        block = self._local_block(cid)
        if block is None:
            block = self._fetch(cid)
            if self._keep is not None:
                self._keep.put(cid, block, verify=False)  # verified by _fetch
        return cid, block

    def _fetch(self, cid: CID) -> bytes:
        did: dict[Peer, str] = {}  # what each peer did for this block, for FetchError
        done_with: set[Peer] = set()  # peers without it, or out of tries for it
        failed: dict[Peer, int] = {}
        while True:
            if self._closed:
                raise FetchError(cid, _outcomes(self._peers, did), "the fetcher was closed")
            # Prefer a peer that has not failed on this block; back off before asking again
            # one that has.
            peer = self._peers.choose(done_with | failed.keys())
            if peer is None:
                wait_s = self._peers.next_ready(done_with)
                if wait_s is None:
                    raise FetchError(cid, _outcomes(self._peers, did))
                tries = max((failed.get(p, 0) for p in self._peers.peers), default=0)
                time.sleep(max(wait_s, _backoff(tries)))
                peer = self._peers.choose(done_with)
                if peer is None:
                    continue
            outcome, value, seconds = self._request(peer, cid)
            if outcome is _Outcome.OK:
                assert isinstance(value, bytes)
                self._peers.success(peer, len(value), seconds)
                self._emit(BlockFetched(cid, peer.url, len(value), seconds))
                return value
            assert isinstance(value, str)
            if outcome is _Outcome.ABSENT:
                self._peers.absent(peer)
                did[peer] = value
                done_with.add(peer)
            elif outcome is _Outcome.FAILED:
                self._peers.failure(peer)
                failed[peer] = failed.get(peer, 0) + 1
                did[peer] = f"failed {failed[peer]} time(s), last: {value}"
                if failed[peer] > self._retries:
                    done_with.add(peer)
                self._emit(Retry(cid, peer.url, value))
            else:
                lie = outcome is _Outcome.LIED
                did[peer] = ("lied: " if lie else "dropped: ") + value
                done_with.add(peer)
                if self._peers.drop(peer, value, lie=lie):
                    self._emit(PeerDropped(peer.url, value))

    def _request(self, peer: Peer, cid: CID) -> tuple[_Outcome, bytes | str, float]:
        start = time.monotonic()
        try:
            status, headers, body = exchange(peer, "GET", cid, start + self._timeout)
        except BlockTooLarge as exc:
            return _Outcome.LIED, str(exc), 0.0
        except TimeoutError:
            return _Outcome.FAILED, f"too slow (over {self._timeout:g} s)", 0.0
        except (OSError, http.client.HTTPException) as exc:
            return _Outcome.FAILED, _describe(exc), 0.0
        if status in (404, 410):
            return _Outcome.ABSENT, f"not found (HTTP {status})", 0.0
        if status == 408 or status == 429 or status >= 500:
            return _Outcome.FAILED, f"HTTP {status}", 0.0
        if status != 200:
            return _Outcome.ABSENT, f"refused the request (HTTP {status})", 0.0
        media = headers.get("content-type", "").partition(";")[0].strip().lower()
        if media != RAW_MEDIA:
            what = f"Content-Type {media!r}" if media else "no Content-Type"
            return _Outcome.REFUSED, f"answered with {what}, not {RAW_MEDIA}", 0.0
        if not cid.verify(body):
            return _Outcome.LIED, f"sent {len(body)} bytes that do not hash to {cid}", 0.0
        return _Outcome.OK, body, time.monotonic() - start

    def _emit(self, event: FetchEvent) -> None:
        if self._on_event is not None:
            self._on_event(event)


def _backoff(tries: int) -> float:
    """Exponential backoff with jitter, so retries of many blocks do not arrive in lockstep."""
    if tries <= 0:
        return 0.0
    growth: int = 2 ** (tries - 1)  # an int: tries > 0 here
    return min(FIRST_BACKOFF * growth, MAX_BACKOFF) * random.uniform(0.5, 1.5)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text


def _outcomes(peers: PeerSet, did: dict[Peer, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for peer in peers.peers:
        if peer in did:
            out[peer.url] = did[peer]
        elif peer.stats.dropped:
            out[peer.url] = f"dropped earlier: {peer.stats.reason}"
        else:
            out[peer.url] = "not asked"
    return out
