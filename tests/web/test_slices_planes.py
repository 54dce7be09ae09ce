"""The slice viewer's XZ and YZ planes: from the MRC (bounded reads) and from an OME-Zarr
pyramid, over a real app and a real blockstore; hostile parameters are 4xx, never 500.

The expected pictures are computed here with numpy from ``mrcfile``'s reading of the volume
(and the pyramid is written by ``zarr`` itself), so orientation, row stretch and level choice
are checked against an independent reading.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from fastapi.testclient import TestClient
from numcodecs import Blosc
from starlette.requests import Request

from etdb.api import create_app
from etdb.config import Settings
from etdb.content.blockstore import FSBlockstore
from etdb.content.unixfs import Importer
from etdb.index.catalog import open_catalog
from etdb.mrc.display import contrast_limits, downsample, to_gray8
from etdb.web import planes
from etdb.web.render import env
from etdb.web.slices import slice_viewer
from tests.web.test_slices import SMALL_CHUNKS, CountingStore, decode, volume, write_mrc

NZ, NY, NX = 12, 40, 48


def shown(plane: np.ndarray, aspect: float = 1.0, side: int = 1024) -> np.ndarray:
    """What the viewer promises for a plane: the one contrast rule, rows stretched."""
    image = downsample(plane.astype(np.float32), side)
    if aspect != 1.0:
        rows = round(image.shape[0] * aspect)
        image = image[np.minimum((np.arange(rows) + 0.5) / aspect, image.shape[0] - 1).astype(int)]
    return to_gray8(image, contrast_limits(image))


def write_pyramid(folder: Path, data: np.ndarray, voxel: tuple[float, float, float]) -> None:
    """A two-level NGFF 0.4 pyramid on zarr v2 (the contract's layout), written by zarr."""
    group = zarr.open_group(folder, mode="w", zarr_format=2)
    levels = [data, data[::2, ::2, ::2]]
    datasets = []
    for i, level in enumerate(levels):
        array = group.create_array(
            str(i), shape=level.shape, chunks=(8, 8, 8), dtype=level.dtype,
            compressors=Blosc(cname="zstd", shuffle=Blosc.SHUFFLE),
            chunk_key_encoding={"name": "v2", "separator": "/"},
        )  # fmt: skip
        array[:] = level
        scale = [v * 2**i for v in voxel]
        datasets.append({"path": str(i), "coordinateTransformations": [
            {"type": "scale", "scale": scale}]})  # fmt: skip
    group.attrs["multiscales"] = [{"version": "0.4", "datasets": datasets, "axes": [
        {"name": a, "type": "space", "unit": "angstrom"} for a in "zyx"]}]  # fmt: skip


@pytest.fixture(scope="module")
def held(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("planes")
    folder = root / "dataset"
    folder.mkdir()
    data = volume("f4", nz=NZ, ny=NY, nx=NX, seed=9)
    write_mrc(folder / "rec.mrc", data)  # voxel 2.5 on every axis
    write_mrc(folder / "thick.mrc", data, voxel=2.0)
    import mrcfile

    with mrcfile.open(folder / "thick.mrc", mode="r+") as mrc:
        mrc.voxel_size = (2.0, 2.0, 4.0)  # z spacing twice x and y: XZ/YZ rows doubled
    write_pyramid(folder / "S1.ome.zarr", data, (2.5, 2.5, 2.5))
    (folder / "bad.ome.zarr").mkdir()
    (folder / "bad.ome.zarr" / ".zgroup").write_text('{"zarr_format": 2}')
    (folder / "bad.ome.zarr" / ".zattrs").write_text(json.dumps({"multiscales": [{"x": 1}]}))
    store = FSBlockstore(root / "blocks")
    importer = Importer(SMALL_CHUNKS, store, hidden=True)  # .zarray, .zattrs are data
    cid = str(importer.add_path(folder).cid)
    store.sync()
    return {"cid": cid, "store": store, "data": data}


@pytest.fixture
def app(held: dict[str, Any], tmp_path: Path) -> Iterator[Any]:
    catalog = open_catalog(f"sqlite:///{tmp_path / 'catalog.sqlite3'}")
    app = create_app(catalog, settings=Settings(home=tmp_path))
    app.state.etdb.extra["blockstore"] = CountingStore(held["store"])
    yield app
    catalog.close()


@pytest.fixture
def client(app: Any) -> TestClient:
    return TestClient(app)


def get(client: TestClient, held: dict[str, Any], path: str, query: str) -> Any:
    headers = {"Accept": "application/json"}  # errors as JSON (a browser gets a page)
    return client.get(f"/slices/{held['cid']}/{path}?{query}", headers=headers)


def test_xz_from_the_mrc_reads_one_row_per_section(held, app, client):
    response = get(client, held, "rec.mrc", "axis=y&index=7")
    assert response.status_code == 200, response.text
    want = shown(held["data"][:, 7, :])
    np.testing.assert_allclose(decode(response.content), want, atol=1)
    assert response.headers["x-voxel-aspect"] == "1"
    assert "rec_y7.png" in response.headers["content-disposition"]
    # The header leaf and one leaf (1000 bytes here) per section: far less than the file.
    read = app.state.etdb.extra["blockstore"].bytes_read
    assert read < NZ * 3 * 1000 + 4096 < NZ * NY * NX * 4


def test_yz_from_the_mrc_and_aliases(held, client):
    response = get(client, held, "rec.mrc", "axis=yz&index=5")
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(decode(response.content), shown(held["data"][:, :, 5]), atol=1)
    same = get(client, held, "rec.mrc", "axis=x&index=5")
    assert same.content == response.content and same.headers["etag"] == response.headers["etag"]


def test_rows_are_stretched_to_the_voxel_proportions(held, client):
    response = get(client, held, "thick.mrc", "axis=y&index=3")
    assert response.headers["x-voxel-aspect"] == "2"
    got = decode(response.content)
    assert got.shape == (2 * NZ, NX)
    np.testing.assert_allclose(got, shown(held["data"][:, 3, :], aspect=2.0), atol=1)


def test_old_z_links_keep_their_image_and_etag(held, client):
    old = get(client, held, "rec.mrc", "z=4")
    new = get(client, held, "rec.mrc", "axis=z&index=4")
    assert old.content == new.content and old.headers["etag"] == new.headers["etag"]


def test_planes_from_the_pyramid(held, client):
    info = get(client, held, "S1.ome.zarr", "info=1").json()
    assert (info["nz"], info["ny"], info["nx"], info["source"]) == (NZ, NY, NX, "pyramid")
    for axis, index, plane in [
        ("z", 6, held["data"][6]),
        ("y", 7, held["data"][:, 7, :]),
        ("x", 5, held["data"][:, :, 5]),
    ]:
        response = get(client, held, "S1.ome.zarr", f"axis={axis}&index={index}")
        assert response.status_code == 200, response.text
        np.testing.assert_allclose(decode(response.content), shown(plane), atol=1)
    # A small size reads the coarser level: its plane at index // 2.
    small = get(client, held, "S1.ome.zarr", "axis=y&index=7&size=24")
    coarse = held["data"][::2, ::2, ::2][:, 3, :]
    np.testing.assert_allclose(decode(small.content), shown(coarse, side=24), atol=1)


def test_a_large_mrc_has_no_yz_plane_without_a_pyramid(held, client, monkeypatch):
    monkeypatch.setattr(planes, "MRC_YZ_LIMIT", 1000)
    response = get(client, held, "rec.mrc", "axis=x&index=1")
    assert response.status_code == 409
    assert "pyramid" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("path", "query", "status", "message"),
    [
        ("rec.mrc", "axis=q", 400, "axis: must be z, y or x"),
        ("rec.mrc", "axis=y&index=40", 400, "y 40 is out of range"),
        ("rec.mrc", "axis=x&index=-1", 400, "out of range"),
        ("rec.mrc", "axis=x&index=1e9", 400, "index: must be an integer"),
        ("rec.mrc", "axis=y&size=99999999", 400, "size: must be between"),
        ("S1.ome.zarr", "axis=y&index=99", 400, "out of range"),
        ("S1.ome.zarr", "axis=y&size=0", 400, "size"),
        ("bad.ome.zarr", "axis=y", 400, "not NGFF multiscales"),
        ("nothing.ome.zarr", "axis=y", 404, "nothing"),
        ("rec.mrc/x.ome.zarr", "axis=y", 404, ""),
    ],
)
def test_hostile_parameters_are_4xx(held, client, path, query, status, message):
    response = get(client, held, path, query)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]["message"]


