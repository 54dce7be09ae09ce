"""/browse against a real SQLite catalog (the API tests' records): every filter, facet, range,
sort and page agrees with /api/v1/records and with what the records hold; the URL round-trips
through the form; bad parameters re-render the page naming them; the portal scope narrows
everything; hostile record values stay inert; the JSON twin."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import pytest
from fastapi.testclient import TestClient

from etdb.api import create_app
from etdb.config import Settings
from etdb.index.catalog import open_catalog
from etdb.web import browse
from etdb.web.selection import PAGE_SIZE
from tests.api.conftest import DEACTIVATED_ID, EDITED_ID, KEY_A, PUB_B, SPECS, fill, unix
from tests.index.records import file_set, make_artifact, published, signed_artifact

# -- a small DOM over html.parser (the page's structure, not regexes over its text) ----------

_VOID = {"area", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    parent: Node | None = None
    children: list[Node] = field(default_factory=list)
    content: list[str | Node] = field(default_factory=list)  # text and children, in order

    @property
    def text(self) -> str:
        return " ".join("".join(self._text()).split())

    def _text(self) -> Iterator[str]:
        for part in self.content:
            yield from (part,) if isinstance(part, str) else part._text()

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def all(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> list[Node]:
        out = []
        for child in self.children:
            if (
                (tag is None or child.tag == tag)
                and (cls is None or cls in child.classes)
                and all(child.attrs.get(k.rstrip("_")) == v for k, v in attrs.items())
            ):
                out.append(child)
            out += child.all(tag, cls, **attrs)
        return out

    def one(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> Node:
        found = self.all(tag, cls, **attrs)
        assert len(found) == 1, f"{len(found)} matches for {tag} {cls} {attrs}"
        return found[0]


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = self.node = Node("#root", {})

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs}, self.node)
        self.node.children.append(node)
        self.node.content.append(node)
        if tag not in _VOID:
            self.node = node

    def handle_endtag(self, tag: str) -> None:
        node: Node | None = self.node
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.node = node.parent

    def handle_data(self, data: str) -> None:
        self.node.content.append(data)


def dom(html: str) -> Node:
    builder = _Builder()
    builder.feed(html)
    return builder.root


# -- the catalog, the app, and what the records hold -----------------------------------------

HOSTILE = '<script>alert("x")</script>'
HOSTILE_LAB = '"><img src=x onerror=alert(1)> & Co'


def _hostile_records() -> list[Any]:
    art = signed_artifact(
        KEY_A,
        title=f"Hostile {HOSTILE}",
        species=HOSTILE,
        lab=HOSTILE_LAB,
        microscopist="Mallory <b>",
        date=unix("2015-05-05"),
        timestamp=1_500_009_000,
        sid="x<y>",
        files=file_set("tiltSeries", "thumbnail", stem="x<y>"),
    )
    return [published(art, id="ee" * 32, height=130)]


@pytest.fixture(scope="module")
def catalog_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("browse") / "catalog.sqlite3"
    catalog = open_catalog(f"sqlite:///{path}")
    try:
        fill(catalog)
        with catalog.transaction():
            for record in _hostile_records():
                catalog.add_record(record)
    finally:
        catalog.close()
    return f"sqlite:///{path}"


def _client(catalog_url: str, home: Path, **settings: str) -> Iterator[TestClient]:
    catalog = open_catalog(catalog_url)
    app = create_app(catalog, settings=Settings(home=home, **settings))
    with TestClient(app) as client:
        yield client
    catalog.close()


@pytest.fixture(scope="module")
def client(catalog_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    yield from _client(catalog_url, tmp_path_factory.mktemp("home"))


def _oracle() -> dict[str, dict[str, Any]]:
    """Each active record's fields, from the specs (not through the catalog)."""
    out = {}
    for spec in SPECS:
        if spec.id == DEACTIVATED_ID:
            continue
        art = make_artifact(**spec.fields)
        if spec.id == EDITED_ID:
            art["details"]["strain"] = "HD100 edited"
        out[spec.id] = {
            **art["details"],
            "publisher": spec.key.address,
            "subtypes": {f["subtype"] for f in art["storage"]["files"]},
            "location": art["storage"]["location"],
            "files": art["storage"]["files"],
        }
    hostile = _hostile_records()[0]
    out[hostile.id] = {
        **hostile.artifact["details"],
        "publisher": hostile.publisher,
        "subtypes": {"tiltSeries", "thumbnail"},
        "location": hostile.artifact["storage"]["location"],
        "files": hostile.artifact["storage"]["files"],
    }
    return out


