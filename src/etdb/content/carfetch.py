"""A file's leaves in long runs, as verified CAR streams from several peers at once.

One raw-block request per 256 KiB leaf costs the serving gateway a full HTTP request each
(8,000 of them for a 2 GiB file). Instead, ``car_leaves`` cuts the leaves still missing into
contiguous *runs* of about ``RUN_BYTES`` file bytes and asks a peer for each run as one stream,
``GET /ipfs/{file}?format=car&dag-scope=entity&entity-bytes=a:b`` (the trustless gateway's
verifiable range request): the DFS blocks covering bytes ``a..b``, internal nodes first.

Nothing is trusted. Each section is read (never more than ``MAX_SECTION_SIZE``), its block
hashed against its CID, and then either yielded (a leaf of the run: its file bytes) or
ignored (anything else: an internal node, a leaf already delivered, a block the plan did not
expect). Only a hash decides whether a peer lies: where a block sits in the DAG is the DAG's
word, and a DAG may lie (a link Tsize that makes an internal node look like a leaf has an
honest peer stream that node's children, which the plan never listed). So what a peer does
decides what happens to it and to the run, as in ``BlockFetcher``:

* a block that does not hash to its CID, a malformed CAR: a lie, the peer is dropped for good,
  the rest of the run is asked elsewhere;
* a transport error, a timeout, a 5xx, a stream that ends before the run's last leaf, or one
  that sends more unwanted bytes than ``_stray_limit`` allows: a failure, the peer's health
  counts it, the rest of the run is asked of another peer (or, after ``retries`` failures,
  left to the caller's per-block raw requests);
* 404: the peer does not hold the file; it is not asked for this file again;
* 400/406/501 or a body that is not a CAR: the peer does not serve CAR, it is remembered
  (``Peer.serves_car``) and only asked for raw blocks from then on.

Runs are spread over the peers by the fetcher's own choice (least expected completion time),
``STREAMS_PER_PEER`` streams per live peer at most. Memory is bounded by one section per
stream plus ``QUEUED_LEAVES`` leaves waiting for the caller: a run is never buffered whole.
A worker thread closes its connections to every peer when it ends (the run list done, an
error, or the caller stopping early), as ``readahead`` does: none is left open.
"""

from __future__ import annotations

import contextlib
import http.client
import queue
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from etdb.content.car import MAX_HEADER_SIZE, MAX_SECTION_SIZE, decode_header
from etdb.content.cid import CID, SHA2_256, CIDError
from etdb.content.errors import BlockNotFoundError, CARError, CorruptBlockError
from etdb.content.fetch import BlockFetched, BlockFetcher, PeerDropped, Retry
from etdb.content.peers import CAR_MEDIA, Peer, open_car

if TYPE_CHECKING:
    from etdb.content.fileplan import FilePlan

__all__ = ["QUEUED_LEAVES", "RUN_BYTES", "STREAMS_PER_PEER", "car_leaves"]

#: File bytes asked for in one CAR request: large enough that the per-request cost vanishes,
#: small enough that a run lost to a dying peer is cheap to ask again.
RUN_BYTES = 32 << 20
STREAMS_PER_PEER = 2
#: Verified leaves waiting for the caller to write them, at most.
QUEUED_LEAVES = 32
_POLL = 0.2  # seconds between checks of the stop flag while blocked


@dataclass
class _Run:
    """Leaves ``first..last`` (plan indices) still wanted: ``wanted`` maps CID -> indices."""

    first: int
    last: int
    wanted: dict[CID, list[int]]
    failures: int = 0
    tried: set[Peer] = field(default_factory=set)


class _Lie(Exception):
    """The peer sent something that is not what was asked for: drop it."""


class _Refused(Exception):
    """The peer does not serve CAR streams (or not this one): raw blocks only from it."""


class _Absent(Exception):
    """The peer does not hold the file."""


def car_leaves(
    fetcher: BlockFetcher,
    plan: FilePlan,
    missing: list[int],
    *,
    run_bytes: int = RUN_BYTES,
) -> Iterator[tuple[CID, bytes, list[int]]]:
    """Yield ``(cid, block, leaf_indices)`` for leaves of ``missing`` (indices into
    ``plan.leaves``), each block verified, in any order. Leaves no peer delivered as a CAR are
    simply not yielded: the caller fetches what is left block by block. Closing the iterator
    stops every stream."""
    runs = _cut_runs(fetcher, plan, missing, run_bytes)
    if not runs:
        return
    streams = _Streams(fetcher, plan, runs)
    try:
        yield from streams.results()
    finally:
        streams.stop()


