"""Reading UnixFS back: resolve, stat, list, seekable files, export to disk (safely)."""

import dataclasses
import io
import os
import random
from pathlib import Path

import pytest

from etdb.content import exporter
from etdb.content.blockstore import FSBlockstore
from etdb.content.cid import CID, DAG_PB
from etdb.content.dagpb import PBLink, PBNode, UnixFSData, UnixFSType, encode_node, encode_unixfs
from etdb.content.errors import (
    BlockNotFoundError,
    CorruptBlockError,
    InvalidNodeError,
    InvalidPathError,
    NotADirError,
    NotAFileError,
    PathNotFoundError,
    UnsafeExportError,
)
from etdb.content.export_tree import export
from etdb.content.exporter import Kind
from etdb.content.memstore import MemoryBlockstore
from etdb.content.unixfs import Importer, get_profile
from tests.content.references import write_flat_dir, write_mixed_tree

PROFILES = ["kubo-v1", "unixfs-v0-2015"]  # raw leaves / dag-pb leaves, CIDv1 / CIDv0


def tiny(profile: str):
    """The profile's shape with 1000-byte chunks and 4 links: a 60 kB file is 4 levels deep."""
    return dataclasses.replace(get_profile(profile), chunk_size=1000, max_links=4)


def put_node(store, links=(), data: UnixFSData | None = None, version=1) -> CID:
    block = encode_node(PBNode(tuple(links), None if data is None else encode_unixfs(data)))
    cid = CID.hash(block, DAG_PB, version=version)
    store.put(cid, block)
    return cid


def put_dir(store, entries: dict[str, CID]) -> CID:
    links = [PBLink(c, n, 0) for n, c in entries.items()]
    return put_node(store, links, UnixFSData(UnixFSType.DIRECTORY))


def put_symlink(store, target: str) -> CID:
    return put_node(store, (), UnixFSData(UnixFSType.SYMLINK, data=target.encode()))


def put_raw(store, data: bytes) -> CID:
    cid = CID.hash(data)
    store.put(cid, data)
    return cid


class CountingStore:
    def __init__(self, store):
        self.store = store
        self.fetched: list[CID] = []

    def get(self, cid):
        self.fetched.append(cid)
        return self.store.get(cid)


def assert_same_tree(a: Path, b: Path) -> None:
    names_a = sorted(str(p.relative_to(a)) for p in a.rglob("*"))
    names_b = sorted(str(p.relative_to(b)) for p in b.rglob("*"))
    assert names_a == names_b
    for rel in names_a:
        pa, pb = a / rel, b / rel
        if pa.is_symlink():
            assert pb.is_symlink() and os.readlink(pa) == os.readlink(pb), rel
        elif pa.is_dir():
            assert pb.is_dir() and not pb.is_symlink(), rel
        else:
            assert pa.read_bytes() == pb.read_bytes(), rel


# -- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
def test_tree_round_trip(tmp_path, profile):
    tree = write_mixed_tree(tmp_path / "tree", seed=1)
    os.symlink("a/b/c/deep.txt", tree / "link-inside")
    os.symlink("../../apple.txt", tree / "a" / "b" / "link-up")
    store = FSBlockstore(tmp_path / "blocks")
    with store:
        root = Importer(profile, store, hidden=True).add_path(tree).cid
    report = export(store, root, tmp_path / "out")
    assert_same_tree(tree, tmp_path / "out")
    assert report.symlinks == 2 and not report.skipped_symlinks
    assert report.bytes == sum(
        p.stat().st_size for p in tree.rglob("*") if p.is_file() and not p.is_symlink()
    )

    entries = exporter.list_dir(store, root)
    assert [e.name for e in entries] == sorted(
        (p.name for p in tree.iterdir()), key=lambda n: n.encode()
    )
    by_name = {e.name: e for e in entries}
    assert by_name["empty dir"].kind == Kind.DIRECTORY and by_name["empty dir"].size is None
    assert by_name["😀.bin"].size == 300_000 and by_name["link-inside"].kind == Kind.SYMLINK
    deep = exporter.stat(store, f"{root}/a/b/c/deep.txt")
    assert deep.size == 5 and deep.kind in (Kind.FILE, Kind.RAW)
    assert (
        exporter.read_range(store, f"/ipfs/{root}/ünïcödé dir/файл.txt", 0)
        == (tree / "ünïcödé dir" / "файл.txt").read_bytes()
    )


def test_single_file_and_empty_file_export(tmp_path):
    store = MemoryBlockstore()
    imp = Importer("kubo-v1", store)
    for data in (b"", b"a", os.urandom(600_000)):
        cid = imp.add_bytes(data).cid
        dest = tmp_path / f"f{len(data)}"
        assert export(store, cid, dest).files == 1
        assert dest.read_bytes() == data
        assert exporter.open_file(store, cid).read() == data


