"""/api/v1 against a real SQLite catalog: every search parameter (its effect, and a bad value
answered with 400 naming it), pagination, facets, exports, record lookups, errors, headers."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from etdb.api import PARTS, create_app
from etdb.config import Settings
from etdb.index.catalog import open_catalog
from etdb.ledger.local import open_local
from tests.api.conftest import (
    ACTIVE,
    DEACTIVATED_ID,
    EDITED_ID,
    HEIGHT,
    MULTIPART_ID,
    MULTIPART_PART1,
    PUB_A,
    PUB_B,
    REJECTIONS,
    SPECS,
    fill,
    hexid,
    unix,
)
from tests.index.records import make_artifact

URL = "/api/v1/records"


def _oracle() -> dict[str, dict[str, Any]]:
    """What each active record holds, computed from the specs (not through the catalog)."""
    out = {}
    for spec in SPECS:
        if spec.id == DEACTIVATED_ID:
            continue
        art = make_artifact(**spec.fields)
        details = art["details"]
        if spec.id == EDITED_ID:
            details["strain"] = "HD100 edited"
        out[spec.id] = {
            **details,
            "publisher": spec.key.address,
            "subtypes": {f["subtype"] for f in art["storage"]["files"]},
            "timestamp": art["timestamp"],
        }
    return out


ORACLE = _oracle()


def expect(pred: Callable[[dict[str, Any]], bool]) -> set[str]:
    return {rid for rid, row in ORACLE.items() if pred(row)}


def ids(client: TestClient, **params: Any) -> set[str]:
    """Every id the search returns (all pages)."""
    found: list[str] = []
    params = {"limit": 500, **params}
    while True:
        r = client.get(URL, params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        found += [i["id"] for i in body["items"]]
        if body["next"] is None:
            break
        params["after"] = body["next"]
    assert len(found) == len(set(found)), "a record appeared twice"
    return set(found)


def bad(client: TestClient, parameter: str, url: str = URL, **params: Any) -> dict[str, Any]:
    r = client.get(url, params=params)
    assert r.status_code == 400, (params, r.status_code, r.text)
    error = r.json()["error"]
    assert error["parameter"] == parameter, error
    assert error["message"]
    assert r.headers["cache-control"] == "no-cache"
    return error


# -- value effects ---------------------------------------------------------------------------


def test_oracle_matches_the_catalog(client: TestClient) -> None:
    assert len(ORACLE) == ACTIVE
    assert ids(client) == set(ORACLE)


@pytest.mark.parametrize(
    ("params", "pred"),
    [
        ({"publisher": PUB_B}, lambda r: r["publisher"] == PUB_B),
        ({"publisher": [PUB_A, PUB_B]}, lambda r: True),
        ({"species": "Escherichia coli"}, lambda r: r["speciesName"] == "Escherichia coli"),
        (
            {"species": ["Escherichia coli", "Caulobacter crescentus"]},
            lambda r: r["speciesName"] in ("Escherichia coli", "Caulobacter crescentus"),
        ),
        ({"taxid": 562}, lambda r: r["NCBItaxID"] == 562),
        ({"taxid": [562, 155892]}, lambda r: r["NCBItaxID"] in (562, 155892)),
        ({"strain": "NA1000"}, lambda r: r["strain"] == "NA1000"),
        ({"strain": "HD100 edited"}, lambda r: r["strain"] == "HD100 edited"),  # after the edit
        ({"scope": "Titan Krios"}, lambda r: r["scopeName"] == "Titan Krios"),
        ({"lab": "Other Lab"}, lambda r: r["lab"] == "Other Lab"),
        ({"institution": "Elsewhere"}, lambda r: r["institution"] == "Elsewhere"),
        ({"microscopist": "Elitza Tocheva"}, lambda r: r["microscopist"] == "Elitza Tocheva"),
        ({"tilt_axis": "dual"}, lambda r: r["tiltSingleDual"] == 2),
        ({"tilt_axis": "2"}, lambda r: r["tiltSingleDual"] == 2),
        ({"tilt_axis": "single"}, lambda r: r["tiltSingleDual"] == 1),
        ({"tilt_axis": "1"}, lambda r: r["tiltSingleDual"] == 1),
        ({"date_from": "2012-01-01"}, lambda r: r["date"] >= unix("2012-01-01")),
        ({"date_to": "2008-12-31"}, lambda r: r["date"] < unix("2009-01-01")),
        (  # a bare date at the upper end includes that whole day
            {"date_from": "2012-06-01", "date_to": "2012-06-01"},
            lambda r: r["date"] == unix("2012-06-01"),
        ),
        (
            {"date_from": "2010-03-05T00:00:00Z", "date_to": str(unix("2012-06-01"))},
            lambda r: unix("2010-03-05") <= r["date"] <= unix("2012-06-01"),
        ),
        ({"published_from": "1500001000"}, lambda r: r["timestamp"] >= 1_500_001_000),
        ({"published_to": "2017-07-14T02:45:00"}, lambda r: r["timestamp"] <= 1_500_000_300),
        ({"tilt_min_from": -55}, lambda r: r["tiltMin"] >= -55),
        ({"tilt_min_to": -62}, lambda r: r["tiltMin"] <= -62),
        ({"tilt_max_from": 64}, lambda r: r["tiltMax"] >= 64),
        ({"tilt_max_to": 55}, lambda r: r["tiltMax"] <= 55),
        ({"tilt_step_from": 3}, lambda r: r["tiltStep"] >= 3),
        ({"tilt_step_to": 1.5}, lambda r: r["tiltStep"] <= 1.5),
        ({"defocus_from": -7}, lambda r: r["defocus"] >= -7),
        ({"defocus_to": -10}, lambda r: r["defocus"] <= -10),
        ({"dosage_from": 170}, lambda r: r["dosage"] >= 170),
        ({"dosage_to": 100}, lambda r: r["dosage"] <= 100),
        ({"dosage_from": 100, "dosage_to": 120}, lambda r: 100 <= r["dosage"] <= 120),
        ({"emdb": "EMD-1234"}, lambda r: r.get("emdb") == "EMD-1234"),
        ({"file_type": "keymov"}, lambda r: "keymov" in r["subtypes"]),
        (  # every listed subtype must be present
            {"file_type": ["keymov", "reconstruction"]},
            lambda r: {"keymov", "reconstruction"} <= r["subtypes"],
        ),
        (
            {"species": "Treponema primitia", "microscopist": "Gavin Murphy"},
            lambda r: (
                r["speciesName"] == "Treponema primitia" and r["microscopist"] == "Gavin Murphy"
            ),
        ),
    ],
)
def test_filter(client: TestClient, params: dict[str, Any], pred: Any) -> None:
    want = expect(pred)
    assert want, "the dataset must exercise this filter"
    assert ids(client, **params) == want


def test_q_full_text(client: TestClient) -> None:
    assert ids(client, q="caulobacter") == {hexid("aaaa01")}
    assert ids(client, q="holdfast") == {hexid("aaaa01")}  # notes
    assert ids(client, q="briegel") == expect(lambda r: r["microscopist"] == "Ariane Briegel")
    assert ids(client, q="no-such-word-anywhere") == set()
    body = client.get(URL, params={"q": "escherichia"}).json()
    assert body["total"] == 2
    # q without searchable words is no text filter (and no relevance sort)
    assert ids(client, q="--") == set(ORACLE)


def test_include_deactivated(client: TestClient) -> None:
    assert DEACTIVATED_ID not in ids(client)
    everything = ids(client, include_deactivated="true")
    assert everything == set(ORACLE) | {DEACTIVATED_ID}
    hit = client.get(URL, params={"include_deactivated": 1, "q": "vibrio"}).json()["items"]
    assert [(h["id"], h["deactivated"]) for h in hit] == [(DEACTIVATED_ID, True)]


def test_facets(client: TestClient) -> None:
    body = client.get(URL, params={"facets": "species,publisher", "limit": 1}).json()
    species = {f["value"]: f["count"] for f in body["facets"]["species"]}
    assert species == {
        "Treponema primitia": 9,
        "Escherichia coli": 2,
        "Caulobacter crescentus": 1,
        "Bdellovibrio bacteriovorus": 1,
    }
    publishers = {f["value"]: f["count"] for f in body["facets"]["publisher"]}
    assert publishers == {PUB_A: 6, PUB_B: 7}
    # repeated and combined with a filter: counts describe the filtered result
    body = client.get(
        URL, params={"facets": ["tilt_axis", "file_type"], "species": "Escherichia coli"}
    ).json()
    assert {f["value"]: f["count"] for f in body["facets"]["tilt_axis"]} == {"2": 2}
    assert {"tiltSeries": 2}.items() <= {
        f["value"]: f["count"] for f in body["facets"]["file_type"]
    }.items()
    assert client.get(URL).json()["facets"] == {}


@pytest.mark.parametrize(
    ("sort", "order", "field"),
    [
        ("species", "asc", "species"),
        ("species", "desc", "species"),
        ("microscopist", "asc", "microscopist"),
        ("date", "asc", "date"),
        ("date", "desc", "date"),
        ("published", "asc", "published"),
        ("published", "desc", "published"),
    ],
)
def test_sort_and_order(client: TestClient, sort: str, order: str, field: str) -> None:
    items = client.get(URL, params={"sort": sort, "order": order, "limit": 500}).json()["items"]
    values = [i[field] for i in items]
    assert values == sorted(values, reverse=order == "desc")
    assert len(set(values)) > 1


def test_default_orders(client: TestClient) -> None:
    newest = [i["published"] for i in client.get(URL, params={"limit": 500}).json()["items"]]
    assert newest == sorted(newest, reverse=True)  # published, newest first
    names = [i["species"] for i in client.get(URL, params={"sort": "species"}).json()["items"]]
    assert names == sorted(names)  # names default to A..Z


def test_sort_relevance(client: TestClient) -> None:
    body = client.get(URL, params={"q": "treponema", "sort": "relevance"}).json()
    assert body["total"] == 9
    assert client.get(URL, params={"q": "treponema"}).json()["total"] == 9  # default with q


def test_limit_and_pagination_walk(client: TestClient) -> None:
    first = client.get(URL, params={"limit": 4}).json()
    assert len(first["items"]) == 4 and first["total"] == ACTIVE
    seen, url = [], first["links"]["self"]
    assert "limit=4" in url
    page = first
    while True:
        seen += [i["id"] for i in page["items"]]
        if page["next"] is None:
            assert page["links"]["next"] is None
            break
        assert f"after={page['next']}" in page["links"]["next"]
        page = client.get(page["links"]["next"]).json()
    assert len(seen) == ACTIVE and set(seen) == set(ORACLE)


def test_after_token_belongs_to_its_query(client: TestClient) -> None:
    token = client.get(URL, params={"limit": 2}).json()["next"]
    assert client.get(URL, params={"limit": 2, "after": token}).status_code == 200
    bad(client, "after", limit=2, after=token, species="Escherichia coli")


# -- bad values ------------------------------------------------------------------------------

NUL = "a\x00b"
LONG = "x" * 201


@pytest.mark.parametrize(
    ("parameter", "value"),
    [
        ("q", "x" * 501),
        ("q", NUL),
        ("q", " ".join(f"w{i}" for i in range(40))),  # too many words
        ("publisher", LONG),
        ("species", NUL),
        ("species", ["s"] * 51),
        ("taxid", "abc"),
        ("taxid", "-1"),
        ("taxid", str(10**30)),
        ("strain", NUL),
        ("scope", LONG),
        ("lab", NUL),
        ("institution", LONG),
        ("microscopist", NUL),
        ("tilt_axis", "triple"),
        ("date_from", "2014-13-45"),
        ("date_to", "yesterday"),
        ("published_from", "nope"),
        ("published_from", "²"),
        ("published_to", "99999999999999"),
        ("tilt_min_from", "abc"),
        ("tilt_min_to", "nan"),
        ("tilt_max_from", "inf"),
        ("tilt_max_to", "x"),
        ("tilt_step_from", "-inf"),
        ("tilt_step_to", "1,5"),
        ("defocus_from", "x"),
        ("defocus_to", "nan"),
        ("dosage_from", "x"),
        ("dosage_to", "Infinity"),
        ("emdb", LONG),
        ("file_type", NUL),
        ("include_deactivated", "maybe"),
        ("facets", "colour"),
        ("facets", "species,,nope"),
        ("sort", "size"),
        ("order", "up"),
        ("limit", "0"),
        ("limit", "501"),
        ("limit", "ten"),
        ("after", "garbage"),
        ("after", "x" * 1001),
        ("format", "xml"),
    ],
)
def test_bad_value_names_the_parameter(client: TestClient, parameter: str, value: Any) -> None:
    bad(client, parameter, **{parameter: value})


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"date_from": "2013-01-01", "date_to": "2012-01-01"}, "date_from"),
        ({"published_from": "2000", "published_to": "1000"}, "published_from"),
        ({"tilt_min_from": 10, "tilt_min_to": -10}, "tilt_min_from"),
        ({"tilt_max_from": 10, "tilt_max_to": -10}, "tilt_max_from"),
        ({"tilt_step_from": 3, "tilt_step_to": 1}, "tilt_step_from"),
        ({"defocus_from": -1, "defocus_to": -5}, "defocus_from"),
        ({"dosage_from": 200, "dosage_to": 100}, "dosage_from"),
        ({"sort": "relevance"}, "sort"),  # needs q
        ({"sort": "relevance", "q": "--"}, "sort"),  # q has no word to rank by
        ({"specie": "Escherichia coli"}, "specie"),  # misspelt: refused, not ignored
    ],
)
def test_inconsistent_parameters(
    client: TestClient, params: dict[str, Any], parameter: str
) -> None:
    bad(client, parameter, **params)


def test_underscore_parameters_are_ignored(client: TestClient) -> None:
    assert client.get(URL, params={"_": "1700000000"}).status_code == 200


# -- exports ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def roomy(catalog, settings) -> TestClient:  # type: ignore[no-untyped-def]
    """The app with the default export cap (100,000 rows): nothing is truncated."""
    return TestClient(create_app(catalog, settings=settings))


def test_csv_export_parses_back(roomy: TestClient, client: TestClient) -> None:
    r = roomy.get(URL, params={"format": "csv"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert r.headers["x-total-count"] == str(ACTIVE) and "x-truncated" not in r.headers
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert {row["id"] for row in rows} == set(ORACLE)
    by_id = {row["id"]: row for row in rows}
    caulo = by_id[hexid("aaaa01")]
    summary = client.get(f"{URL}/{hexid('aaaa01')}").json()["summary"]
    assert caulo["title"] == summary["title"] and caulo["species"] == "Caulobacter crescentus"
    assert caulo["file_types"].split(";") == summary["file_types"]
    assert int(caulo["total_bytes"]) == summary["total_bytes"]
    assert caulo["date"] == str(summary["date"]) and caulo["deactivated"] == "false"


def test_ndjson_export_with_filters(roomy: TestClient) -> None:
    r = roomy.get(URL, params={"format": "ndjson", "species": "Escherichia coli"})
    assert r.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert {line["id"] for line in lines} == {hexid("abcdef01"), hexid("abcdef02")}


def test_truncated_ndjson_export_continues(client: TestClient) -> None:
    """The test app caps exports at 5 rows: trailer + headers say so, `next` continues."""
    r = client.get(URL, params={"format": "ndjson"})
    assert r.headers["x-truncated"] == "true" and r.headers["x-row-limit"] == "5"
    seen: list[str] = []
    while True:
        lines = [json.loads(line) for line in r.text.splitlines()]
        trailer = lines[-1] if lines and lines[-1].get("truncated") else None
        records = lines[:-1] if trailer else lines
        assert len(records) <= 5
        seen += [rec["id"] for rec in records]
        if trailer is None:
            break
        assert trailer["rows"] == 5 and trailer["total"] == ACTIVE
        r = client.get(trailer["links"]["next"])
    assert len(seen) == ACTIVE and set(seen) == set(ORACLE)


def test_truncated_csv_export_has_a_trailer(client: TestClient) -> None:
    r = client.get(URL, params={"format": "csv"})
    lines = r.text.splitlines()
    assert lines[-1].startswith("# truncated: 5 of 13 rows; continue with http")
    assert len(lines) == 1 + 5 + 1


def test_export_page_by_page_with_limit(client: TestClient) -> None:
    seen: list[str] = []
    r = client.get(URL, params={"format": "csv", "limit": 4})
    while True:
        rows = list(csv.DictReader(io.StringIO(r.text)))
        assert len(rows) <= 4 and not any(row["id"].startswith("#") for row in rows)
        seen += [row["id"] for row in rows]
        link = r.headers.get("link")
        if link is None:
            break
        r = client.get(link.split(">")[0].lstrip("<"))
    assert len(seen) == ACTIVE and set(seen) == set(ORACLE)


# -- one record ------------------------------------------------------------------------------

RECORD = f"{URL}/{{}}"


@pytest.mark.parametrize(
    "ref",
    [MULTIPART_ID, "aaaa01", "AAAA01", MULTIPART_ID[:20], MULTIPART_PART1, MULTIPART_PART1[:8]],
)
def test_lookup_variants(client: TestClient, ref: str) -> None:
    r = client.get(RECORD.format(ref))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["summary"]["id"] == MULTIPART_ID
    prov = body["provenance"]
    assert prov["txids"] == [MULTIPART_ID, MULTIPART_PART1]
    assert prov["publisher"] == PUB_A and prov["signature_valid"] is True
    assert prov["block_height"] == 100 and len(prov["block_hash"]) == 64
    assert body["artifact"]["details"]["speciesName"] == "Caulobacter crescentus"
    assert body["links"]["self"].endswith(f"/api/v1/records/{MULTIPART_ID}")
    # the default app has the IPFS path gateway part (etdb.web.gateway)
    assert body["links"]["files"] == f"http://testserver/ipfs/{body['summary']['location']}/"


def fake_gateway(app) -> None:  # type: ignore[no-untyped-def]
    app.add_api_route("/ipfs/{path:path}", lambda path: {"path": path})


def test_files_link_with_a_gateway(catalog, settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setitem(PARTS, "gateway", "tests.api.test_v1:fake_gateway")
    client = TestClient(create_app(catalog, settings=settings))
    body = client.get(RECORD.format(MULTIPART_ID)).json()
    assert body["links"]["files"] == f"http://testserver/ipfs/{body['summary']['location']}/"


def test_lookup_edited_record(client: TestClient) -> None:
    body = client.get(RECORD.format(EDITED_ID)).json()
    assert body["artifact"]["info"]["title"] == "Bdellovibrio predation (edited)"
    assert body["original"]["info"]["title"] == "Bdellovibrio predation"
    assert body["summary"]["title"] == "Bdellovibrio predation (edited)"
    [edit] = body["provenance"]["edits"]
    assert edit["txid"] == hexid("e0e0e0") and edit["timestamp"] == 1_500_000_900
    # the edit's txid finds the record too
    assert client.get(RECORD.format(hexid("e0e0e0"))).json()["summary"]["id"] == EDITED_ID


def test_lookup_deactivated_record(client: TestClient) -> None:
    body = client.get(RECORD.format(DEACTIVATED_ID)).json()
    assert body["summary"]["deactivated"] is True
    assert body["provenance"]["deactivated"] is True
    assert body["provenance"]["deactivated_by"] == hexid("d0d0d0")


@pytest.mark.parametrize("ref", ["aaaa0", "zzzzzz", "abcdef-01", "a" * 65, "0x" + "a" * 10])
def test_lookup_bad_id(client: TestClient, ref: str) -> None:
    error = bad(client, "id", RECORD.format(ref))
    assert "hex" in error["message"]


def test_lookup_unknown_and_ambiguous(client: TestClient) -> None:
    r = client.get(RECORD.format("123456"))
    assert r.status_code == 404
    assert r.json()["error"] == {"parameter": "id", "message": "no record with id '123456'"}
    r = client.get(RECORD.format("abcdef"))
    assert r.status_code == 409
    error = r.json()["error"]
    assert error["parameter"] == "id"
    assert error["candidates"] == [hexid("abcdef01"), hexid("abcdef02")]


# -- catalog-wide ----------------------------------------------------------------------------


def test_publishers(client: TestClient) -> None:
    items = client.get("/api/v1/publishers").json()["items"]
    assert [(p["address"], p["records"]) for p in items] == [(PUB_B, 7), (PUB_A, 6)]
    a = items[1]
    assert a["first_published"] == 1_500_000_100 and a["last_published"] == 1_500_001_070


def test_summary(client: TestClient) -> None:
    body = client.get("/api/v1/summary").json()
    assert body["records"] == ACTIVE
    assert body["species"]["Treponema primitia"] == 9
    assert body["publishers"] == {PUB_A: 6, PUB_B: 7}
    assert body["total_bytes"] > 0


def test_status_without_ledger(client: TestClient) -> None:
    r = client.get("/api/v1/status")
    assert r.headers["cache-control"] == "no-cache" and "etag" not in r.headers
    body = r.json()
    assert body["ledger_url"] == "local://user@/nowhere/ledger.sqlite3"  # password redacted
    assert body["ledger_tip"] is None and body["lag"] is None
    assert body["indexed_height"] == HEIGHT and body["records"] == ACTIVE
    assert body["pending_multiparts"] == 1 and body["indexer"] == "off"
    # a COUNT where the catalog has CatalogReader.rejection_count(), else null (not a scan)
    counts = hasattr(client.app.state.etdb.catalog, "rejection_count")  # type: ignore[attr-defined]
    assert body["rejected"] == (REJECTIONS if counts else None)


def test_status_with_ledger(tmp_path, catalog, settings) -> None:  # type: ignore[no-untyped-def]
    ledger = open_local(f"local:///{tmp_path}/ledger.sqlite3")
    for n in range(HEIGHT + 5):
        ledger.publish(f"text:block {n}")
    app = create_app(catalog, settings=settings, ledger=ledger)
    body = TestClient(app).get("/api/v1/status").json()
    assert body["ledger_tip"] == HEIGHT + 4 and body["lag"] == 4
    assert body["ledger_url"] == ledger.url
    ledger.close()


def test_rejections_pages(client: TestClient) -> None:
    seen, params = [], {"limit": 3}
    while True:
        body = client.get("/api/v1/rejections", params=params).json()
        seen += body["items"]
        if body["next"] is None:
            break
        params["after"] = body["next"]
    assert [r["txid"] for r in seen] == [hexid(f"bad{n:03x}") for n in range(REJECTIONS)]
    assert seen[0]["reason"] == "reason 0" and seen[0]["payload_excerpt"] == "text:x"
    bad(client, "after", "/api/v1/rejections", after="x")
    bad(client, "limit", "/api/v1/rejections", limit=0)
    bad(client, "limit", "/api/v1/rejections", limit=501)
    bad(client, "colour", "/api/v1/rejections", colour="red")


@pytest.mark.parametrize("path", ["/api/v1/publishers", "/api/v1/summary", "/api/v1/status"])
def test_unknown_parameters_elsewhere(client: TestClient, path: str) -> None:
    bad(client, "x", path, x=1)


def test_unknown_path_and_method(client: TestClient) -> None:
    r = client.get("/api/v1/nothing-here")
    assert r.status_code == 404 and r.json()["error"]["message"] == "Not Found"
    r = client.post(URL)
    assert r.status_code == 405 and "error" in r.json()


# -- headers ---------------------------------------------------------------------------------


def test_cors(client: TestClient) -> None:
    r = client.get(URL, headers={"Origin": "https://example.org"})
    assert r.headers["access-control-allow-origin"] == "*"
    assert "ETag" in r.headers["access-control-expose-headers"]
    pre = client.options(
        URL,
        headers={"Origin": "https://example.org", "Access-Control-Request-Method": "GET"},
    )
    assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == "*"


def test_cache_validators(client: TestClient) -> None:
    r = client.get(URL, params={"limit": 2})
    assert r.headers["etag"] == f'W/"{HEIGHT}"'
    assert r.headers["cache-control"] == "public, max-age=30"
    for tag in (r.headers["etag"], f'"{HEIGHT}"', f'"x", W/"{HEIGHT}"', "*"):
        again = client.get(URL, params={"limit": 2}, headers={"If-None-Match": tag})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == r.headers["etag"]
    stale = client.get(URL, params={"limit": 2}, headers={"If-None-Match": 'W/"1"'})
    assert stale.status_code == 200
    lookup = client.get(RECORD.format("aaaa01"), headers={"If-None-Match": r.headers["etag"]})
    assert lookup.status_code == 304


def test_etag_follows_the_indexed_height(tmp_path, settings) -> None:  # type: ignore[no-untyped-def]
    catalog = open_catalog(f"sqlite:///{tmp_path}/c.sqlite3")
    fill(catalog)
    app = create_app(catalog, settings=settings)
    app.state.etdb.height_ttl = 0  # re-read the height on every request
    client = TestClient(app)
    before = client.get("/api/v1/summary").headers["etag"]
    catalog.set_meta("cursor", json.dumps({"height": HEIGHT + 1, "hashes": []}))
    r = client.get("/api/v1/summary", headers={"If-None-Match": before})
    assert r.status_code == 200 and r.headers["etag"] == f'W/"{HEIGHT + 1}"'
    catalog.close()


def test_gzip(client: TestClient) -> None:
    r = client.get(URL, params={"limit": 50}, headers={"Accept-Encoding": "gzip"})
    assert r.headers["content-encoding"] == "gzip"
    assert r.json()["total"] == ACTIVE  # httpx inflates it
    small = client.get("/api/v1/summary", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers  # too small to be worth it


def test_docs_work_offline(client: TestClient) -> None:
    page = client.get("/api/docs")
    assert page.status_code == 200 and "swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text.lower() and "http" not in page.text.split("<body>")[1]
    assert client.get("/api/docs-assets/swagger-ui-bundle.js").status_code == 200
    assert "redoc.standalone.js" in client.get("/api/redoc").text
    spec = client.get("/api/openapi.json").json()
    assert spec["paths"]["/api/v1/records"]["get"]["responses"]["400"]
    assert "422" not in json.dumps(spec["paths"])


def test_settings_are_used_for_the_ledger_url(catalog) -> None:  # type: ignore[no-untyped-def]
    s = Settings(home=__import__("pathlib").Path("/tmp"), ledger="flo+http://u:pw@node:7313")
    body = TestClient(create_app(catalog, settings=s)).get("/api/v1/status").json()
    assert body["ledger_url"] == "flo+http://u@node:7313"


@pytest.mark.parametrize("path", [URL, RECORD.format("aaaa01"), "/api/v1/summary"])
def test_head(client: TestClient, path: str) -> None:
    head, get = client.head(path), client.get(path)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["etag"] == get.headers["etag"]
    assert head.headers["content-length"] == get.headers["content-length"]
