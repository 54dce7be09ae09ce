"""The read-through's parts on real components: the peer cache on a real folder (and several
real processes sharing it), the read-through and its read-ahead against real HTTP block servers
and a real ``etdb serve`` on loopback (``peers_harness``, ``car_proxy``: honest and lying).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from etdb.content.blockstore import FSBlockstore
from etdb.content.cid import CID, DAG_PB, RAW
from etdb.content.dagpb import PBLink, PBNode, UnixFSData, UnixFSType, encode_node, encode_unixfs
from etdb.content.errors import BlockNotFoundError
from etdb.content.exporter import iter_file, resolve_node
from etdb.content.fetch import FetchError
from etdb.content.filefetch import plan_file
from etdb.content.peercache import LOW_WATER, STALE_TEMP_AGE, TEMP_PREFIX, PeerCache
from etdb.content.readthrough import (
    READAHEAD_STREAMS,
    HeldBlocks,
    ReadThrough,
    UpstreamBusy,
    UpstreamTimeout,
    open_read_through,
)
from etdb.content.unixfs import Importer
from tests.content.car_proxy import CarProxy, read_proxy_log
from tests.content.peers_harness import BlockServer, EtdbNode, read_log

REPO = Path(__file__).resolve().parents[2]
FILE_BYTES = 3_000_000  # 12 leaves of 256 KiB (kubo-v1)


class Nothing:
    """A node's blockstore that holds nothing (a node serving only what it reads through)."""

    def get(self, cid: CID) -> bytes:
        raise BlockNotFoundError(cid)

    def has(self, cid: CID) -> bool:
        return False


def blocks_of(n: int, size: int, seed: int = 0) -> list[tuple[CID, bytes]]:
    out = []
    for i in range(n):
        block = (seed * 1000 + i).to_bytes(8, "big") * (size // 8)
        out.append((CID.hash(block, codec=RAW), block))
    return out


def data_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*.data"))


# -- the peer cache -------------------------------------------------------------------------------


def test_cache_keeps_verified_blocks_and_answers_them(tmp_path: Path) -> None:
    cache = PeerCache(tmp_path / "cache", 1 << 20)
    (cid, block), (other, _) = blocks_of(2, 4096)
    cache.put(cid, block)
    assert cache.get(cid) == block
    assert cache.has(cid) and not cache.has(other)
    assert cache.get(other) is None
    with pytest.raises(ValueError, match="do not hash"):
        cache.put(other, block)  # bytes that are not the block: refused
    assert not cache.has(other)
    assert cache.size() == 4096


def test_cache_bound_evicts_least_recently_used(tmp_path: Path) -> None:
    cache = PeerCache(tmp_path / "cache", 100_000)
    blocks = blocks_of(30, 10_000)
    first_cid, first = blocks[0]
    for n, (cid, block) in enumerate(blocks):
        cache.put(cid, block)
        assert data_bytes(cache.root) <= cache.max_bytes  # at all times, not only at the end
        if n >= 1:
            time.sleep(0.002)  # mtime order (the LRU's) even on coarse-timestamp filesystems
            assert cache.get(first_cid) == first  # used again and again: never the one to go
    assert cache.get(first_cid) == first
    held = [cid for cid, _ in blocks if cache.has(cid)]
    assert blocks[-1][0] in held and blocks[1][0] not in held  # the newest kept, old ones gone
    assert len(held) * 10_000 <= cache.max_bytes
    assert cache.size() == data_bytes(cache.root)
    assert cache.size() >= int(cache.max_bytes * LOW_WATER) - 2 * 10_000  # evicted, not emptied


def test_cache_larger_than_a_block_is_not_kept(tmp_path: Path) -> None:
    cache = PeerCache(tmp_path / "cache", 1000)
    [(cid, block)] = blocks_of(1, 4096)
    cache.put(cid, block)
    assert not cache.has(cid) and data_bytes(cache.root) == 0


def test_a_tampered_or_torn_cache_file_is_a_miss_never_wrong_bytes(tmp_path: Path) -> None:
    # Hostile: anyone with write access to the folder, or a crash that tore a file. Fails
    # without the re-hash in PeerCache.get (the tampered bytes would be answered).
    cache = PeerCache(tmp_path / "cache", 1 << 20)
    (cid, block), (torn_cid, torn) = blocks_of(2, 8192)
    cache.put(cid, block)
    cache.put(torn_cid, torn)
    path = cache.path_of(cid)
    path.write_bytes(b"X" + block[1:])
    cache.path_of(torn_cid).write_bytes(torn[:100])
    assert cache.get(cid) is None and not path.exists()  # dropped on sight
    assert cache.get(torn_cid) is None
    cache.put(cid, block)
    assert cache.get(cid) == block


def test_cache_open_removes_stale_temp_files_only(tmp_path: Path) -> None:
    cache = PeerCache(tmp_path / "cache", 1 << 20)
    shard = next(p for p in cache.root.iterdir() if p.is_dir())
    stale, fresh = shard / f"{TEMP_PREFIX}1-1", shard / f"{TEMP_PREFIX}1-2"
    stale.write_bytes(b"half a block")
    fresh.write_bytes(b"being written by another process now")
    old = time.time() - STALE_TEMP_AGE - 60
    os.utime(stale, (old, old))
    PeerCache(cache.root, 1 << 20)
    assert not stale.exists() and fresh.exists()


_PUTTER = """
import sys
from etdb.content.cid import CID, RAW
from etdb.content.peercache import PeerCache
cache = PeerCache(sys.argv[1], int(sys.argv[2]))
seed = int(sys.argv[3])
for i in range(60):
    block = (seed * 1000 + i).to_bytes(8, "big") * 2048
    cache.put(CID.hash(block, codec=RAW), block)
print(cache.size())
"""


def test_cache_bound_holds_with_several_processes(tmp_path: Path) -> None:
    # Three real processes (as `etdb serve --workers 3`) fill one 256 KiB cache at once.
    root, bound = tmp_path / "cache", 256 << 10
    PeerCache(root, bound)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _PUTTER, str(root), str(bound), str(seed)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for seed in range(3)
    ]
    for proc in procs:
        proc.communicate(timeout=120)
        assert proc.returncode == 0
    cache = PeerCache(root, bound)  # the next open counts the folder again
    assert data_bytes(root) <= bound + 2 * cache.flush  # the documented bound
    assert cache.size() == data_bytes(root) > 0