ORACLE = _oracle()


def expect(pred: Any) -> set[str]:
    return {rid for rid, row in ORACLE.items() if pred(row)}


def page_ids(client: TestClient, url: str) -> list[str]:
    """Every id the HTML page lists, following a[rel=next] to the end."""
    found: list[str] = []
    while url:
        r = client.get(url)
        assert r.status_code == 200, r.text[:2000]
        doc = dom(r.text)
        found += [a.attrs["href"].removeprefix("/tomogram/") for a in doc.all("a", "card-link")]
        nxt = doc.all("a", rel="next")
        url = nxt[0].attrs["href"] if nxt else ""
    assert len(found) == len(set(found)), "a record appeared twice"
    return found


def api_ids(client: TestClient, params: list[tuple[str, str]]) -> list[str]:
    out: list[str] = []
    query = [*params, ("limit", "500")]
    while True:
        body = client.get("/api/v1/records", params=query).json()
        out += [i["id"] for i in body["items"]]
        if not body["next"]:
            return out
        query = [*params, ("limit", "500"), ("after", body["next"])]


def browse_url(params: list[tuple[str, str]]) -> str:
    return "/browse?" + urlencode(params)


def total(doc: Node) -> int:
    return int(doc.one(id="total").text)


def query_of(href: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(href).query, keep_blank_values=True)


# -- the page and its cards ------------------------------------------------------------------


def test_page_lists_every_active_record_as_a_card(client: TestClient) -> None:
    r = client.get("/browse")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    doc = dom(r.text)
    assert total(doc) == len(ORACLE)
    assert doc.one("form", id="browse-form").one("input", name="q")
    cards = doc.one("ol", id="results").all("li", "card")
    assert len(cards) == min(len(ORACLE), PAGE_SIZE)
    for card in cards:
        rid = card.one("a", "card-link").attrs["href"].removeprefix("/tomogram/")
        row = ORACLE[rid]
        img = card.one("img", "card-thumb")
        assert img.attrs["alt"].startswith(f"{row['speciesName']} tomogram {row['sid']}")
        thumbs = [f["fname"] for f in row["files"] if f["subtype"] == "thumbnail"]
        keyimgs = [f["fname"] for f in row["files"] if f["subtype"] == "keyimg"]
        if thumbs:
            assert img.attrs["src"] == f"/ipfs/{row['location']}/{quote(thumbs[0])}"
            assert img.attrs["loading"] == "lazy"
        elif not keyimgs:
            assert img.attrs["src"] == "/static/no-thumbnail.svg"
        assert card.one(cls="card-species").text == " ".join(row["speciesName"].split())
        assert "species" in card.one(cls="card-species").classes  # italic
        if row.get("microscopist"):
            assert card.one(cls="card-microscopist").text == row["microscopist"]


#: The page's download command starts so: --server names this site (TestClient's host), so
#: the command selects the same records wherever it is pasted.
COMMAND = ["etdb", "download", "--server", "http://testserver"]


def test_download_command_names_the_site_it_was_shown_on(client: TestClient) -> None:
    """Behind another host name (a proxy, a public name) the command names that site."""
    html = client.get("/browse?lab=Jensen+Lab", headers={"Host": "etdb.example.org:8443"}).text
    words = shlex.split(dom(html).one("code", id="download-command").text)
    assert words[:4] == ["etdb", "download", "--server", "http://etdb.example.org:8443"]
    # A Host header is the requester's to write: whatever it holds stays one quoted word.
    hostile = "x.example;touch pwned `id` $(id)"
    html = client.get("/browse?lab=Jensen+Lab", headers={"Host": hostile}).text
    words = shlex.split(dom(html).one("code", id="download-command").text)
    assert words[2] == "--server" and words[4:] == ["--lab", "Jensen Lab"], words


