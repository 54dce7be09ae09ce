"""Gateway stream slots against vanishing, crawling and DAG-bomb clients of a real ``etdb serve``.

The node is a real ``etdb serve --no-index`` subprocess (``tests.content.peers_harness``) with
``gateway_streams=4``; clients are raw sockets and httpx on loopback. Its blockstore holds
content built with the project's own dag-pb code, as anyone could publish it:

* a 1 TiB file (``2^22`` leaves of 256 KiB) of 23 blocks: every file node links twice to the
  same child, so sending it takes hours but storing it takes 6 MiB;
* a folder with ``2^40`` paths: 40 nested folders, each with entries ``a`` and ``b`` naming the
  same next folder, over one small raw block: 41 blocks whose ``dups=y`` CAR never ends;
* a 1-byte file whose byte comes after a zero-length subtree of ``2^40`` paths: reading it
  walks forever without producing a byte.

Before the fix each vanished client kept its slot (uvicorn's ``send`` returns quietly after a
disconnect, so the server went on reading and hashing the rest of the terabyte) and every later
download got 429; a ``dups=y`` CAR of the folder streamed without end. Waits are generous
"eventually" polls, never speed assertions.
"""

from __future__ import annotations

import io
import os
import random
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from etdb.content.blockstore import FSBlockstore
from etdb.content.car import CarReader
from etdb.content.cid import CID, DAG_PB, RAW
from etdb.content.dagpb import PBLink, PBNode, UnixFSData, UnixFSType, encode_node, encode_unixfs
from etdb.content.errors import ContentError
from etdb.content.unixfs import Importer
from etdb.web.gateway_budget import DUP_RATIO, DUP_SPARE_BLOCKS
from tests.content.peers_harness import EtdbNode

LIMIT = 4  # the node's gateway_streams
LEAF = 256 * 1024
FILE_LEVELS = 22  # 2^22 leaves of 256 KiB: 1 TiB
FOLDER_LEVELS = 40  # 2^40 paths
WAIT = 60.0  # "eventually": generous, for a loaded 2-core machine


@dataclass(frozen=True)
class Content:
    huge_file: CID  # 1 TiB, 23 blocks
    huge_size: int
    bomb: CID  # a folder with 2^40 paths, 41 blocks
    bomb_blocks: list[tuple[CID, bytes]]
    hollow: CID  # 1 byte after 2^40 zero-length nodes
    normal: CID  # an ordinary 3 MB file
    normal_bytes: bytes


def _put_pb(store: FSBlockstore, node: PBNode) -> tuple[CID, bytes]:
    block = encode_node(node)
    cid = CID.hash(block, codec=DAG_PB)
    store.put(cid, block)
    return cid, block


def _huge_file(store: FSBlockstore, rng: random.Random) -> tuple[CID, int]:
    leaf = rng.randbytes(LEAF)
    cid = CID.hash(leaf, codec=RAW)
    store.put(cid, leaf)
    size = LEAF
    for _ in range(FILE_LEVELS):
        fs = UnixFSData(UnixFSType.FILE, filesize=2 * size, blocksizes=(size, size))
        links = (PBLink(cid, "", size), PBLink(cid, "", size))
        cid, _ = _put_pb(store, PBNode(links, encode_unixfs(fs)))
        size *= 2
    return cid, size


def _bomb_folder(store: FSBlockstore) -> tuple[CID, list[tuple[CID, bytes]]]:
    leaf = b"the one block at the bottom of 2^40 paths"
    cid = CID.hash(leaf, codec=RAW)
    store.put(cid, leaf)
    blocks = [(cid, leaf)]
    folder = encode_unixfs(UnixFSData(UnixFSType.DIRECTORY))
    for _ in range(FOLDER_LEVELS):
        links = (PBLink(cid, "a", 1), PBLink(cid, "b", 1))
        cid, block = _put_pb(store, PBNode(links, folder))
        blocks.append((cid, block))
    return cid, blocks


def _hollow_file(store: FSBlockstore) -> CID:
    empty = UnixFSData(UnixFSType.FILE, data=b"", filesize=0)
    cid, _ = _put_pb(store, PBNode((), encode_unixfs(empty)))
    for _ in range(FOLDER_LEVELS - 1):
        fs = UnixFSData(UnixFSType.FILE, filesize=0, blocksizes=(0, 0))
        cid, _ = _put_pb(store, PBNode((PBLink(cid, "", 0), PBLink(cid, "", 0)), encode_unixfs(fs)))
    byte = CID.hash(b"x", codec=RAW)
    store.put(byte, b"x")
    top = UnixFSData(UnixFSType.FILE, filesize=1, blocksizes=(0, 1))
    return _put_pb(store, PBNode((PBLink(cid, "", 0), PBLink(byte, "", 1)), encode_unixfs(top)))[0]


