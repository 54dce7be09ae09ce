"""Importer behaviour at block level, without reference implementations.

A small independent DAG reader below re-derives file bytes and sizes from the blocks, so every
CID we compute is also checked to describe the bytes we imported.
"""

from __future__ import annotations

import dataclasses
import io
import os
import random
import stat
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import etdb.content.unixfs as unixfs_mod
from etdb.content.cid import CID, DAG_PB, RAW
from etdb.content.dagpb import UnixFSType, decode_node, decode_unixfs
from etdb.content.hamt import hamt_entries
from etdb.content.unixfs import (
    PROFILES,
    Importer,
    ImporterError,
    ImportResult,
    Profile,
    add_path,
    get_profile,
)
from tests.content.references import write_mixed_tree

V0 = PROFILES["unixfs-v0-2015"]
V1 = PROFILES["kubo-v1"]
CHUNK = 262_144


class RecordingSink:
    """Keeps every block and the order in which they arrived; checks each CID on the way in."""

    def __init__(self) -> None:
        self.blocks: dict[CID, bytes] = {}
        self.order: list[CID] = []

    def put(self, cid: CID, block: bytes) -> None:
        assert isinstance(block, bytes)
        assert cid.verify(block), f"{cid} does not hash its block"
        assert not cid.is_identity
        self.blocks[cid] = block
        self.order.append(cid)


def check_dag(sink: RecordingSink, root: CID) -> tuple[bytes | None, int]:
    """Walk a file/dir DAG, checking Tsize, blocksizes and child-before-parent order.

    Returns (file bytes or None for a directory, Tsize of the root).
    """
    position: dict[CID, int] = {}
    for i, cid in enumerate(sink.order):
        position.setdefault(
            cid, i
        )  # first arrival counts (identical blocks repeat, e.g. empty dirs)
    block = sink.blocks[root]
    if root.codec == RAW:
        return block, len(block)
    assert root.codec == DAG_PB
    node = decode_node(block)
    meta = decode_unixfs(node.data)
    tsize = len(block)
    parts: list[bytes] = []
    for link in node.links:
        assert position[link.cid] < position[root], "a child arrived after its parent"
        child_bytes, child_tsize = check_dag(sink, link.cid)
        assert link.tsize == child_tsize
        tsize += child_tsize
        if child_bytes is not None:
            parts.append(child_bytes)
    if meta.type == UnixFSType.FILE:
        assert all(link.name == "" for link in node.links)  # kubo writes Name="" on chunk links
        if node.links:
            assert meta.data is None
            assert list(meta.blocksizes) == [len(p) for p in parts]
            data = b"".join(parts)
        else:
            data = meta.data or b""
        assert meta.filesize == len(data)
        return data, tsize
    if meta.type == UnixFSType.DIRECTORY:
        names = [link.name.encode() for link in node.links]
        assert names == sorted(names)
    return None, tsize


def leaf_depths(sink: RecordingSink, cid: CID, depth: int = 0) -> set[int]:
    if cid.codec == RAW:
        return {depth}
    node = decode_node(sink.blocks[cid])
    if not node.links:
        return {depth}
    return set().union(*(leaf_depths(sink, link.cid, depth + 1) for link in node.links))


def import_bytes(data: bytes, profile: Profile, **kw) -> tuple[ImportResult, RecordingSink]:
    sink = RecordingSink()
    return Importer(profile, sink, **kw).add_bytes(data), sink


# -- files ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", [V0, V1, PROFILES["unixfs-v1-2025"]], ids=lambda p: p.name)
@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 7])
def test_file_blocks_verify_and_rebuild(profile: Profile, size: int) -> None:
    data = random.Random(size).randbytes(size)
    res, sink = import_bytes(data, profile)
    rebuilt, tsize = check_dag(sink, res.cid)
    assert rebuilt == data
    assert res.size == tsize
    assert res.filesize == size
    assert res.blocks == len(sink.order)
    assert sink.order[-1] == res.cid  # the root is the last block out
    # Same answer without a sink (only-hash) and without the helper thread.
    assert Importer(profile).add_bytes(data) == res
    assert Importer(profile, parallel=False).add_bytes(data).cid == res.cid


