"""The slice viewer: MRC sections read from a real blockstore, rendered, cached, served.

Files are written by ``mrcfile`` (an independent writer; big-endian ones too), added to a real
``FSBlockstore`` with the UnixFS importer, and read back through the exporter. The expected
images are computed here from ``mrcfile``'s own reading of the same section, so the test
checks the byte order, mode, signedness, offset, orientation and contrast of ``etdb.mrc``
against another implementation, not against itself.
"""

from __future__ import annotations

import dataclasses
import io
import math
import struct
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import mrcfile
import numpy as np
import pytest
from fastapi.testclient import TestClient
from mrcfile.dtypes import get_ext_header_dtype
from PIL import Image
from starlette.requests import Request

from etdb.api import create_app
from etdb.config import Settings
from etdb.content import exporter
from etdb.content.blockstore import FSBlockstore
from etdb.content.cid import CID
from etdb.content.profiles import UNIXFS_V0_2015
from etdb.content.unixfs import Importer
from etdb.index.catalog import open_catalog
from etdb.mrc import sections
from etdb.web.render import env
from etdb.web.slices import CACHE_BYTES, SliceCache, slice_viewer

NX, NY, NZ = 48, 40, 6
MODES = {0: "i1", 1: "i2", 2: "f4", 6: "u2", 12: "f2"}
ANGLES = [-40.0, -20.0, 0.5, 20.0, 40.0]
SMALL_CHUNKS = dataclasses.replace(UNIXFS_V0_2015, name="small", chunk_size=1000, max_links=4)


# -- files ----------------------------------------------------------------------------------------


def volume(dtype: str, nz: int = NZ, ny: int = NY, nx: int = NX, seed: int = 1) -> np.ndarray:
    """An asymmetric pattern (a ramp along x, a bright block near row 0, noise), so that a
    transposed, flipped, byte-swapped or wrongly signed reading shows."""
    rng = np.random.default_rng(seed)
    kind = np.dtype(dtype)
    lo, hi = (-100.0, 100.0) if kind.kind in "if" else (0.0, 200.0)
    if kind.kind in "iu":
        info = np.iinfo(kind)
        lo, hi = max(lo, info.min), min(hi, info.max)
    ramp = np.linspace(lo, hi, nx)[None, None, :] * np.ones((nz, ny, 1))
    ramp[:, 2:8, 3:12] = hi
    ramp += rng.normal(0, (hi - lo) / 20, ramp.shape)
    ramp += np.arange(nz)[:, None, None] * (hi - lo) / 50  # sections differ
    return np.clip(ramp, lo, hi).astype(dtype)


def write_mrc(path: Path, data: np.ndarray, *, stack: bool = False, voxel: float = 2.5) -> None:
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data)
        if stack:
            mrc.set_image_stack()
        mrc.voxel_size = voxel


def write_fei_tilt_series(path: Path, data: np.ndarray, angles: list[float]) -> None:
    ext = np.zeros(len(angles), dtype=get_ext_header_dtype(b"FEI1"))
    ext["Metadata size"] = ext.dtype.itemsize
    ext["Alpha tilt"] = angles
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data)
        mrc.set_image_stack()
        mrc.header.exttyp = b"FEI1"
        mrc.set_extended_header(ext)


def patch(path: Path, offset: int, fmt: str, *values: Any) -> None:
    with path.open("r+b") as fh:
        fh.seek(offset)
        fh.write(struct.pack(fmt, *values))


def section_of(path: Path, z: int) -> np.ndarray:
    """What mrcfile reads for section z (native byte order, float64)."""
    with mrcfile.open(path, permissive=True) as mrc:
        data = mrc.data if mrc.data.ndim == 3 else mrc.data[None]
        return np.asarray(data[z], dtype=np.float64)


