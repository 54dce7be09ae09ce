"""Overlay values that are folders: imported as a tree, with the CIDs of a real folder.

Generated OME-Zarr pyramids live in the publish media area and are overlaid on a dataset
folder (``Importer.add_path(overlay={"<sid>.ome.zarr": folder})``). Their CIDs must be exactly
those of the same tree really in the folder, under the same name rules (hidden names skipped,
except inside ``hidden_in`` folders, where zarr v2 keeps ``.zarray``/``.zattrs``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from etdb.content import exporter
from etdb.content.memstore import MemoryBlockstore
from etdb.content.unixfs import PROFILES, Importer, ImporterError

V0 = PROFILES["unixfs-v0-2015"]
V1 = PROFILES["kubo-v1"]
ZARR = ".ome.zarr"


def _pyramid(at: Path) -> Path:
    """A small zarr-v2-shaped tree: dot files at every level, nested chunk folders."""
    (at / "0" / "0" / "0").mkdir(parents=True)
    (at / "1" / "0" / "0").mkdir(parents=True)
    (at / ".zgroup").write_text('{"zarr_format": 2}')
    (at / ".zattrs").write_text('{"multiscales": []}')
    for level in ("0", "1"):
        (at / level / ".zarray").write_text(f'{{"level": {level}}}')
        (at / level / "0" / "0" / "0").write_bytes(os.urandom(3000 + int(level)))
    (at / "0" / "0" / "0" / "1").write_bytes(b"")  # an empty chunk file is still a file
    return at


def _dataset(at: Path) -> Path:
    (at / "3dimage_1").mkdir(parents=True)
    (at / "3dimage_1" / "a.rec").write_bytes(b"r" * 5000)
    (at / ".hidden").write_text("skipped")
    return at


@pytest.mark.parametrize("profile", [V0, V1], ids=["v0", "v1"])
def test_overlay_folder_has_the_cids_of_a_real_folder(tmp_path: Path, profile) -> None:
    data = _dataset(tmp_path / "data")
    pyramid = _pyramid(tmp_path / "media" / "x.ome.zarr.build")
    seen: list[str] = []
    importer = Importer(profile, on_entry=lambda rel, _r: seen.append(rel), hidden_in=(ZARR,))
    overlaid = importer.add_path(data, overlay={"x.ome.zarr": pyramid})
    real = _dataset(tmp_path / "real")
    shutil.copytree(pyramid, real / "x.ome.zarr")
    assert overlaid == Importer(profile, hidden_in=(ZARR,)).add_path(real)
    assert "x.ome.zarr/.zattrs" in seen and "x.ome.zarr/1/.zarray" in seen
    assert ".hidden" not in seen  # the dataset folder's own rule is unchanged
    assert seen[-2:] == ["x.ome.zarr", ""]
    assert sorted(os.listdir(data)) == [".hidden", "3dimage_1"]  # nothing written into it


def test_hidden_names_kept_only_inside_hidden_in_folders(tmp_path: Path) -> None:
    real = _dataset(tmp_path / "real")
    _pyramid(real / "x.ome.zarr")
    store = MemoryBlockstore()
    root = Importer(V1, store, hidden_in=(ZARR,)).add_path(real).cid
    names = {e.name for e in exporter.list_dir(store, f"{root}/x.ome.zarr")}
    assert names == {".zattrs", ".zgroup", "0", "1"}
    assert {e.name for e in exporter.list_dir(store, f"{root}/x.ome.zarr/1")} == {".zarray", "0"}
    assert ".hidden" not in {e.name for e in exporter.list_dir(store, root)}
    got = b"".join(exporter.iter_file(store, f"{root}/x.ome.zarr/.zattrs"))
    assert got == (real / "x.ome.zarr" / ".zattrs").read_bytes()
    # Without the suffix rule the dot files are skipped, as `ipfs add` without --hidden does.
    plain = Importer(V1).add_path(real)
    assert (
        plain.cid != root
        and plain.filesize < Importer(V1, hidden_in=(ZARR,)).add_path(real).filesize
    )


def test_overlay_folder_in_a_subfolder_and_a_symlinked_folder(tmp_path: Path) -> None:
    data = _dataset(tmp_path / "data")
    pyramid = _pyramid(tmp_path / "elsewhere" / "p")
    link = tmp_path / "link"
    link.symlink_to(pyramid, target_is_directory=True)  # the overlay value itself is followed
    got = Importer(V1, hidden_in=(ZARR,)).add_path(data, overlay={"views/y.ome.zarr": link})
    real = _dataset(tmp_path / "real")
    shutil.copytree(pyramid, real / "views" / "y.ome.zarr")
    assert got == Importer(V1, hidden_in=(ZARR,)).add_path(real)


def test_overlay_folder_refuses_symlinks_and_special_files_before_adding(tmp_path: Path) -> None:
    data = _dataset(tmp_path / "data")
    pyramid = _pyramid(tmp_path / "p.ome.zarr")
    (pyramid / "0" / "link").symlink_to(pyramid / ".zattrs")
    store = MemoryBlockstore()
    with pytest.raises(ImporterError, match="not a regular file or folder"):
        Importer(V1, store, hidden_in=(ZARR,)).add_path(data, overlay={"p.ome.zarr": pyramid})
    assert len(store) == 0  # refused before anything was imported
    (pyramid / "0" / "link").unlink()
    os.mkfifo(pyramid / "1" / ".fifo")  # a hidden name inside a zarr folder counts too
    with pytest.raises(ImporterError, match="fifo"):
        Importer(V1, hidden_in=(ZARR,)).add_path(data, overlay={"p.ome.zarr": pyramid})
    # ... but is skipped (so never read) where hidden names are not imported.
    Importer(V1).add_path(data, overlay={"p.ome.zarr": pyramid})


def test_overlay_folder_names_follow_the_file_rules(tmp_path: Path) -> None:
    data = _dataset(tmp_path / "data")
    pyramid = _pyramid(tmp_path / "p")
    extra = tmp_path / "f.txt"
    extra.write_text("f")
    importer = Importer(V1, hidden_in=(ZARR,))
    with pytest.raises(ImporterError, match="collides"):
        importer.add_path(data, overlay={"3dimage_1": pyramid})
    with pytest.raises(ImporterError, match="hidden"):
        importer.add_path(data, overlay={".p.ome.zarr": pyramid})
    with pytest.raises(ImporterError, match="folder"):
        importer.add_path(data, overlay={"p.ome.zarr": pyramid, "p.ome.zarr/x": extra})
    empty = tmp_path / "empty"
    empty.mkdir()
    got = importer.add_path(data, overlay={"e": empty})  # an empty folder, as a real one
    real = _dataset(tmp_path / "real")
    (real / "e").mkdir()
    assert got == importer.add_path(real)
