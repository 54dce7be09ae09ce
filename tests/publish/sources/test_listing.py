"""A files-only dataset's listing: files under a root may not lead out of it (symlinks)."""

from __future__ import annotations

from pathlib import Path

import pytest

from etdb.publish.dataset import DatasetError
from etdb.publish.listing import dataset_listing
from etdb.publish.source import SourceDataset, SourceFile


def _ds(tmp_path: Path, *files: SourceFile) -> SourceDataset:
    folder = tmp_path / "data" / "s1"
    folder.mkdir(parents=True, exist_ok=True)
    return SourceDataset("s1", {}, folder, True, files, files_only=True)


def test_a_caps_file_may_not_leave_its_root_through_a_symlink(tmp_path: Path) -> None:
    caps = tmp_path / "data" / "Caps"
    caps.mkdir(parents=True)
    secret = tmp_path / "secret.txt"
    secret.write_text("private")
    (caps / "cap.jpg").symlink_to(secret)
    ds = _ds(tmp_path, SourceFile("AutoCaps/cap.jpg", "snapshot", root=caps, location="cap.jpg"))
    with pytest.raises(DatasetError, match="leads out of"):
        dataset_listing(ds)
    (caps / "cap.jpg").unlink()
    (caps / "cap.jpg").write_bytes(b"jpg")
    assert dataset_listing(ds).files == {"AutoCaps/cap.jpg": (caps / "cap.jpg").resolve()}


def test_a_listed_folder_file_may_not_leave_the_folder(tmp_path: Path) -> None:
    ds = _ds(tmp_path, SourceFile("rawdata/x.mrc", "tiltSeries"))
    (ds.folder / "rawdata").mkdir()
    (ds.folder / "rawdata" / "x.mrc").symlink_to("/etc/passwd")
    with pytest.raises(DatasetError, match="leads out of"):
        dataset_listing(ds)