def expected_image(section: np.ndarray, max_size: int = 1024) -> np.ndarray:
    """The rendering the viewer promises, written independently: area-average boxes of the
    smallest integer factor, 0.5/99.5 percentiles of what is shown, rounded to the nearest
    level, rows flipped (MRC rows run bottom-up)."""
    ny, nx = section.shape
    f = math.ceil(max(ny, nx) / max_size)
    if f > 1:
        shown = np.array(
            [
                [section[y : y + f, x : x + f].mean() for x in range(0, nx, f)]
                for y in range(0, ny, f)
            ]
        )
    else:
        shown = section
    # Percentiles of a regular grid of at most 2^18 pixels (of every pixel for small images).
    step = max(1, math.ceil(math.sqrt(shown.size / 2**18)))
    lo, hi = np.percentile(shown[::step, ::step], [0.5, 99.5])
    if hi <= lo:
        return np.full(shown.shape, 128, np.uint8)
    return np.clip(np.rint((shown - lo) * (255 / (hi - lo))), 0, 255).astype(np.uint8)[::-1]


def decode(png: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.mode == "L"
    return np.asarray(image)


def assert_same_image(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    diff = np.abs(got.astype(int) - want.astype(int))
    # float32 there, float64 here: a value on a level boundary may round apart; a wrong byte
    # order, sign, offset or orientation moves most pixels by far more.
    assert diff.max() <= 1, f"max difference {diff.max()}"
    assert (diff == 0).mean() > 0.95


# -- fixtures -------------------------------------------------------------------------------------


class CountingStore:
    """The blockstore, counting the bytes of the blocks read (how much of a file was read)."""

    def __init__(self, store: FSBlockstore) -> None:
        self.store = store
        self.bytes_read = 0

    def get(self, cid: CID) -> bytes:
        block = self.store.get(cid)
        self.bytes_read += len(block)
        return block

    def has(self, cid: CID) -> bool:
        return self.store.has(cid)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A folder of MRC files of every mode and byte order, plus odd ones, in a blockstore."""
    root = tmp_path_factory.mktemp("slices")
    folder = root / "dataset"
    (folder / "modes").mkdir(parents=True)
    for mode, code in MODES.items():
        for order in "<>":
            name = f"m{mode}{'le' if order == '<' else 'be'}.mrc"
            write_mrc(
                folder / "modes" / name, volume(code).astype(np.dtype(code).newbyteorder(order))
            )
    raw = folder / "rawdata"
    raw.mkdir()
    write_fei_tilt_series(raw / "fei.mrc", volume("i2", nz=len(ANGLES)), ANGLES)
    write_mrc(raw / "plain.st", volume("i2", nz=len(ANGLES), seed=3), stack=True)
    (raw / "plain.rawtlt").write_text("".join(f"{a:.2f}\n" for a in ANGLES))
    odd = folder / "odd"
    odd.mkdir()
    # An IMOD file from before MRC2014: mode 0 without IMOD's "signed" flag is unsigned.
    write_mrc(odd / "imod_bytes.mrc", volume("i1", seed=4))
    patch(odd / "imod_bytes.mrc", 152, "<ii", 1146047817, 0)
    # Another program's extended header (not FEI/SerialEM): skipped by nsymbt, not parsed.
    with mrcfile.new(odd / "ccp4ext.mrc") as mrc:
        mrc.set_data(volume("f4", seed=5))
        mrc.header.exttyp = b"CCP4"
        mrc.set_extended_header(np.frombuffer(bytes(range(256)) * 20, dtype="V1"))
    write_mrc(odd / "large.rec", volume("f4", nz=3, ny=300, nx=500, seed=6))
    write_mrc(odd / "constant.mrc", np.full((2, 16, 16), 7, np.float32))
    (odd / "notes.txt").write_text("not an MRC file " * 100)
    write_mrc(odd / "truncated.mrc", volume("f4", seed=7))
    with (odd / "truncated.mrc").open("r+b") as fh:
        fh.truncate(1024 + NX * NY * 4 * 3 + 100)
    write_mrc(odd / "huge.mrc", np.zeros((1, 4, 4), np.float32))
    patch(odd / "huge.mrc", 0, "<ii", 20000, 20000)
    store = FSBlockstore(root / "blocks")
    # Small, unaligned chunks and a narrow DAG: sections straddle many leaves and levels.
    result = Importer(SMALL_CHUNKS, store).add_path(folder)
    store.sync()
    return {"folder": folder, "cid": str(result.cid), "store": store, "root": root}


@pytest.fixture
def app(dataset: dict[str, Any], tmp_path: Path) -> Iterator[Any]:
    catalog = open_catalog(f"sqlite:///{tmp_path / 'catalog.sqlite3'}")
    app = create_app(catalog, settings=Settings(home=tmp_path))
    app.state.etdb.extra["blockstore"] = CountingStore(dataset["store"])
    yield app
    catalog.close()


@pytest.fixture
def client(app: Any) -> TestClient:
    return TestClient(app)


def url(dataset: dict[str, Any], path: str, **query: Any) -> str:
    q = "&".join(f"{k}={v}" for k, v in query.items())
    return f"/slices/{dataset['cid']}/{path}" + (f"?{q}" if q else "")


# -- sections -------------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["le", "be"])
@pytest.mark.parametrize("mode", sorted(MODES))
def test_every_mode_and_byte_order_renders_as_mrcfile_reads_it(dataset, client, mode, order):
    path = f"modes/m{mode}{order}.mrc"
    for z in (0, 3, NZ - 1):
        response = client.get(url(dataset, path, z=z))
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "image/png"
        want = expected_image(section_of(dataset["folder"] / path, z))
        assert_same_image(decode(response.content), want)


def test_sections_differ_and_the_default_is_the_middle(dataset, client):
    path = "modes/m2le.mrc"
    middle = client.get(url(dataset, path)).content
    assert middle == client.get(url(dataset, path, z=NZ // 2)).content
    assert middle != client.get(url(dataset, path, z=0)).content


def test_mode_0_from_imod_without_its_signed_flag_is_unsigned(dataset, client):
    path = "odd/imod_bytes.mrc"
    response = client.get(url(dataset, path, z=1))
    signed = section_of(dataset["folder"] / path, 1)  # mrcfile reads mode 0 as int8
    unsigned = signed.astype(np.int8).view(np.uint8).astype(np.float64)
    assert_same_image(decode(response.content), expected_image(unsigned))


def test_an_unknown_extended_header_is_skipped(dataset, client):
    path = "odd/ccp4ext.mrc"
    assert client.get(url(dataset, path, info=1)).json()["kind"] == "volume"
    response = client.get(url(dataset, path, z=2))
    assert_same_image(
        decode(response.content), expected_image(section_of(dataset["folder"] / path, 2))
    )


def test_size_downsamples_with_a_box_filter(dataset, client):
    path = "odd/large.rec"
    section = section_of(dataset["folder"] / path, 1)
    full = decode(client.get(url(dataset, path, z=1)).content)
    assert full.shape == (300, 500)
    assert_same_image(full, expected_image(section))
    small = decode(client.get(url(dataset, path, z=1, size=120)).content)
    assert small.shape == (math.ceil(300 / 5), 500 // 5)  # factor ceil(500 / 120) = 5
    assert_same_image(small, expected_image(section, 120))


def test_a_constant_section_is_mid_grey(dataset, client):
    image = decode(client.get(url(dataset, "odd/constant.mrc", z=0)).content)
    assert image.shape == (16, 16) and (image == 128).all()


# -- info -----------------------------------------------------------------------------------------


def test_info_describes_a_volume(dataset, client):
    response = client.get(url(dataset, "modes/m1be.mrc", info=1))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    info = response.json()
    assert {k: info[k] for k in ("nx", "ny", "nz", "mode", "kind", "default_z")} == {
        "nx": NX, "ny": NY, "nz": NZ, "mode": 1, "kind": "volume", "default_z": NZ // 2,
    }  # fmt: skip
    assert info["voxel_size"] == [2.5, 2.5, 2.5]
    assert info["tilt_angles"] is None and info["file"] == "modes/m1be.mrc"


def test_tilt_angles_from_an_fei_extended_header(dataset, client):
    path = "rawdata/fei.mrc"
    info = client.get(url(dataset, path, info=1)).json()
    assert info["kind"] == "tilt series" and info["nz"] == len(ANGLES)
    assert info["tilt_angles"] == ANGLES
    assert info["default_z"] == 2  # the least tilted image, not just the middle index
    response = client.get(url(dataset, path, z=4))
    assert response.headers["x-tilt-angle"] == "40"
    # The data start after the FEI extended header (nsymbt bytes).
    assert_same_image(
        decode(response.content), expected_image(section_of(dataset["folder"] / path, 4))
    )


def test_tilt_angles_from_a_rawtlt_beside_the_stack(dataset, client):
    info = client.get(url(dataset, "rawdata/plain.st", info=1)).json()
    assert info["kind"] == "tilt series" and info["tilt_angles"] == ANGLES


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"z": -1}, "z -1 is out of range: the file has sections 0 to 5"),
        ({"z": NZ}, "z 6 is out of range"),
        ({"z": "two"}, "z: must be an integer"),
        ({"size": 4096}, "size: must be between 16 and 2048"),
    ],
)
def test_bad_parameters_are_400_and_named(dataset, client, query, message):
    response = client.get(
        url(dataset, "modes/m2le.mrc", **query), headers={"Accept": "application/json"}
    )
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("odd/notes.txt", "odd/notes.txt: not an MRC file"),
        ("odd/truncated.mrc", "odd/truncated.mrc: truncated"),
        ("odd/huge.mrc", "sections of 20000 x 20000 pixels are too large"),
        ("odd", "not a file"),
    ],
)
def test_files_that_cannot_be_shown_are_400(dataset, client, path, message):
    for query in ({"z": 0}, {"info": 1}):
        response = client.get(url(dataset, path, **query), headers={"Accept": "application/json"})
        assert response.status_code == 400, response.text
        assert message in response.json()["error"]["message"]


def test_unknown_content_is_404(dataset, client):
    missing = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"  # not in the store
    assert client.get(f"/slices/{missing}/x.mrc?z=0").status_code == 404
    assert client.get(url(dataset, "modes/nothing.mrc", z=0)).status_code == 404
    page = client.get(url(dataset, "modes/nothing.mrc"))
    assert "Page not found" in page.text  # the portal's friendly page, for a browser


def test_a_server_without_a_blockstore_answers_404(tmp_path):
    catalog = open_catalog(f"sqlite:///{tmp_path / 'catalog.sqlite3'}")
    try:
        client = TestClient(create_app(catalog, settings=Settings(home=tmp_path / "none")))
        cid = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
        response = client.get(f"/slices/{cid}/a.mrc", headers={"Accept": "application/json"})
        assert response.status_code == 404
        assert not (tmp_path / "none").exists()  # never created by a read
    finally:
        catalog.close()


# -- reading only what is needed ------------------------------------------------------------------


class CountingReader(io.RawIOBase):
    """Wraps the exporter's reader and counts the bytes read through it."""

    def __init__(self, inner: io.RawIOBase) -> None:
        self.inner = inner
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self.inner.seek(offset, whence)

    def tell(self) -> int:
        return self.inner.tell()

    def readinto(self, b: Any) -> int:
        n = self.inner.readinto(b)
        self.bytes_read += n or 0
        return n


@pytest.fixture(scope="module")
def sparse(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A 200 MB float32 volume that is a hole except for section 10 (a gradient)."""
    root = tmp_path_factory.mktemp("sparse")
    nx = ny = 1024
    nz = 50
    path = root / "big.rec"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.zeros((1, 1, 1), np.float32))  # a header; dimensions set below
    header = bytearray(path.read_bytes()[:1024])
    struct.pack_into("<iii", header, 0, nx, ny, nz)
    struct.pack_into("<iii", header, 28, nx, ny, nz)  # mx, my, mz
    section = (np.arange(ny, dtype=np.float32)[:, None] + np.arange(nx, dtype=np.float32)) / 7
    with path.open("wb") as fh:
        fh.write(header)
        fh.truncate(1024 + nx * ny * nz * 4)
        fh.seek(1024 + 10 * nx * ny * 4)
        fh.write(section.tobytes())
    store = FSBlockstore(root / "blocks")
    cid = Importer("kubo-v1", store).add_path(path).cid
    store.sync()
    return {"path": path, "cid": str(cid), "store": store, "section": section, "nx": nx}


def test_a_section_of_a_large_file_reads_only_that_section(sparse):
    reader = CountingReader(exporter.open_file(sparse["store"], sparse["cid"]))
    size = sparse["path"].stat().st_size
    layout = sections.read_layout(reader, size, name="big.rec")
    assert (layout.nx, layout.ny, layout.nz) == (1024, 1024, 50)
    header_bytes = reader.bytes_read
    assert header_bytes == 1024
    section = sections.read_section(reader, layout, 10, name="big.rec")
    assert reader.bytes_read - header_bytes == layout.section_bytes  # one section: 4 MiB of 200 MB
    np.testing.assert_array_equal(section, sparse["section"])


def test_the_route_reads_a_few_blocks_of_a_large_file(sparse, tmp_path):
    catalog = open_catalog(f"sqlite:///{tmp_path / 'catalog.sqlite3'}")
    try:
        app = create_app(catalog, settings=Settings(home=tmp_path))
        store = CountingStore(sparse["store"])
        app.state.etdb.extra["blockstore"] = store
        client = TestClient(app)
        response = client.get(f"/slices/{sparse['cid']}?z=10")
        assert response.status_code == 200
        section_bytes = 1024 * 1024 * 4
        # The section, the leaf holding the header, and the few internal nodes above them.
        assert section_bytes <= store.bytes_read < section_bytes + 3 * 256 * 1024
        assert_same_image(
            decode(response.content), expected_image(sparse["section"].astype(np.float64))
        )
        hole = client.get(f"/slices/{sparse['cid']}?z=40&size=256")
        assert (decode(hole.content) == 128).all()  # a hole reads as zeros: constant, mid grey
    finally:
        catalog.close()


# -- caching --------------------------------------------------------------------------------------


def test_a_cached_slice_is_identical_and_reads_nothing(dataset, app, client):
    path = url(dataset, "modes/m6be.mrc", z=2)
    first = client.get(path)
    store = app.state.etdb.extra["blockstore"]
    before = store.bytes_read
    second = client.get(path)
    assert second.content == first.content
    assert store.bytes_read == before  # the PNG came from the in-process cache
    assert first.headers["etag"] == second.headers["etag"]
    assert "immutable" in first.headers["cache-control"]
    revalidated = client.get(path, headers={"If-None-Match": first.headers["etag"]})
    assert revalidated.status_code == 304 and revalidated.content == b""
    other = client.get(url(dataset, "modes/m6be.mrc", z=3))
    assert other.headers["etag"] != first.headers["etag"]


def test_the_cache_is_bounded_in_bytes():
    cache = SliceCache(max_bytes=100)
    for i in range(10):
        cache.put(i, bytes(30), 30)
    assert cache.size <= 100 and len(cache) == 3
    assert cache.get(9) is not None and cache.get(0) is None
    cache.get(7)  # recently used: survives the next eviction
    cache.put("x", bytes(30), 30)
    assert cache.get(7) is not None and cache.get(8) is None
    cache.put("too big", bytes(200), 200)
    assert cache.get("too big") is None and cache.size <= 100
    assert CACHE_BYTES == 64 << 20


# -- the widget -----------------------------------------------------------------------------------


def page_request(app: Any, query: str = "") -> Request:
    scope = {"type": "http", "method": "GET", "path": "/tomogram/x", "headers": [],
             "query_string": query.encode(), "app": app}  # fmt: skip
    return Request(scope)


def viewer_record(cid: str) -> dict[str, Any]:
    files = [
        {"fname": "keyimg_x.jpg", "subtype": "keyimg"},
        {
            "fname": "rawdata/fei.mrc",
            "subtype": "tiltSeries",
            "dname": 'fei<script>alert(1)</script>"',
        },
        {"fname": "odd/large.rec", "subtype": "reconstruction"},
        {"fname": "3dimage_1/gone.rec", "subtype": "reconstruction"},  # not in this blockstore
        {"fname": "odd/notes.txt", "subtype": "reconstruction"},  # not an MRC name
    ]
    return {"storage": {"network": "ipfs", "location": cid, "files": files}}


class Elements(HTMLParser):
    """Every start tag's attributes, by tag name."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def by_id(self, id_: str) -> dict[str, str | None]:
        return next(attrs for _, attrs in self.tags if attrs.get("id") == id_)


def test_the_viewer_lists_reconstructions_then_tilt_series(dataset, app):
    cid = dataset["cid"]
    viewer = slice_viewer(page_request(app), viewer_record(cid))
    assert viewer is not None
    assert [f["value"] for f in viewer["files"]] == [
        f"{cid}/odd/large.rec", f"{cid}/3dimage_1/gone.rec", f"{cid}/rawdata/fei.mrc",
    ]  # fmt: skip
    assert [f["available"] for f in viewer["files"]] == [True, False, True]
    assert viewer["current"] == f"{cid}/odd/large.rec" and viewer["z"] == 1  # 3 sections
    assert viewer["image_url"] == f"/slices/{cid}/odd/large.rec?z=1"
    assert slice_viewer(page_request(app), {"storage": {"location": cid, "files": []}}) is None


def test_the_viewer_follows_the_page_query_without_javascript(dataset, app):
    cid = dataset["cid"]
    query = f"slice_file={cid}/rawdata/fei.mrc&z=99"
    viewer = slice_viewer(page_request(app, query), viewer_record(cid))
    assert viewer["current"] == f"{cid}/rawdata/fei.mrc"
    assert viewer["z"] == len(ANGLES) - 1  # clamped to the file's sections


def test_the_widget_markup(dataset, app, client):
    cid = dataset["cid"]
    viewer = slice_viewer(
        page_request(app, f"slice_file={cid}/rawdata/fei.mrc&z=3"), viewer_record(cid)
    )
    html = env.get_template("_slice_viewer.html").render(slice_viewer=viewer)
    elements = Elements(html)
    assert elements.by_id("slice-file")["name"] == "slice_file"
    z = elements.by_id("slice-z")
    assert (z["type"], z["min"], z["max"], z["value"]) == ("range", "0", "4", "3")
    image = elements.by_id("slice-image")
    assert image["alt"] == 'slice 3 of 5 of fei<script>alert(1)</script>" (tilt series)'
    assert client.get(image["src"]).headers["content-type"] == "image/png"
    assert client.get(elements.by_id("slice-download")["href"]).status_code == 200
    assert elements.by_id("slice-file-download")["href"] == f"/ipfs/{cid}/rawdata/fei.mrc"
    options = [a for tag, a in elements.tags if tag == "option"]
    assert ["selected" in o for o in options[:3]] == [False, False, True]  # then the axes
    assert [(o["value"], "selected" in o) for o in options[3:]] == [
        ("z", True),
        ("y", False),
        ("x", False),
    ]
    # Untrusted names are escaped; no inline script or style (the CSP would block them).
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)" in html
    scripts = [a for tag, a in elements.tags if tag == "script"]
    assert scripts and all(a.get("src", "").startswith("/static/slices.js") for a in scripts)
    assert not any("style" in a for _, a in elements.tags) and "<style" not in html
    for asset in ("/static/slices.js", "/static/slices.css"):
        assert client.get(asset).status_code == 200


def test_a_file_not_stored_here_is_explained_not_shown(dataset, app):
    cid = dataset["cid"]
    query = f"slice_file={cid}/3dimage_1/gone.rec"
    html = env.get_template("_slice_viewer.html").render(
        slice_viewer=slice_viewer(page_request(app, query), viewer_record(cid))
    )
    elements = Elements(html)
    assert not any(a.get("id") in ("slice-image", "slice-z") for _, a in elements.tags)
    assert "not stored on this server" in html