def test_single_chunk_file_is_its_own_root() -> None:
    res, sink = import_bytes(b"x" * CHUNK, V1)
    assert res.cid.codec == RAW and res.blocks == 1
    res, sink = import_bytes(b"x" * CHUNK, V0)
    assert res.cid.version == 0 and res.blocks == 1
    assert decode_unixfs(decode_node(sink.blocks[res.cid]).data).data == b"x" * CHUNK


def test_leaves_are_raw_under_v1_and_dag_pb_under_v0() -> None:
    data = random.Random(1).randbytes(2 * CHUNK + 5)
    res, sink = import_bytes(data, V1)
    assert res.cid.version == 1 and res.cid.codec == DAG_PB
    assert [c.codec for c in sink.order[:-1]] == [RAW, RAW, RAW]
    res, sink = import_bytes(data, V0)
    assert all(c.version == 0 for c in sink.order)


def test_balanced_layout_depths_and_widths() -> None:
    profile = dataclasses.replace(V1, chunk_size=10, max_links=4)
    for n_chunks in (1, 2, 4, 5, 16, 17, 64, 65, 100):
        data = random.Random(n_chunks).randbytes(10 * n_chunks)
        res, sink = import_bytes(data, profile)
        assert check_dag(sink, res.cid)[0] == data
        depth = 0
        while 4**depth < n_chunks:
            depth += 1
        assert leaf_depths(sink, res.cid) == {depth}, n_chunks  # all leaves at one depth
        for cid, block in sink.blocks.items():
            if cid.codec == DAG_PB:
                assert 1 <= len(decode_node(block).links) <= 4


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_chunks=st.integers(min_value=0, max_value=30),
    delta=st.integers(min_value=-2, max_value=2),
    seed=st.integers(min_value=0, max_value=2**32),
    v1=st.booleans(),
    max_links=st.sampled_from([2, 3, 5, 174]),
)
def test_random_sizes_around_chunk_boundaries(n_chunks, delta, seed, v1, max_links) -> None:
    chunk = 64
    size = max(0, n_chunks * chunk + delta)
    profile = dataclasses.replace(V1 if v1 else V0, chunk_size=chunk, max_links=max_links)
    data = random.Random(seed).randbytes(size)
    res, sink = import_bytes(data, profile)
    rebuilt, tsize = check_dag(sink, res.cid)
    assert rebuilt == data and tsize == res.size and res.filesize == size
    assert len(leaf_depths(sink, res.cid)) == 1


@settings(max_examples=10, deadline=None)
@given(k=st.integers(min_value=1, max_value=4), delta=st.sampled_from([-1, 0, 1]))
def test_real_chunk_size_boundaries(k: int, delta: int) -> None:
    data = random.Random(k * 3 + delta).randbytes(k * CHUNK + delta)
    for profile in (V0, V1):
        res, sink = import_bytes(data, profile)
        assert check_dag(sink, res.cid)[0] == data


