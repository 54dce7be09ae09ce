"""download_file's CAR streams against real ``etdb serve`` nodes on loopback: bytes of
multi-level files, runs spread over two peers, a peer corrupting a block mid-stream (dropped),
one hanging up mid-stream (its runs finished elsewhere or block by block), one refusing CAR
(raw blocks), and a SIGKILLed downloader resumed without refetching a verified leaf.

Misbehaviour comes from ``car_proxy.CarProxy``, a real proxy process in front of a real node
(a test double: honest nodes do not lie)."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from etdb.content.carfetch import STREAMS_PER_PEER
from etdb.content.cid import CID
from etdb.content.fetch import BlockFetcher, FetchEvent, PeerDropped, Retry
from etdb.content.filefetch import FilePlan, download_file, plan_file
from etdb.content.profiles import KUBO_V1, UNIXFS_V0_2015, KiB, Profile
from tests.content.car_proxy import CarProxy, read_proxy_log
from tests.content.peers_harness import EtdbNode, import_bytes
from tests.content.test_filefetch import done_leaves

LEAF = 16 * KiB
RAW_LEAVES = dataclasses.replace(KUBO_V1, chunk_size=LEAF, max_links=8)
PB_LEAVES = dataclasses.replace(UNIXFS_V0_2015, chunk_size=LEAF, max_links=8)
SIZE = 160 * LEAF + 1234  # 161 leaves, three levels of internal nodes
RUN = 20 * LEAF  # nine runs per file
REPO = Path(__file__).resolve().parents[2]


@dataclasses.dataclass
class Served:
    root: CID
    data: bytes
    store: Path
    node: EtdbNode


@contextlib.contextmanager
def serving(folder: Path, profile: Profile) -> Iterator[Served]:
    data = os.urandom(SIZE)
    root = import_bytes(folder / "blocks", data, profile)
    with EtdbNode(folder / "blocks", folder / "home") as node:
        yield Served(root, data, folder / "blocks", node)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serving(tmp_path_factory.mktemp("car"), RAW_LEAVES) as s:
        yield s


def car_requests(log: Path, prefix: str = "/") -> list[tuple[int, int]]:
    """The inclusive byte ranges of the CAR requests logged under ``prefix``."""
    out = []
    for pre, _cid, query in read_proxy_log(log):
        if pre == prefix and query.get("format") == ["car"]:
            first, last = query["entity-bytes"][0].split(":")
            out.append((int(first), int(last)))
    return out


def raw_requests(log: Path, prefix: str = "/") -> list[str]:
    return [c for p, c, q in read_proxy_log(log) if p == prefix and q.get("format") == ["raw"]]


def leaves_in(plan: FilePlan, ranges: list[tuple[int, int]]) -> set[str]:
    return {
        str(leaf.cid)
        for leaf in plan.leaves
        for first, last in ranges
        if leaf.offset <= last and leaf.offset + leaf.size > first
    }


@pytest.mark.parametrize("profile", [RAW_LEAVES, PB_LEAVES], ids=["raw", "dag-pb"])
def test_leaves_come_as_car_runs(tmp_path: Path, profile: Profile) -> None:
    log, dest = tmp_path / "log", tmp_path / "tomo.rec"
    seen: list[int] = []
    with (
        serving(tmp_path, profile) as served,
        CarProxy(served.node.url, log=log) as proxy,
        BlockFetcher([proxy.url]) as fetcher,
    ):
        plan = plan_file(fetcher, served.root)
        planned = len(raw_requests(log))  # the internal nodes
        assert download_file(fetcher, plan, dest, on_bytes=seen.append, run_bytes=RUN) == SIZE
    assert dest.read_bytes() == served.data and sum(seen) == SIZE
    assert len(raw_requests(log)) == planned  # not one leaf asked for as a raw block
    ranges = sorted(car_requests(log))
    assert len(ranges) == -(-SIZE // RUN)  # no run asked twice, none split
    assert ranges[0][0] == 0 and ranges[-1][1] == SIZE - 1
    assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(ranges))


def test_two_peers_share_the_runs(served: Served, tmp_path: Path) -> None:
    with (
        CarProxy(served.node.url) as one,
        CarProxy(served.node.url) as two,
        BlockFetcher([one.url, two.url]) as fetcher,
    ):
        plan = plan_file(fetcher, served.root)
        download_file(fetcher, plan, tmp_path / "tomo.rec", run_bytes=2 * LEAF)
        stats = fetcher.peers()
    assert (tmp_path / "tomo.rec").read_bytes() == served.data
    assert all(s.blocks > 0 and not s.dropped and not s.failures for s in stats), stats


def recorder() -> tuple[list[FetchEvent], object]:
    events: list[FetchEvent] = []
    return events, events.append


def test_a_peer_corrupting_a_block_in_a_car_is_dropped(served: Served, tmp_path: Path) -> None:
    events, on_event = recorder()
    log = tmp_path / "log"
    with (
        CarProxy(served.node.url, corrupt_block=4, log=log) as liar,
        BlockFetcher([liar.url, served.node.url], on_event=on_event) as fetcher,  # type: ignore[arg-type]
    ):
        plan = plan_file(fetcher, served.root)
        assert download_file(fetcher, plan, tmp_path / "tomo.rec", run_bytes=RUN) == SIZE
        stats = {s.url: s for s in fetcher.peers()}
    assert (tmp_path / "tomo.rec").read_bytes() == served.data
    # both its streams in flight when the first lie was caught lie too (counted, not used)
    assert stats[liar.url].dropped and 1 <= stats[liar.url].lies <= STREAMS_PER_PEER
    assert "do not hash" in (stats[liar.url].reason or "")
    assert [e.url for e in events if isinstance(e, PeerDropped)] == [liar.url]
    assert 1 <= len(car_requests(log)) <= STREAMS_PER_PEER  # never asked after a lie
    assert stats[served.node.url].blocks > 0 and not stats[served.node.url].dropped


def test_a_peer_hanging_up_mid_stream(served: Served, tmp_path: Path) -> None:
    """Every stream from the one peer stops after 5 blocks: each run is asked again (the rest of
    it), then given up to raw blocks; the file completes and nothing is counted as a lie."""
    events, on_event = recorder()
    log = tmp_path / "log"
    with (
        CarProxy(served.node.url, cut_after=5, log=log) as flaky,
        BlockFetcher([flaky.url], retries=1, on_event=on_event) as fetcher,  # type: ignore[arg-type]
    ):
        plan = plan_file(fetcher, served.root)
        assert download_file(fetcher, plan, tmp_path / "tomo.rec", run_bytes=RUN) == SIZE
        (stats,) = fetcher.peers()
    assert (tmp_path / "tomo.rec").read_bytes() == served.data
    assert not stats.dropped and stats.lies == 0 and stats.failures >= 1
    assert any(isinstance(e, Retry) and "leaves of the run missing" in e.reason for e in events)
    ranges = car_requests(log)
    # a retried run asks only for what it still lacks: later in the file than its first ask
    firsts = {}
    for first, last in ranges:
        firsts.setdefault(last, []).append(first)
    assert any(len(set(starts)) > 1 for starts in firsts.values()), ranges
    assert raw_requests(log)  # what no stream delivered came block by block


def test_a_node_sigkilled_mid_stream(served: Served, tmp_path: Path) -> None:
    dest = tmp_path / "tomo.rec"
    written = 0
    with (
        EtdbNode(served.store, tmp_path / "home") as doomed,
        BlockFetcher([doomed.url, served.node.url]) as fetcher,
    ):
        plan = plan_file(fetcher, served.root)

        def on_bytes(n: int) -> None:
            nonlocal written
            written += n
            if written >= SIZE // 3:
                doomed.kill()

        assert download_file(fetcher, plan, dest, on_bytes=on_bytes, run_bytes=RUN) == SIZE
        stats = {s.url: s for s in fetcher.peers()}
    assert dest.read_bytes() == served.data
    assert stats[doomed.url].blocks > 0 and stats[doomed.url].failures >= 1
    assert not stats[doomed.url].dropped and stats[served.node.url].blocks > 0


def test_car_refused_means_raw_blocks(served: Served, tmp_path: Path) -> None:
    log = tmp_path / "log"
    with (
        CarProxy(served.node.url, refuse_car=True, log=log) as raw_only,
        BlockFetcher([raw_only.url]) as fetcher,
    ):
        plan = plan_file(fetcher, served.root)
        assert download_file(fetcher, plan, tmp_path / "tomo.rec", run_bytes=RUN) == SIZE
        (stats,) = fetcher.peers()
    assert (tmp_path / "tomo.rec").read_bytes() == served.data
    assert not stats.dropped and stats.failures == 0
    # asked once per stream in flight, then remembered as a raw-only peer
    assert 1 <= len(car_requests(log)) <= STREAMS_PER_PEER
    assert {str(leaf.cid) for leaf in plan.leaves} <= set(raw_requests(log))


DOWNLOADER = """
import sys
from pathlib import Path
from etdb.content import filefetch
from etdb.content.cid import CID
from etdb.content.fetch import BlockFetcher

