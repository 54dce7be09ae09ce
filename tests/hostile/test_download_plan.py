"""The downloader's plan and streams against hostile DAGs, on a real ``etdb serve`` on loopback.

A 10^15-leaf DAG (a few KB of blocks linking one child many times) is refused by ``plan_file``
with an error naming its root, in a subprocess held to 1.5 GB of address space: listing its
leaves first never ends (a plan-first planner dies of MemoryError or runs out the guard). A
link Tsize lying that an internal node is a leaf does not get the honest peer serving that DAG
dropped: the file is refused as the DAG's fault and the peer still serves the next file. And
``car_leaves`` leaves no socket open after a run, whether it ends, or its caller stops early.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from etdb.content.blockstore import FSBlockstore
from etdb.content.carfetch import car_leaves
from etdb.content.cid import CID, DAG_PB, RAW
from etdb.content.dagpb import PBLink, PBNode, UnixFSData, UnixFSType, encode_node, encode_unixfs
from etdb.content.errors import InvalidNodeError
from etdb.content.fetch import BlockFetcher, FetchEvent, PeerDropped
from etdb.content.filefetch import download_file, plan_file
from etdb.content.profiles import KUBO_V1, KiB
from tests.content.peers_harness import EtdbNode, import_bytes
from tests.content.test_readthrough import repeating_dag as readthrough_repeating_dag

REPO = Path(__file__).resolve().parents[2]
GUARD_SECONDS = 300  # a hang guard for the subprocess, not a speed target
SMALL_RAW = dataclasses.replace(KUBO_V1, chunk_size=16 * KiB, max_links=8)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EtdbNode, Path]]:
    folder = tmp_path_factory.mktemp("plan")
    store = folder / "blocks"
    FSBlockstore(store).close()
    with EtdbNode(store, folder / "home") as n:
        yield n, store


def repeating_dag(store_path: Path, levels: int, fanout: int, leaf: bytes) -> CID:
    """A file of ``levels`` levels whose every node links ``fanout`` times to one child, no
    Tsize given (the planner must fetch each node): a few blocks naming ``fanout ** levels``
    leaves. (tests/content/test_readthrough's has Tsizes that make its nodes look like leaves.)"""
    with FSBlockstore(store_path) as store:
        child, size = CID.hash(leaf, codec=RAW), len(leaf)
        store.put(child, leaf)
        for _ in range(levels):
            data = encode_unixfs(
                UnixFSData(UnixFSType.FILE, filesize=size * fanout, blocksizes=(size,) * fanout)
            )
            block = encode_node(
                PBNode(tuple(PBLink(child, None, None) for _ in range(fanout)), data)
            )
            child, size = CID.hash(block, codec=DAG_PB), size * fanout
            store.put(child, block)
    return child


@pytest.mark.parametrize("tsize", [False, True], ids=["no-tsize", "leaf-like-tsize"])
def test_a_dag_naming_10_15_leaves_is_refused_in_bounded_memory(
    node: tuple[EtdbNode, Path], tsize: bool
) -> None:
    server, store = node
    if tsize:  # every link's Tsize says "a leaf": the children held more than a block can
        root = readthrough_repeating_dag(store, 5, 1000, bytes(range(256)) * 4)
    else:
        root = repeating_dag(store, 5, 1000, bytes(range(256)) * 4)
    script = f"""
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 << 29, 3 << 29))
from etdb.content.cid import CID
from etdb.content.errors import InvalidNodeError
from etdb.content.fetch import BlockFetcher
from etdb.content.filefetch import plan_file
with BlockFetcher([{server.url!r}]) as fetcher:
    try:
        plan_file(fetcher, CID.decode({str(root)!r}))
    except InvalidNodeError as exc:
        print("REFUSED", exc)
        sys.exit(0)
print("PLANNED")
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=GUARD_SECONDS,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("REFUSED"), done.stdout
    assert str(root) in done.stdout and "leaves" in done.stdout


def lying_tsize_file(store_path: Path) -> tuple[CID, CID]:
    """A 16 KiB file: a raw leaf, an internal node of two raw leaves whose link Tsize says
    "a leaf" (a lie of the DAG's), a raw leaf. Returns (root, the internal node)."""
    leaves = [os.urandom(4096) for _ in range(4)]
    with FSBlockstore(store_path) as store:
        cids = [CID.hash(leaf, codec=RAW) for leaf in leaves]
        for cid, leaf in zip(cids, leaves, strict=True):
            store.put(cid, leaf)
        inner = encode_node(
            PBNode(
                (PBLink(cids[1], None, 4096), PBLink(cids[2], None, 4096)),
                encode_unixfs(UnixFSData(UnixFSType.FILE, filesize=8192, blocksizes=(4096, 4096))),
            )
        )
        inner_cid = CID.hash(inner, codec=DAG_PB)
        store.put(inner_cid, inner)
        root = encode_node(
            PBNode(
                (
                    PBLink(cids[0], None, 4096),
                    PBLink(inner_cid, None, 8192 + 10),  # true: 8192 + len(inner)
                    PBLink(cids[3], None, 4096),
                ),
                encode_unixfs(
                    UnixFSData(UnixFSType.FILE, filesize=16384, blocksizes=(4096, 8192, 4096))
                ),
            )
        )
        root_cid = CID.hash(root, codec=DAG_PB)
        store.put(root_cid, root)
    return root_cid, inner_cid


def test_a_lying_tsize_does_not_get_an_honest_peer_dropped(
    node: tuple[EtdbNode, Path], tmp_path: Path
) -> None:
    server, store = node
    root, inner = lying_tsize_file(store)
    honest = import_bytes(store, os.urandom(100_000), SMALL_RAW)
    events: list[FetchEvent] = []
    with BlockFetcher([server.url], on_event=events.append) as fetcher:
        plan = plan_file(fetcher, root)
        assert [leaf.cid for leaf in plan.leaves][1] == inner  # the lie was believed

        def wait_for_the_stream(_n: int) -> None:
            # Hold the first write until the stream has gone past the inner node's children
            # (its peer dropped, or its delivery counted): the outcome does not hang on a race.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                stats = fetcher.peers()[0]
                if stats.dropped or stats.blocks:
                    return
                time.sleep(0.05)

        with pytest.raises(InvalidNodeError) as refused:
            download_file(fetcher, plan, tmp_path / "lying", on_bytes=wait_for_the_stream)
        assert str(inner) in str(refused.value)
        assert not [e for e in events if isinstance(e, PeerDropped)]
        assert not fetcher.peers()[0].dropped
        # ... and the same peer still serves the next file, as CAR streams.
        honest_plan = plan_file(fetcher, honest)
        download_file(fetcher, honest_plan, tmp_path / "honest", run_bytes=16 << 10)
        assert not fetcher.peers()[0].dropped
    with FSBlockstore(store) as blocks:
        expected = b"".join(blocks.get(leaf.cid) for leaf in honest_plan.leaves)
    assert (tmp_path / "honest").read_bytes() == expected


def open_sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:
            continue  # closed meanwhile (the listing's own fd)
    return count


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts sockets in /proc")
def test_car_leaves_runs_leave_no_socket_open(node: tuple[EtdbNode, Path]) -> None:
    server, store = node
    root = import_bytes(store, os.urandom(300_000), SMALL_RAW)
    with BlockFetcher([server.url], concurrency=4) as fetcher:
        plan = plan_file(fetcher, root)
        everything = list(range(len(plan.leaves)))
        before = open_sockets()
        for _ in range(5):  # runs read to their end
            got = list(car_leaves(fetcher, plan, everything, run_bytes=32 << 10))
            assert {i for _c, _b, indices in got for i in indices} == set(everything)
        for _ in range(5):  # the caller stops after the first leaf
            stream = car_leaves(fetcher, plan, everything, run_bytes=32 << 10)
            next(stream)
            stream.close()
        assert open_sockets() == before
