"""Per-source state for the block fetcher: health, speed, load, and which source to ask next.

A *peer* is the base URL of anything that speaks the IPFS Trustless Gateway protocol (an etdb
node, kubo, a public gateway). Choosing one is "least expected completion time": each peer
keeps an EWMA of how long a block request takes, and a request goes to the peer minimising
``(in_flight + 1) * ewma_seconds``. Two equally fast peers therefore share the work, a slow one
gets proportionally less, and an unmeasured peer starts optimistic so it is tried at all.

Health has two levels, because they mean different things:
  * *unhealthy* (transient): ``FAILS_TO_COOL`` failures in a row (refused connections,
    timeouts, 5xx) put a peer in a cooldown that doubles each time, up to ``MAX_COOLDOWN``;
    the first success clears it. A restarted node comes back on its own.
  * *dropped* (permanent): the peer sent bytes that do not hash to the CID asked for (a "lie"),
    or it does not speak the protocol. Nothing it says can be trusted again.

The wire side is here too: ``Connections`` (one keep-alive HTTP/1.1 connection per peer and
worker thread) and ``exchange`` (one ``GET /ipfs/{cid}?format=raw``, size- and time-bounded).
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from etdb._version import __version__
from etdb.content.cid import CID
from etdb.content.errors import ContentError

#: The largest block accepted from a peer: bitswap's and boxo's limit. No UnixFS importer makes
#: larger ones, and without a limit a hostile peer could stream garbage forever.
MAX_BLOCK_SIZE = 2 << 20
RAW_MEDIA = "application/vnd.ipld.raw"
CAR_MEDIA = "application/vnd.ipld.car"
#: Consecutive failures that put a peer in cooldown.
FAILS_TO_COOL = 3
FIRST_COOLDOWN = 1.0
MAX_COOLDOWN = 30.0
#: Weight of the newest sample in the request-time EWMA.
EWMA_WEIGHT = 0.2
#: Request time assumed for a peer not yet measured: optimistic, so every peer gets tried.
UNMEASURED_SECONDS = 0.001


@dataclass
class PeerStats:
    """What one source did: blocks and bytes delivered (verified), failures (transport errors,
    timeouts, 5xx), lies (bytes that did not match the CID), time spent on delivered blocks."""

    url: str
    blocks: int = 0
    bytes: int = 0
    failures: int = 0
    lies: int = 0
    seconds: float = 0.0
    dropped: bool = False
    reason: str | None = None


def check_peer_url(url: str) -> str:
    """``url`` if it can name a peer (http:// or https:// with a host and a valid port), else
    ValueError saying so: the one rule for every peer URL a user or a setting gives."""
    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        _ = parts.port  # ValueError for a port that is not a number or out of range
    except ValueError:
        ok = False
    if not ok or any(c.isspace() or c == "\0" for c in url):
        raise ValueError(f"peer {url!r} is not an http:// or https:// URL")
    return url


class Connections:
    """Keep-alive HTTP/1.1 connections to one peer, one per worker thread.

    ``http.client`` rather than httpx: a block request is small and there are thousands of
    them, and http.client spends a third of httpx's CPU per request (measured on loopback:
    0.2 vs 0.65 ms per 256 KiB block), CPU the gateway on the same machine needs. A thread's
    connection is used by that thread only, so no pool lock is taken per request.
    """

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(check_peer_url(url))
        self.https = parts.scheme == "https"
        self.host = parts.hostname or ""  # check_peer_url refused a URL without a host
        self.port = parts.port
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self._local = threading.local()
        self._all: set[http.client.HTTPConnection] = set()
        self._lock = threading.Lock()

    def get(self) -> tuple[http.client.HTTPConnection, bool]:
        """This thread's connection, and whether it was used before (so may have gone stale)."""
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn, True
        cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        conn = cls(self.host, self.port, timeout=self.timeout)
        self._local.conn = conn
        with self._lock:
            self._all.add(conn)
        return conn, False

    def discard(self) -> None:
        """Close this thread's connection (after an error, or a body left unread)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            self._local.conn = None
            with self._lock:
                self._all.discard(conn)
            conn.close()

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, set()
        for conn in conns:
            conn.close()


class Peer:
    """One source's live state. Mutated only under the owning ``PeerSet``'s lock."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.connections = Connections(self.url, timeout)
        self.stats = PeerStats(self.url)
        self.in_flight = 0
        self.ewma_seconds: float | None = None
        self.fails_in_row = 0
        self.cooldown = 0.0
        self.cool_until = 0.0
        #: False once the peer answered a CAR request as one it does not serve (it may still
        #: serve raw blocks); None until asked.
        self.serves_car: bool | None = None

    def expected_seconds(self) -> float:
        per_request = self.ewma_seconds if self.ewma_seconds is not None else UNMEASURED_SECONDS
        return (self.in_flight + 1) * per_request

    def cooling(self, now: float) -> bool:
        return now < self.cool_until

    def __repr__(self) -> str:
        return f"Peer({self.url!r})"