def test_results_summary_and_download_command(client: TestClient) -> None:
    doc = dom(client.get("/browse?species=Treponema+primitia&limit=4").text)
    summary = doc.one(id="results-heading").text
    n = len(expect(lambda r: r["speciesName"] == "Treponema primitia"))
    assert summary == f"Results 1–4 of {n}"
    command = doc.one("code", id="download-command").text
    assert shlex.split(command) == [*COMMAND, "--species", "Treponema primitia"]
    assert doc.one("a", id="api-link").attrs["href"] == "/api/v1/records?species=Treponema+primitia"
    assert query_of(doc.one("a", id="csv-link").attrs["href"])[-1] == ("format", "csv")


# -- filters: each agrees with the API and with the records ----------------------------------

FILTERS: list[tuple[list[tuple[str, str]], Any]] = [
    ([("species", "Escherichia coli")], lambda r: r["speciesName"] == "Escherichia coli"),
    (
        [("species", "Escherichia coli"), ("species", "Caulobacter crescentus")],
        lambda r: r["speciesName"] in ("Escherichia coli", "Caulobacter crescentus"),
    ),
    ([("scope", "Titan Krios")], lambda r: r.get("scopeName") == "Titan Krios"),
    ([("lab", "Other Lab")], lambda r: r.get("lab") == "Other Lab"),
    ([("publisher", PUB_B)], lambda r: r["publisher"] == PUB_B),
    ([("tilt_axis", "dual")], lambda r: r.get("tiltSingleDual") == 2),
    ([("tilt_axis", "1")], lambda r: r.get("tiltSingleDual", 1) == 1),
    ([("file_type", "thumbnail")], lambda r: "thumbnail" in r["subtypes"]),
    (
        [("file_type", "thumbnail"), ("file_type", "keymov")],
        lambda r: {"thumbnail", "keymov"} <= r["subtypes"],
    ),
    (
        [("date_from", "2009-01-01"), ("date_to", "2012-12-31")],
        lambda r: unix("2009-01-01") <= r["date"] < unix("2013-01-01"),
    ),
    ([("tilt_min_from", "-58"), ("tilt_min_to", "-53")], lambda r: -58 <= r["tiltMin"] <= -53),
    ([("tilt_max_to", "55")], lambda r: r["tiltMax"] <= 55),
    ([("defocus_from", "-9"), ("defocus_to", "-5")], lambda r: -9 <= r["defocus"] <= -5),
    ([("dosage_from", "150")], lambda r: r["dosage"] >= 150),
    ([("microscopist", "Ariane Briegel")], lambda r: r.get("microscopist") == "Ariane Briegel"),
    ([("q", "chemoreceptor")], lambda r: r["sid"] == "ab2012-06-01-1"),
]


@pytest.mark.parametrize(("params", "pred"), FILTERS)
def test_filter_matches_the_records_and_the_api(
    client: TestClient, params: list[tuple[str, str]], pred: Any
) -> None:
    wanted = expect(pred)
    assert 0 < len(wanted) < len(ORACLE), "a filter test must narrow the results"
    url = browse_url([*params, ("limit", "3")])
    shown = page_ids(client, url)
    assert set(shown) == wanted
    assert shown == api_ids(client, params)  # same records, same order
    doc = dom(client.get(browse_url(params)).text)
    assert total(doc) == len(wanted)
    chips = doc.all("a", "active-filter")
    assert len(chips) >= 1


# -- facets ----------------------------------------------------------------------------------


def test_every_facet_value_links_to_exactly_its_count(client: TestClient) -> None:
    doc = dom(client.get("/browse?file_type=tiltSeries").text)
    values = doc.one("section", id="facets").all("a", "facet-value")
    facets = {v.attrs["data-facet"] for v in values}
    assert facets >= {"species", "scope", "lab", "publisher", "tilt_axis", "year", "file_type"}
    for value in values:
        count = int(value.one(cls="facet-count").text)
        target = dom(client.get(value.attrs["href"]).text)
        if "selected" in value.classes:  # file_type=tiltSeries itself: its link removes it
            assert ("file_type", "tiltSeries") not in query_of(value.attrs["href"])
            continue
        assert total(target) == count, (value.attrs, count)
        clicked = target.all(
            "a",
            "facet-value",
            **{"data-facet": value.attrs["data-facet"], "data-value": value.attrs["data-value"]},
        )
        assert clicked and "selected" in clicked[0].classes


