"""plan_tree: a folder's files from its DAG, and every way a hostile folder DAG is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from etdb.content import treeplan
from etdb.content.cid import CID
from etdb.content.dagpb import PBLink, UnixFSData, UnixFSType
from etdb.content.errors import InvalidNodeError, NotADirError, UnsafeExportError
from etdb.content.memstore import MemoryBlockstore
from etdb.content.treeplan import plan_tree
from etdb.content.unixfs import Importer
from tests.content.test_exporter import put_dir, put_node, put_raw, put_symlink, tiny


def test_lists_every_file_with_its_cid_and_size(tmp_path: Path) -> None:
    root = tmp_path / "p.ome.zarr"
    (root / "0" / "1" / "2").mkdir(parents=True)
    (root / ".zattrs").write_text("{}")
    (root / "0" / ".zarray").write_text('{"a": 1}')
    (root / "0" / "1" / "2" / "3").write_bytes(bytes(range(256)) * 300)  # several leaves
    (root / "empty").mkdir()
    store = MemoryBlockstore()
    importer = Importer(tiny("kubo-v1"), store, hidden_in=(".zarr",))
    folder = importer.add_path(root).cid
    plan = plan_tree(store, folder)
    assert plan.cid == folder
    by_path = {f.path: f for f in plan.files}
    assert set(by_path) == {".zattrs", "0/.zarray", "0/1/2/3"}
    assert by_path["0/1/2/3"].size == 76800 and not by_path["0/1/2/3"].raw
    assert by_path[".zattrs"].raw and by_path[".zattrs"].size == 2
    for f in plan.files:
        alone = Importer(tiny("kubo-v1")).add_path(root / f.path).cid
        assert f.cid == alone, f.path
    assert sorted(plan.folders) == ["0", "0/1", "0/1/2", "empty"]
    # parents before children, so creating them in order never needs parents=True
    assert [f.count("/") for f in plan.folders] == sorted(f.count("/") for f in plan.folders)
    assert plan.size == 2 + 8 + 76800
    # a sub-path of a folder is a folder too
    assert {f.path for f in plan_tree(store, f"{folder}/0").files} == {".zarray", "1/2/3"}


def test_a_file_is_not_a_folder() -> None:
    store = MemoryBlockstore()
    with pytest.raises(NotADirError):
        plan_tree(store, put_raw(store, b"x"))


@pytest.mark.parametrize("bad", ["..", ".", "", "a/b", "nul\0byte"])
def test_unsafe_names_are_refused(bad: str) -> None:
    store = MemoryBlockstore()
    payload = put_raw(store, b"pwned")
    evil = put_dir(store, {"ok": payload, bad: payload})
    with pytest.raises(UnsafeExportError, match="unsafe entry name"):
        plan_tree(store, put_dir(store, {"sub": evil}))


def test_duplicate_names_and_symlinks_are_refused() -> None:
    store = MemoryBlockstore()
    one, two = put_raw(store, b"1"), put_raw(store, b"2")
    dup = put_node(
        store, [PBLink(one, "same", 1), PBLink(two, "same", 1)], UnixFSData(UnixFSType.DIRECTORY)
    )
    with pytest.raises(UnsafeExportError, match="twice"):
        plan_tree(store, dup)
    linked = put_dir(store, {"data": one, "link": put_symlink(store, "data")})
    with pytest.raises(UnsafeExportError, match="symlink"):
        plan_tree(store, linked)


def test_a_folder_naming_too_many_entries_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Folders linking one sub-folder many times name exponentially many paths in a few
    blocks: the entry bound stops the walk before memory fills."""
    store = MemoryBlockstore()
    node: CID = put_raw(store, b"leaf")
    for _ in range(30):  # 2^30 paths in 31 blocks
        node = put_dir(store, {"a": node, "b": node})
    monkeypatch.setattr(treeplan, "MAX_TREE_FILES", 10_000)
    with pytest.raises(InvalidNodeError, match="more than 10000 entries"):
        plan_tree(store, node)


def test_too_deep_a_folder_is_refused() -> None:
    store = MemoryBlockstore()
    node: CID = put_raw(store, b"leaf")
    for _ in range(treeplan.MAX_DEPTH + 3):
        node = put_dir(store, {"d": node})
    with pytest.raises(InvalidNodeError, match="deeper"):
        plan_tree(store, node)