@pytest.fixture(scope="module")
def content(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Content]:
    store_path = tmp_path_factory.mktemp("gw-slots") / "blocks"
    rng = random.Random(11)
    normal_bytes = rng.randbytes(3_000_000)
    with FSBlockstore(store_path) as store:
        huge, huge_size = _huge_file(store, rng)
        bomb, bomb_blocks = _bomb_folder(store)
        hollow = _hollow_file(store)
        normal = Importer("kubo-v1", store).add_bytes(normal_bytes).cid
    return store_path, Content(huge, huge_size, bomb, bomb_blocks, hollow, normal, normal_bytes)


@pytest.fixture
def node(content: tuple[Path, Content], tmp_path: Path) -> Iterator[EtdbNode]:
    store_path, _ = content
    with EtdbNode(store_path, tmp_path / "home", {"gateway_streams": str(LIMIT)}) as n:
        yield n


# -- clients --------------------------------------------------------------------------------------


def _open_download(node: EtdbNode, path: str, *, rcvbuf: int | None = None) -> socket.socket:
    """A raw HTTP/1.1 GET of ``path``; returns once the status line is in. The caller reads
    (or does not) and closes."""
    sock = socket.socket()
    if rcvbuf is not None:  # before connect, so the advertised window stays small
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(WAIT)
    sock.connect(("127.0.0.1", node.port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return sock


def _status(sock: socket.socket) -> tuple[int, bytes]:
    """The status code, and the bytes read with it (headers and maybe some body)."""
    got = b""
    while b"\r\n" not in got:
        part = sock.recv(4096)
        if not part:
            raise ConnectionError(f"closed before a status line: {got!r}")
        got += part
    return int(got.split(b" ", 2)[1]), got


def _vanish(sock: socket.socket, *, reset: bool) -> None:
    if reset:  # RST, as a killed process's socket; else FIN, as curl --max-time
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()


def _download(node: EtdbNode, cid: CID) -> tuple[int, bytes]:
    r = httpx.get(f"{node.url}/ipfs/{cid}", timeout=WAIT)
    return r.status_code, r.content


def _stalled_reader(node: EtdbNode, content: Content) -> socket.socket:
    """A reader of the 1 TiB file with a tiny receive window, once it got its 200. A 429 is
    retried: a finished download's slot comes back just after its last byte left."""
    deadline = time.monotonic() + WAIT
    while True:
        sock = _open_download(node, f"/ipfs/{content.huge_file}", rcvbuf=4096)
        status, _ = _status(sock)
        if status == 200:
            return sock
        sock.close()
        assert status == 429 and time.monotonic() < deadline, f"status {status}"
        time.sleep(0.2)


def _download_when_free(node: EtdbNode, content: Content) -> bytes:
    """The normal file, retrying 429s (a slot given back a moment after its body ended)."""
    deadline = time.monotonic() + WAIT
    while True:
        status, body = _download(node, content.normal)
        if status == 200:
            return body
        assert status == 429 and time.monotonic() < deadline, f"status {status}"
        time.sleep(0.2)


def _all_limit_downloads_succeed(node: EtdbNode, content: Content) -> bool:
    """``LIMIT`` downloads of the normal file at once: all 200 with the right bytes."""
    with ThreadPoolExecutor(LIMIT) as pool:
        results = list(pool.map(lambda _: _download(node, content.normal), range(LIMIT)))
    return all(r == (200, content.normal_bytes) for r in results)


def _eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    pytest.fail(f"not within {WAIT:.0f} s: {what}")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _quiet(pid: int) -> bool:
    """Under a quarter of a core used over one second (an idle uvicorn uses ~0)."""
    before = _cpu_seconds(pid)
    time.sleep(1.0)
    return _cpu_seconds(pid) - before < 0.25


# -- the attacks ----------------------------------------------------------------------------------


def test_vanished_clients_give_their_slots_back(
    node: EtdbNode, content: tuple[Path, Content]
) -> None:
    """3 x LIMIT clients start the 1 TiB file, read a little and vanish (FIN or RST); then the
    next LIMIT downloads all succeed and the server stops working."""
    _, c = content
    statuses = []
    for i in range(3 * LIMIT):
        sock = _open_download(node, f"/ipfs/{c.huge_file}")
        status, got = _status(sock)
        statuses.append(status)
        if status == 200:
            assert f"content-length: {c.huge_size}".encode() in got.lower()
            while len(got) < 300_000:  # a little of the body
                got += sock.recv(65536)
        _vanish(sock, reset=i % 2 == 1)
    assert statuses.count(200) >= LIMIT  # the first LIMIT at least were served
    _eventually(lambda: _all_limit_downloads_succeed(node, c), "LIMIT downloads all 200")
    _eventually(lambda: _quiet(node.proc.pid), "the server's CPU goes quiet")


def test_a_slow_reader_holds_only_its_own_slot(
    node: EtdbNode, content: tuple[Path, Content]
) -> None:
    """Readers that stall on the 1 TiB file hold one slot each and no CPU; the last free slot
    still serves; once they all stall the next request is 429; when they go, all is free."""
    _, c = content
    slow = []
    try:
        for _ in range(LIMIT - 1):
            slow.append(_stalled_reader(node, c))
        for sock in slow:  # a trickle: a few KB each, then nothing
            sock.recv(4096)
        assert _download_when_free(node, c) == c.normal_bytes  # the one free slot
        assert _download_when_free(node, c) == c.normal_bytes  # ...given back
        slow.append(_stalled_reader(node, c))
        assert _download(node, c.normal)[0] == 429  # LIMIT stalled readers: all slots
        _eventually(lambda: _quiet(node.proc.pid), "stalled readers cost no CPU")
    finally:
        for sock in slow:
            _vanish(sock, reset=False)
    _eventually(lambda: _all_limit_downloads_succeed(node, c), "LIMIT downloads all 200")


def _read_car(node: EtdbNode, url: str, cap: int) -> tuple[bytes, bool]:
    """Up to ``cap`` bytes of a CAR; whether the server ended the stream (cleanly or not)."""
    got = bytearray()
    try:
        with httpx.stream("GET", url, timeout=WAIT) as r:
            assert r.status_code == 200
            for part in r.iter_raw():
                got += part
                if len(got) > cap:
                    return bytes(got), False
    except httpx.RemoteProtocolError:
        pass  # aborted: a truncated CAR, as the budget ends it
    return bytes(got), True


def _car_blocks(data: bytes) -> list[CID]:
    """The complete, verified blocks at the start of a (possibly truncated) CAR."""
    reader = CarReader(io.BytesIO(data))
    cids: list[CID] = []
    try:
        for cid, _ in reader:
            cids.append(cid)
    except ContentError:  # the truncated last section
        pass
    return cids


def test_a_dups_car_of_a_dag_bomb_ends_within_its_budget(
    node: EtdbNode, content: tuple[Path, Content]
) -> None:
    """LIMIT ``dups=y`` CARs of the 2^40-path folder at once: each is ended after a bounded
    number of blocks (the repeats allowed by 41 distinct ones), and downloads go on."""
    _, c = content
    distinct = len(c.bomb_blocks)
    most_blocks = distinct + DUP_RATIO * distinct + DUP_SPARE_BLOCKS
    block_bytes = max(len(b) for _, b in c.bomb_blocks) + 64  # section length + CID + block
    cap = 2 * most_blocks * block_bytes + (1 << 20)  # past this the server is not stopping
    url = f"{node.url}/ipfs/{c.bomb}?format=car&car-dups=y"
    with ThreadPoolExecutor(LIMIT) as pool:
        results = list(pool.map(lambda _: _read_car(node, url, cap), range(LIMIT)))
    for data, ended in results:
        assert ended, f"the dups=y CAR went past {cap} bytes"
        cids = _car_blocks(data)
        assert distinct < len(cids) <= most_blocks  # repeats were sent, up to the budget
        assert cids[: FOLDER_LEVELS + 1] == [cid for cid, _ in reversed(c.bomb_blocks)]
    _eventually(lambda: _all_limit_downloads_succeed(node, c), "LIMIT downloads all 200")
    # dups=n of the same folder is its 41 blocks, whole: the budget only bounds repeats.
    r = httpx.get(f"{node.url}/ipfs/{c.bomb}?format=car", timeout=WAIT)
    assert r.status_code == 200
    assert _car_blocks(r.content) == [cid for cid, _ in reversed(c.bomb_blocks)]


def test_reading_without_sending_is_ended(node: EtdbNode, content: tuple[Path, Content]) -> None:
    """The hollow file, as a file (idle reads) and as a dups=y entity CAR (repeats): each
    stream is ended after its budget, a truncated body, not a hang. Its dups=n entity CAR is
    complete: a subtree sent whole is not walked again, so the 2^40 paths are 42 blocks."""
    _, c = content
    for query in ("", "?format=car&dag-scope=entity&car-dups=y"):
        with pytest.raises(httpx.RemoteProtocolError):  # before the fix: ReadTimeout
            httpx.get(f"{node.url}/ipfs/{c.hollow}{query}", timeout=WAIT)
    r = httpx.get(f"{node.url}/ipfs/{c.hollow}?format=car&dag-scope=entity", timeout=WAIT)
    cids = _car_blocks(r.content)
    assert r.status_code == 200 and len(cids) == len(set(cids)) == FOLDER_LEVELS + 2
    _eventually(lambda: _all_limit_downloads_succeed(node, c), "LIMIT downloads all 200")
