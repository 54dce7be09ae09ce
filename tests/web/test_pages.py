"""Home, featured, challenges, about, contact: pages, JSON twins, data files, scope, escaping.

Every test runs the real app over a real SQLite catalog of signed records (``portal_client``).
"""

from __future__ import annotations

import re
import tomllib
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from etdb.api import create_app
from etdb.config import Settings
from etdb.demo.samples import demo_samples
from etdb.index.catalog import open_catalog
from etdb.publish.dataset import build_artifact
from etdb.record import sign_artifact
from etdb.web.featured import PACKAGED, FeaturedError, load_featured
from etdb.web.site import PACKAGED_SITE, SiteError, load_site
from tests.index.records import BASE, FILES, txid
from tests.web.conftest import DEFAULT_RECORDS, KEY_A, KEY_B, PortalClient

PAGES = ("/", "/featured", "/featured/flagella", "/challenges", "/about", "/contact")
TWINS = {"/": "/index.json"} | {p: p + ".json" for p in PAGES[1:]}
#: The categories of the original ETDB-Caltech site, as the issue lists them.
CATEGORIES = (
    "cytoskeletal elements", "cell envelopes", "surface layers", "cell shapes", "dna",
    "outer membrane vesicles", "intracytoplasmic membranes", "carboxysomes", "storage granules",
    "gas vesicles", "flagella", "terminal organelles", "pili", "chemoreceptor arrays",
    "magnetosomes", "spores", "contractile injection machines", "phage",
)  # fmt: skip


