"""/api/v2: the calls oip-js 1.1.20 and etdb-react made to oipd, answered in oipd's shapes.

The catalog holds the shared test dataset plus the real Jensen-lab record rr2014-01-14-5 under
its real txid and publisher (FTSTq8...), so the exact URLs the 2019 front-end sent are used.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from etdb.api import create_app
from etdb.api.compat import WINDOW
from etdb.config import Settings
from etdb.index.catalog import open_catalog
from tests.api.conftest import (
    ACTIVE,
    DEACTIVATED_ID,
    EDITED_ID,
    KEY_A,
    PUB_A,
    PUB_B,
    fill,
    hexid,
)
from tests.index.records import BASE, file_set, make_artifact, published, signed_artifact

FTSTQ8 = "FTSTq8xx8yWUKJA5E3bgXLzZqqG9V6dvnr"
REAL_TXID = "8a07e957cce6473887e8f9d042b0a3b95fc7dd2b9110b4a37890887de6528f10"
TYPE_URL = "/api/v2/artifact/get/type"
# etdb-react's app.js: OIPJS({indexFilters: {publisher: "FTSTq8..."}}) then getArtifacts("*")
ETDB_REACT_LIST = f"{TYPE_URL}?t=*&st=*&results=*&page=1&pub={FTSTQ8}"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    folder = tmp_path_factory.mktemp("compat")
    catalog = open_catalog(f"sqlite:///{folder}/catalog.sqlite3")
    fill(catalog)
    # the real record (its signature is not needed: the catalog stores what the indexer judged)
    catalog.add_record(published(make_artifact(), id=REAL_TXID, height=119))
    app = create_app(catalog, settings=Settings(home=folder))
    with TestClient(app) as c:
        yield c
    catalog.close()


def newest_first(client: TestClient, **params: Any) -> list[str]:
    items = client.get("/api/v1/records", params={"limit": 500, **params}).json()["items"]
    return [i["id"] for i in items]


def oip_js_parse(result: dict[str, Any]) -> dict[str, Any]:
    """What oip-js's Artifact.fromJSON reads from one result (src/Artifact.js, import042)."""
    artifact = result["oip042"]["artifact"]
    return {
        "txid": result["txid"],
        "floAddress": artifact["floAddress"],
        "title": artifact["info"]["title"],
        "type": artifact["type"],
        "subtype": artifact["subtype"],
        "files": [f["fname"] for f in artifact["storage"]["files"]],
        "details": artifact["details"],
    }


def test_etdb_react_list_call(client: TestClient) -> None:
    r = client.get(ETDB_REACT_LIST)
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"total", "count", "pages", "results"}
    assert body == {**body, "total": 1, "count": 1, "pages": 1}
    [result] = body["results"]
    assert set(result) == {"oip042", "txid", "publisher"}
    assert result["txid"] == REAL_TXID and result["publisher"] == FTSTQ8
    parsed = oip_js_parse(result)
    assert parsed["title"] == BASE["info"]["title"]
    assert parsed["details"]["sid"] == "rr2014-01-14-5"
    assert "keymov_rr2014-01-14-5.mp4" in parsed["files"]


def test_type_filters_and_quirks(client: TestClient) -> None:
    everyone = client.get(TYPE_URL, params={"t": "research", "st": "tomogram"}).json()
    assert everyone["total"] == ACTIVE + 1 and everyone["count"] == ACTIVE + 1
    # newest first, as oipd (uid DESC); deactivated records are left out
    txids = [r["txid"] for r in everyone["results"]]
    assert txids == newest_first(client) and DEACTIVATED_ID not in txids
    for t, st in [("Research", "Tomogram"), ("*", "tomogram"), ("research", "*")]:
        assert client.get(TYPE_URL, params={"t": t, "st": st}).json()["total"] == ACTIVE + 1
    for t, st in [("-", "*"), ("*", "-"), ("video", "*"), ("research", "movie")]:
        body = client.get(TYPE_URL, params={"t": t, "st": st}).json()
        assert body == {"total": 0, "count": 0, "pages": 1, "results": []}
    assert client.get(TYPE_URL, params={"pub": PUB_B}).json()["total"] == 7
    assert client.get(TYPE_URL, params={"pub": "-"}).json()["total"] == 0
    assert client.get(TYPE_URL, params={"pub": "*"}).json()["total"] == ACTIVE + 1