class PeerSet:
    """The fetcher's sources and the choice among them (thread-safe)."""

    def __init__(self, urls: Collection[str], timeout: float = 30.0) -> None:
        seen: dict[str, Peer] = {}
        for url in urls:
            peer = Peer(url, timeout)
            seen.setdefault(peer.url, peer)
        self.peers = list(seen.values())
        self._lock = threading.Lock()

    def choose(self, exclude: Collection[Peer] = ()) -> Peer | None:
        """The live, not-cooling peer outside ``exclude`` expected to finish soonest, with one
        more request counted in flight on it (give it back with ``success``/``failure``/...).
        None if there is none right now (see ``next_ready``)."""
        now = time.monotonic()
        with self._lock:
            best: Peer | None = None
            for p in self.peers:
                if p.stats.dropped or p in exclude or p.cooling(now):
                    continue
                if best is None or p.expected_seconds() < best.expected_seconds():
                    best = p
            if best is not None:
                best.in_flight += 1
            return best

    def next_ready(self, exclude: Collection[Peer] = ()) -> float | None:
        """Seconds until a cooling peer outside ``exclude`` may be tried again; None if no peer
        outside ``exclude`` is left at all (every one dropped or excluded)."""
        now = time.monotonic()
        with self._lock:
            waits = [
                max(p.cool_until - now, 0.0)
                for p in self.peers
                if not p.stats.dropped and p not in exclude
            ]
        return min(waits) if waits else None

    def success(self, peer: Peer, size: int, seconds: float) -> None:
        with self._lock:
            peer.in_flight -= 1
            s = peer.stats
            s.blocks += 1
            s.bytes += size
            s.seconds += seconds
            peer.fails_in_row = 0
            peer.cooldown = 0.0
            peer.cool_until = 0.0
            old = peer.ewma_seconds
            peer.ewma_seconds = seconds if old is None else old + EWMA_WEIGHT * (seconds - old)

    def delivered(self, peer: Peer, blocks: int, size: int, seconds: float) -> None:
        """A multi-block request (a CAR stream) ended well: ``blocks`` verified blocks of
        ``size`` bytes in ``seconds``. The EWMA then holds stream times, which is what the
        peers are compared on while streams are what is asked of them."""
        with self._lock:
            peer.in_flight -= 1
            s = peer.stats
            s.blocks += blocks
            s.bytes += size
            s.seconds += seconds
            peer.fails_in_row = 0
            peer.cooldown = 0.0
            peer.cool_until = 0.0
            old = peer.ewma_seconds
            peer.ewma_seconds = seconds if old is None else old + EWMA_WEIGHT * (seconds - old)

    def absent(self, peer: Peer) -> None:
        """The peer answered, but does not have the block: not a failure of the peer."""
        with self._lock:
            peer.in_flight -= 1
            peer.fails_in_row = 0

    def failure(self, peer: Peer, *, progressed: bool = False) -> None:
        """A transient failure; ``FAILS_TO_COOL`` in a row start (or lengthen) a cooldown.
        ``progressed``: it failed after delivering verified blocks (a stream cut short), so it
        is alive: counted, but no step towards a cooldown."""
        with self._lock:
            peer.in_flight -= 1
            peer.stats.failures += 1
            if progressed:
                peer.fails_in_row = 0
                return
            peer.fails_in_row += 1
            if peer.fails_in_row >= FAILS_TO_COOL:
                peer.cooldown = min(max(peer.cooldown * 2, FIRST_COOLDOWN), MAX_COOLDOWN)
                peer.cool_until = time.monotonic() + peer.cooldown
                peer.fails_in_row = 0

    def drop(self, peer: Peer, reason: str, *, lie: bool) -> bool:
        """Stop using ``peer`` for good. True the first time (so one event is sent)."""
        with self._lock:
            peer.in_flight -= 1
            if lie:
                peer.stats.lies += 1
            first = not peer.stats.dropped
            if first:
                peer.stats.dropped = True
                peer.stats.reason = reason
            return first

    def by_score(self) -> list[Peer]:
        """Live peers, fastest first (for one-off questions such as ``has``)."""
        now = time.monotonic()
        with self._lock:
            live = [p for p in self.peers if not p.stats.dropped]
            return sorted(live, key=lambda p: (p.cooling(now), p.expected_seconds()))

    def close(self) -> None:
        for p in self.peers:
            p.connections.close()

    def snapshot(self) -> list[PeerStats]:
        with self._lock:
            return [PeerStats(**vars(p.stats)) for p in self.peers]


