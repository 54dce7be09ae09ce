"""Request echo (issue 11 follow-up): no page or API answer carries unsafe text a request sent.

Pages and error messages echo the request (the search box, filter chips, the page title, a
bad parameter's name or value, the path of a 404, the JSON twin's query). Before the fix,
``/browse?q=a%00b`` answered a 400 page with a literal NUL in its title, search box and chip,
``/dataset/a%00b`` a 404 page with one in its ``<link rel="alternate">`` href, and
``/browse.json?q=x%1B`` echoed the escape character in its JSON. Now every such character
(``record.decoding.UNSAFE_TEXT``) is shown as its visible escape (``\\x00``).

Real app (API, compat API, portal, gateway) over a real, empty SQLite catalog.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from etdb.api import create_app
from etdb.config import Settings
from etdb.index.catalog import open_catalog
from etdb.record.decoding import UNSAFE_TEXT

#: Percent-encoded values: C0 controls, and UTF-8 spellings of lone surrogates (and a cut
#: sequence), which a decoder must never turn into a lone surrogate.
VALUES = ("a%00b", "x%1B[31m", "a%0Bb", "%08%0C%1F", "%ED%A0%80", "x%ED%BF%BFy", "%F0%9F")
#: URLs, each with {} for the hostile value: portal, API, compat API (/api/v2), gateway.
ROUTES = (
    "/browse?q={}",
    "/browse?sort={}",
    "/browse?species={}&date_from={}",
    "/browse.json?q={}",
    "/browse.json?sort={}",
    "/dataset/{}",
    "/dataset/{}.json",
    "/dataset/abcdef{}",
    "/featured/{}",
    "/{}",
    "/api/v1/records?sort={}",
    "/api/v1/records?q={}",
    "/api/v1/records?limit={}",
    "/api/v1/records?{}=1",
    "/api/v1/records/{}",
    "/api/v1/rejections?after={}",
    "/api/v2/artifact/get/{}",
    "/api/v2/artifact/get/type?type={}",
    "/api/v2/{}",
    "/ipfs/{}",
    "/ipfs/bafkqaaa/{}",
)


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Iterator[TestClient]:
    tmp: Path = tmp_path_factory.mktemp("echo")
    catalog = open_catalog(f"sqlite:///{tmp / 'catalog.sqlite3'}")
    home = tmp / "home"
    home.mkdir()
    app = create_app(catalog, settings=Settings(home=home))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client
    catalog.close()


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _unsafe(body: bytes, content_type: str) -> list[str]:
    text = body.decode("utf-8")  # strict: a lone surrogate cannot even be encoded
    found = [m.group() for m in UNSAFE_TEXT.finditer(text)]
    if "json" in content_type:  # "\u0000" escapes decode to the character itself
        found += [s for s in _strings(json.loads(text)) if UNSAFE_TEXT.search(s)]
    return found


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("route", ROUTES)
def test_no_answer_echoes_unsafe_text(client: TestClient, route: str, value: str) -> None:
    url = route.format(value, value)
    for accept in ("text/html", "application/json"):
        response = client.get(url, headers={"Accept": accept}, follow_redirects=False)
        assert response.status_code < 500, (url, accept, response.text[:300])
        unsafe = _unsafe(response.content, response.headers.get("content-type", ""))
        assert not unsafe, (url, accept, unsafe)


def test_the_echo_shows_the_escape(client: TestClient) -> None:
    """What was sent is still visible (as its escape), and the message names the parameter."""
    page = client.get("/browse?q=a%00b")
    assert page.status_code == 400
    assert "a\\x00b" in page.text
    assert "<title>a\\x00b" in page.text
    twin = client.get("/browse.json?q=x%1B").json()
    assert twin["query"]["params"]["q"] == ["x\\x1b"]
    api = client.get("/api/v1/records?a%00b=1")
    assert api.status_code == 400
    assert api.json()["error"]["parameter"] == "a\\x00b"
    missing = client.get("/dataset/a%00b")
    assert missing.status_code == 404
    assert "a\\x00b" in missing.text
    # The JSON twin's link quotes the path again (it was a raw NUL in the href).
    assert 'href="http://testserver/dataset/a%00b.json"' in missing.text


def test_safe_answers_are_unchanged(client: TestClient) -> None:
    """Tabs, newlines and non-ASCII text are not escaped: only the unsafe characters are."""
    twin = client.get("/browse.json?q=caf%C3%A9%09x").json()
    assert twin["query"]["params"]["q"] == ["café\tx"]
