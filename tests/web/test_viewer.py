"""The 3-D viewer's server side over a real loopback portal: the client's files (types,
caching, CSP), the viewer route's state and its refusals (tests/web/viewer_site.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import unquote

import httpx
import pytest

from etdb.web.security import PORTAL_POLICY, VIEWER_WORKER_POLICY
from etdb.web.viewer_client import CLIENT_PATH, client_folder
from tests.web.viewer_site import SHAPE, SID, VOXEL, ViewerSite, viewer_site


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ViewerSite]:
    with viewer_site(tmp_path_factory.mktemp("viewer")) as running:
        yield running


def test_client_files_types_caching_and_policy(site: ViewerSite) -> None:
    index = httpx.get(site(CLIENT_PATH))
    assert index.status_code == 200
    assert index.headers["cache-control"] == "no-cache"
    assert index.headers["content-security-policy"] == PORTAL_POLICY
    names = {p.name for p in client_folder().iterdir()}
    wasm = next(n for n in names if n.endswith(".wasm"))
    script = next(n for n in names if n.startswith("main.") and n.endswith(".js"))
    answer = httpx.get(site(CLIENT_PATH + wasm))
    assert answer.headers["content-type"] == "application/wasm"
    assert "immutable" in answer.headers["cache-control"]
    answer = httpx.get(site(CLIENT_PATH + script))
    assert answer.headers["content-type"].startswith("text/javascript")
    assert answer.headers["content-security-policy"] == VIEWER_WORKER_POLICY
    assert "connect-src 'self'" in VIEWER_WORKER_POLICY
    for path in ("/static/neuroglancer", "/static/neuroglancer/"):
        moved = httpx.get(site(path))
        assert moved.status_code == 301 and moved.headers["location"] == CLIENT_PATH
    assert httpx.get(site("/browse")).headers["content-security-policy"] == PORTAL_POLICY


def test_viewer_state_reads_the_pyramid(site: ViewerSite) -> None:
    answer = httpx.get(site(f"/tomogram/{site.pyramid_id}/viewer.json")).json()
    state = answer["state"]
    assert answer["url"].startswith(CLIENT_PATH + "#!")
    assert json.loads(unquote(answer["url"].split("#!", 1)[1])) == state
    (layer,) = state["layers"]
    assert layer["source"].startswith(f"zarr2://{site.url}/ipfs/")
    assert layer["source"].endswith(f"/{SID}.ome.zarr/")
    assert state["layout"] == "4panel"
    nz, ny, nx = SHAPE
    assert state["position"] == [nx / 2, ny / 2, nz / 2]
    assert state["dimensions"]["x"] == [pytest.approx(VOXEL * 1e-10), "m"]
    lo, hi = layer["shaderControls"]["normalized"]["range"]
    assert (lo, hi) == pytest.approx(site.window)
    redirect = httpx.get(site(f"/tomogram/{site.pyramid_id}/viewer"))
    assert redirect.status_code == 303 and redirect.headers["location"] == answer["url"]


def test_the_opening_zoom_fits_small_volumes_and_shows_a_level_one_to_one() -> None:
    from etdb.web.viewer import FIT_PIXELS, opening_zoom

    assert opening_zoom(192) == 192 / FIT_PIXELS  # small: fills the panel's fit
    for extent, zoom in ((401, 2.0), (600, 2.0), (1024, 4.0), (3000, 8.0), (8192, 32.0)):
        assert opening_zoom(extent) == zoom  # a power of two: one level's voxel per pixel
        assert FIT_PIXELS / 2 < extent / zoom <= FIT_PIXELS


def test_viewer_refusals(site: ViewerSite) -> None:
    plain = httpx.get(site(f"/tomogram/{site.plain_id}/viewer"))
    assert plain.status_code == 404 and "no OME-Zarr pyramid" in plain.text
    assert httpx.get(site("/tomogram/zzzzzz/viewer")).status_code == 404
    assert httpx.get(site(f"/tomogram/{'0' * 64}/viewer")).status_code == 404
    page = httpx.get(site(f"/tomogram/{site.pyramid_id}")).text
    assert 'id="viewer-3d" class="viewer-3d" hidden' in page
    assert 'id="viewer-3d"' not in httpx.get(site(f"/tomogram/{site.plain_id}")).text


def test_missing_client_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from etdb.web import viewer_client

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(viewer_client.ViewerClientMissing, match="neuroglancer"):
        viewer_client.client_folder()
