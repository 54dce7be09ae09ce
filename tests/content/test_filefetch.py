"""plan_file / download_file against real block servers on loopback: plans of multi-level DAGs,
downloads from several peers (one killed, one lying), resume after Ctrl-C and after SIGKILL."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from etdb.content.blockstore import FSBlockstore
from etdb.content.cid import CID
from etdb.content.errors import ContentError, NotAFileError
from etdb.content.exporter import load_node, walk_file
from etdb.content.fetch import BlockFetcher
from etdb.content.filefetch import FilePlan, Leaf, download_file, plan_file, resumed_bytes
from etdb.content.profiles import KUBO_V1, UNIXFS_V0_2015, KiB, Profile
from etdb.content.unixfs import Importer
from tests.content.peers_harness import BlockServer, import_bytes, read_log

LEAF = 16 * KiB
RAW_LEAVES = dataclasses.replace(KUBO_V1, chunk_size=LEAF, max_links=8)
PB_LEAVES = dataclasses.replace(UNIXFS_V0_2015, chunk_size=LEAF, max_links=8)
SIZE = 160 * LEAF + 1234  # 161 leaves, three levels of internal nodes
REPO = Path(__file__).resolve().parents[2]


class CountingStore:
    """A real blockstore that counts which blocks were read (planning must skip leaves)."""

    def __init__(self, store: FSBlockstore) -> None:
        self.store, self.read = store, []

    def get(self, cid: CID) -> bytes:
        self.read.append(cid)
        return self.store.get(cid)


@dataclasses.dataclass
class File:
    store: Path
    root: CID
    data: bytes


def make_file(folder: Path, data: bytes, profile: Profile = RAW_LEAVES) -> File:
    return File(folder / "blocks", import_bytes(folder / "blocks", data, profile), data)


@pytest.fixture(scope="module")
def random_file(tmp_path_factory: pytest.TempPathFactory) -> File:
    return make_file(tmp_path_factory.mktemp("file"), os.urandom(SIZE))


def leaf_cids(plan: FilePlan) -> list[str]:
    return [str(leaf.cid) for leaf in plan.leaves]


@pytest.mark.parametrize("profile", [RAW_LEAVES, PB_LEAVES], ids=["raw leaves", "dag-pb leaves"])
def test_plan_lists_leaves_and_fetches_only_internal_nodes(
    tmp_path: Path, profile: Profile
) -> None:
    f = make_file(tmp_path, os.urandom(SIZE), profile)
    with FSBlockstore(f.store, create=False) as store:
        expected, internal = [], set()
        at = 0
        for node, piece in walk_file(store, load_node(store, f.root)):
            if node.pb is not None and node.pb.links:
                internal.add(node.cid)
            if piece:
                expected.append(Leaf(at, len(piece), node.cid))
                at += len(piece)
        counting = CountingStore(store)
        plan = plan_file(counting, f.root)
    assert len(internal) == 1 + 3 + 21  # 161 leaves, 8 per node: a DAG three levels deep
    assert plan == FilePlan(f.root, SIZE, expected)
    assert set(counting.read) == internal and len(counting.read) == len(internal)


def test_plan_resolves_a_path_and_refuses_a_folder(tmp_path: Path) -> None:
    (tmp_path / "ds" / "sub").mkdir(parents=True)
    (tmp_path / "ds" / "sub" / "tomo.rec").write_bytes(b"x" * 50_000)
    with FSBlockstore(tmp_path / "blocks") as store:
        root = Importer(RAW_LEAVES, store).add_path(tmp_path / "ds").cid
        plan = plan_file(store, f"{root}/sub/tomo.rec")
        assert plan.size == 50_000 and len(plan.leaves) == 4
        assert plan.leaves[-1] == Leaf(3 * LEAF, 50_000 - 3 * LEAF, plan.leaves[-1].cid)
        with pytest.raises(NotAFileError, match="directory"):
            plan_file(store, f"{root}/sub")


@pytest.mark.parametrize("profile", [RAW_LEAVES, PB_LEAVES], ids=["raw leaves", "dag-pb leaves"])
def test_download_over_the_network(tmp_path: Path, profile: Profile) -> None:
    f = make_file(tmp_path, os.urandom(SIZE), profile)
    dest = tmp_path / "out" / "tomo.rec"
    seen: list[int] = []
    with BlockServer(f.store) as peer, BlockFetcher([peer.url]) as fetcher:
        plan = plan_file(fetcher, f.root)
        assert download_file(fetcher, plan, dest, on_bytes=seen.append) == SIZE
    assert dest.read_bytes() == f.data and sum(seen) == SIZE
    assert sorted(p.name for p in dest.parent.iterdir()) == ["tomo.rec"]  # no .part left


def test_repeated_leaf_is_fetched_once_and_written_everywhere(tmp_path: Path) -> None:
    f = make_file(tmp_path, bytes(40 * LEAF) + b"end")  # a run of zeros, as in MRC files
    log, dest = tmp_path / "log", tmp_path / "zeros.mrc"
    with BlockServer(f.store, log=log) as peer, BlockFetcher([peer.url]) as fetcher:
        plan = plan_file(fetcher, f.root)
        assert len(set(leaf_cids(plan))) == 2 and len(plan.leaves) == 41
        before = len(read_log(log))
        assert download_file(fetcher, plan, dest) == len(f.data)
    assert len(read_log(log)) - before == 2
    assert dest.read_bytes() == f.data


def test_empty_file(tmp_path: Path) -> None:
    f = make_file(tmp_path, b"")
    with BlockServer(f.store) as peer, BlockFetcher([peer.url]) as fetcher:
        plan = plan_file(fetcher, f.root)
        assert plan.size == 0 and plan.leaves == []
        assert download_file(fetcher, plan, tmp_path / "empty") == 0
    assert (tmp_path / "empty").read_bytes() == b""


def test_existing_destination(random_file: File, tmp_path: Path) -> None:
    log = tmp_path / "log"
    with BlockServer(random_file.store, log=log) as peer, BlockFetcher([peer.url]) as fetcher:
        plan = plan_file(fetcher, random_file.root)
        done, other = tmp_path / "done.rec", tmp_path / "other.rec"
        done.write_bytes(random_file.data)
        other.write_bytes(b"a lab's own file")
        planned = len(read_log(log))
        assert download_file(fetcher, plan, done) == 0
        with pytest.raises(ContentError, match=r"other\.rec already exists .* refusing"):
            download_file(fetcher, plan, other)
    assert len(read_log(log)) == planned  # nothing fetched
    assert other.read_bytes() == b"a lab's own file"


def test_download_survives_a_killed_peer_and_a_lying_one(random_file: File, tmp_path: Path) -> None:
    dest = tmp_path / "tomo.rec"
    plan = plan_file(FSBlockstore(random_file.store, create=False), random_file.root)
    written = 0
    with (
        BlockServer(random_file.store) as doomed,
        BlockServer(random_file.store, corrupt="all") as liar,
        BlockServer(random_file.store) as honest,
        BlockFetcher([doomed.url, liar.url, honest.url], concurrency=6) as fetcher,
    ):

        def on_bytes(n: int) -> None:
            nonlocal written
            written += n
            if written >= SIZE // 3:
                doomed.kill()

        assert download_file(fetcher, plan, dest, on_bytes=on_bytes) == SIZE
        stats = {s.url: s for s in fetcher.peers()}
    assert dest.read_bytes() == random_file.data
    assert stats[doomed.url].failures >= 1 and not stats[doomed.url].dropped
    # Its answers in flight when the first lie was caught are lies too (counted, not used).
    assert stats[liar.url].lies >= 1 and stats[liar.url].dropped
    assert stats[liar.url].blocks == 0
    assert stats[honest.url].blocks > 0


def done_leaves(journal: Path, plan: FilePlan) -> set[str]:
    """The leaves a journal says are on disk (empty if there is none yet)."""
    if not journal.exists():
        return set()
    bits = base64.b64decode(json.loads(journal.read_text())["done"])
    return {str(leaf.cid) for i, leaf in enumerate(plan.leaves) if bits[i >> 3] & (1 << (i & 7))}


def test_interrupted_download_resumes_without_refetching(random_file: File, tmp_path: Path) -> None:
    dest, log = tmp_path / "tomo.rec", tmp_path / "log"
    journal = tmp_path / "tomo.rec.part.json"

    class Interrupted(KeyboardInterrupt):
        pass

    def stop_after(limit: int):  # type: ignore[no-untyped-def]
        total = 0

        def on_bytes(n: int) -> None:
            nonlocal total
            total += n
            if total >= limit:
                raise Interrupted

        return on_bytes

    with BlockServer(random_file.store, log=log) as peer:
        with BlockFetcher([peer.url + "/first"]) as fetcher:
            plan = plan_file(fetcher, random_file.root)
            with pytest.raises(Interrupted):
                download_file(fetcher, plan, dest, on_bytes=stop_after(SIZE // 2))
        kept = done_leaves(journal, plan)
        assert len(kept) >= (SIZE // 2) // LEAF  # everything written was journaled on Ctrl-C
        assert not dest.exists() and dest.with_name("tomo.rec.part").exists()
        resumed = resumed_bytes(plan, dest)
        assert resumed == sum(leaf.size for leaf in plan.leaves if str(leaf.cid) in kept)
        with BlockFetcher([peer.url + "/second"]) as fetcher:
            rest = download_file(fetcher, plan, dest)
    assert dest.read_bytes() == random_file.data and not journal.exists()
    again = {cid for prefix, cid in read_log(log) if prefix == "/second"}
    assert not again & kept
    assert again == set(leaf_cids(plan)) - kept
    assert rest == SIZE - resumed and resumed_bytes(plan, dest) == 0


def test_damaged_journal_means_starting_over(random_file: File, tmp_path: Path) -> None:
    dest = tmp_path / "tomo.rec"
    dest.with_name("tomo.rec.part").write_bytes(b"junk")
    dest.with_name("tomo.rec.part.json").write_text("{not json")
    with BlockServer(random_file.store) as peer, BlockFetcher([peer.url]) as fetcher:
        plan = plan_file(fetcher, random_file.root)
        assert download_file(fetcher, plan, dest) == SIZE
    assert dest.read_bytes() == random_file.data


DOWNLOADER = """
import sys
from pathlib import Path
from etdb.content import filefetch
from etdb.content.cid import CID
from etdb.content.fetch import BlockFetcher

