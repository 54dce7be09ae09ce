"""Mirroring a DAG into a blockstore and repairing corrupt blocks, over real blockstores.

The block source here is another FSBlockstore behind the ``get_many`` interface (what a
``BlockFetcher`` provides); fetching over HTTP from peers is covered by tests/test_three_nodes.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from etdb.client.mirror import mirror_dag, repair_blocks
from etdb.content.blockstore import FSBlockstore
from etdb.content.cid import CID, RAW
from etdb.content.errors import BlockNotFoundError, InvalidNodeError
from etdb.content.exporter import read_range
from etdb.content.unixfs import add_path

DAG_CBOR = 0x71


class StoreSource:
    """A block source over a blockstore, counting what it is asked for."""

    def __init__(self, store: FSBlockstore) -> None:
        self.store = store
        self.asked: list[CID] = []

    def get(self, cid: CID) -> bytes:
        self.asked.append(cid)
        return self.store.get(cid)

    def get_many(self, cids: Iterable[CID]) -> Iterator[tuple[CID, bytes]]:
        for cid in cids:
            yield cid, self.get(cid)


def make_dataset(folder: Path) -> None:
    (folder / "rawdata").mkdir(parents=True)
    (folder / "3dimage_1").mkdir()
    # Distinct leaves (no dedup): several 256 KiB leaves under a dag-pb root per file.
    rng = random.Random(7)
    (folder / "rawdata" / "ts.mrc").write_bytes(rng.randbytes(1_300_000))
    (folder / "3dimage_1" / "x_full.rec").write_bytes(rng.randbytes(1_100_000))
    (folder / "notes.txt").write_text("a small file: one raw block\n")


@pytest.fixture
def origin(tmp_path: Path) -> tuple[FSBlockstore, CID, int]:
    folder = tmp_path / "dataset"
    make_dataset(folder)
    store = FSBlockstore(tmp_path / "origin")
    result = add_path(folder, sink=store)
    store.sync()
    return store, result.cid, result.blocks


def test_mirror_fetches_every_block_once_then_nothing(origin, tmp_path: Path) -> None:
    source_store, root, blocks = origin
    mirror = FSBlockstore(tmp_path / "mirror")
    source = StoreSource(source_store)

    first = mirror_dag(mirror, source, root)
    mirror.sync()
    assert first.fetched == first.blocks == blocks
    assert first.held == 0
    assert len(source.asked) == blocks
    assert {c.multihash for c in mirror.cids()} == {c.multihash for c in source_store.cids()}
    assert read_range(mirror, f"{root}/3dimage_1/x_full.rec", 0) == read_range(
        source_store, f"{root}/3dimage_1/x_full.rec", 0
    )

    source.asked.clear()
    again = mirror_dag(mirror, source, root)
    assert (again.fetched, again.held, again.blocks) == (0, blocks, blocks)
    assert source.asked == []


def test_mirror_resumes_a_partial_copy(origin, tmp_path: Path) -> None:
    source_store, root, _blocks = origin
    mirror = FSBlockstore(tmp_path / "mirror")
    mirror_dag(mirror, StoreSource(source_store), root)
    mirror.sync()
    raw = [c for c in mirror.cids() if c.codec == RAW]
    lost = raw[::3]
    for cid in lost:
        mirror.delete(cid)

    source = StoreSource(source_store)
    result = mirror_dag(mirror, source, root)
    assert result.fetched == len(lost)
    assert {c.multihash for c in source.asked} == {c.multihash for c in lost}
    assert mirror.verify().ok


def test_mirror_replaces_a_corrupt_internal_node(origin, tmp_path: Path) -> None:
    source_store, root, _blocks = origin
    mirror = FSBlockstore(tmp_path / "mirror")
    mirror_dag(mirror, StoreSource(source_store), root)
    mirror.sync()
    path = mirror.path_of(root)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))

    result = mirror_dag(mirror, StoreSource(source_store), root)
    mirror.sync()
    assert result.repaired == 1
    assert result.fetched == 1
    assert mirror.verify().ok


def test_mirror_raises_when_the_source_lacks_a_block(origin, tmp_path: Path) -> None:
    source_store, root, _blocks = origin
    leaf = next(c for c in source_store.cids() if c.codec == RAW)
    source_store.delete(leaf)
    with pytest.raises(BlockNotFoundError) as err:
        mirror_dag(FSBlockstore(tmp_path / "mirror"), StoreSource(source_store), root)
    assert err.value.cid.multihash == leaf.multihash


def test_repair_swaps_in_a_verified_copy(origin, tmp_path: Path) -> None:
    source_store, root, _blocks = origin
    mirror = FSBlockstore(tmp_path / "mirror")
    mirror_dag(mirror, StoreSource(source_store), root)
    mirror.sync()
    leaf = next(c for c in mirror.cids() if c.codec == RAW)
    path = mirror.path_of(leaf)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # same size: FSBlockstore.put would take it as present
    path.write_bytes(bytes(data))
    report = mirror.verify()
    assert [c.multihash for c, _ in report.corrupt] == [leaf.multihash]

    repairs = repair_blocks(mirror, StoreSource(source_store), report.corrupt)
    assert [(r.cid.multihash, r.error) for r in repairs] == [(leaf.multihash, None)]
    assert mirror.verify().ok
    assert not list((mirror.root / ".temp").iterdir())


def test_repair_reports_a_block_no_source_has(origin, tmp_path: Path) -> None:
    source_store, root, _blocks = origin
    mirror = FSBlockstore(tmp_path / "mirror")
    mirror_dag(mirror, StoreSource(source_store), root)
    mirror.sync()
    node = next(c for c in source_store.cids() if c.codec == RAW)
    mirror.path_of(node).write_bytes(b"rot")
    source_store.delete(node)

    repairs = repair_blocks(mirror, StoreSource(source_store), mirror.verify().corrupt)
    assert len(repairs) == 1 and repairs[0].error is not None
    assert "not found" in repairs[0].error
    assert mirror.path_of(node).read_bytes() == b"rot"  # left as it was, still reported


def test_mirror_refuses_an_unknown_codec(tmp_path: Path) -> None:
    cbor = CID.v1(DAG_CBOR, bytes(32))
    with pytest.raises(InvalidNodeError, match="cannot mirror codec"):
        mirror_dag(FSBlockstore(tmp_path / "m"), StoreSource(FSBlockstore(tmp_path / "s")), cbor)


# -- following a real node ------------------------------------------------------------------


def test_mirror_follows_new_records_of_a_node(tmp_path: Path) -> None:
    """Pass one mirrors the two datasets a node holds; the lab then publishes a third (`etdb
    demo --datasets 3` adds one); pass two mirrors only that one; pass three finds nothing."""
    from etdb.client.client import Client
    from etdb.client.mirror import Mirror
    from etdb.content.fetch import BlockFetcher
    from tests.client.nodes import Node, make_demo_home

    home = tmp_path / "lab"
    first = make_demo_home(home, datasets=2)
    node = Node(home).start()
    store = FSBlockstore(tmp_path / "mirror")
    try:
        with (
            Client(node.url) as client,
            BlockFetcher([node.url], local=store, keep=store) as fetcher,
        ):
            publisher = client.get(first["records"][0]["record"]).summary.publisher
            mirror = Mirror(client, store, fetcher, {"publisher": publisher})
            one = mirror.pass_once()
            assert sorted(o.id for o in one) == sorted(r["record"] for r in first["records"])
            # every block fetched once: one a dataset shares with an earlier one (a pyramid's
            # .zarray of the same shape, an all-zero chunk) is already held when it comes
            assert all(o.ok and o.dag and o.dag.fetched + o.dag.held == o.dag.blocks for o in one)
            assert sum(o.dag.fetched for o in one if o.dag) == len(list(store.cids()))

            second = make_demo_home(home, datasets=3)
            new = {r["record"] for r in second["records"]} - {r["record"] for r in first["records"]}
            assert len(new) == 1
            two = mirror.pass_once()
            assert [o.id for o in two] == list(new) and two[0].ok
            assert mirror.pass_once() == []
            assert mirror.done == {r["record"] for r in second["records"]}
    finally:
        node.stop()
    store.sync()
    lab = FSBlockstore(home / "blocks", create=False)
    assert {c.multihash for c in store.cids()} <= {c.multihash for c in lab.cids()}
    for rec in second["records"]:
        assert read_range(store, f"{rec['cid']}/{rec_file(rec)}", 0) == read_range(
            lab, f"{rec['cid']}/{rec_file(rec)}", 0
        )
    assert store.verify().ok


def rec_file(rec: dict) -> str:
    folder = Path(rec["folder"])
    return str(next(p for p in folder.rglob("*.rec")).relative_to(folder))
