"""Peer-to-peer distribution on loopback, with real `etdb` processes.

Setup, the simplest honest one: node A is a lab (`etdb demo` publishes two datasets to A's own
ledger, indexes them, `etdb serve`). Node B starts empty and runs `etdb mirror --publisher
<A's address> --server A --peer A --once`: the selection comes from A's API, every block from
A's trustless gateway, verified, into B's blockstore; B then serves it with `etdb serve`. B
does not index A's ledger: the catalog questions go to A (``Client(server=A, peers=...)``),
only content comes from the peers, which is exactly the split the downloader makes.

Then: a lying gateway is detected and dropped; a node with a rotten block on disk does not
spread it, and `etdb verify --repair` fixes it from a peer; a download from A+B completes
correctly although A is SIGKILLed half-way. Every file is compared with A's dataset folder.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from etdb.client.client import Client
from etdb.client.download import DownloadListener
from etdb.content.blockstore import FSBlockstore
from etdb.content.cid import CID, RAW
from etdb.content.exporter import resolve
from tests.client.nodes import Node, make_demo_home, run_etdb
from tests.content.peers_harness import BlockServer


@dataclass
class Cluster:
    a: Node
    b: Node
    report: dict[str, Any]  # `etdb demo --json` in A
    mirror: dict[str, Any]  # `etdb mirror --once --json` in B
    remirror: dict[str, Any]  # the same again: nothing left to fetch

    @property
    def records(self) -> list[dict[str, Any]]:
        return self.report["records"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("nodes")
    report = make_demo_home(root / "a", datasets=2)
    a = Node(root / "a").start()
    b = Node(root / "b")
    (root / "b").mkdir()
    try:
        publisher = Client(a.url).get(report["records"][0]["record"]).summary.publisher
        args = ("mirror", "--publisher", publisher, "--server", a.url, "--peer", a.url)
        first = run_etdb(b.home, *args, "--once", "--json")
        assert first.returncode == 0, first.stderr
        again = run_etdb(b.home, *args, "--once", "--json")
        assert again.returncode == 0, again.stderr
        b.start()
        yield Cluster(a, b, report, json.loads(first.stdout), json.loads(again.stdout))
    finally:
        a.stop()
        b.stop()


def assert_downloaded(dest: Path, cluster: Cluster, records: list[dict[str, Any]]) -> None:
    """Every file of ``records`` is in ``dest`` (default layout) and equals A's original."""
    found = {p.name: p for p in dest.rglob("*") if p.is_file() and p.parent != dest}
    for rec in records:
        folder = Path(rec["folder"])
        originals = [p for p in folder.rglob("*") if p.is_file()]
        assert originals
        for original in originals:
            got = found.get(original.name)
            assert got is not None, f"{original.name} of {rec['sid']} not downloaded"
            assert got.read_bytes() == original.read_bytes(), got
    assert not list(dest.rglob("*.part"))


def test_b_mirrors_every_block_of_a(cluster: Cluster) -> None:
    m = cluster.mirror
    assert (m["datasets"], m["failed"]) == (2, 0)
    assert {i["id"] for i in m["items"]} == {r["record"] for r in cluster.records}
    # every block fetched once: those the second dataset shares with the first (its pyramid's
    # metadata of the same shape) are held by then
    assert m["fetched_blocks"] > 0
    again = cluster.remirror
    assert (again["datasets"], again["fetched_blocks"]) == (2, 0)
    assert again["held_blocks"] == m["fetched_blocks"] + m["held_blocks"]
    a_store = FSBlockstore(cluster.a.home / "blocks", create=False)
    b_store = FSBlockstore(cluster.b.home / "blocks", create=False)
    for rec in cluster.records:  # B holds the DAG of every dataset A published
        root = CID.decode(rec["cid"])
        assert b_store.get(root) == a_store.get(root)
    verify = run_etdb(cluster.b.home, "verify", "--json")
    assert verify.returncode == 0, verify.stdout
    assert json.loads(verify.stdout)["checked"] == m["fetched_blocks"]