# -- the read-through -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CID, bytes]:
    """A real blockstore holding one multi-leaf file: (its folder, the file's CID, its bytes)."""
    folder = tmp_path_factory.mktemp("upstream")
    data = os.urandom(FILE_BYTES)
    with FSBlockstore(folder / "blocks") as store:
        cid = Importer("kubo-v1", store).add_bytes(data).cid
    return folder / "blocks", cid, data


@pytest.fixture
def through(tmp_path: Path) -> Iterator[list[ReadThrough]]:
    """Read-throughs made by the test, closed after it."""
    made: list[ReadThrough] = []
    yield made
    for rt in made:
        rt.close()


def read_through(
    made: list[ReadThrough], peers: list[str], cache: Path | None, **kw
) -> ReadThrough:
    rt = open_read_through(Nothing(), peers, cache, 64 << 20 if cache else 0, **kw)
    made.append(rt)
    return rt


def leaf_cids(store_path: Path, cid: CID) -> list[CID]:
    with FSBlockstore(store_path, create=False) as store:
        return [leaf.cid for leaf in plan_file(store, cid).leaves]


def test_fetched_blocks_are_verified_kept_and_answered_from_the_cache(
    upstream: tuple[Path, CID, bytes], through: list[ReadThrough], tmp_path: Path
) -> None:
    store, cid, _ = upstream
    log = tmp_path / "requests.log"
    leaf = leaf_cids(store, cid)[0]
    with FSBlockstore(store, create=False) as blocks:
        expected = blocks.get(leaf)
    with BlockServer(store, log=log) as server:
        rt = read_through(through, [server.url], tmp_path / "cache")
        assert rt.get(leaf) == expected
        rt.held.flush()
        assert rt.held.cache is not None and rt.held.cache.get(leaf) == expected
        assert rt.get(leaf) == expected
        assert rt.has(leaf)
    assert [c for _, c in read_log(log)] == [str(leaf)]  # asked once; then the cache answered


def test_without_a_cache_nothing_is_kept(
    upstream: tuple[Path, CID, bytes], through: list[ReadThrough], tmp_path: Path
) -> None:
    store, cid, _ = upstream
    with BlockServer(store) as server:
        rt = read_through(through, [server.url], None)
        assert rt.get(cid)
        rt.held.flush()
        assert not rt.has(cid)
    assert list(tmp_path.iterdir()) == []


def test_many_readers_of_one_block_fetch_it_once(
    upstream: tuple[Path, CID, bytes], through: list[ReadThrough], tmp_path: Path
) -> None:
    store, cid, _ = upstream
    log = tmp_path / "requests.log"
    leaf = leaf_cids(store, cid)[3]
    got: list[bytes] = []
    with BlockServer(store, delay=0.5, log=log) as server:  # slow: the readers overlap
        rt = read_through(through, [server.url], tmp_path / "cache")
        readers = [threading.Thread(target=lambda: got.append(rt.get(leaf))) for _ in range(8)]
        for r in readers:
            r.start()
        for r in readers:
            r.join()
    assert len(got) == 8 and len(set(got)) == 1 and CID.hash(got[0], codec=RAW) == leaf
    assert [c for _, c in read_log(log)] == [str(leaf)]