@pytest.mark.parametrize("chunks", [2, 4, 8, 9, 128, 129, 256])
@pytest.mark.parametrize("delta", [-1, 0, 1])
def test_two_thread_file_reader_matches_serial(tmp_path: Path, chunks: int, delta: int) -> None:
    """add_path on a big regular file reads and hashes with os.pread on two threads, in
    rounds (64 chunks each when only hashing, 2 with a sink): check the round edges."""
    size = chunks * CHUNK + delta
    path = tmp_path / "f.bin"
    piece = random.Random(chunks).randbytes(CHUNK + 7)  # period not a multiple of the chunk
    with open(path, "wb") as f:
        for _ in range(size // len(piece)):
            f.write(piece)
        f.write(piece[: size % len(piece)])
    for profile in (V0, V1):
        serial = Importer(profile, parallel=False).add_path(path)
        assert Importer(profile).add_path(path) == serial
        if chunks <= 9:
            sink = RecordingSink()
            assert Importer(profile, sink).add_path(path) == serial
            assert check_dag(sink, serial.cid)[0] == path.read_bytes()


class ShortReads(io.RawIOBase):
    """A pipe-like stream returning at most 1000 bytes per read."""

    def __init__(self, data: bytes) -> None:
        self.buf = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        return self.buf.read(min(n, 1000) if n >= 0 else 1000)


def test_short_reads_do_not_move_chunk_boundaries() -> None:
    data = random.Random(5).randbytes(2 * CHUNK + 3)
    for profile in (V0, V1):
        assert Importer(profile).add_stream(ShortReads(data)) == Importer(profile).add_bytes(data)


def test_progress_reports_every_byte() -> None:
    seen: list[int] = []
    data = bytes(5 * CHUNK + 11)
    Importer(V1, on_progress=seen.append).add_bytes(data)
    assert sum(seen) == len(data)
    assert max(seen) <= CHUNK


class GeneratedStream(io.RawIOBase):
    """``size`` pseudo-random bytes made on the fly: never held in memory as a whole."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.rng = random.Random(0)

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return self.rng.randbytes(n)


@pytest.mark.parametrize("profile", [V0, V1], ids=lambda p: p.name)
@pytest.mark.parametrize("with_sink", [False, True])
def test_streaming_memory_is_bounded(profile: Profile, with_sink: bool) -> None:
    class CountingSink:
        count = 0

        def put(self, cid: CID, block: bytes) -> None:
            self.count += 1

    sink = CountingSink() if with_sink else None
    size = 64 * 1024 * 1024
    tracemalloc.start()
    try:
        res = Importer(profile, sink).add_stream(GeneratedStream(size))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert res.filesize == size
    assert peak < 4 * 1024 * 1024, f"peak {peak} bytes while importing 64 MiB"


# -- folders --------------------------------------------------------------------------------------


def test_tree_blocks_and_sizes(tmp_path: Path) -> None:
    tree = write_mixed_tree(tmp_path / "t", seed=1)
    sink = RecordingSink()
    res = Importer(V0, sink, hidden=True).add_path(tree)
    _, tsize = check_dag(sink, res.cid)
    assert res.size == tsize
    assert res.blocks == len(sink.order)
    total = sum(p.stat().st_size for p in tree.rglob("*") if p.is_file())
    assert res.filesize == total


def test_hidden_entries_skipped_unless_asked(tmp_path: Path) -> None:
    tree = write_mixed_tree(tmp_path / "t", seed=1)
    sink = RecordingSink()
    res = Importer(V1, sink).add_path(tree)
    names = [link.name for link in decode_node(sink.blocks[res.cid]).links]
    assert not any(n.startswith(".") for n in names)
    assert "empty dir" in names
    hidden = Importer(V1, hidden=True).add_path(tree)
    assert hidden.cid != res.cid
    # The root itself is imported even when its own name is hidden.
    dot = tmp_path / ".dotroot"
    dot.mkdir()
    (dot / "f").write_bytes(b"1")
    assert Importer(V1).add_path(dot).filesize == 1


def test_on_entry_lists_every_entry_children_first(tmp_path: Path) -> None:
    tree = write_mixed_tree(tmp_path / "t", seed=1)
    os.symlink("apple.txt", tree / "link")
    seen: list[tuple[str, ImportResult]] = []
    sink = RecordingSink()
    res = Importer(V1, sink, on_entry=lambda rel, r: seen.append((rel, r))).add_path(tree)
    rels = [rel for rel, _ in seen]
    assert rels[-1] == "" and seen[-1][1] == res
    expected = {
        p.relative_to(tree).as_posix()
        for p in tree.rglob("*")
        if not any(part.startswith(".") for part in p.relative_to(tree).parts)
    }
    assert set(rels) == expected | {""}
    assert len(rels) == len(set(rels))
    for rel, r in seen:
        assert r.cid in sink.blocks
        if rel:  # a folder comes after everything inside it
            inside = [i for i, x in enumerate(rels) if x.startswith(rel + "/")]
            assert all(i < rels.index(rel) for i in inside)
    assert rels.index("a/b/c/deep.txt") < rels.index("a/b/sibling.bin")  # name order
    single: list[str] = []
    Importer(V1, on_entry=lambda rel, r: single.append(rel)).add_path(tree / "apple.txt")
    assert single == [""]


def test_links_sorted_by_utf8_bytes_and_names_not_normalized(tmp_path: Path) -> None:
    names = ["Zebra.txt", "apple.txt", "\u00e9.txt", "e\u0301.txt", "😀.bin", "файл"]
    for n in names:
        (tmp_path / n).write_bytes(n.encode())
    sink = RecordingSink()
    res = Importer(V1, sink).add_path(tmp_path)
    got = [link.name for link in decode_node(sink.blocks[res.cid]).links]
    assert got == sorted(names, key=lambda n: n.encode())
    assert "\u00e9.txt" in got and "e\u0301.txt" in got  # NFC and NFD stay distinct


def test_empty_folders_and_deep_nesting(tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*(["d"] * 300))
    deep.mkdir(parents=True)
    sink = RecordingSink()
    res = Importer(V1, sink).add_path(tmp_path)
    assert res.filesize == 0
    cid, depth = res.cid, 0
    while links := decode_node(sink.blocks[cid]).links:
        cid, depth = links[0].cid, depth + 1
    assert depth == 300
    assert str(cid) == "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354"


def test_sharded_folder_lists_every_entry(tmp_path: Path) -> None:
    for i in range(60):
        (tmp_path / f"file-{i}").write_bytes(bytes([i]))
    profile = dataclasses.replace(V1, hamt_threshold=500)
    sink = RecordingSink()
    res = Importer(profile, sink).add_path(tmp_path)
    root = decode_node(sink.blocks[res.cid])
    assert decode_unixfs(root.data).type == UnixFSType.HAMT_SHARD
    names = sorted(name for name, _ in hamt_entries(sink.blocks.__getitem__, root))
    assert names == sorted(f"file-{i}" for i in range(60))
    assert check_dag(sink, res.cid)[1] == res.size


# -- symlinks ------------------------------------------------------------------------------------


def test_symlinks_are_stored_not_followed(tmp_path: Path) -> None:
    (tmp_path / "target.txt").write_bytes(b"target")
    os.symlink("target.txt", tmp_path / "link")
    os.symlink("/nowhere/at/all", tmp_path / "dangling")
    sink = RecordingSink()
    res = Importer(V1, sink).add_path(tmp_path)
    links = {link.name: link for link in decode_node(sink.blocks[res.cid]).links}
    for name, target in (("link", b"target.txt"), ("dangling", b"/nowhere/at/all")):
        node = decode_node(sink.blocks[links[name].cid])
        meta = decode_unixfs(node.data)
        assert (meta.type, meta.data, node.links) == (UnixFSType.SYMLINK, target, ())
        assert links[name].tsize == len(sink.blocks[links[name].cid])
    assert res.filesize == len(b"target")
    # A symlink given as the path itself is stored as a symlink too.
    single = Importer(V0).add_path(tmp_path / "link")
    assert single.cid == CID.v0(links["link"].cid.digest) and single.filesize == 0


# -- errors and profiles -------------------------------------------------------------------------


def test_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match="nope"):
        add_path(missing)


def test_unreadable_file_error_propagates(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "secret").write_bytes(b"x")

    def deny(path):
        raise PermissionError(13, "Permission denied", os.fspath(path))

    monkeypatch.setattr(unixfs_mod, "_open_file", deny)
    with pytest.raises(PermissionError, match="secret"):
        add_path(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file_really(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"x")
    secret.chmod(0)
    try:
        with pytest.raises(PermissionError):
            add_path(tmp_path)
    finally:
        secret.chmod(stat.S_IRUSR | stat.S_IWUSR)


def test_special_files_are_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(ImporterError, match="pipe"):
        add_path(tmp_path)


def test_sink_errors_propagate() -> None:
    class Broken:
        def put(self, cid: CID, block: bytes) -> None:
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        Importer(V1, Broken()).add_bytes(bytes(3 * CHUNK))


def test_profiles_and_cid_version_override() -> None:
    assert get_profile("kubo-v1") is PROFILES["kubo-v1"]
    assert get_profile("kubo-v1", 0) is PROFILES["unixfs-v0-2015"]
    assert get_profile("unixfs-v0-2015", 1) is PROFILES["kubo-v1"]
    p = get_profile("unixfs-v1-2025", 0)
    assert (p.cid_version, p.raw_leaves, p.chunk_size) == (0, False, 1024 * 1024)
    v2025 = PROFILES["unixfs-v1-2025"]
    assert (v2025.chunk_size, v2025.max_links, v2025.hamt_estimate) == (1 << 20, 1024, "block")
    assert not any(p.hamt_inclusive for p in PROFILES.values())
    with pytest.raises(ValueError, match="kubo-v1"):
        get_profile("nope")
    with pytest.raises(ValueError):
        dataclasses.replace(V1, hamt_fanout=100)
    assert Importer("kubo-v1").profile is V1


# -- overlay: extra top-level files added as if they were in the folder -------------------------


@pytest.mark.parametrize("profile", [V0, V1], ids=["v0", "v1"])
def test_overlay_cids_equal_a_real_folder_holding_the_files(tmp_path: Path, profile) -> None:
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.mrc").write_bytes(b"a" * 5000)
    (data / "sub" / "b.txt").write_bytes(b"b" * 300)
    elsewhere = tmp_path / "media"
    elsewhere.mkdir()
    (elsewhere / "keyimg.jpg").write_bytes(os.urandom(CHUNK + 17))  # more than one chunk
    (elsewhere / "0first.txt").write_bytes(b"sorts before every real entry")
    overlay = {"keyimg_x.jpg": elsewhere / "keyimg.jpg", "0first.txt": elsewhere / "0first.txt"}
    seen: list[str] = []
    overlaid = Importer(profile, on_entry=lambda rel, _r: seen.append(rel)).add_path(
        data, overlay=overlay
    )
    real = tmp_path / "real"
    real.mkdir()
    (real / "sub").mkdir()
    (real / "a.mrc").write_bytes(b"a" * 5000)
    (real / "sub" / "b.txt").write_bytes(b"b" * 300)
    for name, source in overlay.items():
        (real / name).write_bytes(source.read_bytes())
    expected = add_path(real, profile)
    assert overlaid == expected
    assert overlaid.cid != add_path(data, profile).cid
    assert seen == ["0first.txt", "a.mrc", "keyimg_x.jpg", "sub/b.txt", "sub", ""]
    assert not (data / "keyimg_x.jpg").exists()  # nothing written into the folder


def test_overlay_refuses_collisions_and_bad_names(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.mrc").write_bytes(b"a")
    extra = tmp_path / "extra.jpg"
    extra.write_bytes(b"x")
    importer = Importer(V1)
    with pytest.raises(ImporterError, match="collides"):
        importer.add_path(data, overlay={"a.mrc": extra})
    for bad in ("sub/../x.jpg", "", "..", ".hidden.jpg", "sub/.h.jpg", "a.mrc/x.jpg"):
        with pytest.raises(ImporterError, match="overlay name"):
            importer.add_path(data, overlay={bad: extra})
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ImporterError, match="not a regular file or folder"):
        importer.add_path(data, overlay={"x.jpg": fifo})
    with pytest.raises(FileNotFoundError):
        importer.add_path(data, overlay={"x.jpg": tmp_path / "missing.jpg"})
    with pytest.raises(ImporterError, match="not a folder"):
        importer.add_path(data / "a.mrc", overlay={"x.jpg": extra})


def test_overlay_paths_with_folders_equal_a_real_tree(tmp_path: Path) -> None:
    """Overlay names with "/" make folders of overlay files only (files kept outside the
    dataset folder, e.g. a lab's Caps/ snapshots published under AutoCaps/)."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "a.jpg").write_bytes(b"a" * 3000)
    (elsewhere / "b.txt").write_bytes(b"b")
    real = tmp_path / "real"
    (real / "AutoCaps" / "deep").mkdir(parents=True)
    (real / "AutoCaps" / "deep" / "a.jpg").write_bytes(b"a" * 3000)
    (real / "AutoCaps" / "b.txt").write_bytes(b"b")
    (real / "top.txt").write_bytes(b"t")
    base = tmp_path / "base"
    base.mkdir()
    (base / "top.txt").write_bytes(b"t")
    overlay = {"AutoCaps/deep/a.jpg": elsewhere / "a.jpg", "AutoCaps/b.txt": elsewhere / "b.txt"}
    seen: list[str] = []
    got = Importer("unixfs-v0-2015", on_entry=lambda rel, _r: seen.append(rel)).add_path(
        base, overlay=overlay
    )
    assert got.cid == add_path(real, "unixfs-v0-2015").cid
    dirs = ["AutoCaps/deep", "AutoCaps"]
    assert seen == ["AutoCaps/b.txt", "AutoCaps/deep/a.jpg", *dirs, "top.txt", ""]
    for bad in ("AutoCaps/../x", "/abs", "a//b", "top.txt/x"):
        with pytest.raises(ImporterError):
            Importer("unixfs-v0-2015").add_path(base, overlay={bad: elsewhere / "b.txt"})
    with pytest.raises(ImporterError, match="folder"):
        Importer("unixfs-v0-2015").add_path(
            base, overlay={"d": elsewhere / "b.txt", "d/x": elsewhere / "b.txt"}
        )
