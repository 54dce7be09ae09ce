"""``RemoteFile`` over real blockstores: byte-identical reads at any offset, leaves fetched
only for the ranges read (counted at the getter), a small LRU, dag-pb leaves (CIDv0 imports),
and wrong leaves or plans refused with the CID named."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest

from etdb.client.remote_file import RemoteFile
from etdb.content.blockstore import FSBlockstore
from etdb.content.cid import CID
from etdb.content.errors import InvalidNodeError
from etdb.content.filefetch import FilePlan, Leaf, plan_file
from etdb.content.unixfs import add_path

LEAF = 256 * 1024  # the importers' chunk size


class CountingGetter:
    """A blockstore that counts the blocks read from it."""

    def __init__(self, store: FSBlockstore) -> None:
        self.store = store
        self.reads: list[CID] = []

    def get(self, cid: CID) -> bytes:
        self.reads.append(cid)
        return self.store.get(cid)


def stored(tmp_path: Path, data: bytes, profile: str = "kubo-v1") -> tuple[FSBlockstore, CID]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / f"file-{profile}.bin"
    path.write_bytes(data)
    store = FSBlockstore(tmp_path / f"blocks-{profile}")
    cid = add_path(path, profile, sink=store).cid
    return store, cid


@pytest.fixture(scope="module")
def data() -> bytes:
    return random.Random(11).randbytes(10 * LEAF + 12345)


@pytest.mark.parametrize("profile", ["kubo-v1", "unixfs-v0-2015"])
def test_random_reads_are_byte_identical(tmp_path: Path, data: bytes, profile: str) -> None:
    store, cid = stored(tmp_path, data, profile)
    rng = random.Random(5)
    with RemoteFile(store, plan_file(store, cid)) as f:
        assert f.size == len(data) and f.cid == cid
        for _ in range(50):
            start = rng.randrange(len(data) + 10)
            n = rng.randrange(0, 3 * LEAF)
            f.seek(start)
            got = f.read(n)
            assert got == data[start : start + n]
            assert f.tell() == start + len(got)
        f.seek(0)
        assert f.read() == data
        buf = bytearray(LEAF + 7)
        f.seek(LEAF - 3)
        assert f.readinto(buf) == len(buf)  # never short before the end of the file
        assert bytes(buf) == data[LEAF - 3 : 2 * LEAF + 4]


def test_reads_fetch_only_the_leaves_they_cover(tmp_path: Path, data: bytes) -> None:
    store, cid = stored(tmp_path, data)
    plan = plan_file(store, cid)
    getter = CountingGetter(store)
    f = RemoteFile(getter, plan, cached_leaves=2)
    assert getter.reads == []  # opening costs nothing beyond the plan
    assert f.read(1024) == data[:1024]
    f.seek(100)
    f.read(2000)  # same leaf: cached
    assert getter.reads == [plan.leaves[0].cid] and f.leaves_fetched == 1
    f.seek(5 * LEAF - 10)
    assert f.read(20) == data[5 * LEAF - 10 : 5 * LEAF + 10]  # straddles leaves 4 and 5
    assert getter.reads[1:] == [plan.leaves[4].cid, plan.leaves[5].cid]
    f.seek(0)
    f.read(1)  # evicted by the two since (LRU of 2): fetched again
    assert f.leaves_fetched == 4


def test_tiny_and_empty_files(tmp_path: Path) -> None:
    for content in (b"", b"x", b"hello world\n" * 10):
        store, cid = stored(tmp_path / str(len(content)), content)
        with RemoteFile(store, plan_file(store, cid)) as f:
            assert f.read() == content
            assert f.seek(0, io.SEEK_END) == len(content)
            assert f.read(10) == b""


def test_a_leaf_of_the_wrong_size_is_refused(tmp_path: Path, data: bytes) -> None:
    store, cid = stored(tmp_path, data)
    plan = plan_file(store, cid)
    # Swap two leaves of different sizes: the plan still tiles the file, but the last leaf's
    # CID now stands where a full leaf belongs.
    leaves = list(plan.leaves)
    last, first = leaves[-1], leaves[0]
    leaves[0] = Leaf(0, first.size, last.cid)
    with (
        RemoteFile(store, FilePlan(plan.cid, plan.size, leaves)) as f,
        pytest.raises(InvalidNodeError, match=str(last.cid)),
    ):
        f.read(10)


def test_a_plan_with_a_gap_is_refused(tmp_path: Path, data: bytes) -> None:
    store, cid = stored(tmp_path, data)
    plan = plan_file(store, cid)
    gap = FilePlan(plan.cid, plan.size, plan.leaves[:3] + plan.leaves[4:])
    with pytest.raises(InvalidNodeError, match="starts at"):
        RemoteFile(store, gap)
    short = FilePlan(plan.cid, plan.size + 1, plan.leaves)
    with pytest.raises(InvalidNodeError, match="cover"):
        RemoteFile(store, short)


def test_closed_and_read_only(tmp_path: Path, data: bytes) -> None:
    store, cid = stored(tmp_path, data)
    f = RemoteFile(store, plan_file(store, cid), name="x_full.rec")
    assert "x_full.rec" in repr(f)
    with pytest.raises(io.UnsupportedOperation):
        f.write(b"no")
    with pytest.raises(ValueError):
        f.seek(-1)
    f.close()
    with pytest.raises(ValueError):
        f.read(1)
