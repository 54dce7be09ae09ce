"""The path gateway over a real blockstore holding a dataset imported as `etdb add` does.

Expected bytes come from the files on disk, expected CIDs from the importer: nothing here is
a hard-coded answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from etdb.api import create_app
from etdb.config import Settings
from etdb.content.blockstore import FSBlockstore
from etdb.content.cid import CID
from etdb.content.exporter import load_node, resolve
from etdb.content.unixfs import Importer
from etdb.index.catalog import open_catalog
from etdb.web.gateway import GatewayState
from etdb.web.gateway_http import ByteRange, RangeNotSatisfiable, parse_range
from etdb.web.gateway_stream import StreamSlots, UnixFSStream

HOSTILE = '<img src=x onerror=alert(1)>&"q".txt'


@dataclass
class Dataset:
    root: CID
    folder: Path
    store_path: Path

    def bytes_of(self, rel: str) -> bytes:
        return (self.folder / rel).read_bytes()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    home = tmp_path_factory.mktemp("gw-home")
    folder = tmp_path_factory.mktemp("gw-data") / "et2020-01-01-1"
    (folder / "rawdata").mkdir(parents=True)
    seed = hashlib.sha256(b"etdb gateway test").digest()
    # 1.3 MB: five 256 KiB leaves under one root, so ranges cross leaf boundaries.
    (folder / "rawdata" / "series.mrc").write_bytes(_noise(seed, 1_300_000))
    (folder / "keymov.mp4").write_bytes(_noise(seed + b"mov", 600_000))
    (folder / "keyimg.jpg").write_bytes(b"\xff\xd8\xff\xe0" + _noise(seed + b"img", 5000))
    (folder / "notes.txt").write_text("tilt series notes\n", encoding="utf-8")
    (folder / "index.html").write_text("<script>alert('owned')</script>", encoding="utf-8")
    (folder / "empty.dat").write_bytes(b"")
    (folder / HOSTILE).write_text("hostile name", encoding="utf-8")
    store_path = home / "blocks"
    with FSBlockstore(store_path) as store:
        result = Importer("kubo-v1", store).add_path(folder)
    return Dataset(result.cid, folder, store_path)


def _noise(seed: bytes, size: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(seed + counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(out[:size])


@pytest.fixture(scope="module")
def client(dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    home = dataset.store_path.parent
    catalog = open_catalog(f"sqlite:///{tmp_path_factory.mktemp('gw-cat') / 'c.sqlite3'}")
    settings = Settings(home=home, ledger="local:///nowhere/ledger.sqlite3")
    app = create_app(catalog, settings=settings)
    with TestClient(app) as c:
        yield c
    catalog.close()


def url(dataset: Dataset, rel: str = "") -> str:
    return f"/ipfs/{dataset.root}/{quote(rel)}" if rel else f"/ipfs/{dataset.root}"


def file_cid(dataset: Dataset, rel: str) -> str:
    with FSBlockstore(dataset.store_path, create=False) as store:
        return str(resolve(store, f"{dataset.root}/{rel}")[0])


# -- whole files -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rel", "content_type"),
    [
        ("rawdata/series.mrc", "application/octet-stream"),
        ("keymov.mp4", "video/mp4"),
        ("keyimg.jpg", "image/jpeg"),
        ("notes.txt", "text/plain; charset=utf-8"),
    ],
)
def test_file_bytes_types_and_validators(
    client: TestClient, dataset: Dataset, rel: str, content_type: str
) -> None:
    r = client.get(url(dataset, rel), headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200
    assert r.content == dataset.bytes_of(rel)
    assert r.headers["content-type"] == content_type
    assert r.headers["content-length"] == str(len(dataset.bytes_of(rel)))
    assert "content-encoding" not in r.headers  # stored bytes, never re-encoded
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["etag"] == f'"{file_cid(dataset, rel)}"'
    assert r.headers["cache-control"] == "public, max-age=29030400, immutable"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in r.headers["content-security-policy"]


def test_the_etag_is_the_cid_of_the_bytes(client: TestClient, dataset: Dataset) -> None:
    """Re-importing the bytes we were sent gives the CID the ETag names."""
    r = client.get(url(dataset, "rawdata/series.mrc"))
    again = Importer("kubo-v1").add_bytes(r.content).cid
    assert r.headers["etag"] == f'"{again}"'


def test_head_sends_headers_only(client: TestClient, dataset: Dataset) -> None:
    r = client.head(url(dataset, "rawdata/series.mrc"))
    assert r.status_code == 200
    assert r.content == b""
    assert r.headers["content-length"] == str(len(dataset.bytes_of("rawdata/series.mrc")))


def test_empty_file(client: TestClient, dataset: Dataset) -> None:
    r = client.get(url(dataset, "empty.dat"))
    assert (r.status_code, r.content, r.headers["content-length"]) == (200, b"", "0")
    assert client.get(url(dataset, "empty.dat"), headers={"Range": "bytes=0-"}).status_code == 416


def test_if_none_match_is_304(client: TestClient, dataset: Dataset) -> None:
    tag = client.head(url(dataset, "keyimg.jpg")).headers["etag"]
    for header in (tag, f"W/{tag}", f'"other", {tag}', "*"):
        r = client.get(url(dataset, "keyimg.jpg"), headers={"If-None-Match": header})
        assert r.status_code == 304, header
        assert r.content == b""
        assert r.headers["etag"] == tag
    r = client.get(url(dataset, "keyimg.jpg"), headers={"If-None-Match": '"other"'})
    assert r.status_code == 200


# -- ranges ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    ["0-0", "0-99", "262143-262145", "1000000-", "-1", "-5000", "1299990-2000000", "5-1299999"],
)
def test_single_ranges_match_the_file(client: TestClient, dataset: Dataset, spec: str) -> None:
    data = dataset.bytes_of("rawdata/series.mrc")
    r = client.get(url(dataset, "rawdata/series.mrc"), headers={"Range": f"bytes={spec}"})
    first, _, last = spec.partition("-")
    if not first:
        start, end = len(data) - int(last), len(data)
    else:
        start, end = int(first), min(int(last) + 1 if last else len(data), len(data))
    assert r.status_code == 206
    assert r.content == data[start:end]
    assert r.headers["content-range"] == f"bytes {start}-{end - 1}/{len(data)}"
    assert r.headers["content-length"] == str(end - start)


def test_video_seeks_as_browsers_ask(client: TestClient, dataset: Dataset) -> None:
    """Chromium opens a <video> with "bytes=0-" and then seeks with open-ended ranges."""
    data = dataset.bytes_of("keymov.mp4")
    first = client.get(url(dataset, "keymov.mp4"), headers={"Range": "bytes=0-"})
    assert first.status_code == 206
    assert first.headers["content-type"] == "video/mp4"
    assert first.headers["content-range"] == f"bytes 0-{len(data) - 1}/{len(data)}"
    assert first.content == data
    seek = client.get(url(dataset, "keymov.mp4"), headers={"Range": "bytes=300000-"})
    assert seek.content == data[300000:]


def test_unsatisfiable_range_is_416(client: TestClient, dataset: Dataset) -> None:
    size = len(dataset.bytes_of("notes.txt"))
    for spec in (f"{size}-", f"{size + 10}-{size + 20}", "-0"):
        r = client.get(url(dataset, "notes.txt"), headers={"Range": f"bytes={spec}"})
        assert r.status_code == 416, spec
        assert r.headers["content-range"] == f"bytes */{size}"


@pytest.mark.parametrize("header", ["bytes=0-1,5-6", "items=0-5", "bytes=5-1", "bytes=x-"])
def test_ranges_we_ignore_get_the_whole_file(
    client: TestClient, dataset: Dataset, header: str
) -> None:
    r = client.get(url(dataset, "notes.txt"), headers={"Range": header})
    assert r.status_code == 200
    assert r.content == dataset.bytes_of("notes.txt")


def test_if_range(client: TestClient, dataset: Dataset) -> None:
    target = url(dataset, "notes.txt")
    tag = client.head(target).headers["etag"]
    current = client.get(target, headers={"Range": "bytes=0-3", "If-Range": tag})
    assert (current.status_code, current.content) == (206, b"tilt")
    stale = client.get(target, headers={"Range": "bytes=0-3", "If-Range": '"bafyold"'})
    assert stale.status_code == 200
    assert stale.content == dataset.bytes_of("notes.txt")


def test_parse_range_rules() -> None:
    assert parse_range(None, 10) is None
    assert parse_range("bytes=2-", 10) == ByteRange(2, 10, 10)
    assert parse_range("bytes=-20", 10) == ByteRange(0, 10, 10)
    assert parse_range("Bytes=0-0", 10) == ByteRange(0, 1, 10)  # units are case-insensitive
    assert parse_range("bytes=1-2-3", 10) is None  # malformed: ignored, whole file
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=10-", 10)


# -- names, dispositions, formats ------------------------------------------------------------


def test_filename_sets_content_disposition(client: TestClient, dataset: Dataset) -> None:
    cid = file_cid(dataset, "keymov.mp4")
    r = client.get(f"/ipfs/{cid}", params={"filename": 'my "movie".mp4'})
    assert r.headers["content-type"] == "video/mp4"  # the type follows the given name
    disposition = r.headers["content-disposition"]
    assert disposition.startswith("inline; ")
    assert 'filename="my _movie_.mp4"' in disposition
    assert "filename*=UTF-8''my%20%22movie%22.mp4" in disposition
    r = client.get(f"/ipfs/{cid}", params={"filename": "Ünïcode.mp4", "download": "true"})
    assert r.headers["content-disposition"].startswith("attachment; ")
    assert "filename*=UTF-8''%C3%9Cn%C3%AFcode.mp4" in r.headers["content-disposition"]
    assert client.get(f"/ipfs/{cid}").headers["content-type"] == "application/octet-stream"


def test_dataset_html_is_served_as_text(client: TestClient, dataset: Dataset) -> None:
    r = client.get(url(dataset, "index.html"))
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.content == dataset.bytes_of("index.html")


def test_formats_this_gateway_does_not_make_are_refused(
    client: TestClient, dataset: Dataset
) -> None:
    """Never UnixFS bytes for a format a client asked for (raw and CAR: test_gateway_trustless)."""
    r = client.get(url(dataset, "notes.txt"), params={"format": "tar"})
    assert r.status_code == 400
    assert r.json()["error"]["parameter"] == "format"
    assert "format=tar" in r.json()["error"]["message"]
    r = client.get(url(dataset), headers={"Accept": "application/vnd.ipld.dag-json"})
    assert r.status_code == 406
    assert "application/vnd.ipld.dag-json" in r.json()["error"]["message"]


# -- directories ----------------------------------------------------------------------------


def test_directory_listing_escapes_names_and_does_not_render_index_html(
    client: TestClient, dataset: Dataset
) -> None:
    r = client.get(url(dataset))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "sandbox" in r.headers["content-security-policy"]
    html = r.text
    assert "<script>" not in html and "<img src=x" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;&amp;&#34;q&#34;.txt" in html
    assert f'href="/ipfs/{dataset.root}/{quote(HOSTILE, safe="")}"' in html
    for name in os.listdir(dataset.folder):
        assert f"/ipfs/{dataset.root}/{quote(name, safe='')}" in html
    assert "is listed, not shown as a web page" in html
    assert file_cid(dataset, "notes.txt") in html
    hostile = client.get(f"/ipfs/{dataset.root}/{quote(HOSTILE, safe='')}")
    assert hostile.content == b"hostile name"


def test_subdirectory_listing_links_up(client: TestClient, dataset: Dataset) -> None:
    r = client.get(url(dataset, "rawdata") + "/")
    assert r.status_code == 200
    assert f'href="/ipfs/{dataset.root}"' in r.text
    assert f'href="/ipfs/{dataset.root}/rawdata/series.mrc"' in r.text
    assert "1.3 MB" in r.text
    tag = r.headers["etag"]
    assert client.get(url(dataset, "rawdata"), headers={"If-None-Match": tag}).status_code == 304


# -- errors ---------------------------------------------------------------------------------


def test_bad_cid_is_400(client: TestClient) -> None:
    r = client.get("/ipfs/not-a-cid/file.txt")
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/json"
    assert r.json()["error"]["parameter"] == "cid"


def test_unknown_cid_and_path_are_json_404(client: TestClient, dataset: Dataset) -> None:
    absent = CID.hash(b"never stored")
    for target in (f"/ipfs/{absent}", url(dataset, "no/such/file.mrc")):
        r = client.get(target)
        assert r.status_code == 404, target
        assert r.headers["content-type"] == "application/json"
        assert "Page not found" not in r.text
        assert r.json()["error"]["message"]


@pytest.mark.parametrize(
    "path",
    # Clients remove literal "." and ".." segments before sending; encoded ones reach us.
    [
        "rawdata/%2E%2E/notes.txt",
        "rawdata%2F..%2Fnotes.txt",
        "%2e%2e/%2e%2e/etc/passwd",
        "%2E/notes.txt",
    ],
)
def test_traversal_is_refused(client: TestClient, dataset: Dataset, path: str) -> None:
    r = client.get(f"/ipfs/{dataset.root}/{path}")
    assert r.status_code in (400, 404), path
    assert r.content != dataset.bytes_of("notes.txt")
    assert b"root:" not in r.content


def test_outside_the_blockstore_is_never_read(client: TestClient, dataset: Dataset) -> None:
    """A CID whose bytes exist as a file next to the store, not in it, is not found."""
    secret = b"a file outside the blockstore"
    (dataset.store_path.parent / "secret.txt").write_bytes(secret)
    r = client.get(f"/ipfs/{CID.hash(secret)}")
    assert r.status_code == 404


def test_too_many_streams_is_429_and_slots_come_back(client: TestClient, dataset: Dataset) -> None:
    state: GatewayState = client.app.state.etdb.extra["gateway_state"]  # type: ignore[attr-defined]
    slots = state.slots
    assert slots.active == 0
    taken = 0
    while slots.try_acquire():  # as if `limit` downloads were in progress
        taken += 1
    try:
        r = client.get(url(dataset, "notes.txt"))
        assert r.status_code == 429
        assert int(r.headers["retry-after"]) > 0
        assert "retry" in r.json()["error"]["message"]
        assert client.head(url(dataset, "notes.txt")).status_code == 200  # HEAD sends no body
    finally:
        for _ in range(taken):
            slots.release()
    assert client.get(url(dataset, "notes.txt")).status_code == 200
    assert slots.active == 0


def test_damaged_block_is_500_not_wrong_bytes(
    dataset: Dataset, tmp_path_factory: pytest.TempPathFactory
) -> None:
    home = tmp_path_factory.mktemp("gw-damaged")
    folder = home / "data"
    folder.mkdir()
    (folder / "a.txt").write_bytes(b"original bytes")
    with FSBlockstore(home / "blocks") as store:
        root = Importer("kubo-v1", store).add_path(folder).cid
        leaf = resolve(store, f"{root}/a.txt")[0]
        block_file = store.path_of(leaf)
    block_file.write_bytes(b"tampered bytes")
    catalog = open_catalog(f"sqlite:///{home / 'c.sqlite3'}")
    settings = Settings(home=home, ledger="local:///nowhere/ledger.sqlite3")
    with TestClient(create_app(catalog, settings=settings)) as c:
        r = c.get(f"/ipfs/{root}/a.txt")
    catalog.close()
    assert r.status_code == 500
    assert b"tampered" not in r.content
    assert "damaged" in r.json()["error"]["message"]


def test_stream_limit_setting_is_checked(tmp_path: Path) -> None:
    catalog = open_catalog(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    try:
        for bad in ("0", "many"):
            settings = Settings(
                home=tmp_path, ledger="local:///x.sqlite3", extra={"gateway_streams": bad}
            )
            with pytest.raises(ValueError, match="gateway_streams"):
                create_app(catalog, settings=settings)
        settings = Settings(
            home=tmp_path, ledger="local:///x.sqlite3", extra={"gateway_streams": "3"}
        )
        state = create_app(catalog, settings=settings).state.etdb.extra["gateway_state"]
        assert state.slots.limit == 3
    finally:
        catalog.close()


def test_a_client_that_goes_away_gives_its_slot_back(dataset: Dataset) -> None:
    """The slot is released when sending fails mid-body (the client disconnected)."""
    with FSBlockstore(dataset.store_path, create=False) as store:
        node = load_node(store, resolve(store, f"{dataset.root}/rawdata/series.mrc")[0])
        slots = StreamSlots(1)
        size = node.size or 0
        response = UnixFSStream(store, node, 0, size, status=200, headers=[], slots=slots)
        sent: list[int] = []

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                sent.append(len(message["body"]))
                if len(sent) == 1:
                    raise OSError("connection reset by peer")

        async def receive() -> dict[str, Any]:
            await asyncio.Event().wait()  # the failing send is all this server says
            raise AssertionError("unreachable")

        with pytest.raises(OSError):
            asyncio.run(response({"type": "http"}, receive, send))  # type: ignore[arg-type]
        assert sent and 0 < sent[0] < size
        assert slots.active == 0