def test_a_lying_peer_never_reaches_the_reader(
    upstream: tuple[Path, CID, bytes], through: list[ReadThrough], tmp_path: Path
) -> None:
    store, cid, _ = upstream
    leaf = leaf_cids(store, cid)[1]
    with BlockServer(store, corrupt="all") as liar:
        rt = read_through(through, [liar.url], tmp_path / "liar-only")
        with pytest.raises(FetchError, match=str(leaf)) as caught:
            rt.get(leaf)
        assert "lied" in str(caught.value)
        rt.held.flush()
        assert data_bytes(tmp_path / "liar-only") == 0  # nothing of the liar's was kept
        with BlockServer(store) as honest:
            rt = read_through(through, [liar.url, honest.url], tmp_path / "mixed")
            block = rt.get(leaf)
    assert CID.hash(block, codec=RAW) == leaf


def test_waiting_is_bounded_in_time_and_in_number(
    upstream: tuple[Path, CID, bytes], through: list[ReadThrough]
) -> None:
    store, cid, _ = upstream
    leaves = leaf_cids(store, cid)
    with BlockServer(store, delay=3.0) as slow:
        rt = read_through(through, [slow.url], None, concurrency=1, wait=0.5)
        with pytest.raises(UpstreamTimeout, match=str(leaves[0])):
            rt.get(leaves[0])  # asked for 3 s, waited for 0.5 s
        futures = [rt._fetch(c) for c in leaves[1:8]]  # 8 waiting (one per slot, x8): full
        with pytest.raises(UpstreamBusy):
            rt.get(leaves[9])
        assert all(not f.done() for f in futures)


def test_a_block_no_peer_delivered_is_not_asked_again_at_once(
    upstream: tuple[Path, CID, bytes], through: list[ReadThrough], tmp_path: Path
) -> None:
    # A burst of requests for a block nobody has (a page reloaded, a player retrying) costs
    # the peers one request, not one each.
    store, _, _ = upstream
    log = tmp_path / "requests.log"
    [(missing, _block)] = blocks_of(1, 1000, seed=99)
    with BlockServer(store, log=log) as server:
        rt = read_through(through, [server.url], None)
        for _ in range(5):
            with pytest.raises(FetchError, match="not found"):
                rt.get(missing)
    assert [c for _, c in read_log(log)] == [str(missing)]


def test_a_caller_may_wait_less_and_the_fetch_goes_on(
    upstream: tuple[Path, CID, bytes], through: list[ReadThrough], tmp_path: Path
) -> None:
    store, cid, _ = upstream
    log = tmp_path / "requests.log"
    leaf = leaf_cids(store, cid)[5]
    with BlockServer(store, delay=2.0, log=log) as slow:
        rt = read_through(through, [slow.url], None)
        with pytest.raises(UpstreamTimeout, match=r"within 0\.2 s"):
            rt.waiting(0.2).get(leaf)  # a page: it would rather show "not available"
        assert CID.hash(rt.get(leaf), codec=RAW) == leaf  # the same fetch, finished
    assert [c for _, c in read_log(log)] == [str(leaf)]


def test_held_blocks_never_ask_the_network(
    upstream: tuple[Path, CID, bytes], through: list[ReadThrough], tmp_path: Path
) -> None:
    store, cid, _ = upstream
    log = tmp_path / "requests.log"
    with BlockServer(store, log=log) as server:
        rt = read_through(through, [server.url], tmp_path / "cache")
        with pytest.raises(BlockNotFoundError):
            rt.held.get(cid)
        assert not rt.held.has(cid)
    assert read_log(log) == []


# -- reading ahead --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def node_a(upstream: tuple[Path, CID, bytes], tmp_path_factory: pytest.TempPathFactory):
    with EtdbNode(upstream[0], tmp_path_factory.mktemp("node-a")) as node:
        yield node


def read_all(rt: ReadThrough, cid: CID, start: int = 0, end: int | None = None) -> bytes:
    node = resolve_node(rt, cid)
    end = node.size if end is None else end
    with rt.reading(node, start, end) as getter:
        return b"".join(bytes(p) for p in iter_file(getter, node, start, end))


def test_read_ahead_streams_the_range_as_one_verified_car(
    upstream: tuple[Path, CID, bytes], node_a: EtdbNode, through: list[ReadThrough], tmp_path: Path
) -> None:
    _, cid, data = upstream
    log = tmp_path / "proxy.log"
    with CarProxy(node_a.url, log=log) as proxy:
        rt = read_through(through, [proxy.url], tmp_path / "cache")
        assert read_all(rt, cid) == data
        assert read_all(rt, cid, 1_000_000, 2_600_000) == data[1_000_000:2_600_000]
    cars = [q for _, _, q in read_proxy_log(log) if q.get("format") == ["car"]]
    assert len(cars) == 1  # the whole file in one request; the range came from the cache
    raws = [c for _, c, q in read_proxy_log(log) if q.get("format") == ["raw"]]
    assert len(raws) <= 2  # the root (and its re-read by the plan), no leaf by leaf