def test_facets_most_frequent_first_with_a_more_link(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(browse, "FACETS_SHOWN", 2)
    doc = dom(client.get("/browse").text)
    species = doc.one(id="facet-species")
    counts = [int(c.text) for c in species.all(cls="facet-count")]
    assert len(counts) == 2 and counts == sorted(counts, reverse=True)
    n_species = len({" ".join(r["speciesName"].split()) for r in ORACLE.values()})
    more = species.one("a", "facet-more")
    assert more.text == f"{n_species - 2} more…"
    expanded = dom(client.get(more.attrs["href"]).text).one(id="facet-species")
    assert len(expanded.all("a", "facet-value")) == n_species
    fewer = expanded.one("a", "facet-more")
    assert ("more", "species") not in query_of(fewer.attrs["href"])


def test_year_and_axis_facets_set_their_parameters(client: TestClient) -> None:
    doc = dom(client.get("/browse").text)
    year = doc.one("a", "facet-value", **{"data-facet": "year", "data-value": "2010"})
    assert query_of(year.attrs["href"]) == [("date_from", "2010-01-01"), ("date_to", "2010-12-31")]
    page = dom(client.get(year.attrs["href"]).text)
    chips = page.all("a", "active-filter")
    assert [c.text.split(" ×")[0] for c in chips] == ["Year taken: 2010"]
    assert query_of(chips[0].attrs["href"]) == []
    assert page.one("input", id="date_from").attrs["value"] == "2010-01-01"
    dual = doc.one("a", "facet-value", **{"data-facet": "tilt_axis", "data-value": "2"})
    assert query_of(dual.attrs["href"]) == [("tilt_axis", "dual")]
    assert dual.one(cls="facet-label").text == "dual axis"


def test_each_chip_removes_exactly_its_filter(client: TestClient) -> None:
    params = [
        ("q", "coli"),
        ("species", "Escherichia coli"),
        ("scope", "Titan Krios"),
        ("dosage_from", "80"),
        ("sort", "date"),
    ]
    doc = dom(client.get(browse_url(params)).text)
    chips = doc.all("a", "active-filter")
    assert len(chips) == 4  # sort is not a filter
    for chip in chips:
        remaining = query_of(chip.attrs["href"])
        assert len(remaining) == len(params) - 1 and set(remaining) < set(params)
        assert ("sort", "date") in remaining


# -- sort, pages, the URL as the whole state -------------------------------------------------


@pytest.mark.parametrize("sort", ["date", "published", "species", "microscopist"])
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_sort_and_order_agree_with_the_api(client: TestClient, sort: str, order: str) -> None:
    params = [("sort", sort), ("order", order)]
    shown = page_ids(client, browse_url([*params, ("limit", "5")]))
    assert shown == api_ids(client, params)
    if sort == "date":
        dates = [ORACLE[i]["date"] for i in shown]
        assert dates == sorted(dates, reverse=order == "desc")
    doc = dom(client.get(browse_url(params)).text)
    assert doc.one("select", id="sort").one("option", selected="").attrs["value"] == sort
    assert doc.one("select", id="order").one("option", selected="").attrs["value"] == order
    assert doc.one("button", id="apply")


def test_keyset_pages_with_first_page_link(client: TestClient) -> None:
    first = dom(client.get("/browse?limit=5&sort=date").text)
    assert not first.all("a", "first-page")
    nxt = first.one("a", rel="next").attrs["href"]
    assert ("start", "6") in query_of(nxt)
    second = dom(client.get(nxt).text)
    assert second.one(id="results-heading").text == f"Results 6–10 of {len(ORACLE)}"
    assert second.one("ol", id="results").attrs["start"] == "6"
    back = second.one("a", "first-page").attrs["href"]
    assert query_of(back) == [("limit", "5"), ("sort", "date")]
    assert page_ids(client, "/browse?limit=5&sort=date") == api_ids(client, [("sort", "date")])


def _form_query(doc: Node) -> list[tuple[str, str]]:
    """What submitting the form sends (empty fields left out, as browse.js does)."""
    form = doc.one("form", id="browse-form")
    out = []
    for node in form.all():
        if node.tag == "input" and "name" in node.attrs:
            out.append((node.attrs["name"], node.attrs.get("value", "")))
        elif node.tag == "select":
            chosen = node.all("option", selected="")
            out.append((node.attrs["name"], chosen[0].attrs["value"] if chosen else ""))
    return [(k, v) for k, v in out if v != ""]


def test_the_form_reproduces_the_url(client: TestClient) -> None:
    params = [
        ("q", "flagellar motor"),
        ("species", "Vibrio cholerae"),
        ("species", 'Odd "name" & <co>'),
        ("taxid", "666"),
        ("date_from", "1262304000"),  # unix seconds: kept in a text input, not lost
        ("tilt_min_from", "-60.5"),
        ("dosage_to", "200"),
        ("sort", "date"),
        ("order", "asc"),
        ("more", "species"),
    ]
    r = client.get(browse_url(params))
    assert r.status_code == 200
    doc = dom(r.text)
    assert sorted(_form_query(doc)) == sorted(params)
    assert doc.one("input", id="date_from").attrs["type"] == "text"
    assert doc.one("input", id="dosage_to").attrs["type"] == "number"
    assert "open" in doc.one("details", cls="browse-ranges").attrs


def test_empty_fields_redirect_to_the_clean_url(client: TestClient) -> None:
    r = client.get("/browse?q=&species=Escherichia+coli&dosage_from=&sort=", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/browse?species=Escherichia+coli"


def test_a_page_is_revalidated_by_etag(client: TestClient) -> None:
    r = client.get("/browse?species=Escherichia+coli")
    tag = r.headers["etag"]
    again = client.get("/browse?species=Escherichia+coli", headers={"If-None-Match": tag})
    assert again.status_code == 304
    assert "Accept" in r.headers["vary"]


# -- bad parameters --------------------------------------------------------------------------

BAD = [
    ("limit=abc", "limit"),
    ("limit=0", "limit"),
    ("sort=bogus", "sort"),
    ("order=up", "order"),
    ("sort=relevance", "sort"),
    ("date_from=yesterday", "date_from"),
    ("date_from=2014-02-01&date_to=2014-01-01", "date_from"),
    ("dosage_from=5&dosage_to=1", "dosage_from"),
    ("defocus_to=nan", "defocus_to"),
    ("tilt_axis=3", "tilt_axis"),
    ("taxid=x", "taxid"),
    ("specie=Vibrio", "specie"),
    ("after=forged", "after"),
    ("start=0", "start"),
    ("more=nope", "more"),
    ("format=csv", "format"),
    ("facets=strain", "facets"),
]


@pytest.mark.parametrize(("query", "parameter"), BAD)
def test_bad_parameter_rerenders_the_page_naming_it(
    client: TestClient, query: str, parameter: str
) -> None:
    url = f"/browse?lab=kept&q=kept&{query}"
    if "relevance" in query:  # needs a q without words
        url = f"/browse?lab=kept&q=--&{query}"
    r = client.get(url)
    assert r.status_code == 400
    doc = dom(r.text)
    error = doc.one(cls="browse-error")
    assert error.one("strong").text == parameter
    given = query_of(url)
    assert doc.one("input", id="browse-q").attrs["value"] == dict(given)["q"]
    # nothing typed is lost (a new search from the form starts at page 1)
    assert sorted(_form_query(doc)) == sorted(p for p in given if p[0] not in ("after", "start"))
    drop = doc.one("a", id="drop-parameter").attrs["href"]
    assert query_of(drop) == [(k, v) for k, v in given if k != parameter]
    body = client.get(url.replace("/browse", "/browse.json")).json()
    assert r.status_code == 400 and body["error"]["parameter"] == parameter
    assert body["error"]["message"]


def test_browse_and_api_refuse_the_same_values_alike(client: TestClient) -> None:
    for query, parameter in BAD[:12]:
        api = client.get(f"/api/v1/records?{query}").json()["error"]
        page = client.get(f"/browse.json?{query}").json()["error"]
        assert page == {"parameter": parameter, "message": api["message"]}, query


# -- the portal scope ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scoped(catalog_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    yield from _client(
        catalog_url,
        tmp_path_factory.mktemp("scoped"),
        portal_filter="species=Escherichia coli&species=Treponema primitia",
        portal_publishers=PUB_B,
    )


def test_scope_narrows_results_facets_links_and_command(scoped: TestClient) -> None:
    wanted = expect(
        lambda r: (
            r["publisher"] == PUB_B
            and r["speciesName"] in ("Escherichia coli", "Treponema primitia")
        )
    )
    body = scoped.get("/browse.json?limit=500").json()
    assert {i["id"] for i in body["items"]} == wanted and body["total"] == len(wanted)
    assert {v["value"] for v in body["facets"]["publisher"]} == {PUB_B}
    # The user's choice intersects with the scope's; outside it, nothing.
    only = scoped.get("/browse.json?species=Escherichia+coli").json()
    assert {i["id"] for i in only["items"]} == {
        i for i in wanted if ORACLE[i]["speciesName"] == "Escherichia coli"
    }
    assert scoped.get("/browse.json?species=Caulobacter+crescentus").json()["total"] == 0
    doc = dom(scoped.get("/browse?species=Escherichia+coli").text)
    words = shlex.split(doc.one("code", id="download-command").text)
    assert words == [*COMMAND, "--publisher", PUB_B, "--species", "Escherichia coli"]
    api = doc.one("a", id="api-link").attrs["href"]
    assert set(api_ids(scoped, query_of(api))) == {i["id"] for i in only["items"]}
    assert "Escherichia coli" in doc.one(cls="scope-note").text


# -- hostile values, the JSON twin -----------------------------------------------------------


def test_hostile_record_values_stay_inert(client: TestClient) -> None:
    r = client.get("/browse?sort=date")
    assert HOSTILE not in r.text and "<img src=x" not in r.text
    assert "<b>" not in r.text.split("<main", 1)[1]
    doc = dom(r.text)
    value = doc.one("a", "facet-value", **{"data-facet": "species", "data-value": HOSTILE})
    assert value.one(cls="facet-label").text == HOSTILE  # shown as text
    lab = doc.one("a", "facet-value", **{"data-facet": "lab", "data-value": HOSTILE_LAB})
    target = dom(client.get(lab.attrs["href"]).text)
    assert total(target) == 1  # the hostile value round-trips through the URL
    chip = target.one("a", "active-filter")
    assert chip.text.startswith(f"Lab: {HOSTILE_LAB}")
    assert not [s for s in doc.all("script") if "src" not in s.attrs]  # no inline script
    assert "style=" not in r.text


def test_json_twin(client: TestClient) -> None:
    url = "/browse.json?species=Treponema+primitia&limit=3"
    body = client.get(url).json()
    assert {"total", "items", "facets", "next", "query"} <= body.keys()
    assert body["total"] == len(expect(lambda r: r["speciesName"] == "Treponema primitia"))
    assert len(body["items"]) == 3 and body["next"]
    assert body["query"]["params"] == {"species": ["Treponema primitia"], "limit": ["3"]}
    by_accept = client.get(url.replace(".json", ""), headers={"Accept": "application/json"})
    assert by_accept.json() | {"links": None} == body | {"links": None}
    assert by_accept.json()["links"]["next"] == body["links"]["next"].replace(".json", "")
    nxt = client.get(body["links"]["next"]).json()
    assert not {i["id"] for i in nxt["items"]} & {i["id"] for i in body["items"]}
    assert nxt["range"] == {"first": 4, "last": 3 + len(nxt["items"])}


def test_deactivated_records_only_when_asked(client: TestClient) -> None:
    body = client.get("/browse.json?include_deactivated=true&limit=100").json()
    assert {i["id"] for i in body["items"]} == set(ORACLE) | {DEACTIVATED_ID}
    doc = dom(client.get("/browse?include_deactivated=true&species=Vibrio+cholerae").text)
    card = doc.one("li", "card")
    assert card.one(cls="card-deactivated")
    words = shlex.split(doc.one("code", id="download-command").text)
    assert words == [*COMMAND, "--species", "Vibrio cholerae", "--include-deactivated"]
    assert client.head("/browse?species=Vibrio+cholerae").status_code == 200
