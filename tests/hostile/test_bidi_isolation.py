"""Bidi overrides in record text (issue 11 follow-up): shown as published, but isolated.

A record's text may carry bidi overrides and isolates (U+202A-U+202E, U+2066-U+2069): they
are valid text and signed text is never cleaned. Before the fix the portal printed such text
straight into its own inline text, so a file name ``evil<U+202E>gpj.exe`` displayed as
``evilexe.jpg`` and an unclosed override could reorder the page's text after it. Now every
record value the portal shows as text is inside its own ``<bdi>`` element (the ``bdi``
filter, ``web/render.py``): its overrides end with it.

Real embedded ledger, indexer, SQLite catalog and app (TestClient: the HTML is what is
checked; how a browser lays it out follows from ``<bdi>``, HTML's isolating element).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from etdb.api import create_app
from etdb.config import Settings
from etdb.index.catalog import open_catalog
from etdb.index.indexer import Indexer
from tests.hostile.test_text_hygiene import wire
from tests.index.test_indexer import Chain

RLO = "\u202e"
BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")
FILE_NAME = f"evil{RLO}gpj.exe"
FIELDS = {
    "info/title": f"Vibrio {RLO}elif cholerae \u2067isolate",
    "details/speciesName": f"Vibrio {RLO}cholerae",
    "details/microscopist": f"Ada {RLO}Byron",
    "details/lab": "\u202bJensen Lab",
    "storage/files/0/fname": FILE_NAME,
    "storage/files/0/dname": FILE_NAME,  # the name shown
    "storage/files/0/fNotes": f"notes {RLO}here",
}


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[TestClient, str]]:
    tmp: Path = tmp_path_factory.mktemp("bidi")
    chain = Chain(tmp / "ledger.sqlite3")
    [record_id] = chain.block(wire(1, **FIELDS))
    catalog = open_catalog(f"sqlite:///{tmp / 'catalog.sqlite3'}")
    Indexer(chain.ledger, catalog).run()
    assert catalog.get(record_id) is not None, "the record must be accepted as published"
    home = tmp / "home"
    home.mkdir()
    app = create_app(catalog, settings=Settings(home=home), ledger=chain.ledger)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, record_id
    catalog.close()
    chain.close()


class _BidiText(HTMLParser):
    """Text chunks with a bidi control, each with whether a ``<bdi>`` holds it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.found: list[tuple[str, bool]] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag not in ("br", "img", "input", "link", "meta", "source", "wbr", "hr"):
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.open:
            while self.open.pop() != tag:
                pass

    def handle_data(self, data: str) -> None:
        if BIDI.search(data) and "title" not in self.open:  # <title> holds no markup
            self.found.append((data, "bdi" in self.open))


def _unisolated(html: str) -> list[str]:
    parser = _BidiText()
    parser.feed(html)
    assert parser.found, "the record's text is on the page"
    return [text for text, isolated in parser.found if not isolated]


def test_the_file_name_is_isolated(served) -> None:
    client, record_id = served
    html = client.get(f"/tomogram/{record_id}").text
    assert f'<td class="file-name"><bdi>{FILE_NAME}</bdi>' in html


@pytest.mark.parametrize("page", ["/tomogram/{id}", "/browse", "/browse?q=cholerae", "/"])
def test_record_text_is_isolated_on_every_page(served, page: str) -> None:
    client, record_id = served
    response = client.get(page.format(id=record_id))
    assert response.status_code == 200
    assert _unisolated(response.text) == []


def test_the_record_is_shown_as_published(served) -> None:
    """Isolated, not cleaned: the API and the page carry the text exactly."""
    client, record_id = served
    body = client.get(f"/api/v1/records/{record_id}").json()
    assert body["artifact"]["info"]["title"] == FIELDS["info/title"]
    assert FILE_NAME in client.get(f"/tomogram/{record_id}").text
