"""BlockFetcher against real block servers on loopback (``peers_harness``): verification,
load sharing, a peer killed mid-download, a lying peer, a slow peer, errors."""

from __future__ import annotations

import dataclasses
import os
import threading
from pathlib import Path

import pytest

from etdb.content.blockstore import FSBlockstore
from etdb.content.cid import CID, DAG_PB, IDENTITY, RAW
from etdb.content.errors import ContentError
from etdb.content.exporter import load_node, walk_file
from etdb.content.fetch import (
    MAX_BLOCK_SIZE,
    BlockFetched,
    BlockFetcher,
    FetchError,
    FetchEvent,
    PeerDropped,
    Retry,
)
from etdb.content.memstore import MemoryBlockstore
from etdb.content.profiles import KUBO_V1, KiB
from tests.content.peers_harness import BlockServer, EtdbNode, import_bytes, read_log

# 16 KiB chunks, 8 links per node: 160 leaves under three levels of internal nodes in 2.5 MB.
PROFILE = dataclasses.replace(KUBO_V1, chunk_size=16 * KiB, max_links=8)
SIZE = 160 * 16 * KiB


@dataclasses.dataclass
class Dataset:
    store: Path
    root: CID
    data: bytes
    blocks: dict[CID, bytes]  # every block of the file, from the store (walked locally)

    @property
    def leaves(self) -> list[CID]:
        return [c for c in self.blocks if c.codec == RAW]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    folder = tmp_path_factory.mktemp("peers")
    data = os.urandom(SIZE)
    root = import_bytes(folder / "blocks", data, PROFILE)
    with FSBlockstore(folder / "blocks", create=False) as store:
        blocks = {n.cid: n.block for n, _ in walk_file(store, load_node(store, root))}
    return Dataset(folder / "blocks", root, data, blocks)


def record(into: list[FetchEvent]):  # type: ignore[no-untyped-def]
    lock = threading.Lock()

    def on_event(event: FetchEvent) -> None:
        with lock:
            into.append(event)

    return on_event


def test_single_peer_delivers_every_block_verified(dataset: Dataset, tmp_path: Path) -> None:
    got: list[FetchEvent] = []
    with (
        BlockServer(dataset.store, log=tmp_path / "log") as peer,
        BlockFetcher([peer.url], on_event=record(got)) as fetcher,
    ):
        result = dict(fetcher.get_many(dataset.blocks))
        (stats,) = fetcher.peers()
    assert result == dataset.blocks
    assert stats.blocks == len(dataset.blocks) and stats.failures == stats.lies == 0
    assert stats.bytes == sum(len(b) for b in dataset.blocks.values())
    assert not stats.dropped
    fetched = [e for e in got if isinstance(e, BlockFetched)]
    assert sorted(str(e.cid) for e in fetched) == sorted(str(c) for c in dataset.blocks)
    # One request per distinct block, even when the caller names a block twice.
    assert len(read_log(tmp_path / "log")) == len(dataset.blocks)


def test_get_uses_local_and_keeps_what_it_fetches(dataset: Dataset, tmp_path: Path) -> None:
    local = MemoryBlockstore()
    first, *rest = dataset.leaves
    local.put(first, dataset.blocks[first])
    keep = FSBlockstore(tmp_path / "mirror")
    with (
        BlockServer(dataset.store, log=tmp_path / "log") as peer,
        BlockFetcher([peer.url], local=local, keep=keep) as fetcher,
    ):
        assert fetcher.get(first) == dataset.blocks[first]
        assert fetcher.get(rest[0]) == dataset.blocks[rest[0]]
        assert fetcher.has(first) and fetcher.has(rest[1])
        assert not fetcher.has(CID.hash(b"nobody has this"))
    keep.sync()
    asked = [cid for _prefix, cid in read_log(tmp_path / "log")]
    assert asked == [str(rest[0])]  # the local block was never asked for
    assert keep.get(rest[0]) == dataset.blocks[rest[0]] and not keep.has(first)


def test_two_peers_share_the_load(dataset: Dataset) -> None:
    with (
        BlockServer(dataset.store) as a,
        BlockServer(dataset.store) as b,
        BlockFetcher([a.url, b.url], concurrency=8) as fetcher,
    ):
        assert dict(fetcher.get_many(dataset.blocks)) == dataset.blocks
        sa, sb = fetcher.peers()
    assert sa.blocks > 0 and sb.blocks > 0
    assert sa.blocks + sb.blocks == len(dataset.blocks)


def test_peer_killed_mid_download_the_other_finishes(dataset: Dataset) -> None:
    got: list[FetchEvent] = []
    with (
        BlockServer(dataset.store) as a,
        BlockServer(dataset.store) as b,
        BlockFetcher([a.url, b.url], concurrency=8, on_event=record(got)) as fetcher,
    ):
        result = {}
        for cid, block in fetcher.get_many(dataset.blocks):
            result[cid] = block
            if len(result) == len(dataset.blocks) // 4:
                a.kill()
        sa, sb = fetcher.peers()
    assert result == dataset.blocks
    assert sa.failures >= 1 and not sa.dropped  # down, not a liar: it may come back
    assert sb.blocks > len(dataset.blocks) // 2
    assert any(isinstance(e, Retry) and e.peer == a.url for e in got)