filefetch.JOURNAL_BYTES = 64 * 1024  # checkpoint every few leaves: kills land in between
url, root, dest, run = sys.argv[1:]
with BlockFetcher([url]) as fetcher:
    plan = filefetch.plan_file(fetcher, CID.decode(root))
    def on_bytes(n):
        print(n, flush=True)
    filefetch.download_file(fetcher, plan, Path(dest), on_bytes=on_bytes, run_bytes=int(run))
print("DONE", flush=True)
"""


def test_sigkilled_car_downloader_never_refetches_a_verified_leaf(
    served: Served, tmp_path: Path
) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    dest, log = tmp_path / "tomo.rec", tmp_path / "log"
    journal = tmp_path / "tomo.rec.part.json"
    kills, run, on_disk = 0, 0, set[str]()
    with CarProxy(served.node.url, log=log) as proxy:
        plan = plan_file(BlockFetcher([proxy.url]), served.root)
        leaves = {str(leaf.cid) for leaf in plan.leaves}
        while True:
            run += 1
            assert run <= 20, f"no end in sight (seed {seed})"
            left = len(leaves - on_disk)
            kill_at = rng.randint(1, max(left // 3, 1)) if kills < 5 else None
            child = subprocess.Popen(
                [sys.executable, "-c", DOWNLOADER, f"{proxy.url}/run{run}", str(plan.cid), dest,
                 str(4 * LEAF)], cwd=REPO, stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            assert child.stdout is not None
            for lines, _line in enumerate(child.stdout, 1):
                if lines == kill_at:
                    child.send_signal(signal.SIGKILL)
                    break
            child.stdout.close()
            status = child.wait()
            asked = leaves_in(plan, car_requests(log, f"/run{run}"))
            asked |= set(raw_requests(log, f"/run{run}")) & leaves
            assert asked, f"run {run} asked for nothing (seed {seed})"
            assert not asked & on_disk, f"run {run} re-fetched verified leaves (seed {seed})"
            if status == 0:
                break
            assert status == -signal.SIGKILL, f"downloader failed with {status} (seed {seed})"
            kills += 1
            on_disk = done_leaves(journal, plan)
    assert kills >= 5
    assert dest.read_bytes() == served.data
    assert not journal.exists()