# -- seeking and ranges ---------------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
def test_ranges_and_seeks_at_chunk_boundaries(profile):
    data = random.Random(2).randbytes(61_500)  # 62 chunks: 4 levels with 4 links per node
    store = MemoryBlockstore()
    cid = Importer(tiny(profile), store).add_bytes(data).cid
    f = exporter.open_file(store, cid)
    assert f.size == len(data) and f.seekable() and f.readable()
    points = sorted(
        {0, 1, len(data) - 1, len(data)} | {k * 1000 + d for k in range(62) for d in (-1, 0, 1)}
    )
    points = [p for p in points if 0 <= p <= len(data)]
    for start in points[::3]:
        for length in (1, 999, 1000, 1001, 4001, 17_000):
            assert (
                exporter.read_range(store, cid, start, start + length)
                == data[start : start + length]
            )
            f.seek(start)
            assert f.read(length) == data[start : start + length]
            assert f.tell() == min(start + length, len(data))
    f.seek(-10, io.SEEK_END)
    assert f.read() == data[-10:]
    f.seek(5)
    f.seek(10, io.SEEK_CUR)
    buf = bytearray(3000)
    assert f.readinto(buf) == 3000 and bytes(buf) == data[15:3015]
    f.seek(len(data) + 5)
    assert f.read(10) == b""
    with pytest.raises(ValueError):
        f.seek(-1)
    # A buffered wrapper works too (io.RawIOBase contract).
    assert io.BufferedReader(exporter.open_file(store, cid)).read() == data


def test_a_seek_reads_only_the_blocks_on_the_way():
    data = random.Random(3).randbytes(61_500)
    store = MemoryBlockstore()
    cid = Importer(tiny("kubo-v1"), store).add_bytes(data).cid
    counting = CountingStore(store)
    f = exporter.open_file(counting, cid)
    counting.fetched.clear()
    f.seek(40_500)
    assert f.read(10) == data[40_500:40_510]
    assert len(counting.fetched) == 3  # 62 leaves -> 16 -> 4 -> root: two levels, then a leaf
    # Sequential reading fetches each block once.
    counting.fetched.clear()
    f.seek(0)
    assert f.read() == data
    assert len(counting.fetched) == len(set(counting.fetched))


# -- HAMT directories ----------------------------------------------------------------------------


def test_hamt_directory_resolve_list_export(tmp_path):
    folder = write_flat_dir(tmp_path / "flat", count=5000, name_len=20, seed=4, max_size=40)
    store = FSBlockstore(tmp_path / "blocks")
    with store:
        root = Importer("kubo-v1", store).add_path(folder).cid
    info = exporter.stat(store, root)
    assert info.kind == Kind.DIRECTORY and info.sharded
    name = "f0000000000000004321"
    assert exporter.read_range(store, f"{root}/{name}", 0) == (folder / name).read_bytes()
    with pytest.raises(PathNotFoundError):
        exporter.resolve(store, f"{root}/no-such-name")
    entries = exporter.list_dir(store, root, resolve_kinds=False)
    assert [e.name for e in entries] == sorted(p.name for p in folder.iterdir())
    export(store, root, tmp_path / "out")
    assert_same_tree(folder, tmp_path / "out")


# -- corruption and missing blocks -----------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
def test_corrupt_leaf_is_reported_everywhere(tmp_path, profile):
    data = random.Random(5).randbytes(10_500)
    store = FSBlockstore(tmp_path / "blocks")
    with store:
        imp = Importer(tiny(profile), store)
        file_cid = imp.add_bytes(data).cid
        root = put_dir(store, {"data.bin": file_cid})
    leaf = exporter.load_node(store, file_cid).pb.links[0].cid  # first subtree root
    while True:
        node = exporter.load_node(store, leaf)
        if node.kind == Kind.RAW or not node.pb.links:
            break
        leaf = node.pb.links[0].cid
    path = store.path_of(leaf)
    blob = bytearray(path.read_bytes())
    blob[-1] ^= 0xFF
    path.write_bytes(bytes(blob))
    for action in (
        lambda: store.get(leaf),
        lambda: exporter.read_range(store, file_cid, 0, 10),
        lambda: exporter.open_file(store, f"{root}/data.bin").read(),
        lambda: export(store, root, tmp_path / "out"),
    ):
        with pytest.raises(CorruptBlockError) as info:
            action()
        assert str(leaf) in str(info.value) and str(path) in str(info.value)
    # The rest of the file is still readable: ranges skip the bad leaf.
    assert exporter.read_range(store, file_cid, 5000, 6000) == data[5000:6000]
    assert not (tmp_path / "out" / "data.bin").exists()  # no partial file left behind
    assert [p.name for p in (tmp_path / "out").iterdir()] == []