def test_a_lying_gateway_is_dropped(cluster: Cluster, tmp_path: Path) -> None:
    """A gateway answering the dataset's root block with wrong bytes is caught by the hash
    check, dropped, and the block comes from B. (An etdb node never serves a corrupt block,
    since it re-hashes on read, so the liar is the fetcher tests' hostile block server.)"""
    rec = cluster.records[0]
    blocks = shutil.copytree(cluster.b.home / "blocks", tmp_path / "liar-blocks")
    # Listed first, the liar is asked first: for the root, which every download starts with.
    with (
        BlockServer(blocks, corrupt=CID.decode(rec["cid"])) as liar,
        Client(cluster.a.url, peers=[liar.url, cluster.b.url]) as client,
    ):
        summary = client.download([rec["record"]], tmp_path / "dl")
        stats = {p.url: p for p in client.fetcher.peers()}
    assert summary.failed == []
    assert stats[liar.url].dropped and stats[liar.url].lies >= 1
    assert stats[cluster.b.url].blocks > 0
    assert_downloaded(tmp_path / "dl", cluster, [rec])


def test_a_rotten_block_is_not_spread_and_verify_repairs_it(
    cluster: Cluster, tmp_path: Path
) -> None:
    """C serves a copy of B's blockstore with one leaf of a reconstruction rotted on disk: its
    gateway re-hashes and refuses that block, the download takes it from B; `etdb verify`
    in C names the block and `--repair --peer B` swaps in a good copy."""
    rec = cluster.records[1]
    home = tmp_path / "c"
    home.mkdir()
    shutil.copytree(cluster.b.home / "blocks", home / "blocks")
    store = FSBlockstore(home / "blocks")
    fname = next(f for f in _files(cluster, rec) if f.endswith(".rec"))
    leaf = _first_leaf(store, f"{rec['cid']}/{fname}")
    path = store.path_of(leaf)
    rotten = bytearray(path.read_bytes())
    rotten[100] ^= 0x40
    path.write_bytes(bytes(rotten))

    c = Node(home).start()
    try:
        with Client(cluster.a.url, peers=[c.url, cluster.b.url]) as client:
            summary = client.download([rec["record"]], tmp_path / "dl")
            stats = {p.url: p for p in client.fetcher.peers()}
    finally:
        c.stop()
    assert summary.failed == []
    assert stats[c.url].blocks > 0  # C served everything it holds intact
    assert_downloaded(tmp_path / "dl", cluster, [rec])

    found = run_etdb(home, "verify", "--json")
    assert found.returncode == 1
    body = json.loads(found.stdout)
    assert [c["path"] for c in body["corrupt"]] == [str(path)]
    fixed = run_etdb(home, "verify", "--repair", "--peer", cluster.b.url, "--json")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert len(json.loads(fixed.stdout)["repaired"]) == 1
    assert run_etdb(home, "verify").returncode == 0
    assert FSBlockstore(home / "blocks").get(leaf) == FSBlockstore(cluster.b.home / "blocks").get(
        leaf
    )


class KillAfter(DownloadListener):
    """SIGKILLs a node once ``limit`` bytes have been downloaded."""

    def __init__(self, node: Node, limit: int) -> None:
        self.node, self.limit, self.seen, self.killed_at = node, limit, 0, None

    def file_bytes(self, entry: Any, n: int) -> None:
        self.seen += n
        if self.killed_at is None and self.seen >= self.limit:
            self.node.kill()
            self.killed_at = self.seen


def test_download_from_a_and_b_survives_a_killed_half_way(cluster: Cluster, tmp_path: Path) -> None:
    total = sum(r["bytes"] for r in cluster.records)
    killer = KillAfter(cluster.a, total // 2)
    with Client(cluster.a.url, peers=[cluster.a.url, cluster.b.url]) as client:
        summary = client.download(  # every file, the pyramid folders too: r["bytes"]
            [r["record"] for r in cluster.records], tmp_path / "dl", listener=killer,
            file_types=["all"],
        )  # fmt: skip
        stats = {p.url: p for p in client.fetcher.peers()}
    assert killer.killed_at is not None and cluster.a.proc.poll() is not None  # A is gone
    assert summary.failed == []
    assert stats[cluster.a.url].blocks > 0 and stats[cluster.b.url].blocks > 0
    assert stats[cluster.a.url].failures >= 1  # asked again after it died, and re-queued
    assert summary.bytes_fetched == total
    assert_downloaded(tmp_path / "dl", cluster, cluster.records)


def _files(cluster: Cluster, rec: dict[str, Any]) -> list[str]:
    folder = Path(rec["folder"])
    return [str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()]


def _first_leaf(store: FSBlockstore, path: str) -> CID:
    from etdb.content.filefetch import plan_file

    leaf = plan_file(store, path).leaves[0].cid
    assert leaf.codec == RAW and resolve(store, path)[0] != leaf
    return leaf