# -- the page ---------------------------------------------------------------------------------


def page(app: Any, held: dict[str, Any], query: str, pyramid: bool = True) -> dict[str, Any]:
    cid = held["cid"]
    files = [{"fname": "rec.mrc", "subtype": "reconstruction"}]
    if pyramid:
        files.append({"fname": "S1.ome.zarr", "subtype": "zarr", "type": "preview"})
    scope = {"type": "http", "method": "GET", "path": "/tomogram/x", "headers": [],
             "query_string": query.encode(), "app": app}  # fmt: skip
    viewer = slice_viewer(Request(scope), {"storage": {"location": cid, "files": files}})
    assert viewer is not None
    return viewer


def test_the_page_takes_xz_yz_from_the_pyramid_without_javascript(held, app, client):
    cid = held["cid"]
    viewer = page(app, held, "axis=x&index=9&shown_axis=x")
    assert (viewer["axis"], viewer["index"], viewer["count"]) == ("x", 9, NX)
    assert viewer["image_url"] == f"/slices/{cid}/S1.ome.zarr?axis=x&index=9"
    assert client.get(viewer["image_url"]).status_code == 200
    # The axis changed in the form (shown_axis says the index was a z): the middle plane.
    moved = page(app, held, "axis=y&index=3&shown_axis=z")
    assert (moved["axis"], moved["index"]) == ("y", NY // 2)
    old = page(app, held, "z=2")  # an old page link
    assert (old["axis"], old["index"], old["image_url"]) == ("z", 2, f"/slices/{cid}/rec.mrc?z=2")
    html = env.get_template("_slice_viewer.html").render(slice_viewer=viewer)
    assert 'name="axis"' in html and 'name="shown_axis" value="x"' in html
    assert 'name="index"' in html and f'max="{NX - 1}"' in html


def test_without_a_pyramid_the_mrc_serves_the_planes(held, app, monkeypatch):
    viewer = page(app, held, "axis=y&index=2&shown_axis=y", pyramid=False)
    assert viewer["image_url"] == f"/slices/{held['cid']}/rec.mrc?axis=y&index=2"
    monkeypatch.setattr("etdb.web.slice_page.MRC_YZ_LIMIT", 1000)
    big = page(app, held, "axis=x&shown_axis=x", pyramid=False)
    assert big["axis"] == "z"  # YZ is not offered
    html = env.get_template("_slice_viewer.html").render(slice_viewer=big)
    assert "needs the dataset" in html