class Elements(HTMLParser):
    """Every element's tag, attributes and text (enough to check a page's selectors)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.found: list[dict[str, Any]] = []
        self._open: list[dict[str, Any]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = {"tag": tag, "attrs": dict(attrs), "text": ""}
        self.found.append(element)
        if tag not in ("img", "input", "meta", "link", "br", "source"):
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            if self._open.pop()["tag"] == tag:
                break

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element["text"] += data

    def select(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> list[dict]:
        return [
            e
            for e in self.found
            if (tag is None or e["tag"] == tag)
            and (cls is None or cls in (e["attrs"].get("class") or "").split())
            and all(e["attrs"].get(k) == v for k, v in attrs.items())
        ]


def number(text: str) -> int:
    return int(re.sub(r"[^0-9]", "", text))


# -- every page, both ways ------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
def test_every_page_and_its_json_twin(portal_client: PortalClient, path: str) -> None:
    client, _ = portal_client()
    html = client.get(path)
    assert html.status_code == 200
    assert html.headers["content-type"].startswith("text/html")
    dom = Elements(html.text)
    assert len(dom.select("h1")) == 1
    assert all(img["attrs"].get("alt") for img in dom.select("img")), "an image without alt"
    # The CSP blocks inline code: no script without src, no style attributes.
    assert all(s["attrs"].get("src", "").startswith("/static/") for s in dom.select("script"))
    assert not [e for e in dom.found if "style" in e["attrs"]]
    assert [a for a in dom.select("link", rel="alternate") if a["attrs"]["href"].endswith(".json")]
    twin = client.get(TWINS[path])
    assert twin.status_code == 200 and twin.headers["content-type"] == "application/json"
    accept = client.get(path, headers={"Accept": "application/json"})
    assert accept.json() == twin.json()


def test_unknown_featured_category_is_the_friendly_404(portal_client: PortalClient) -> None:
    client, _ = portal_client()
    page = client.get("/featured/no-such-thing")
    assert page.status_code == 404
    assert Elements(page.text).select("h1")[0]["text"] == "Page not found"
    assert client.get("/featured/no-such-thing.json").status_code == 404


# -- home -----------------------------------------------------------------------------------


def test_home_totals_newest_and_entry_points(portal_client: PortalClient) -> None:
    client, ids = portal_client()
    summary = client.get("/api/v1/summary").json()
    dom = Elements(client.get("/").text)
    totals = {
        name: dom.select(cls=f"total-{name}")[0]["text"]
        for name in ("datasets", "species", "publishers", "bytes")
    }
    assert number(totals["datasets"]) == summary["records"] == len(DEFAULT_RECORDS)
    assert number(totals["species"]) == len(summary["species"]) == 4
    assert number(totals["publishers"]) == len(summary["publishers"]) == 2
    assert totals["bytes"].endswith(" GB")
    data = client.get("/index.json").json()
    assert data["totals"]["total_bytes"] == summary["total_bytes"]
    # Newest first: the records were published in order, so the last four, reversed.
    cards = [a["attrs"]["href"] for a in dom.select("a", cls="card-link")]
    assert cards == [f"/tomogram/{i}" for i in reversed(ids)][:4]
    assert [c["id"] for c in data["newest"]] == list(reversed(ids))[:4]
    assert all(s["text"].strip() for s in dom.select(cls="card-species"))
    main = [a["attrs"].get("href") for a in dom.select("a")]
    for target in ("/browse", "/featured", "/challenges"):
        assert target in main


def test_home_counts_many_datasets_with_thousands_separators(portal_client: PortalClient) -> None:
    records = [dict(title=f"S{n}", sid=f"s{n}", timestamp=1_600_000_000 + n) for n in range(1001)]
    client, _ = portal_client(records)
    dom = Elements(client.get("/").text)
    assert dom.select(cls="total-datasets")[0]["text"] == "1,001"
    assert client.get("/index.json").json()["totals"]["datasets"] == 1001


# -- featured -------------------------------------------------------------------------------


def test_packaged_file_has_the_18_categories_of_the_original_site() -> None:
    categories = load_featured(PACKAGED)
    assert tuple(c.title.lower() for c in categories) == CATEGORIES
    for c in categories:
        sentences = [s for s in re.split(r"(?<=[.!?])\s+", c.description) if s]
        assert 2 <= len(sentences) <= 4, (c.slug, len(sentences))
        assert c.query


def test_featured_examples_link_to_records_that_exist(portal_client: PortalClient) -> None:
    client, ids = portal_client()
    dom = Elements(client.get("/featured").text)
    categories = [a["attrs"]["href"] for a in dom.select("a", cls="featured-category")]
    assert len(categories) == len(set(categories)) == 18
    linked: dict[str, list[str]] = {}
    for href in categories:
        page = client.get(href)
        assert page.status_code == 200, href
        examples = Elements(page.text).select("a", cls="featured-example")
        linked[href] = [a["attrs"]["href"].removeprefix("/tomogram/") for a in examples]
    for record_ids in linked.values():
        for record_id in record_ids:
            assert record_id in ids
            assert client.get(f"/api/v1/records/{record_id}").status_code == 200
    # The examples are what the category's words find, nothing else.
    # q = "flagella": the word, or a word it begins (the last word is also a prefix).
    text = {i: f"{r['title']} {r['notes']}" for r, i in zip(DEFAULT_RECORDS, ids, strict=True)}
    flagella = {i for i, t in text.items() if re.search(r"\bflagella", t, re.IGNORECASE)}
    assert set(linked["/featured/flagella"]) == flagella and len(flagella) == 2
    assert linked["/featured/magnetosomes"] == [i for i, t in text.items() if "magnetosome" in t]
    assert linked["/featured/carboxysomes"] == []


def test_a_category_without_examples_says_so(portal_client: PortalClient) -> None:
    client, _ = portal_client()
    page = client.get("/featured/gas-vesicles")
    assert "has no example of gas vesicles yet" in page.text
    assert client.get("/featured/gas-vesicles.json").json()["examples"] == []


def test_featured_categories_find_etdb_demo_datasets(portal_client: PortalClient) -> None:
    """The packaged queries against the records `etdb demo` publishes (its own metadata,
    built into artifacts by the publishing code, signed)."""
    samples = demo_samples(12)
    records = []
    for n, sample in enumerate(samples):
        files = [dict(FILES[t], fname=f"{sample.name}.{t}") for t in ("tiltSeries", "keyimg")]
        files += [dict(FILES["snapshot"], fname=name) for name in sample.snapshots]
        artifact = build_artifact(sample.metadata, BASE["storage"]["location"], files)
        signed = sign_artifact(artifact, KEY_A, timestamp=1_700_000_000 + n)
        records.append({"artifact": signed.to_wire()})
    client, _ = portal_client(records)
    found = {c["slug"]: c["total"] for c in client.get("/featured.json").json()["categories"]}
    for slug in ("cell-envelopes", "cell-shapes", "flagella", "pili", "magnetosomes",
                 "surface-layers", "storage-granules", "terminal-organelles"):  # fmt: skip
        assert found[slug] >= 1, slug
    assert found["cell-envelopes"] == len(samples)  # every demo cell has its membranes noted
    assert found["carboxysomes"] == 0


def test_pinned_records_come_first_by_id_prefix_or_sid(
    portal_client: PortalClient, tmp_path: Path
) -> None:
    featured = tmp_path / "featured.toml"
    vibrio, ecoli, caulo, magneto = (txid(f"pinned-{n}") for n in range(4))
    pinned_ids = (vibrio, ecoli, caulo, magneto)
    records = [r | {"id": i} for r, i in zip(DEFAULT_RECORDS, pinned_ids, strict=True)]
    featured.write_text(
        f"""