def _cut_runs(fetcher: BlockFetcher, plan: FilePlan, missing: list[int], limit: int) -> list[_Run]:
    """Contiguous stretches of missing sha2-256 leaves (what a CAR carries), each at most
    ``limit`` file bytes; leaves the fetcher's local store holds are left to it."""
    runs: list[_Run] = []
    current: _Run | None = None
    held = 0
    for i in missing:
        leaf = plan.leaves[i]
        if leaf.cid.is_identity or leaf.cid.hash_code != SHA2_256 or _local(fetcher, leaf.cid):
            current = None
            continue
        if current is None or current.last != i - 1 or held + leaf.size > limit:
            current, held = _Run(i, i, {}), 0
            runs.append(current)
        current.last = i
        current.wanted.setdefault(leaf.cid, []).append(i)
        held += leaf.size
    return runs


def _local(fetcher: BlockFetcher, cid: CID) -> bool:
    if fetcher.local is None:
        return False
    try:
        fetcher.local.get(cid)
    except (BlockNotFoundError, CorruptBlockError):
        return False
    return True


class _Streams:
    """The worker threads streaming runs, and the queue of verified leaves they fill."""

    def __init__(self, fetcher: BlockFetcher, plan: FilePlan, runs: list[_Run]) -> None:
        self.fetcher, self.plan = fetcher, plan
        self.peers = fetcher.peer_set
        self.runs = runs[::-1]  # popped from the end: file order
        self.lock = threading.Lock()
        self.out: queue.Queue[tuple[CID, bytes, list[int]] | BaseException | None] = queue.Queue(
            QUEUED_LEAVES
        )
        self.stopping = threading.Event()
        self.absent: set[Peer] = set()  # peers without this file
        self.sockets: set[socket.socket] = set()
        live = sum(1 for p in self.peers.peers if p.serves_car is not False)
        count = max(1, min(fetcher.concurrency, STREAMS_PER_PEER * live, len(runs)))
        self.threads = [
            threading.Thread(target=self._work, name=f"etdb-car-{n}", daemon=True)
            for n in range(count)
        ]
        self.running = len(self.threads)
        for t in self.threads:
            t.start()

    # -- the caller's side ----------------------------------------------------------------------

    def results(self) -> Iterator[tuple[CID, bytes, list[int]]]:
        finished = 0
        while finished < len(self.threads):
            item = self.out.get()
            if item is None:
                finished += 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item

    def stop(self) -> None:
        """Stop every stream now (their sockets are shut down) and wait for the workers."""
        self.stopping.set()
        with self.lock:
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        for t in self.threads:
            t.join()

    # -- the workers ----------------------------------------------------------------------------

    def _put(self, item: tuple[CID, bytes, list[int]] | BaseException | None) -> bool:
        while not self.stopping.is_set():
            try:
                self.out.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def _work(self) -> None:
        try:
            while not self.stopping.is_set():
                with self.lock:
                    run = self.runs.pop() if self.runs else None
                if run is None:
                    break
                self._serve(run)
        except BaseException as exc:  # a bug or a file the DAG itself gets wrong: the caller's
            self._put(exc)
        finally:
            for peer in self.peers.peers:  # this thread's connections: closed, never left open
                peer.connections.discard()
            self._put(None)

    def _serve(self, run: _Run) -> None:
        """Stream ``run`` from peer after peer until it is complete or given up."""
        while run.wanted and not self.stopping.is_set():
            excluded = self.absent | {p for p in self.peers.peers if p.serves_car is False}
            peer = self.peers.choose(excluded | run.tried)
            if peer is None:
                wait_s = self.peers.next_ready(excluded)
                if wait_s is None or run.failures > self.fetcher.retries:
                    return  # no peer left to stream it: the caller asks block by block
                run.tried.clear()  # every peer tried once: ask again after the backoff
                self.stopping.wait(max(wait_s, 0.1 * 2 ** min(run.failures, 5)))
                continue
            self._attempt(peer, run)

    def _attempt(self, peer: Peer, run: _Run) -> None:
        started = time.monotonic()
        blocks = size = 0
        try:
            for cid, data, indices in self._stream(peer, run):
                blocks += 1
                size += len(data)
                if not self._put((cid, data, indices)):
                    peer.connections.discard()
                    self.peers.absent(peer)  # gives the request back: stopping, no blame
                    return
        except _Lie as exc:
            peer.connections.discard()
            if self.peers.drop(peer, str(exc), lie=True):
                self.fetcher.emit(PeerDropped(peer.url, str(exc)))
        except _Refused:
            peer.connections.discard()
            peer.serves_car = False
            self.peers.absent(peer)
        except _Absent:
            peer.connections.discard()
            self.absent.add(peer)
            self.peers.absent(peer)
        except (OSError, http.client.HTTPException, CARError) as exc:
            peer.connections.discard()
            if self.stopping.is_set():  # our own doing (the sockets were shut down)
                self.peers.absent(peer)
                return
            self.peers.failure(peer, progressed=blocks > 0)
            run.failures += 1
            run.tried.add(peer)
            if not self.stopping.is_set():
                self.fetcher.emit(Retry(self.plan.cid, peer.url, _describe(exc)))
        except BaseException:
            peer.connections.discard()
            self.peers.failure(peer)
            raise
        else:
            peer.serves_car = True
            self.peers.delivered(peer, blocks, size, time.monotonic() - started)

    def _stream(self, peer: Peer, run: _Run) -> Iterator[tuple[CID, bytes, list[int]]]:
        """The run's leaves from one CAR stream, verified; raises what the peer did wrong."""
        leaves = self.plan.leaves
        lo = min(i for indices in run.wanted.values() for i in indices)
        hi = max(i for indices in run.wanted.values() for i in indices)
        first, last = leaves[lo].offset, leaves[hi].offset + leaves[hi].size - 1
        stray, stray_limit = 0, _stray_limit(last - first + 1)
        r = open_car(peer, self.plan.cid, first, last)
        conn, _ = peer.connections.get()
        sock = conn.sock
        if sock is not None:
            with self.lock:
                self.sockets.add(sock)
        try:
            _check_status(r)
            reader = _SectionReader(r)
            reader.header()
            while (section := reader.section()) is not None:
                cid, block = section
                if not cid.verify(block):
                    raise _Lie(f"sent {len(block)} bytes that do not hash to {cid} in a CAR")
                indices = run.wanted.pop(cid, None)
                if indices is not None:
                    self.fetcher.keep(cid, block)
                    self.fetcher.emit(BlockFetched(cid, peer.url, len(block), 0.0))
                    yield cid, block, indices
                else:  # not wanted, but what its CID names: the DAG's business, not a lie
                    stray += len(block)
                    if stray > stray_limit:
                        raise CARError(
                            f"the CAR of bytes {first}-{last} sent over {stray_limit} bytes "
                            "of blocks not wanted"
                        )
                if self.stopping.is_set():
                    raise OSError("stopped")
            if run.wanted:
                raise CARError(f"the CAR ended with {len(run.wanted)} leaves of the run missing")
        finally:
            if sock is not None:
                with self.lock:
                    self.sockets.discard(sock)