filefetch.JOURNAL_BYTES = 64 * 1024  # checkpoint every few leaves: kills land in between
url, root, dest = sys.argv[1:]
with BlockFetcher([url], concurrency=4) as fetcher:
    plan = filefetch.plan_file(fetcher, CID.decode(root))
    def on_bytes(n):
        print(n, flush=True)
    filefetch.download_file(fetcher, plan, Path(dest), on_bytes=on_bytes)
print("DONE", flush=True)
"""


def test_sigkilled_downloader_resumes_and_never_refetches_a_verified_leaf(
    random_file: File, tmp_path: Path
) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    dest, log = tmp_path / "tomo.rec", tmp_path / "log"
    journal = tmp_path / "tomo.rec.part.json"
    plan = plan_file(FSBlockstore(random_file.store, create=False), random_file.root)
    leaves = set(leaf_cids(plan))
    kills, run, on_disk = 0, 0, set[str]()
    with BlockServer(random_file.store, delay=0.002, log=log) as peer:
        while True:
            run += 1
            assert run <= 20, f"no end in sight (seed {seed})"
            left = len(leaves - on_disk)
            kill_at = rng.randint(1, max(left // 3, 1)) if kills < 5 else None
            child = subprocess.Popen(
                [sys.executable, "-c", DOWNLOADER, f"{peer.url}/run{run}", str(plan.cid), dest],
                cwd=REPO,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert child.stdout is not None
            for lines, _line in enumerate(child.stdout, 1):
                if lines == kill_at:
                    child.send_signal(signal.SIGKILL)
                    break
            child.stdout.close()
            status = child.wait()
            asked = {cid for prefix, cid in read_log(log) if prefix == f"/run{run}"} & leaves
            assert not asked & on_disk, f"run {run} re-fetched verified leaves (seed {seed})"
            if status == 0:
                break
            assert status == -signal.SIGKILL, f"downloader failed with {status} (seed {seed})"
            kills += 1
            on_disk = done_leaves(journal, plan)
    assert kills >= 5
    assert dest.read_bytes() == random_file.data
    assert not journal.exists()
