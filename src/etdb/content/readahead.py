"""One stream's read-ahead: a file range asked of a peer as one CAR, verified, ahead of its reader.

A path gateway response reads a file's blocks in file order through the exporter, one ``get``
at a time; over the network that would be one round trip per 256 KiB leaf. ``ReadAhead`` is
the getter such a stream reads through instead. At the first block the node does not hold, a
thread of its own asks the best CAR-capable peer for the range as one verified CAR
(``peers.open_car``: ``dag-scope=entity&entity-bytes=first:last``; ``car.read_car`` checks each
block against its CID and bounds its size): the blocks a DFS walk of the range meets, in the
order the exporter asks for them. They wait for the reader in a buffer of at most ``limit``
bytes (the thread, and so the peer's stream, waits while it is full).

``get`` answers a block from that buffer (dropping what arrived before it: the reader has gone
past those), from the few blocks it answered last (a run of repeated leaves is sent once in a
``dups=n`` CAR), from what the node holds, or waits for the stream to bring it; anything the
stream will not bring (it already went past it, it failed, the buffer is full of blocks the
reader does not want) is read through the ``ReadThrough`` itself, verified there. So a
read-ahead only ever makes a stream faster, never wrong. A block is kept in the peer cache
when the reader takes it, so a peer cannot fill the cache with blocks nobody asked for.

No plan of the file is made (``filefetch.plan_file`` lists every leaf, and a published DAG whose
nodes link many times to the same child lists exponentially many), and no block is judged by
its place in the DAG, only by its hash: a stream that fails ends the read-ahead (the peer's
health counts it; the reader goes on block by block, through the block fetcher, which drops a
peer whose blocks lie); a stream that is not a valid CAR or carries a block that does not hash
to its CID also stops the peer from being asked for CARs again. A DAG crafted so that a plan
would take an honest peer's correct blocks for lies can therefore not get that peer dropped.

``close`` (the response ended, or the client went away) stops the thread: its socket is shut
down, and the read-ahead slot is given back when the thread has ended.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import logging
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple, Protocol

from etdb.content.car import read_car
from etdb.content.cid import CID
from etdb.content.errors import CARError
from etdb.content.fetch import BlockFetcher
from etdb.content.nodes import Node
from etdb.content.peers import CAR_MEDIA, MAX_BLOCK_SIZE, Peer, open_car

__all__ = ["ReadAhead"]

log = logging.getLogger(__name__)

#: Blocks answered last, kept for a reader asking again (a run of repeated leaves).
RECENT_BLOCKS = 4
#: CIDs of blocks the stream brought that a read-ahead remembers (so the reader does not wait
#: for one the stream already went past); past this, the reader waits for the buffer to fill.
SEEN_MAX = 1 << 17
#: Bytes read from the peer's response at a time (small reads of a CAR are then cheap).
READ_BUFFER = 1 << 20
_POLL = 0.2  # seconds between checks of the stop flag while the thread waits for room


class _Held(Protocol):
    def find(self, cid: CID) -> bytes | None: ...

    def keep(self, cid: CID, block: bytes) -> None: ...


class Through(Protocol):
    """What a read-ahead needs of the ``readthrough.ReadThrough`` that starts it (that module
    sits above this one): its held blocks, its wait, its fetcher's peers, its own ``get``."""

    @property
    def held(self) -> _Held: ...

    @property
    def fetcher(self) -> BlockFetcher: ...

    @property
    def wait(self) -> float: ...

    def get(self, cid: CID) -> bytes: ...


class _Stopped(Exception):
    """The reader has gone: the stream ends here."""


class _Answer(NamedTuple):
    data: bytes
    fresh: bool  # just taken from the stream (else answered again)


