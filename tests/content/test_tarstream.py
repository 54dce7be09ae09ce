"""The tar stream of a UnixFS tree: what Python's tarfile (an independent reader) reads back.

Trees are imported by etdb's own importer into a real in-memory blockstore from files written
here, so expected names, kinds and bytes come from the disk; hostile trees are built with the
project's dag-pb code, as anyone could publish them. The byte-level comparison with kubo's own
tar is in tests/web/test_kubo_rpc_parity.py.
"""

from __future__ import annotations

import io
import os
import random
import tarfile
from pathlib import Path

import pytest

from etdb.content.cid import CID, DAG_PB
from etdb.content.dagpb import PBLink, PBNode, UnixFSData, UnixFSType, encode_node, encode_unixfs
from etdb.content.errors import UnsafeExportError
from etdb.content.memstore import MemoryBlockstore
from etdb.content.nodes import load_node
from etdb.content.tarstream import MAX_PATH, TarFormat, tar_stream, unsafe_target
from etdb.content.unixfs import Importer

NOW = 1_700_000_000_123_456_789  # a fixed "now" for entries without a stored mtime
LONG_DIRS = "d" * 60 + "/" + "e" * 60
FILES = {
    "notes.txt": b"tilt series notes\n",
    "tilt/series.mrc": random.Random(5).randbytes(700_000),  # three 256 KiB leaves
    "tilt/empty.dat": b"",
    "\u00b5m \u00c5 r\u00e9sum\u00e9.txt": b"non-ASCII name\n",
    f"{LONG_DIRS}/{'f' * 90}.txt": b"a path USTAR splits into prefix and name\n",
    "g" * 120 + ".txt": b"a name USTAR cannot hold\n",
}
LINKS = {"link-notes": "notes.txt", "tilt/link-up": "../notes.txt", "link-abs": "/etc/passwd"}


def _write(folder: Path) -> None:
    for rel, data in FILES.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    for rel, target in LINKS.items():
        os.symlink(target, folder / rel)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[MemoryBlockstore, CID]:
    folder = tmp_path_factory.mktemp("tar") / "et2024-01-01-1"
    folder.mkdir()
    _write(folder)
    store = MemoryBlockstore()
    return store, Importer("kubo-v1", store).add_path(folder).cid


def _tar(store, cid: CID, name: str, fmt: TarFormat) -> tuple[bytes, list[bytes | memoryview]]:
    pieces = list(tar_stream(store, load_node(store, cid), name, fmt, now_ns=NOW))
    return b"".join(pieces), pieces


def _members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar.getmembers()}


