"""Helpers shared by the source tests: dataset folders on disk and the record they make."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from etdb.publish.dataset import build_artifact, describe_files
from etdb.publish.listing import dataset_listing
from etdb.publish.source import SourceDataset
from etdb.record import Artifact, decode, encode_unsigned_publish

CIDV0 = "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn"  # any CIDv0 will do


def utc(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def make_folder(ds: SourceDataset, *extra: str) -> None:
    """Tiny files at every path the source lists, plus the key image/movie (unless the
    source's flags say the lab has none) and ``extra``."""
    names = [f.path for f in ds.files or ()]
    if ds.key_media.get("keyimg") is not False:
        names += [f"keyimg_{ds.sid}.jpg", f"keyimg_{ds.sid}_s.jpg"]
    if ds.key_media.get("keymov") is not False:
        names += [f"keymov_{ds.sid}.mp4"]
    names += extra
    ds.folder.mkdir(parents=True, exist_ok=True)  # even with no file at all
    elsewhere = {f.path: f.root / (f.location or f.path) for f in ds.files or () if f.root}
    for name in names:
        path = elsewhere.get(name, ds.folder / name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"{ds.sid}:{name}".encode())


def record_files(ds: SourceDataset) -> list[dict[str, Any]]:
    """``storage.files`` for ``ds``: the folder's files (a files-only dataset: its listing),
    with what the source says about them."""
    if ds.files_only:
        with tempfile.TemporaryDirectory() as empty:
            entries = describe_files(empty, ds.sid, overlay=dataset_listing(ds).files)
    else:
        entries = describe_files(ds.folder, ds.sid)
    listed = {f.path: f for f in ds.files or ()}
    for entry in entries:
        f = listed.pop(entry["fname"], None)
        if f is None:
            continue
        if f.subtype:
            entry["subtype"] = f.subtype
            entry["type"] = "image" if f.subtype == "thumbnail" else "tomogram"
        if f.notes:
            entry["fNotes"] = f.notes
        if f.display_name:
            entry["dname"] = f.display_name
    assert not listed, f"listed by the source but not in {ds.folder}: {sorted(listed)}"
    return entries


def round_trip(ds: SourceDataset) -> Artifact:
    """The record ``ds`` makes; it must survive encoding and decoding unchanged."""
    art = build_artifact(ds.metadata, CIDV0, record_files(ds))
    again = decode(encode_unsigned_publish(art), strict=False).artifact
    assert again.to_wire() == art.to_wire()
    assert Artifact.from_wire(again.to_wire()).to_wire() == art.to_wire()
    return art


def folder_root(tmp: Path) -> Path:
    root = tmp / "data"
    root.mkdir(exist_ok=True)
    return root