def test_lying_peer_is_dropped_and_its_block_comes_from_another(dataset: Dataset) -> None:
    victim = dataset.leaves[7]
    got: list[FetchEvent] = []
    with (
        BlockServer(dataset.store, corrupt=victim) as liar,
        BlockServer(dataset.store) as honest,
        BlockFetcher([liar.url, honest.url], on_event=record(got)) as fetcher,
    ):
        # Both unmeasured: the first listed is asked first, so the liar gets the victim.
        assert fetcher.get(victim) == dataset.blocks[victim]
        assert dict(fetcher.get_many(dataset.blocks)) == dataset.blocks
        bad, good = fetcher.peers()
    assert bad.lies == 1 and bad.dropped and "do not hash" in (bad.reason or "")
    assert bad.blocks == 0 and good.blocks == len(dataset.blocks) + 1  # the victim twice
    assert [e for e in got if isinstance(e, PeerDropped)] == [PeerDropped(liar.url, bad.reason)]


def test_slow_peer_gets_less_work(dataset: Dataset) -> None:
    with (
        BlockServer(dataset.store, delay=0.2) as slow,
        BlockServer(dataset.store) as fast,
        BlockFetcher([slow.url, fast.url], concurrency=8) as fetcher,
    ):
        assert dict(fetcher.get_many(dataset.blocks)) == dataset.blocks
        s, f = fetcher.peers()
    assert s.blocks < f.blocks / 4


def test_identity_cids_need_no_peer() -> None:
    cid = CID.v1(RAW, b"tiny inline block", IDENTITY)
    with BlockFetcher([]) as fetcher:
        assert fetcher.get(cid) == b"tiny inline block"
        assert fetcher.has(cid)
        assert dict(fetcher.get_many([cid, cid])) == {cid: b"tiny inline block"}


def test_fetch_error_names_the_block_and_what_each_source_did(
    dataset: Dataset, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    FSBlockstore(empty).close()
    leaf = dataset.leaves[0]
    with (
        BlockServer(empty) as without,
        BlockServer(dataset.store, status=503) as broken,
        BlockServer(dataset.store, corrupt=leaf) as liar,
        BlockFetcher([without.url, broken.url, liar.url], retries=1) as fetcher,
    ):
        with pytest.raises(FetchError) as caught:
            fetcher.get(leaf)
        with pytest.raises(FetchError, match="dropped earlier"):
            fetcher.get(dataset.leaves[1])
        stats = fetcher.peers()
    message = str(caught.value)
    assert str(leaf) in message
    assert f"{without.url}: not found (HTTP 404)" in message
    assert f"{broken.url}: failed 2 time(s), last: HTTP 503" in message
    assert f"{liar.url}: lied: sent" in message
    assert caught.value.cid == leaf and set(caught.value.outcomes) == {p.url for p in stats}
    assert [s.failures for s in stats] == [0, 4, 0]  # 2 tries for each of the two blocks
    assert isinstance(caught.value, ContentError)


def test_oversized_block_is_a_lie(dataset: Dataset) -> None:
    with (
        BlockServer(dataset.store, oversize=True) as garbage,
        BlockFetcher([garbage.url]) as fetcher,
    ):
        with pytest.raises(FetchError, match="over the block limit"):
            fetcher.get(dataset.leaves[0])
        (stats,) = fetcher.peers()
    assert stats.dropped and stats.lies == 1 and str(MAX_BLOCK_SIZE + 1) in (stats.reason or "")


def test_refuses_what_it_cannot_verify_and_bad_arguments() -> None:
    sha512 = CID.v1(DAG_PB, bytes(64), 0x13)
    with (
        BlockFetcher(["http://127.0.0.1:9"]) as fetcher,
        pytest.raises(FetchError, match="0x13 is not supported"),
    ):
        fetcher.get(sha512)
    with pytest.raises(ValueError, match="not an http"):
        BlockFetcher(["ftp://example.org"])
    with pytest.raises(TypeError):
        BlockFetcher("http://127.0.0.1:9")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="concurrency"):
        BlockFetcher([], concurrency=0)
    closed = BlockFetcher([])
    closed.close()
    with pytest.raises(ContentError, match="closed"):
        list(closed.get_many([CID.hash(b"x")]))


def test_real_etdb_nodes_serve_the_fetcher(dataset: Dataset, tmp_path: Path) -> None:
    """Our own trustless gateway (``etdb serve``) as the peers: raw blocks of both codecs,
    404 for what a node lacks, and a node SIGKILLed while blocks are in flight."""
    empty = tmp_path / "empty"
    FSBlockstore(empty).close()
    with (
        EtdbNode(dataset.store, tmp_path / "a") as a,
        EtdbNode(dataset.store, tmp_path / "b") as b,
        EtdbNode(empty, tmp_path / "c") as c,
        BlockFetcher([c.url, a.url, b.url], concurrency=8) as fetcher,
    ):
        result = {}
        for cid, block in fetcher.get_many(dataset.blocks):
            result[cid] = block
            if len(result) == len(dataset.blocks) // 3:
                a.kill()
        sc, sa, sb = fetcher.peers()
    assert result == dataset.blocks
    assert sc.blocks == 0 and sc.failures == 0 and not sc.dropped  # 404s are no failure
    assert sa.blocks > 0 and sb.blocks > 0 and not sa.dropped


def test_connection_closed_between_requests_is_reopened_not_a_failure(dataset: Dataset) -> None:
    with (
        BlockServer(dataset.store, hang_up=True) as peer,
        BlockFetcher([peer.url], concurrency=2) as fetcher,
    ):
        assert dict(fetcher.get_many(dataset.leaves[:20])) == {
            c: dataset.blocks[c] for c in dataset.leaves[:20]
        }
        (stats,) = fetcher.peers()
    assert stats.blocks == 20 and stats.failures == 0