def test_read_ahead_from_a_peer_lying_mid_stream_gives_the_right_bytes(
    upstream: tuple[Path, CID, bytes], node_a: EtdbNode, through: list[ReadThrough], tmp_path: Path
) -> None:
    # The proxy flips a byte of the 4th block of every CAR stream (its raw blocks are honest):
    # the read-ahead stops at the lie, the rest comes block by block, verified, and the liar
    # is not asked for CARs again. Fails without the CAR reader's verification.
    store, cid, data = upstream
    with CarProxy(node_a.url, corrupt_block=4) as liar:
        rt = read_through(through, [liar.url, node_a.url], tmp_path / "cache")
        rt.fetcher.peer_set.peers[1].ewma_seconds = 1.0  # the liar is asked first
        assert read_all(rt, cid) == data
        assert rt.fetcher.peer_set.peers[0].serves_car is False
    rt.held.flush()
    cache = rt.held.cache
    assert cache is not None
    for leaf in leaf_cids(store, cid):
        block = cache.get(leaf)
        assert block is None or CID.hash(block, codec=RAW) == leaf  # nothing wrong was kept


def repeating_dag(store_path: Path, levels: int, fanout: int, leaf: bytes) -> CID:
    """A file of ``levels`` levels whose every node links ``fanout`` times to one child: a
    few blocks naming ``fanout ** levels`` leaf positions."""
    with FSBlockstore(store_path) as store:
        child, size = CID.hash(leaf, codec=RAW), len(leaf)
        store.put(child, leaf)
        for _ in range(levels):
            data = encode_unixfs(
                UnixFSData(UnixFSType.FILE, filesize=size * fanout, blocksizes=(size,) * fanout)
            )
            block = encode_node(
                PBNode(tuple(PBLink(child, None, size) for _ in range(fanout)), data)
            )
            child, size = CID.hash(block, codec=DAG_PB), size * fanout
            store.put(child, block)
    return child


def test_a_dag_naming_exponentially_many_leaves_is_read_ahead_without_listing_them(
    through: list[ReadThrough], tmp_path: Path
) -> None:
    # Hostile: 5 levels of 1000 links to one child name 10^15 leaf positions over 6 blocks.
    # A read-ahead that lists the file's leaves first (filefetch.plan_file) never finishes
    # that list (nor stops filling memory); this one streams the range asked for, and is
    # over when the reading is. Fails with a plan-first read-ahead (its slot never comes back).
    leaf = bytes(range(256)) * 4
    root = repeating_dag(tmp_path / "blocks", 5, 1000, leaf)
    got: list[bytes] = []
    with EtdbNode(tmp_path / "blocks", tmp_path / "node") as node:
        rt = read_through(through, [node.url], None)
        reader = threading.Thread(
            target=lambda: got.append(read_all(rt, root, 0, 2 << 20)), daemon=True
        )
        reader.start()
        reader.join(180)
        assert not reader.is_alive(), "the read did not finish"
        assert got == [(leaf * 2048)]
        slots = rt._readaheads  # every read-ahead has ended: all slots free
        free = 0
        deadline = time.monotonic() + 30
        while free < READAHEAD_STREAMS and time.monotonic() < deadline:
            free += slots.acquire(timeout=1)
        assert free == READAHEAD_STREAMS


def test_read_ahead_block_by_block_from_a_peer_without_car(
    upstream: tuple[Path, CID, bytes], through: list[ReadThrough], tmp_path: Path
) -> None:
    store, cid, data = upstream
    log = tmp_path / "requests.log"
    with BlockServer(store, log=log) as raw_only:  # answers format=car with 400
        rt = read_through(through, [raw_only.url], None)
        assert read_all(rt, cid) == data
    asked = [c for _, c in read_log(log)]
    assert {str(c) for c in leaf_cids(store, cid)} <= set(asked)


def test_held_blocks_prefer_a_cached_copy_of_a_damaged_local_block(tmp_path: Path) -> None:
    with FSBlockstore(tmp_path / "blocks") as store:
        [(cid, block)] = blocks_of(1, 4096)
        store.put(cid, block)
    store = FSBlockstore(tmp_path / "blocks", create=False)
    cache = PeerCache(tmp_path / "cache", 1 << 20)
    held = HeldBlocks(store, cache)
    store.path_of(cid).write_bytes(b"rot" + block[3:])
    with pytest.raises(Exception, match="corrupt"):
        held.get(cid)  # no good copy anywhere: the damage is reported, not hidden
    cache.put(cid, block)
    assert held.get(cid) == block
