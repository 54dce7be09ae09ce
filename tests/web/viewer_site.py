"""A portal holding a dataset with an OME-Zarr pyramid, served over loopback, for the 3-D
viewer's browser tests and bench/viewer.py.

The dataset folder is real content: an MRC reconstruction (written by ``mrcfile``) and its
pyramid (``etdb.mrc.pyramid.build_pyramid``), added to the home's blockstore with the UnixFS
importer; the records are really signed and written into a real SQLite catalog; the server is
uvicorn running ``create_app`` on a free loopback port in a thread (what ``etdb serve`` runs).
Two records: one listing the pyramid as its ``zarr`` entry (as publishing does), one without.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from etdb.api import create_app
from etdb.config import Settings
from etdb.content.blockstore import FSBlockstore
from etdb.content.unixfs import Importer
from etdb.index.catalog import open_catalog
from etdb.mrc.pyramid import build_pyramid
from tests.index.records import published, signed_artifact
from tests.web.browser import free_port
from tests.web.conftest import KEY_A

SID = "vw2024-01-02-3"
PLAIN_SID = "vw2024-01-02-4"
SHAPE = (96, 160, 192)  # z, y, x: more than one chunk on each axis, two pyramid levels
VOXEL = 12.5  # Å


@dataclass
class ViewerSite:
    url: str  # http://127.0.0.1:<port>
    pyramid_id: str  # the record with a zarr entry
    plain_id: str  # the record without one
    window: tuple[float, float]

    def __call__(self, path: str) -> str:
        return self.url + path


def phantom(shape: tuple[int, int, int] = SHAPE, seed: int = 3) -> np.ndarray:
    """A float32 volume with structure on every axis: a bright shell, a dark rod along z,
    graded background, noise (a blank or transposed rendering shows)."""
    nz, ny, nx = shape
    z, y, x = np.ogrid[:nz, :ny, :nx]
    r = np.sqrt(((z - nz / 2) / nz) ** 2 + ((y - ny / 2) / ny) ** 2 + ((x - nx / 2) / nx) ** 2)
    data = np.where(np.abs(r - 0.3) < 0.04, 3.0, 0.0) + x / nx
    data = data - np.where(((y - ny / 3) ** 2 + (x - nx / 3) ** 2) < 64, 2.0, 0.0)
    data += np.random.default_rng(seed).normal(0, 0.2, shape)
    return data.astype(np.float32)


def write_dataset(folder: Path, data: np.ndarray, voxel: float = VOXEL) -> tuple[float, float]:
    """``folder/<SID>_full.rec`` and ``folder/<SID>.ome.zarr/`` (its pyramid); the window."""
    import mrcfile

    folder.mkdir(parents=True)
    rec = folder / f"{SID}_full.rec"
    with mrcfile.new(rec) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = voxel
    info = build_pyramid(rec, folder / f"{SID}.ome.zarr")
    return (float(info.window[0]), float(info.window[1]))


def _files(with_pyramid: bool, size: int) -> list[dict[str, object]]:
    files: list[dict[str, object]] = [
        {"fname": f"{SID}_full.rec", "subtype": "reconstruction", "type": "tomogram",
         "fsize": size},
    ]  # fmt: skip
    if with_pyramid:
        files.append({"fname": f"{SID}.ome.zarr", "subtype": "zarr", "type": "preview",
                      "fNotes": "OME-Zarr pyramid generated at publish time"})  # fmt: skip
    return files


@contextmanager
def viewer_site(root: Path, data: np.ndarray | None = None) -> Iterator[ViewerSite]:
    """The two records over ``data`` (default :func:`phantom`), served until exit."""
    folder = root / "dataset"
    window = write_dataset(folder, phantom() if data is None else data)
    make_home(root, folder, window)
    with serve_home(root) as site:
        yield site


def make_home(root: Path, folder: Path, window: tuple[float, float]) -> None:
    """``root/home`` (its blockstore holding ``folder``, a :func:`write_dataset` folder) and
    ``root/catalog.sqlite3`` with the two records; ``root/site.json`` says what they are."""
    home = root / "home"
    home.mkdir(parents=True)
    store = FSBlockstore(Settings(home=home).blockstore_path)
    importer = Importer("kubo-v1", store, hidden_in=(".ome.zarr",))
    cid = str(importer.add_path(folder).cid)
    plain = root / "plain"  # the same reconstruction, no pyramid (a record's own folder)
    plain.mkdir()
    os.link(folder / f"{SID}_full.rec", plain / f"{SID}_full.rec")
    locations = {SID: cid, PLAIN_SID: str(importer.add_path(plain).cid)}
    store.sync()  # blocks land in the store when synced
    store.close()
    size = (folder / f"{SID}_full.rec").stat().st_size
    catalog = open_catalog(f"sqlite:///{root / 'catalog.sqlite3'}")
    ids = []
    with catalog.transaction():
        for n, (sid, with_pyramid) in enumerate(((SID, True), (PLAIN_SID, False))):
            artifact = signed_artifact(KEY_A, sid=sid, title=f"Viewer test {sid}",
                                       location=locations[sid], files=_files(with_pyramid, size))  # fmt: skip
            record = published(artifact, height=100 + n)
            catalog.add_record(record)
            ids.append(record.id)
        catalog.set_meta("cursor", json.dumps({"height": 102, "hashes": []}))
    catalog.close()
    (root / "site.json").write_text(json.dumps({"ids": ids, "window": list(window)}))


@contextmanager
def serve_home(root: Path) -> Iterator[ViewerSite]:
    """A fresh app over :func:`make_home`'s home and catalog, served until exit."""
    import uvicorn

    facts = json.loads((root / "site.json").read_text())
    catalog = open_catalog(f"sqlite:///{root / 'catalog.sqlite3'}")
    app = create_app(catalog, settings=Settings(home=root / "home"))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise AssertionError("the viewer test server did not start")
            time.sleep(0.05)
        ids, window = facts["ids"], facts["window"]
        yield ViewerSite(f"http://127.0.0.1:{port}", ids[0], ids[1], (window[0], window[1]))
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        catalog.close()
