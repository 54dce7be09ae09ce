"""/api/v2: the calls oip-js 1.1.20 and etdb-react made to oipd, answered in oipd's shapes.

The catalog holds the shared test dataset plus the real Jensen-lab record rr2014-01-14-5 under
its real txid and publisher (FTSTq8...), so the exact URLs the 2019 front-end sent are used.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from etdb.api import create_app
from etdb.api.compat import WINDOW
from etdb.config import Settings
from etdb.index.catalog import SqlCatalog, open_catalog
from etdb.index.store import Deactivation, Position
from tests.api.conftest import (
    ACTIVE,
    DEACTIVATED_ID,
    EDITED_ID,
    MULTIPART_ID,
    MULTIPART_PART1,
    PUB_A,
    PUB_B,
    fill,
    hexid,
)
from tests.index.conftest import catalog_for
from tests.index.records import BASE, make_artifact, published

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
    for value in ("", "a", "abc", "ABC", "not-hex!", "abcd-", "0xabcd", "a" * 65, "\u0661" * 6):
        r = client.get(get, params={"id": value})
        assert r.status_code == 400 and r.json()["error"]["parameter"] == "id", value
    r = client.get(get)
    assert r.status_code == 400 and r.json()["error"] == {
        "parameter": "id",
        "message": "is required",
    }


def test_shared_prefix_answers_the_oldest_as_oipd_did(client: TestClient) -> None:
    # abcdef01 (height 101) and abcdef02 (height 102) share "abcdef": v1 says 409, v2 the oldest
    get = "/api/v2/artifact/get"
    assert client.get("/api/v1/records/abcdef").status_code == 409
    for prefix in ("abcd", "ABCD", "abcde", "abcdef", "ABCDEF", "abcdef0"):
        r = client.get(get, params={"id": prefix})
        assert r.status_code == 200 and r.json()["txid"] == hexid("abcdef01"), prefix
    for full in (hexid("abcdef01"), hexid("abcdef02")):
        assert client.get(get, params={"id": full}).json()["txid"] == full


def test_prefixes_name_records_full_txids_also_parts_and_edits(client: TestClient) -> None:
    # oipd matched artifact txids: a prefix of a part's or an edit's txid names nothing, the
    # full txid of either still finds its record (as v1 does)
    get = "/api/v2/artifact/get"
    assert client.get(get, params={"id": MULTIPART_PART1[:8]}).status_code == 404
    assert client.get(get, params={"id": MULTIPART_PART1}).json()["txid"] == MULTIPART_ID
    assert client.get(get, params={"id": hexid("e0e0e0")}).json()["txid"] == EDITED_ID


def _collide(catalog: SqlCatalog, rows: list[tuple[str, int, int]]) -> None:
    """Records (txid, height, index in block) with the same content apart from their sid."""
    with catalog.transaction():
        for n, (record_id, height, index) in enumerate(rows):
            art = make_artifact(title=f"t{n}", sid=f"x{n}", timestamp=1_600_000_000 + n)
            catalog.add_record(published(art, id=record_id, height=height, index=index))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def collisions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlCatalog]:
    """Records whose txids share 4- to 6-character prefixes, on both catalog backends."""
    with catalog_for(request.param, tmp_path) as catalog:
        _collide(
            catalog,
            [
                (hexid("beef99"), 300, 5),  # same block as beef11, later in it
                (hexid("beef11"), 300, 2),  # the oldest "beef": lower index, not lower txid
                (hexid("beef00"), 301, 0),
                (hexid("c0ffee99"), 200, 0),  # older, higher txid
                (hexid("c0ffee11"), 300, 0),
                (hexid("dead99"), 100, 0),  # the oldest "dea", deactivated below
                (hexid("dead55"), 150, 0),
            ]
            # ground: twelve share "d00d00", the oldest last in txid order
            + [(hexid(f"d00d00{n:02x}"), 400 - n, 0) for n in range(12)],
        )
        catalog.deactivate(
            Deactivation(hexid("0dead0"), hexid("dead99"), 0, Position(500, 0, "h", 1))
        )
        yield catalog


def test_first_match_is_the_oldest_by_ledger_position(collisions: SqlCatalog) -> None:
    first = collisions.first_match
    assert first("beef") == first("BEEF") == hexid("beef11")  # (height, index), not txid
    assert first("beef9") == hexid("beef99") and first("beef0") == hexid("beef00")
    assert first("c0ff") == first("c0ffee") == hexid("c0ffee99")
    assert first(hexid("c0ffee11")) == hexid("c0ffee11")  # a full txid is exact
    # an older deactivated record steps aside for an active one; alone, it is still named
    assert first("dead") == hexid("dead55") and first("dead9") == hexid("dead99")
    # twelve sharing a prefix: still exactly the oldest (no "more characters" 404 needed)
    assert first("d00d") == first("d00d00") == hexid("d00d000b")
    assert first("d00d0003") == hexid("d00d0003")
    assert first("abcd") is None and first("f" * 64) is None
    for bad in ("", "abc", "xyz1", "a" * 65, "ab%d"):
        with pytest.raises(ValueError, match="id"):
            first(bad)


def test_first_match_reads_an_id_range_not_the_catalog(collisions: SqlCatalog) -> None:
    """The statement first_match runs is planned as a range over the id index, not a scan."""
    seen: list[tuple[str, Any]] = []

    def grab(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    sa.event.listen(collisions.engine, "before_cursor_execute", grab)
    try:
        assert collisions.first_match("beef") == hexid("beef11")
    finally:
        sa.event.remove(collisions.engine, "before_cursor_execute", grab)
    [(statement, parameters)] = [(q, p) for q, p in seen if "ORDER BY" in q]
    with collisions.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            plan = " ".join(r[-1] for r in rows)
            assert "SEARCH records USING INDEX sqlite_autoindex_records_1 (id>? AND id<?)" in plan
            assert "SCAN records" not in plan
        else:  # a tiny table, where a scan is cheapest: ask which index the statement can use
            conn.exec_driver_sql("SET enable_seqscan = off")
            plan = " ".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {statement}", parameters))
            assert "records_id_key" in plan and "Seq Scan" not in plan, plan


def test_get_by_id_first_match_over_http(tmp_path: Path) -> None:
    catalog = open_catalog(f"sqlite:///{tmp_path}/catalog.sqlite3")
    _collide(catalog, [(hexid("beef99"), 300, 5), (hexid("beef11"), 300, 2)])
    app = create_app(catalog, settings=Settings(home=tmp_path))
    try:
        with TestClient(app) as c:
            get = "/api/v2/artifact/get"
            assert c.get(get, params={"id": "beef"}).json()["txid"] == hexid("beef11")
            assert c.get(get, params={"id": "beef9"}).json()["txid"] == hexid("beef99")
            r = c.get(get, params={"id": "bee"})
            assert r.status_code == 400 and "4 to 64 hex" in r.json()["error"]["message"]
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
    plain = {"Accept-Encoding": "identity"}  # one body per list (gzip adds its own, once)
    first = client.get(url, headers=plain)
    cache = client.app.state.etdb.extra["compat_bodies"]  # type: ignore[attr-defined]
    builds = cache.builds
    again = client.get(url, headers=plain)
    assert again.content == first.content and cache.builds == builds
    client.get(f"{url}&nsfw=1", headers=plain)  # an ignored parameter: the same list
    assert cache.builds == builds
    client.get(url.replace("page=1", "page=2"), headers=plain)  # no page size: the same list
    assert cache.builds == builds
    client.get(url.replace(PUB_A, PUB_B), headers=plain)  # another publisher: another list
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