[[category]]
slug = "motors"
title = "Motors"
description = "Rotary motors. Two sentences."
query = {{ q = "flagella" }}
pinned = ["{magneto[:10]}", "cf2010-01-02-3", "no-such-sid"]
""",
        encoding="utf-8",
    )
    client, ids = portal_client(records, portal_featured=str(featured))
    assert ids == [vibrio, ecoli, caulo, magneto]
    data = client.get("/featured/motors.json").json()
    assert [e["id"] for e in data["examples"]][:2] == [magneto, caulo]
    assert set(e["id"] for e in data["examples"][2:]) == {vibrio, ecoli}
    assert data["total"] == 4


def test_portal_featured_relative_to_the_data_folder(portal_client: PortalClient) -> None:
    client, _ = portal_client()
    home = Path(client.app.state.etdb.settings.home)  # type: ignore[attr-defined]
    (home / "mine.toml").write_text(
        '[[category]]\nslug = "one"\ntitle = "One"\ndescription = "A. B."\nquery = {q = "x"}\n',
        encoding="utf-8",
    )
    settings = Settings(home=home, portal_featured="mine.toml")
    catalog = open_catalog(f"sqlite:///{home / 'empty.sqlite3'}")
    try:
        app = create_app(catalog, settings=settings)
        assert [c.slug for c in app.state.etdb.extra["featured"]] == ["one"]
    finally:
        catalog.close()


GOOD = '[[category]]\nslug = "a"\ntitle = "A"\ndescription = "One. Two."\nquery = {q = "x"}\n'


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[[category]\nslug =", "not valid TOML"),
        ("title = 'x'\n", "unknown key 'title'"),
        ("", "key 'category'"),
        (GOOD.replace('slug = "a"', 'slug = "A b"'), "key 'slug'"),
        (GOOD.replace('title = "A"\n', ""), "key 'title' is missing"),
        (GOOD.replace('query = {q = "x"}', 'query = {specie = "x"}'), "key 'query.specie'"),
        (GOOD.replace('query = {q = "x"}', "query = {species = 3}"), "key 'query.species'"),
        (GOOD.replace('query = {q = "x"}', 'query = {tilt_axis = "triple"}'), "query.tilt_axis"),
        (GOOD.replace('query = {q = "x"}', 'query = {taxid = "562"}'), "query.taxid"),
        (GOOD.replace('query = {q = "x"}', ""), "key 'query' is missing"),
        (GOOD + 'pinned = "abc"\n', "key 'pinned'"),
        (GOOD + 'colour = "red"\n', "unknown key 'colour'"),
        (GOOD + GOOD, "key 'slug': 'a' is used twice"),
    ],
)
def test_a_bad_featured_file_stops_the_portal_naming_file_and_key(
    portal_client: PortalClient, tmp_path: Path, text: str, named: str
) -> None:
    path = tmp_path / "bad-featured.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(FeaturedError) as caught:
        portal_client(portal_featured=str(path))
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert named in message


def test_a_missing_featured_file_is_named(portal_client: PortalClient, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    with pytest.raises(FeaturedError, match=re.escape(f"{missing}: cannot read")):
        portal_client(portal_featured=str(missing))


# -- challenges, about, contact ---------------------------------------------------------------


def test_challenges_link_to_the_datasets_that_suit_them(portal_client: PortalClient) -> None:
    client, _ = portal_client()
    data = client.get("/challenges.json").json()
    assert [c["slug"] for c in data["challenges"]] == [
        "fiducial-tracking", "cell-boundary-segmentation", "macromolecular-complexes",
    ]  # fmt: skip
    for challenge in data["challenges"]:
        browse = client.get(challenge["browse_url"].replace("/browse", "/api/v1/records"))
        assert browse.json()["total"] == challenge["datasets"]
    counts = {c["slug"]: c["datasets"] for c in data["challenges"]}
    with_rec = sum("reconstruction" in {f["subtype"] for f in r["files"]} for r in DEFAULT_RECORDS)
    assert counts == {"fiducial-tracking": 4, "cell-boundary-segmentation": with_rec,
                      "macromolecular-complexes": with_rec}  # fmt: skip
    dom = Elements(client.get("/challenges").text)
    assert [s["attrs"]["id"] for s in dom.select("section", cls="challenge")] == list(counts)


def test_about_cites_the_paper_and_warns_metadata_can_be_wrong(portal_client: PortalClient) -> None:
    client, _ = portal_client()
    page = client.get("/about").text
    assert "doi:10.1371/journal.pone.0215531" in page
    assert 'href="https://doi.org/10.1371/journal.pone.0215531" rel="noopener noreferrer"' in page
    assert "does not prove that its metadata are right" in page


def test_contact_comes_from_site_toml(portal_client: PortalClient) -> None:
    client, _ = portal_client()
    site = tomllib.loads(PACKAGED_SITE.read_text(encoding="utf-8"))["contact"]
    assert client.get("/contact.json").json()["contact"]["email"] == site["email"]
    dom = Elements(client.get("/contact").text)
    assert dom.select("a", cls="contact-email")[0]["attrs"]["href"] == f"mailto:{site['email']}"
    assert "record id" in client.get("/contact").text


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[contact]\n", "[contact]: key 'name' is missing"),
        ("[contact]\nname = 'x'\nemail = 'not an address'\n", "key 'email'"),
        ("[contact]\nname = 'x'\nurl = 'javascript:alert(1)'\n", "key 'url'"),
        ("[contact]\nname = 'x'\nphone = '1'\n", "unknown key 'phone'"),
        ("[contact]\nname = 'x'\n[[challenge]]\nslug = 'a'\n", "challenge 1: key 'title'"),
        ("name = 'x'\n", "key 'contact'"),
    ],
)
def test_a_bad_site_file_names_the_key(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "site.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SiteError, match=re.escape(named)):
        load_site(path)
    assert load_site().challenges  # the packaged one is fine


# -- scope and escaping -------------------------------------------------------------------------


def test_the_portal_scope_limits_totals_newest_and_examples(portal_client: PortalClient) -> None:
    client, ids = portal_client(portal_publishers=KEY_B.address)
    magneto = ids[3]  # the one record KEY_B signed
    data = client.get("/index.json").json()
    assert data["totals"] == {"datasets": 1, "species": 1, "publishers": 1,
                              "total_bytes": data["totals"]["total_bytes"], "terabytes": 0.003,
                              "exact": True}  # fmt: skip
    everything = client.get("/api/v1/summary").json()
    assert 0 < data["totals"]["total_bytes"] < everything["total_bytes"]
    assert [c["id"] for c in data["newest"]] == [magneto]
    featured = {c["slug"]: c for c in client.get("/featured.json").json()["categories"]}
    assert featured["flagella"]["examples"] == [] and featured["flagella"]["total"] == 0
    assert [e["id"] for e in featured["magnetosomes"]["examples"]] == [magneto]
    dom = Elements(client.get("/").text)
    assert number(dom.select(cls="total-datasets")[0]["text"]) == 1
    about = client.get("/about.json").json()
    assert about["scope"]["publishers"] == [KEY_B.address]


def test_a_filter_scope_and_pinned_records_outside_it(
    portal_client: PortalClient, tmp_path: Path
) -> None:
    featured = tmp_path / "featured.toml"
    featured.write_text(
        '[[category]]\nslug = "all"\ntitle = "All"\ndescription = "A. B."\n'
        'query = {q = "flagella"}\npinned = ["av2012-03-04-1", "bt2013-05-06-2"]\n',
        encoding="utf-8",
    )
    client, ids = portal_client(
        portal_filter="species=Escherichia coli", portal_featured=str(featured)
    )
    data = client.get("/featured/all.json").json()
    assert [e["id"] for e in data["examples"]] == [ids[1]]  # Vibrio is pinned but outside
    assert client.get("/index.json").json()["totals"]["datasets"] == 1


HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_record_text_is_escaped_everywhere(portal_client: PortalClient) -> None:
    records = [
        dict(title=HOSTILE + " flagella", species=HOSTILE, microscopist=HOSTILE, lab=HOSTILE,
             sid='"><script>s</script>', files=DEFAULT_RECORDS[0]["files"]),
    ]  # fmt: skip
    client, _ = portal_client(records)
    for path in ("/", "/featured", "/featured/flagella", "/featured/cell-shapes"):
        html = client.get(path).text
        assert "<script>alert" not in html and "<img src=x" not in html, path
        assert "<script>s</script>" not in html, path
        dom = Elements(html)
        assert all(s["attrs"].get("src") for s in dom.select("script")), path
        assert not [e for e in dom.found if any(k.startswith("on") for k in e["attrs"])], path
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in client.get("/").text
    csp = client.get("/").headers["content-security-policy"]
    assert "script-src 'self'" in csp


def test_portal_site_replaces_the_contact_and_challenges(
    portal_client: PortalClient, tmp_path: Path
) -> None:
    from etdb.web.site import PACKAGED_SITE

    mine = tmp_path / "site.toml"
    text = PACKAGED_SITE.read_text("utf-8").replace("etdb-portal@example.org", "tomo@lab.example")
    mine.write_text(text, "utf-8")
    client, _ = portal_client(portal_site=str(mine))
    assert "tomo@lab.example" in client.get("/contact").text
    broken = tmp_path / "broken.toml"
    broken.write_text("[contact]\nnmae = 'typo'\n", "utf-8")
    with pytest.raises(ValueError, match=r"broken\.toml"):
        portal_client(portal_site=str(broken))