@pytest.mark.parametrize("fmt", list(TarFormat))
def test_a_tree_reads_back_exactly(tree, fmt: TarFormat) -> None:
    store, cid = tree
    data, pieces = _tar(store, cid, "root", fmt)
    members = _members(data)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for rel, content in FILES.items():
            member = members[f"root/{rel}"]
            assert member.isfile() and member.size == len(content) and member.mode == 0o644
            assert tar.extractfile(member).read() == content  # type: ignore[union-attr]
    dirs = {"root", "root/tilt", "root/" + LONG_DIRS.split("/")[0], "root/" + LONG_DIRS}
    assert {n for n, m in members.items() if m.isdir()} == dirs
    assert all(members[d].mode == 0o755 for d in dirs)
    # A link inside the tree stays; links that climb or are absolute are left out.
    assert {n: m.linkname for n, m in members.items() if m.issym()} == {
        "root/link-notes": "notes.txt"
    }
    assert members["root/link-notes"].mode == 0o777
    assert all(int(m.mtime) == NOW // 10**9 for m in members.values())
    # Streamed: no piece is larger than one leaf of the file.
    assert max(len(p) for p in pieces) <= 256 * 1024
    assert len(data) % 512 == 0 and data.endswith(bytes(1024))


def test_pax_keeps_nanoseconds_ustar_rounds_to_the_second(tree) -> None:
    store, cid = tree
    pax, _ = _tar(store, cid, "r", TarFormat.PAX)
    ustar, _ = _tar(store, cid, "r", TarFormat.USTAR)
    assert _members(pax)["r/notes.txt"].pax_headers["mtime"] == "1700000000.123456789"
    assert _members(ustar)["r/notes.txt"].pax_headers == {}  # plain USTAR where it fits
    # What USTAR cannot hold is PAX in either format: a name over 100 bytes, non-ASCII.
    long_name = "r/" + "g" * 120 + ".txt"
    assert _members(ustar)[long_name].pax_headers["path"] == long_name
    assert "r/\u00b5m \u00c5 r\u00e9sum\u00e9.txt" in _members(ustar)


def test_stored_mode_and_mtime_are_used_without_special_bits() -> None:
    store = MemoryBlockstore()
    fs = UnixFSData(UnixFSType.FILE, data=b"x", filesize=1, mode=0o4755, mtime=(1_000_000_000, 5))
    node = _put(store, PBNode((), encode_unixfs(fs)))
    info = _members(b"".join(tar_stream(store, load_node(store, node), "f")))["f"]
    assert info.mode == 0o755  # setuid dropped
    assert info.pax_headers["mtime"] == "1000000000.000000005"


def test_python_tarfile_data_filter_accepts_every_member(tree, tmp_path: Path) -> None:
    """The strictest reader we have (Python's ``data`` filter refuses absolute names, '..',
    links leading out, special bits) extracts the whole archive."""
    store, cid = tree
    data, _ = _tar(store, cid, "root", TarFormat.PAX)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(tmp_path, filter="data")
    assert (tmp_path / "root" / "tilt" / "series.mrc").read_bytes() == FILES["tilt/series.mrc"]
    assert (tmp_path / "root" / "link-notes").read_bytes() == FILES["notes.txt"]


# -- hostile trees --------------------------------------------------------------------------------


def _put(store: MemoryBlockstore, node: PBNode) -> CID:
    block = encode_node(node)
    cid = CID.hash(block, codec=DAG_PB)
    store.put(cid, block)
    return cid


def _dir(store: MemoryBlockstore, entries: dict[str, CID]) -> CID:
    links = tuple(PBLink(c, name, 1) for name, c in entries.items())
    return _put(store, PBNode(links, encode_unixfs(UnixFSData(UnixFSType.DIRECTORY))))


def _symlink(store: MemoryBlockstore, target: str) -> CID:
    return _put(store, PBNode((), encode_unixfs(UnixFSData(UnixFSType.SYMLINK, target.encode()))))


def _raw(store: MemoryBlockstore, data: bytes) -> CID:
    cid = CID.hash(data)
    store.put(cid, data)
    return cid


def _until_error(store, cid: CID) -> tuple[bytes, Exception | None]:
    """What the stream produced before it stopped, and why it stopped (None: it ended)."""
    out = bytearray()
    try:
        for piece in tar_stream(store, load_node(store, cid), "root"):
            out += piece
    except UnsafeExportError as exc:
        return bytes(out), exc
    return bytes(out), None


def _names_in(partial: bytes) -> list[str]:
    """Member names of a (possibly cut) tar, read with tarfile's tolerant stream mode."""
    with tarfile.open(fileobj=io.BytesIO(partial + bytes(1024)), mode="r|") as tar:
        return [m.name for m in tar]


@pytest.mark.parametrize(
    "bad", ["..", ".", "", "a/b", "..\\..\\x", "esc\x1b[2Jape", "new\nline", "del\x7f", "c1\x9b"]
)
def test_an_unsafe_entry_name_stops_the_stream_before_it(bad: str) -> None:
    store = MemoryBlockstore()
    payload = _raw(store, b"pwned")
    evil = _dir(store, {"ok.txt": payload, bad: payload})
    root = _dir(store, {"sub": evil})
    partial, error = _until_error(store, root)
    assert error is not None and "unsafe entry name" in str(error)
    names = _names_in(partial)
    assert names == ["root", "root/sub", "root/sub/ok.txt"]  # everything before it, nothing of it


@pytest.mark.parametrize(
    ("target", "kept"),
    [
        ("notes.txt", True),
        ("sub/deeper/file", True),
        ("./x", True),
        ("..", False),
        ("../x", False),
        ("a/../../x", False),
        ("/etc/passwd", False),
        ("\\\\server\\share", False),
        ("C:\\Windows", False),
        ("..\\x", False),
        ("bell\x07", False),
        ("", False),
    ],
)
def test_symlinks_are_kept_only_when_they_lead_downward(target: str, kept: bool) -> None:
    store = MemoryBlockstore()
    root = _dir(store, {"link": _symlink(store, target), "after.txt": _raw(store, b"after")})
    partial, error = _until_error(store, root)
    assert error is None
    members = _members(partial)
    assert ("root/link" in members) is kept
    assert (unsafe_target(target) is None) is kept
    assert "root/after.txt" in members  # a link left out does not stop the archive


def test_a_path_past_max_path_stops_the_stream() -> None:
    store = MemoryBlockstore()
    cid = _raw(store, b"bottom")
    name = "n" * 200
    for _ in range(MAX_PATH // len(name) + 2):  # nested deeper than any path can be
        cid = _dir(store, {name: cid})
    partial, error = _until_error(store, cid)
    assert error is not None and f"longer than {MAX_PATH}" in str(error)
    assert all(len(n.encode()) <= MAX_PATH for n in _names_in(partial))