# -- one block request ---------------------------------------------------------------------


class BlockTooLarge(ContentError):
    """A peer announced or sent more than a block can be."""


_HEADERS = {
    "Accept": RAW_MEDIA,
    # Compressed bodies would have to be inflated before hashing; MRC data barely compresses.
    "Accept-Encoding": "identity",
    "User-Agent": f"etdb/{__version__}",
}
#: Error bodies up to this size are read (so the connection can be reused); larger: dropped.
_DRAIN_LIMIT = 64 << 10


def exchange(peer: Peer, method: str, cid: CID, deadline: float) -> tuple[int, Any, bytes]:
    """One request for ``cid`` on this thread's connection to ``peer``: (status, headers,
    body). The body is read only for a 200 GET, and never past ``MAX_BLOCK_SIZE`` or
    ``deadline`` (``BlockTooLarge``, ``TimeoutError``). A kept-alive connection the peer closed
    meanwhile is reopened once, silently: that is HTTP/1.1 housekeeping, not a failure."""
    conns = peer.connections
    r = _send(conns, method, f"{conns.prefix}/ipfs/{cid}?format=raw", _HEADERS)
    try:
        if method == "HEAD" or r.status != 200:
            length = r.getheader("content-length")
            if method != "HEAD" and (
                length is None or not length.isdigit() or int(length) > _DRAIN_LIMIT
            ):
                conns.discard()
            else:
                r.read()
            return r.status, r.headers, b""
        return r.status, r.headers, _read_body(r, deadline)
    except BaseException:
        conns.discard()
        raise


def _send(
    conns: Connections, method: str, path: str, headers: dict[str, str]
) -> http.client.HTTPResponse:
    """Send one request on this thread's connection; the response's body is left unread. A
    kept-alive connection the peer closed meanwhile is reopened once (see ``exchange``)."""
    while True:
        conn, reused = conns.get()
        try:
            conn.request(method, path, headers=headers)
            return conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            conns.discard()
            if reused:
                continue
            raise
        except BaseException:
            conns.discard()
            raise


_CAR_HEADERS = {
    # dups=n: a block repeated in the range (runs of zeros) is sent once; order=dfs: file order.
    "Accept": f"{CAR_MEDIA};version=1;order=dfs;dups=n",
    "Accept-Encoding": "identity",
    "User-Agent": f"etdb/{__version__}",
}


def open_car(peer: Peer, cid: CID, first: int, last: int) -> http.client.HTTPResponse:
    """``GET /ipfs/{cid}?format=car&dag-scope=entity&entity-bytes={first}:{last}`` (bytes
    inclusive) on this thread's connection to ``peer``. The response comes back unread: the
    caller streams it and either reads it to its end (the connection is then reused) or calls
    ``peer.connections.discard()``."""
    conns = peer.connections
    query = f"format=car&dag-scope=entity&entity-bytes={first}:{last}"
    return _send(conns, "GET", f"{conns.prefix}/ipfs/{cid}?{query}", _CAR_HEADERS)


def _read_body(r: http.client.HTTPResponse, deadline: float) -> bytes:
    length = r.getheader("content-length")
    if length is not None and length.isdigit():
        size = int(length)
        if size > MAX_BLOCK_SIZE:
            raise BlockTooLarge(f"announced {size} bytes, over the block limit")
        buf = bytearray(size)
        view = memoryview(buf)
        got = 0
        while got < size:
            n = r.readinto(view[got:])
            if not n:
                raise http.client.IncompleteRead(bytes(view[:got]), size - got)
            got += n
            if time.monotonic() > deadline:
                raise TimeoutError
        return bytes(buf)
    out = bytearray()  # chunked or close-delimited
    while chunk := r.read1(65536):
        out += chunk
        if len(out) > MAX_BLOCK_SIZE:
            raise BlockTooLarge(f"sent over {MAX_BLOCK_SIZE} bytes for a block")
        if time.monotonic() > deadline:
            raise TimeoutError
    return bytes(out)
