"""The 3-D viewer in a real browser: Debian's Chromium (Playwright) against a loopback portal
holding a dataset whose pyramid was built by ``etdb.mrc.pyramid`` (tests/web/viewer_site.py).

WebGL in headless Chromium is SwiftShader (software); it is asked for explicitly
(``--use-angle=swiftshader --enable-unsafe-swiftshader``), in a browser of its own, so the
other browser tests keep their flags. The no-WebGL browser is ``--disable-gpu
--disable-software-rasterizer`` (no GPU and no software GL: ``getContext("webgl2")`` is null).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.web.browser import CHROMIUM, CHROMIUM_ARGS, playwright_or_skip
from tests.web.viewer_site import ViewerSite, viewer_site

pytestmark = pytest.mark.browser

BASE_ARGS = [a for a in CHROMIUM_ARGS if a != "--disable-gpu"]
WEBGL_ARGS = [*BASE_ARGS, "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
NO_WEBGL_ARGS = [*BASE_ARGS, "--disable-gpu", "--disable-software-rasterizer"]
TIMEOUT_MS = 60_000
#: Neuroglancer probes a zarr v2 URL for an array before reading it as a group: this 404 is its
#: expected answer (the pyramid's root is a group), not a missing file.
PROBES = (".zarray", ".zgroup", "zarr.json")
METADATA = (".zarray", ".zattrs", ".zgroup", "zarr.json")
#: Records CSP violations where Chromium reports them (the page; workers log to the console).
WATCH_CSP = """window.__csp = [];
document.addEventListener("securitypolicyviolation",
  e => window.__csp.push(e.violatedDirective + " " + e.blockedURI));"""


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    sync_playwright = playwright_or_skip()
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def site(playwright: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ViewerSite]:
    with viewer_site(tmp_path_factory.mktemp("viewer")) as running:
        yield running


def launch(playwright: Any, args: list[str]) -> Any:
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)


def canvas_variance(png: bytes, box: tuple[int, int, int, int]) -> float:
    """Pixel variance (grey levels) inside ``box`` of a screenshot."""
    import numpy as np
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("L").crop(box)
    return float(np.asarray(image, dtype=np.float64).var())


def wait_for_volume(page: Any, requests: list[str]) -> None:
    """Until chunks were fetched and Neuroglancer asks for no more (none new for 2 s), so the
    screenshot shows what arrived."""
    page.wait_for_function("() => document.querySelector('canvas') !== null", timeout=TIMEOUT_MS)
    page.wait_for_timeout(500)
    deadline_checks = TIMEOUT_MS // 250
    seen = -1
    stable = 0
    for _ in range(deadline_checks):
        chunks = sum(1 for u in requests if ".ome.zarr/" in u and not u.endswith(METADATA))
        if chunks and chunks == seen:
            stable += 1
            if stable >= 8:  # 2 s without a new chunk request
                return
        else:
            stable = 0
        seen = chunks
        page.wait_for_timeout(250)
    raise AssertionError(f"chunks kept coming or never came: {seen}")


def test_viewer_opens_from_the_dataset_page_and_shows_the_volume(
    playwright: Any, site: ViewerSite, tmp_path: Path
) -> None:
    browser = launch(playwright, WEBGL_ARGS)
    try:
        context = browser.new_context(viewport={"width": 1366, "height": 900})
        requests: list[str] = []
        failed: list[str] = []
        console: list[str] = []
        context.on("request", lambda r: requests.append(r.url))
        context.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
        page = context.new_page()
        page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: console.append(str(exc)))
        page.add_init_script(WATCH_CSP)
        page.goto(site(f"/tomogram/{site.pyramid_id}"))
        link = page.locator("#viewer-3d-link")
        link.wait_for(state="visible", timeout=TIMEOUT_MS)
        link.click()
        page.wait_for_url("**/static/neuroglancer/v/etdb/#!*", timeout=TIMEOUT_MS)
        wait_for_volume(page, requests)
        page.wait_for_timeout(500)
        png = page.screenshot()
        (tmp_path / "viewer.png").write_bytes(png)

        origin = urlsplit(site.url)
        foreign = [u for u in requests
                   if urlsplit(u).scheme not in ("data", "blob")
                   and urlsplit(u).netloc != origin.netloc]  # fmt: skip
        assert foreign == [], foreign
        assert any(".ome.zarr/0/" in u or ".ome.zarr/1/" in u for u in requests), requests
        assert [u for u in failed if not u.endswith(PROBES)] == []
        assert page.evaluate("() => window.__csp") == []
        assert [m for m in console if "Content Security Policy" in m] == []
        # Every error the console shows is a probe's 404 (Chromium logs each failed fetch).
        assert [m for m in console if "404" not in m] == []
        # The section panels show the volume: a box inside each (clear of the crosshair and
        # the bounding-box outline, at this viewport) has the phantom's structure, not one
        # flat colour (a panel without data is uniform).
        for box in ((150, 100, 330, 250), (830, 165, 1010, 250), (930, 530, 1010, 670)):
            assert canvas_variance(png, box) > 200, box
    finally:
        browser.close()


def test_viewer_route_without_a_pyramid_is_a_404_page(playwright: Any, site: ViewerSite) -> None:
    browser = launch(playwright, WEBGL_ARGS)
    try:
        page = browser.new_page()
        page.goto(site(f"/tomogram/{site.plain_id}"))
        assert page.locator("#viewer-3d").count() == 0
        response = page.goto(site(f"/tomogram/{site.plain_id}/viewer"))
        assert response is not None and response.status == 404
        assert "no OME-Zarr pyramid" in page.content()
    finally:
        browser.close()


def test_without_webgl_no_3d_link_and_the_slice_viewer_works(
    playwright: Any, site: ViewerSite
) -> None:
    browser = launch(playwright, NO_WEBGL_ARGS)
    try:
        page = browser.new_page()
        assert (
            page.evaluate("() => !!document.createElement('canvas').getContext('webgl2')") is False
        )
        page.goto(site(f"/tomogram/{site.pyramid_id}"))
        page.wait_for_load_state("load")
        assert page.locator("#viewer-3d").count() == 1
        assert not page.locator("#viewer-3d").is_visible()
        image = page.locator("#slice-image")
        image.wait_for(state="visible", timeout=TIMEOUT_MS)
        page.wait_for_function(
            "() => { const i = document.getElementById('slice-image');"
            " return i.complete && i.naturalWidth > 0; }",
            timeout=TIMEOUT_MS,
        )
    finally:
        browser.close()
