"""/api/v2's POST /search, GET /publisher/get/all and GET /info, called the way oip-js 1.1.20
(axios 0.17), etdb-react and the Alexandria browser called them, and hostile bodies.

The catalog is the shared API dataset (tests/api/conftest.py), a real SQLite catalog.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from etdb.api.compat_search import MAX_BODY
from tests.api.conftest import ACTIVE, DEACTIVATED_ID, PUB_A, PUB_B, SPECS, hexid

SEARCH = "/api/v2/search"
ORIGIN = "https://etdb.caltech.edu"
#: What axios 0.17 sends for Network.OIPdAPI.post(url, options): its default Accept, and
#: transformRequest's JSON content type for a plain object.
AXIOS = {
    "Accept": "application/json, text/plain, */*",
    "Content-Type": "application/json;charset=utf-8",
    "Origin": ORIGIN,
}


def oip_js_search(client: TestClient, options: dict[str, Any]) -> list[dict[str, Any]]:
    """Network.searchOIPd: fill in the defaults, post with axios, read ``response``."""
    options = dict(options)
    options.setdefault("protocol", "media")
    options.setdefault("search-on", "*")
    if not options.get("search-like"):
        by_address = options["protocol"] == "publisher" and options["search-on"] == "address"
        options["search-like"] = not by_address
    r = client.post(SEARCH, content=json.dumps(options, separators=(",", ":")), headers=AXIOS)
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == "*"
    data = r.json()
    assert data["status"] == "success" and isinstance(data["response"], list)
    return data["response"]


def post(client: TestClient, options: dict[str, Any]) -> list[dict[str, Any]]:
    """As sent, without oip-js's defaults (its ``!options["search-like"]`` turns a false
    into true except for publisher addresses, so oip-js itself never searches exactly)."""
    r = client.post(SEARCH, json=options, headers={"Origin": ORIGIN})
    assert r.status_code == 200, r.text
    return r.json()["response"]


def txids(results: list[dict[str, Any]]) -> list[str]:
    # Artifact.fromJSON: {oip042: {artifact}} and txid; the artifact is a full record
    for result in results:
        assert set(result) == {"oip042", "txid", "publisher"}
        assert result["oip042"]["artifact"]["floAddress"] == result["publisher"]
    return [r["txid"] for r in results]


def newest_first(client: TestClient, **params: Any) -> list[str]:
    items = client.get("/api/v1/records", params={"limit": 500, **params}).json()["items"]
    return [i["id"] for i in items]


def test_preflight_allows_the_json_post(client: TestClient) -> None:
    r = client.options(
        SEARCH,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert r.status_code == 200 and "POST" in r.headers["access-control-allow-methods"]


def test_any_field_is_the_full_text(client: TestClient) -> None:
    found = txids(oip_js_search(client, {"search-for": "Treponema"}))
    assert found == newest_first(client, q="Treponema") and len(found) == 9
    assert oip_js_search(client, {"search-for": "nothing-like-this"}) == []


def test_featured_cell_search(client: TestClient) -> None:
    # etdb-react FeaturedCell: camelCase lists; oip-js adds "search-on": "*", "search-like"
    spec = SPECS[0]
    body = {
        "protocol": "media",
        "searchOn": ["sid", "lab", "institution"],
        "searchFor": [spec.fields["sid"], spec.fields["lab"], spec.fields["institution"]],
    }
    assert txids(oip_js_search(client, body)) == [spec.id]
    body["searchFor"] = [spec.fields["sid"], "Other Lab", spec.fields["institution"]]
    assert oip_js_search(client, body) == []


def test_exact_and_like(client: TestClient) -> None:
    coli = [hexid("abcdef02"), hexid("abcdef01")]  # newest first
    exact = {"search-on": "speciesName", "search-for": "Escherichia coli", "search-like": False}
    assert txids(post(client, exact)) == coli
    assert post(client, {**exact, "search-for": "escherichia coli"}) == []
    # what oip-js sends for the same options: search-like true, a substring
    assert txids(oip_js_search(client, {**exact, "search-for": "escherichia coli"})) == coli
    like = {"search-on": "speciesName", "search-for": "escherichia", "search-like": True}
    assert txids(oip_js_search(client, like)) == coli
    # like checks the named field, not the record's other text
    assert oip_js_search(client, {**like, "search-on": "microscopist"}) == []
    pairs = {
        "search-on": ["speciesName", "strain"],
        "search-for": ["Escherichia coli", "K-12"],
        "search-like": False,
    }
    assert txids(post(client, pairs)) == [hexid("abcdef01")]
    taxid = {"search-on": "NCBItaxID", "search-for": 562, "search-like": False}
    assert txids(post(client, taxid)) == coli
    title = {"search-on": "title", "search-for": "e. coli MINICELL", "search-like": False}
    assert txids(post(client, title)) == []  # exact is exact, as the catalog's filters
    assert txids(post(client, {**title, "search-for": "E. coli  minicell"})) == [coli[0]]
    by_publisher = {"search-on": "publisher", "search-for": PUB_B, "search-like": False}
    assert txids(post(client, by_publisher)) == newest_first(client, publisher=PUB_B)


def test_txid_first_match_and_deactivated(client: TestClient) -> None:
    body = {"search-on": "txid", "search-for": "abcd"}
    assert txids(oip_js_search(client, body)) == [hexid("abcdef01")]  # the oldest
    assert oip_js_search(client, {**body, "search-for": DEACTIVATED_ID}) == []
    both = {"search-on": "txid", "search-for": ["abcdef02", "aaaa01"]}
    assert txids(oip_js_search(client, both)) == [hexid("abcdef02"), hexid("aaaa01")]


def test_alexandria_browser_and_librarydjs_bodies(client: TestClient) -> None:
    # PhoenixAPI: $.ajax POST of JSON text under jQuery's form content type
    text = '{"protocol":"media","search-on":"txid","search-for":"aaaa01","search-like": true}'
    form = {"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"}
    r = client.post(SEARCH, content=text, headers=form)
    assert [x["txid"] for x in r.json()["response"]] == [hexid("aaaa01")]
    # LibraryDJS: request() with a JSON string body and no content type at all
    r = client.post(
        SEARCH,
        content=json.dumps(
            {"protocol": "media", "search-on": "txid", "search-for": hexid("aaaa01")}
        ),
    )
    assert [x["txid"] for x in r.json()["response"]] == [hexid("aaaa01")]


def test_publisher_search_as_get_publisher_reads_it(client: TestClient) -> None:
    # oip-js Index.getPublisher: results[0]['publisher-data']['alexandria-publisher']
    body = {"protocol": "publisher", "search-on": "address", "search-for": PUB_A}
    [entry] = oip_js_search(client, body)
    publisher = entry["publisher-data"]["alexandria-publisher"]
    assert publisher["address"] == PUB_A and publisher["name"] == ""
    first = min(
        (s for s in SPECS if s.key.address == PUB_A and s.id != DEACTIVATED_ID),
        key=lambda s: (s.fields["timestamp"], s.id),
    )
    assert entry["txid"] == first.id and entry["block"] == 100 + SPECS.index(first)
    assert publisher["timestamp"] == first.fields["timestamp"] * 1000
    assert oip_js_search(client, {**body, "search-for": PUB_A.lower()}) == []  # exact
    like = {"protocol": "publisher", "search-on": "*", "search-for": PUB_A[:8].lower()}
    assert [
        e["publisher-data"]["alexandria-publisher"]["address"] for e in oip_js_search(client, like)
    ] == [PUB_A]
    for other in ("retailer", "promoter", "autominer"):
        assert oip_js_search(client, {"protocol": other, "search-for": PUB_A}) == []


def test_publisher_list_and_info(client: TestClient) -> None:
    # oip-js getPublishersFromOIPd / the Alexandria browsers: GET /publisher/get/all
    r = client.get("/api/v2/publisher/get/all", headers={"Origin": ORIGIN})
    assert r.status_code == 200 and r.headers["etag"].startswith('W/"')
    entries = r.json()
    addresses = [e["publisher-data"]["alexandria-publisher"]["address"] for e in entries]
    assert addresses == [p["address"] for p in client.get("/api/v1/publishers").json()["items"]]
    assert len({e["txid"] for e in entries}) == len(entries)  # oip-js keeps uniqBy("txid")
    assert all(set(e) == {"publisher-data", "txid", "block"} for e in entries)
    # oip-js getLatestOIPdInfo: OIPd.calculatePublishFee reads avgArtCost
    info = client.get("/api/v2/info").json()
    assert info == {"artCount": ACTIVE, "avgArtCost": 0}
    assert client.head("/api/v2/info").status_code == 200


# -- hostile requests ----------------------------------------------------------------------


def refused(client: TestClient, content: bytes | str, parameter: str | None = "body") -> None:
    r = client.post(SEARCH, content=content, headers=AXIOS)
    assert r.status_code == 400, (content[:60], r.status_code, r.text[:200])
    assert r.json()["error"]["parameter"] == parameter


@pytest.mark.parametrize(
    ("content", "parameter"),
    [
        (b"", "body"),
        (b"{", "body"),
        (b"[]", "body"),
        (b'"media"', "body"),
        (b"\xff\xfe{}", "body"),  # not UTF-8
        (b"[" * 8000 + b"]" * 8000, "body"),  # nesting that would exhaust the recursion
        (b'{"search-for": 1' + b"0" * 5000 + b"}", "body"),  # an integer past int()'s limit
        (b'{"search-for": NaN}', "body"),
        (b'{"search-for": "a\\u0000b"}', "body"),  # NUL
        (b'{"search-for": "\\ud800"}', "body"),  # a lone surrogate
        (b'{"protocol": 5}', "protocol"),
        (b'{"protocol": "' + b"p" * 300 + b'"}', "protocol"),
        (b'{"search-like": "yes"}', "search-like"),
        (b'{"search-on": []}', "search-on"),
        (b'{"search-on": ' + json.dumps(["*"] * 11).encode() + b"}", "search-on"),
        (b'{"search-on": ["*", "lab"], "search-for": ["a", "b", "c"]}', "search-for"),
        (b'{"search-on": {"a": 1}}', "search-on"),
        (b'{"search-for": {"a": 1}}', "search-for"),
        (b'{"search-for": true}', "search-for"),
        (b'{"search-for": 1.5}', "search-for"),
        (b'{"search-for": "' + b"x" * 501 + b'"}', "search-for"),
        (b'{"search-on": "colour", "search-for": "red"}', "search-on"),
        (b'{"search-on": "NCBItaxID", "search-for": "abc"}', "search-for"),
        (b'{"search-on": "NCBItaxID", "search-for": 99999999999999999999}', "search-for"),
        (b'{"search-on": "txid", "search-for": "abc"}', "search-for"),
        (b'{"search-on": ["txid", "lab"], "search-for": ["abcd", "x"]}', "search-on"),
        (b'{"protocol": "publisher", "search-on": "colour"}', "search-on"),
        (json.dumps({"search-for": " ".join(["w"] * 40)}).encode(), "search-for"),
    ],
)
def test_bad_bodies_are_clear_400s(client: TestClient, content: bytes, parameter: str) -> None:
    refused(client, content, parameter)


def test_text_without_words_is_not_an_error(client: TestClient) -> None:
    for text in ("", "***", "-", "a" * 500, "\u00b5m"):
        r = client.post(SEARCH, json={"search-on": "*", "search-for": text})
        assert r.status_code in (200, 400), (text, r.text[:200])
        if r.status_code == 400:
            assert r.json()["error"]["parameter"] is not None


def test_body_size_is_bounded(client: TestClient) -> None:
    big = b'{"search-for": "' + b"x" * MAX_BODY + b'"}'
    r = client.post(SEARCH, content=big, headers=AXIOS)
    assert r.status_code == 413 and "bytes" in r.json()["error"]["message"]
    # a Content-Length announcing a huge body is refused before anything is read
    r = client.post(SEARCH, content=b"{}", headers={**AXIOS, "Content-Length": str(10**12)})
    assert r.status_code in (400, 413)

    sent = []

    def chunks() -> Iterator[bytes]:  # chunked, no Content-Length: counted while read
        yield b'{"search-for": "'
        for _ in range(1000):
            sent.append(1)
            yield b"x" * 1024
        yield b'"}'

    r = client.post(SEARCH, content=chunks(), headers=AXIOS)
    assert r.status_code == 413
