"""A small dataset for the read-through tests, and a node's catalog holding its record.

``make_dataset(folder)`` writes what a lab publishes: an MRC reconstruction and an MRC tilt
series (written by ``mrcfile``, several leaves each), a key movie (bytes named ``.mp4``: the
gateway serves bytes, the browser decodes them), a key image and a thumbnail (PNG). Files are
random enough that no two leaves are alike (except where a test wants repeats).
``index_record(home, location, files)`` writes a catalog at ``<home>/catalog.sqlite3`` holding
one record of those files at ``location``, signed as the portal tests sign theirs, and returns
its id: what ``etdb serve --no-index`` with that home serves.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mrcfile
import numpy as np
from PIL import Image

from etdb.index.catalog import open_catalog
from tests.index.records import published, signed_artifact
from tests.web.conftest import KEY_A

RECONSTRUCTION = "rec/volume.rec"
TILT_SERIES = "raw/tilt.mrc"
KEY_MOVIE = "keymov.mp4"
KEY_IMAGE = "keyimg.png"
THUMBNAIL = "keyimg_s.png"
SUBTYPES = {
    RECONSTRUCTION: "reconstruction",
    TILT_SERIES: "tiltSeries",
    KEY_MOVIE: "keymov",
    KEY_IMAGE: "keyimg",
    THUMBNAIL: "thumbnail",
}


@dataclass
class Dataset:
    folder: Path

    def bytes_of(self, name: str) -> bytes:
        return (self.folder / name).read_bytes()

    def size_of(self, name: str) -> int:
        return (self.folder / name).stat().st_size


def make_dataset(folder: Path, *, seed: int = 14) -> Dataset:
    rng = np.random.default_rng(seed)
    (folder / "rec").mkdir(parents=True)
    (folder / "raw").mkdir()
    volume = rng.normal(0, 10, (8, 256, 256)).astype("f4")  # 2 MiB: 8 sections of 256 KiB
    volume[:, 20:60, 30:90] += 40  # something to see, off-centre (a flip would show)
    with mrcfile.new(folder / RECONSTRUCTION) as mrc:
        mrc.set_data(volume)
        mrc.voxel_size = 12.5
    tilts = rng.integers(-2000, 2000, (12, 320, 320), dtype="i2")  # 2.3 MiB
    with mrcfile.new(folder / TILT_SERIES) as mrc:
        mrc.set_data(tilts)
        mrc.set_image_stack()
    (folder / KEY_MOVIE).write_bytes(os.urandom(1_300_000))
    _png(folder / KEY_IMAGE, rng, 300)
    _png(folder / THUMBNAIL, rng, 64)
    return Dataset(folder)


def _png(path: Path, rng: np.random.Generator, side: int) -> None:
    pixels = rng.integers(0, 255, (side, side), dtype="u1")
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    path.write_bytes(out.getvalue())


def record_files(dataset: Dataset) -> list[dict[str, Any]]:
    """``storage.files`` for the dataset, as a lab's record lists them."""
    return [
        {"fname": name, "subtype": subtype, "fsize": dataset.size_of(name)}
        for name, subtype in SUBTYPES.items()
    ]


def index_record(home: Path, location: str, files: list[dict[str, Any]]) -> str:
    """A catalog in ``home`` with one signed record of ``files`` at ``location``; its id."""
    home.mkdir(parents=True, exist_ok=True)
    catalog = open_catalog(f"sqlite:///{home / 'catalog.sqlite3'}")
    try:
        artifact = signed_artifact(
            KEY_A, title="Read-through phantom", species="Vibrio cholerae",
            sid="rt2026-01-01-1", location=location, files=files,
        )  # fmt: skip
        record = published(artifact, height=100)
        with catalog.transaction():
            catalog.add_record(record)
            catalog.set_meta("cursor", json.dumps({"height": 100, "hashes": []}))
        return record.id
    finally:
        catalog.close()