def test_current_artifact_after_edits(client: TestClient) -> None:
    results = client.get(TYPE_URL, params={"pub": PUB_B}).json()["results"]
    edited = next(r for r in results if r["txid"] == EDITED_ID)
    assert edited["oip042"]["artifact"]["info"]["title"] == "Bdellovibrio predation (edited)"


@pytest.mark.parametrize("results", ["0", "*", ""])
def test_results_all(client: TestClient, results: str) -> None:
    body = client.get(TYPE_URL, params={"results": results, "pub": PUB_A}).json()
    assert body["count"] == body["total"] == 6 and body["pages"] == 1


def test_pages(client: TestClient) -> None:
    order = newest_first(client)
    size = 3
    pages = math.ceil(len(order) / size)
    walked: list[str] = []
    for page in range(1, pages + 2):
        body = client.get(TYPE_URL, params={"results": size, "page": page}).json()
        assert body["total"] == len(order) and body["pages"] == pages
        assert (
            body["count"]
            == len(body["results"])
            == max(0, min(size, len(order) - walked.__len__()))
        )
        walked += [r["txid"] for r in body["results"]]
    assert walked == order


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"results": "many"}, "results"),
        ({"results": "-1"}, "results"),
        ({"page": "0"}, "page"),
        ({"page": "first"}, "page"),
        ({"page": "²"}, "page"),  # a digit to str.isdigit(), not to int()
        ({"results": "١٢"}, "results"),
        ({"results": "100", "page": str(WINDOW // 100 + 1)}, "page"),
        ({"results": str(WINDOW + 1)}, "page"),
        ({"pub": "x" * 201}, "pub"),
    ],
)
def test_bad_list_parameters(client: TestClient, params: dict[str, str], parameter: str) -> None:
    r = client.get(TYPE_URL, params=params)
    assert r.status_code == 400
    assert r.json()["error"]["parameter"] == parameter


def test_unknown_parameters_are_ignored_as_oipd_did(client: TestClient) -> None:
    assert client.get(TYPE_URL, params={"nsfw": "true"}).status_code == 200


def test_get_by_id(client: TestClient) -> None:
    # oip-js getArtifactFromID(id): /artifact/get?id=<prefix>, answered with the bare object
    r = client.get("/api/v2/artifact/get", params={"id": REAL_TXID[:6]})
    assert r.status_code == 200
    body = r.json()
    assert body["txid"] == REAL_TXID and body["publisher"] == FTSTQ8
    assert "publisherName" not in body  # no name known for this publisher
    assert oip_js_parse(body)["details"]["microscopist"] == "Rasika Ramdasi"
    full = client.get("/api/v2/artifact/get", params={"id": REAL_TXID}).json()
    assert full == body


def test_get_by_id_errors(client: TestClient) -> None:
    get = "/api/v2/artifact/get"
    assert client.get(get, params={"id": "123456"}).status_code == 404
    assert client.get(get, params={"id": DEACTIVATED_ID}).status_code == 404
    assert client.get(get, params={"id": DEACTIVATED_ID[:6]}).status_code == 404
    for value in ("abc", "abcd", "abcde", "not-hex!", "a" * 65):
        r = client.get(get, params={"id": value})
        assert r.status_code == 400 and r.json()["error"]["parameter"] == "id"
    r = client.get(get)
    assert r.status_code == 400 and r.json()["error"] == {
        "parameter": "id",
        "message": "is required",
    }


def test_shared_prefix_answers_the_oldest_as_oipd_did(client: TestClient) -> None:
    # abcdef01 (height 101) and abcdef02 (height 102) share "abcdef": v1 says 409, v2 the oldest
    get = "/api/v2/artifact/get"
    assert client.get("/api/v1/records/abcdef").status_code == 409
    for prefix in ("abcdef", "ABCDEF", "abcdef0"):
        r = client.get(get, params={"id": prefix})
        assert r.status_code == 200 and r.json()["txid"] == hexid("abcdef01")
    for full in (hexid("abcdef01"), hexid("abcdef02")):
        assert client.get(get, params={"id": full}).json()["txid"] == full


def test_oldest_is_by_ledger_position_not_txid(tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = tmp_path_factory.mktemp("collide")
    catalog = open_catalog(f"sqlite:///{folder}/catalog.sqlite3")
    older, newer = hexid("c0ffee99"), hexid("c0ffee11")  # the older has the higher txid
    # a ground set of ten sharing "d00d00": more than the catalog lists for one prefix
    ground = [hexid(f"d00d00{n:02x}") for n in range(10)]
    with catalog.transaction():
        for n, (txid, height) in enumerate(
            [(older, 200), (newer, 300)] + [(g, 400) for g in ground]
        ):
            art = signed_artifact(
                KEY_A,
                title=f"t{n}",
                sid=f"x{n}",
                timestamp=1_600_000_000 + n,
                files=file_set("tiltSeries", stem=f"x{n}"),
            )
            catalog.add_record(published(art, id=txid, height=height))
    app = create_app(catalog, settings=Settings(home=folder))
    try:
        with TestClient(app) as c:
            body = c.get("/api/v2/artifact/get", params={"id": "c0ffee"}).json()
            assert body["txid"] == older
            assert c.get("/api/v2/artifact/get", params={"id": newer}).json()["txid"] == newer
            r = c.get("/api/v2/artifact/get", params={"id": "d00d00"})
            assert r.status_code == 404 and "more characters" in r.json()["error"]["message"]
            assert (
                c.get("/api/v2/artifact/get", params={"id": ground[3]}).json()["txid"] == ground[3]
            )
    finally:
        catalog.close()


def test_tomogram_summary_as_etdb_react_reads_it(client: TestClient) -> None:
    data = client.get("/api/v2/research/tomogram/summary").json()
    assert set(data) == {"total", "species", "publishers"}
    assert data["total"] == ACTIVE + 1
    # home.js shows info.data.species as the number of species
    assert data["species"] == 5
    # ...and info.data.publishers.FTSTq8... as the number of tomograms
    assert data["publishers"] == {FTSTQ8: 1, PUB_A: 6, PUB_B: 7}


def test_compat_headers(client: TestClient) -> None:
    r = client.get(ETDB_REACT_LIST, headers={"Origin": "https://etdb.example"})
    assert r.headers["access-control-allow-origin"] == "*"
    assert r.headers["etag"].startswith('W/"')
    again = client.get(ETDB_REACT_LIST, headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304


def test_list_is_built_once_per_catalog_state(client: TestClient) -> None:
    url = f"{TYPE_URL}?t=research&st=tomogram&results=*&page=1&pub={PUB_A}"
    first = client.get(url)
    cache = client.app.state.etdb.extra["compat_bodies"]  # type: ignore[attr-defined]
    builds = cache.builds
    again = client.get(url)
    assert again.content == first.content and cache.builds == builds
    client.get(f"{url}&nsfw=1")  # an ignored parameter: the same list
    assert cache.builds == builds
    client.get(url.replace("page=1", "page=2"))  # no page size: page 2 is the same list
    assert cache.builds == builds
    client.get(url.replace(PUB_A, PUB_B))  # another publisher: another list
    assert cache.builds == builds + 1


def test_body_cache_single_flight_and_bounds() -> None:
    import threading

    from etdb.api.memo import BodyCache

    cache = BodyCache(max_bytes=10, max_entries=2)
    started, release = threading.Event(), threading.Event()

    def slow() -> bytes:
        started.set()
        release.wait(5)
        return b"abc"

    results: list[bytes] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get("k", slow)))]
    threads[0].start()
    started.wait(5)
    threads += [threading.Thread(target=lambda: results.append(cache.get("k", slow)))]
    threads[1].start()
    release.set()
    for t in threads:
        t.join(5)
    assert results == [b"abc", b"abc"] and cache.builds == 1
    assert cache.get("big", lambda: b"x" * 11) == b"x" * 11  # answered, not kept
    cache.get("b", lambda: b"1234")
    cache.get("c", lambda: b"5678")  # 3 entries > 2: "k" goes
    assert cache.get("k", lambda: b"new") == b"new"