def test_missing_block():
    data = random.Random(6).randbytes(10_500)
    store = MemoryBlockstore()
    cid = Importer(tiny("kubo-v1"), store).add_bytes(data).cid
    last_leaf = CID.hash(data[10_000:])
    store.delete(last_leaf)
    assert exporter.read_range(store, cid, 0, 10_000) == data[:10_000]
    with pytest.raises(BlockNotFoundError, match=str(last_leaf)):
        exporter.read_range(store, cid, 9_990, 10_010)


def test_lying_blocksizes_are_refused():
    store = MemoryBlockstore()
    a, b = put_raw(store, b"x" * 10), put_raw(store, b"y" * 10)
    liar = put_node(
        store,
        [PBLink(a, "", 10), PBLink(b, "", 10)],
        UnixFSData(UnixFSType.FILE, filesize=25, blocksizes=(10, 15)),
    )
    with pytest.raises(InvalidNodeError, match=r"blocksizes|filesize"):
        exporter.read_range(store, liar, 0)


# -- resolution errors -----------------------------------------------------------------------


def test_resolution_errors():
    store = MemoryBlockstore()
    f = put_raw(store, b"content")
    d = put_dir(store, {"f": f})
    assert exporter.resolve(store, f"{d}/f") == (f, Kind.RAW)
    assert exporter.resolve(store, f"{d}/f/") == (f, Kind.RAW)
    with pytest.raises(PathNotFoundError, match="raw"):
        exporter.resolve(store, f"{d}/f/deeper")
    with pytest.raises(InvalidPathError):
        exporter.resolve(store, f"{d}/../f")
    with pytest.raises(InvalidPathError):
        exporter.resolve(store, "not-a-cid/f")
    with pytest.raises(NotAFileError):
        exporter.open_file(store, d)
    with pytest.raises(NotADirError):
        exporter.list_dir(store, f)
    with pytest.raises(BlockNotFoundError):
        exporter.resolve(store, CID.hash(b"absent"))


# -- export safety -----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["..", ".", "", "a/b", "../escape", "nul\0byte"])
def test_export_refuses_unsafe_names(tmp_path, bad):
    store = MemoryBlockstore()
    payload = put_raw(store, b"pwned")
    evil = put_dir(store, {"ok.txt": payload, bad: payload})
    nested = put_dir(store, {"sub": evil})
    dest = tmp_path / "box" / "dest"
    with pytest.raises(UnsafeExportError, match="unsafe entry name"):
        export(store, nested, dest)
    written = {p.relative_to(tmp_path) for p in tmp_path.rglob("*")}
    assert all(str(p).startswith(os.path.join("box", "dest")) or str(p) == "box" for p in written)
    assert not (tmp_path / "box" / "escape").exists() and not (tmp_path / "escape").exists()


def test_export_refuses_duplicate_names_and_existing_dest(tmp_path):
    store = MemoryBlockstore()
    one, two = put_raw(store, b"1"), put_raw(store, b"2")
    links = [PBLink(one, "same", 1), PBLink(two, "same", 1)]
    dup = put_node(store, links, UnixFSData(UnixFSType.DIRECTORY))
    with pytest.raises(UnsafeExportError, match="twice"):
        export(store, dup, tmp_path / "d1")
    (tmp_path / "exists").write_bytes(b"mine")
    with pytest.raises(UnsafeExportError, match="exists"):
        export(store, one, tmp_path / "exists")
    assert (tmp_path / "exists").read_bytes() == b"mine"
    (tmp_path / "empty").mkdir()
    export(store, put_dir(store, {"x": one}), tmp_path / "empty")  # an empty folder is fine
    assert (tmp_path / "empty" / "x").read_bytes() == b"1"


def test_symlinks_pointing_outside_are_skipped(tmp_path):
    store = MemoryBlockstore()
    target = put_raw(store, b"inside")
    sub = put_dir(
        store,
        {
            "q": put_symlink(store, ".."),  # -> dest: fine on its own
            "p": put_symlink(store, "q/../.."),  # lexically dest, really dest/.. via q
            "ok": put_symlink(store, "../file.txt"),
        },
    )
    root = put_dir(
        store,
        {
            "file.txt": target,
            "sub": sub,
            "abs": put_symlink(store, "/etc/passwd"),
            "up": put_symlink(store, "../../outside"),
        },
    )
    dest = tmp_path / "dest"
    report = export(store, root, dest)
    skipped = dict(report.skipped_symlinks)
    assert set(skipped) == {"abs", "up", os.path.join("sub", "p")}
    assert (dest / "sub" / "ok").read_bytes() == b"inside"
    assert os.readlink(dest / "sub" / "q") == ".."
    for name in ("abs", "up", "sub/p"):
        assert not (dest / name).is_symlink()
    assert report.symlinks == 2


def test_exported_files_get_the_usual_permissions(tmp_path):
    store = MemoryBlockstore()
    cid = put_dir(store, {"f": put_raw(store, b"data")})
    old = os.umask(0o022)
    try:
        export(store, cid, tmp_path / "out")
    finally:
        os.umask(old)
    assert (tmp_path / "out" / "f").stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600