def _stray_limit(range_bytes: int) -> int:
    """Bytes of verified but unwanted blocks a stream of ``range_bytes`` file bytes may send:
    its internal nodes, leaves sent twice, and the children of a node a lying Tsize made the
    plan take for a leaf all fit (each at most the range again); an endless stream does not."""
    return 2 * range_bytes + MAX_SECTION_SIZE


def _check_status(r: http.client.HTTPResponse) -> None:
    status = r.status
    if status == 200:
        media = (r.getheader("content-type") or "").partition(";")[0].strip().lower()
        if media != CAR_MEDIA:
            raise _Refused(f"answered with Content-Type {media!r}")
        return
    if status in (404, 410):
        raise _Absent(f"HTTP {status}")
    if status in (408, 429) or (status >= 500 and status != 501):
        raise http.client.HTTPException(f"HTTP {status}")
    raise _Refused(f"HTTP {status}")  # 400, 406, 501...: not a CAR it makes


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text


class _SectionReader:
    """CARv1 off an HTTP response, a section at a time, sizes capped before reading; framing
    that cannot be a CAR is a ``_Lie``, a body that stops short a ``CARError`` (a failure)."""

    def __init__(self, r: http.client.HTTPResponse) -> None:
        self.r = r
        self.offset = 0

    def header(self) -> None:
        length = self._varint("header length")
        if length is None:
            raise CARError("empty CAR stream")
        if not 0 < length <= MAX_HEADER_SIZE:
            raise _Lie(f"CAR header length {length}")
        try:
            header = decode_header(bytes(self._exact(length)))
        except CARError as exc:
            if "truncated" in str(exc):
                raise
            raise _Lie(str(exc)) from None
        if header.get("version") != 1:
            raise _Lie(f"CAR version {header.get('version')!r}, not 1")

    def section(self) -> tuple[CID, bytes] | None:
        at = self.offset
        length = self._varint("section length")
        if length is None:
            return None
        if not 0 < length <= MAX_SECTION_SIZE:
            raise _Lie(f"CAR section of {length} bytes at offset {at}")
        data = self._exact(length)
        try:
            cid, pos = CID.read(data)
        except CIDError as exc:
            raise _Lie(f"bad CID in the CAR at offset {at}: {exc}") from None
        return cid, bytes(memoryview(data)[pos:])

    def _exact(self, n: int) -> bytearray:
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            k = self.r.readinto(view[got:])
            if not k:
                raise CARError(f"truncated CAR: {n - got} bytes missing at offset {self.offset}")
            got += k
            self.offset += k
        return buf

    def _varint(self, what: str) -> int | None:
        value = shift = 0
        for i in range(9):
            b = self.r.read(1)
            if not b:
                if i == 0:
                    return None
                raise CARError(f"truncated CAR: {what} at offset {self.offset}")
            self.offset += 1
            value |= (b[0] & 0x7F) << shift
            if not b[0] & 0x80:
                return value
            shift += 7
        raise _Lie(f"CAR {what} varint longer than 9 bytes at offset {self.offset}")