class ReadAhead:
    """A ``BlockGetter`` for reading bytes ``[start, end)`` of ``node`` in order (see the
    module docstring); ``done`` is called once, when its stream thread has ended (or at
    ``close`` if it never started). One reader at a time."""

    def __init__(
        self,
        through: Through,
        node: Node,
        start: int,
        end: int,
        limit: int,
        *,
        done: Callable[[], None],
    ) -> None:
        self._through = through
        self._want = (node.cid, start, end - 1)
        self._limit = limit
        self._done = done
        self._cond = threading.Condition()
        self._buffer: OrderedDict[CID, bytes] = OrderedDict()
        self._buffered = 0
        self._recent: OrderedDict[CID, bytes] = OrderedDict()
        self._seen: set[CID] = set()
        self._started = False  # a stream was asked for (at the first block not held)
        self._streaming = False  # its thread runs and may bring more
        self._full = False  # the thread waits for the reader to make room
        self._stopped = False
        self._ended = False  # ``done`` was called
        self._socket: socket.socket | None = None

    # -- the reader's side ------------------------------------------------------------------------

    def get(self, cid: CID) -> bytes:
        with self._cond:
            block = self._answered(cid)
        if block is None:
            held = self._through.held.find(cid)
            if held is not None:
                return held
            with self._cond:
                if not self._started and not self._stopped:
                    self._start()
                deadline = time.monotonic() + self._through.wait
                while self._coming(cid):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                block = self._answered(cid)
            if block is None:
                return self._through.get(cid)
        if block.fresh:  # the reader wants it: kept (verified by the CAR reader)
            self._through.held.keep(cid, block.data)
        return block.data

    def close(self) -> None:
        with self._cond:
            self._stopped = True
            self._buffer.clear()
            self._recent.clear()
            self._cond.notify_all()
            sock, streaming = self._socket, self._streaming
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # a read blocked on the peer ends now
        if not streaming:
            self._end()

    def _end(self) -> None:
        """Give the read-ahead slot back, once."""
        with self._cond:
            ended, self._ended = self._ended, True
        if not ended:
            self._done()

    def _answered(self, cid: CID) -> _Answer | None:
        """``cid`` from the recent ones, or fresh from the buffer (dropping what came before
        it: the reader has gone past those). Locked."""
        data = self._recent.get(cid)
        fresh = data is None and cid in self._buffer
        if fresh:
            while True:
                got, data = self._buffer.popitem(last=False)
                self._buffered -= len(data)
                if got == cid:
                    break
            self._full = False
            self._cond.notify_all()
        if data is None:
            return None
        self._recent[cid] = data
        self._recent.move_to_end(cid)
        while len(self._recent) > RECENT_BLOCKS:
            self._recent.popitem(last=False)
        return _Answer(data, fresh)

    def _coming(self, cid: CID) -> bool:
        """Whether waiting may bring ``cid``: the stream runs, has not brought it yet, and
        is not stuck waiting for room the reader would have to make. Locked."""
        if self._stopped or not self._streaming or self._full:
            return False
        return cid not in self._buffer and cid not in self._seen

    # -- the stream -----------------------------------------------------------------------------

    def _start(self) -> None:
        """Ask the best peer that serves CARs for the range, on a thread of its own. Locked."""
        self._started = True
        peers = self._through.fetcher.peer_set
        peer = peers.choose({p for p in peers.peers if p.serves_car is False})
        if peer is None:
            return  # no peer to stream from now: the reader reads block by block
        self._streaming = True
        thread = threading.Thread(
            target=self._stream, args=(peer,), name="etdb-readahead", daemon=True
        )
        thread.start()

    def _stream(self, peer: Peer) -> None:
        peers = self._through.fetcher.peer_set
        root, first, last = self._want
        started = time.monotonic()
        blocks = size = 0
        try:
            response = open_car(peer, root, first, last)
            conn, _ = peer.connections.get()
            with self._cond:
                self._socket = conn.sock
                if self._stopped:
                    raise _Stopped
            outcome = _car_status(response)
            if outcome is not None:
                if outcome == "refused":
                    peer.serves_car = False  # raw blocks only, from now on
                peers.absent(peer)
                return
            stream = io.BufferedReader(response, READ_BUFFER)
            for cid, block in read_car(stream, max_section=MAX_BLOCK_SIZE + 128):
                self._deliver(cid, block)
                blocks, size = blocks + 1, size + len(block)
            peer.serves_car = True
            peers.delivered(peer, blocks, size, time.monotonic() - started)
        except _Stopped:
            peers.absent(peer)  # our doing: no blame
        except (OSError, http.client.HTTPException, CARError) as exc:
            if self._stopped:
                peers.absent(peer)  # its socket was shut down by ``close``
                return
            if isinstance(exc, CARError) and "truncated" not in str(exc):
                # Not a CAR, or a block that is not what its CID names: no CARs from this
                # peer again (its raw blocks are still checked one by one by the fetcher).
                peer.serves_car = False
            peers.failure(peer, progressed=blocks > 0)
            log.debug("read-ahead of %s from %s ended: %s", root, peer.url, exc)
        except BaseException:
            peers.failure(peer)
            raise
        finally:
            peer.connections.discard()  # this thread's connection: closed, never left open
            with self._cond:
                self._streaming = False
                self._socket = None
                self._cond.notify_all()
            self._end()

    def _deliver(self, cid: CID, block: bytes) -> None:
        """Hand a verified block to the reader, waiting while the buffer is full."""
        with self._cond:
            while self._buffer and self._buffered + len(block) > self._limit:
                if self._stopped:
                    raise _Stopped
                if not self._full:
                    self._full = True
                    self._cond.notify_all()  # a reader waiting for another block reads it itself
                self._cond.wait(_POLL)
            if self._stopped:
                raise _Stopped
            if len(self._seen) < SEEN_MAX:
                self._seen.add(cid)
            if cid not in self._buffer:
                self._buffer[cid] = block
                self._buffered += len(block)
            self._cond.notify_all()


def _car_status(response: http.client.HTTPResponse) -> str | None:
    """None for a CAR stream; "absent" (404/410: not held there), "refused" (no CAR from this
    peer: 400/406/501 or another type); any other status raises, as a transient failure.
    The body is not read (the connection is discarded after)."""
    status = response.status
    if status == 200:
        media = (response.getheader("content-type") or "").partition(";")[0].strip().lower()
        return None if media == CAR_MEDIA else "refused"
    if status in (404, 410):
        return "absent"
    if status in (408, 429) or (status >= 500 and status != 501):
        raise http.client.HTTPException(f"HTTP {status}")
    return "refused"
