"""The catalog store, one suite for both backends (the ``catalog`` fixture is parametrized
over SQLite and PostgreSQL, see conftest.py)."""

from __future__ import annotations

import base64
import calendar
import json
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa

from etdb.index import reads
from etdb.index import search as search_mod
from etdb.index.catalog import CatalogSchemaError, SqlCatalog, open_catalog
from etdb.index.fts import for_dialect
from etdb.index.query import (
    FACETS,
    MAX_LIMIT,
    AmbiguousId,
    FacetValue,
    Range,
    Rejection,
    SearchQuery,
)
from etdb.index.store import AppliedEdit, Deactivation, IndexedCopy, PendingPart, Position
from etdb.record import PrivateKey
from etdb.record.metasign import record_identity

from .records import file_set, make_artifact, published, signed_artifact, txid

P1 = "FTSTq8xx8yWUKJA5E3bgXLzZqqG9V6dvnr"
P2 = "F7aQr3GUdnGzMyi6aTRq7ik5hQvNkM7dss"
T0 = 1_528_000_000


def day(y: int, m: int, d: int) -> int:
    return calendar.timegm((y, m, d, 0, 0, 0))


#: name -> (publisher, make_artifact overrides)
DATASET: dict[str, tuple[str, dict[str, Any]]] = {
    "sulfo": (P1, {}),  # the real record: 2014-01-14, trailing space in the species
    "vibrio_a": (
        P1,
        dict(
            species="Vibrio cholerae",
            taxid=666,
            strain="N16961",
            title="Vibrio cholerae chemoreceptor arrays",
            microscopist="Ariane Briegel",
            date=day(2009, 5, 1),
            timestamp=T0 + 100,
            tilt_min=-60,
            tilt_max=60,
            tilt_step=2,
            defocus=-8,
            dosage=120,
            tilt_axis=2,
            sid="ab2009-05-01-1",
            notes="chemoreceptor array next to the flagellar motor",
            files=file_set("tiltSeries", "reconstruction", "keyimg", stem="ab2009-05-01-1"),
        ),
    ),
    "vibrio_b": (
        P1,
        dict(
            species="Vibrio cholerae",
            taxid=666,
            strain="O395",
            title="Vibrio cholerae pole",
            microscopist="Ariane Briegel",
            date=day(2009, 5, 1),
            timestamp=T0 + 100,
            tilt_min=-65,
            tilt_max=65,
            tilt_step=1.5,
            defocus=-6,
            dosage=150,
            sid="ab2009-05-01-2",
            notes="polar region",
            files=file_set("tiltSeries", "thumbnail", "keymov", stem="ab2009-05-01-2"),
        ),
    ),
    "vibrio_p": (
        P2,
        dict(
            species="Vibrio parahaemolyticus",
            taxid=670,
            title="Vibrio parahaemolyticus swarmer cell",
            microscopist=None,
            date=day(2012, 3, 2),
            timestamp=T0 + 300,
            sid="xx2012-03-02-1",
            notes=None,
            files=file_set("tiltSeries", stem="xx2012-03-02-1"),
        ),
    ),
    "ecoli": (
        P2,
        dict(
            species="Escherichia coli",
            taxid=562,
            strain="K-12",
            title="E. coli minicell",
            microscopist="Jörg Müller",
            lab="Müller Lab",
            institution="Universität Basel",
            scope="Titan Krios",
            date=day(2016, 7, 8),
            timestamp=T0 + 400,
            emdb="EMD-1234",
            tilt_axis=2,
            sid="jm2016-07-08-1",
            notes="minicells from a ΔminCDE strain",
            files=file_set("tiltSeries", "reconstruction", "snapshot", stem="jm2016-07-08-1"),
        ),
    ),
    "caulo": (
        P1,
        dict(
            species="Caulobacter crescentus",
            taxid=155892,
            title="Caulobacter stalk",
            microscopist="Elitza Tocheva",
            date=None,
            timestamp=T0 + 200,
            sid="et2011-01-01-1",
            tags="caulobacter,stalk",
            notes="compare with the vibrio pole",
            files=file_set("keyimg", "keymov", stem="et2011-01-01-1"),
        ),
    ),
    "nospecies": (
        P1,
        dict(
            species=None,
            taxid=None,
            title="Unknown specimen",
            microscopist="Ariane Briegel",
            date=day(2010, 2, 3),
            timestamp=None,
            sid="ab2010-02-03-1",
            notes=None,
            files=[],
        ),
    ),
    "sulfo2": (
        P2,
        dict(
            species="Sulfolobus solfataricus",
            date=day(2014, 1, 14),
            timestamp=T0 + 400,
            sid="rr2014-01-14-6",
        ),
    ),
}
ID = {name: txid(name) for name in DATASET}
NAME = {v: k for k, v in ID.items()}


def load(catalog: SqlCatalog, names: list[str] | None = None) -> None:
    with catalog.transaction():
        for i, name in enumerate(names or list(DATASET)):
            publisher, overrides = DATASET[name]
            art = make_artifact(**overrides, publisher=publisher)
            catalog.add_record(published(art, id=ID[name], height=100 + i))


def names(result) -> list[str]:
    return [NAME[item.id] for item in result.items]


def find(catalog: SqlCatalog, **kw: Any) -> set[str]:
    return set(names(catalog.search(SearchQuery(limit=MAX_LIMIT, **kw))))


@pytest.fixture
def loaded(catalog: SqlCatalog) -> SqlCatalog:
    """The dataset, for a test that writes."""
    load(catalog)
    return catalog


@pytest.fixture(scope="module")
def shared(module_catalog: SqlCatalog) -> SqlCatalog:
    """The dataset, loaded once per module and backend: tests using it must not write."""
    load(module_catalog)
    return module_catalog


def assert_counts_consistent(catalog: SqlCatalog) -> None:
    """The incrementally kept facet counts equal a fresh GROUP BY over the records."""
    fts = for_dialect(catalog.dialect)
    with catalog.engine.connect() as conn:
        where = search_mod.filters(SearchQuery(), fts, None)
        live = reads._live_facets(conn, where, tuple(FACETS))
        counted = reads._counted_facets(conn, tuple(FACETS))
    assert counted == live
    summary = catalog.summary()
    assert summary.records == live[0]
    assert summary.species == {fv.value: fv.count for fv in live[1]["species"]}


# -- flattening and reads ---------------------------------------------------------------------


def test_flattened_summary(shared: SqlCatalog) -> None:
    sulfo = shared.get(ID["sulfo"])
    assert sulfo is not None
    s = sulfo.summary
    assert s.species == "Sulfolobus solfataricus"  # trailing space of the real record dropped
    assert (s.title, s.strain, s.lab, s.scope) == (
        "Sulfolobus solfac.P2+STIV",
        "P2",
        "Jensen Lab",
        "Caltech Polara",
    )
    assert s.thumbnail == "keyimg_rr2014-01-14-5_s.jpg"
    assert s.file_types == (
        "keyimg",
        "keymov",
        "reconstruction",
        "snapshot",
        "thumbnail",
        "tiltSeries",
    )
    assert s.total_bytes == 3_862_938_075
    assert s.location == "Qmat8i2pn4WnnMiPQcKsKJZahr1scUbuUyXjgSuCPBcsYY"
    assert (s.date, s.published, s.sid) == (1389657600, 1528156632, "rr2014-01-14-5")
    caulo = shared.get(ID["caulo"])
    assert caulo is not None
    assert caulo.summary.thumbnail == "keyimg_et2011-01-01-1.jpg"  # no thumbnail: key image
    assert caulo.summary.date is None
    empty = shared.get(ID["nospecies"])
    assert empty is not None
    assert (empty.summary.thumbnail, empty.summary.file_types, empty.summary.total_bytes) == (
        None,
        (),
        0,
    )


def test_get_detail_and_provenance(shared: SqlCatalog) -> None:
    d = shared.get(ID["vibrio_a"])
    assert d is not None
    assert d.artifact == d.original == make_artifact(**DATASET["vibrio_a"][1], publisher=P1)
    p = d.provenance
    assert (p.txids, p.block_height, p.block_hash) == ((ID["vibrio_a"],), 101, f"{101:064x}")
    assert p.signature_valid and not p.deactivated and p.edits == ()


def test_get_by_prefix_and_other_txids(catalog: SqlCatalog) -> None:
    a, b = "abcdef01" + "0" * 56, "abcdef02" + "0" * 56
    part1, part2, edit = txid("part1"), txid("part2"), txid("edit")
    with catalog.transaction():
        catalog.add_record(published(make_artifact(), id=a, txids=(a, part1, part2)))
        catalog.add_record(published(make_artifact(title="other"), id=b))
    catalog.apply_edit(
        AppliedEdit(edit, b, 5, [], make_artifact(title="edited"), Position(200, 0, "h", 1))
    )
    for key in (a, a[:8], part1, part1[:10], part2, "0X" + a.upper(), f"  {a[:9]} "):
        found = catalog.get(key)
        assert found is not None and found.summary.id == a, key
    edited = catalog.get(edit[:12])
    assert edited is not None and edited.summary.id == b and edited.summary.title == "edited"
    with pytest.raises(AmbiguousId) as info:
        catalog.get("abcdef")
    assert info.value.matches == [a, b]
    assert catalog.get("abcdef0123") is None
    assert catalog.get("f" * 64) is None
    for bad in ("abcde", "xyz12345", "", "abc def0", "ab%cdef", "abcdef'--"):
        with pytest.raises(ValueError, match="id"):
            catalog.get(bad)


# -- filters ----------------------------------------------------------------------------------

FILTER_CASES: list[tuple[dict[str, Any], set[str]]] = [
    ({"species": ("Vibrio cholerae",)}, {"vibrio_a", "vibrio_b"}),
    ({"species": ("Sulfolobus solfataricus",)}, {"sulfo", "sulfo2"}),
    ({"species": ("Sulfolobus  solfataricus ",)}, {"sulfo", "sulfo2"}),
    ({"species": ("Vibrio cholerae", "Escherichia coli")}, {"vibrio_a", "vibrio_b", "ecoli"}),
    ({"species": ("vibrio cholerae",)}, set()),  # facet values are exact
    ({"publisher": (P2,)}, {"vibrio_p", "ecoli", "sulfo2"}),
    ({"taxid": (666, 562)}, {"vibrio_a", "vibrio_b", "ecoli"}),
    ({"taxid": (10**30,)}, set()),
    ({"strain": ("K-12", "O395")}, {"ecoli", "vibrio_b"}),
    ({"scope": ("Titan Krios",)}, {"ecoli"}),
    ({"lab": ("Müller Lab",)}, {"ecoli"}),
    ({"institution": ("Universität Basel",)}, {"ecoli"}),
    ({"microscopist": ("Ariane Briegel",)}, {"vibrio_a", "vibrio_b", "nospecies"}),
    ({"tilt_axis": 2}, {"vibrio_a", "ecoli"}),
    ({"date": Range(day(2009, 1, 1), day(2010, 12, 31))}, {"vibrio_a", "vibrio_b", "nospecies"}),
    ({"date": Range(day(2009, 5, 1), day(2009, 5, 1))}, {"vibrio_a", "vibrio_b"}),  # inclusive
    ({"date": Range(lo=day(2014, 1, 14))}, {"sulfo", "sulfo2", "ecoli"}),
    ({"published": Range(lo=T0 + 400)}, {"ecoli", "sulfo2", "sulfo"}),
    ({"published": Range(hi=T0 + 100)}, {"vibrio_a", "vibrio_b"}),
    ({"tilt_min": Range(hi=-60)}, {"vibrio_a", "vibrio_b"}),
    ({"tilt_max": Range(lo=60, hi=65)}, {"vibrio_a", "vibrio_b"}),
    ({"tilt_step": Range(1.5, 2)}, {"vibrio_a", "vibrio_b"}),
    ({"defocus": Range(-8, -6)}, {"vibrio_a", "vibrio_b"}),
    ({"dosage": Range(hi=150)}, {"vibrio_a", "vibrio_b"}),
    ({"dosage": Range(lo=10**40)}, set()),
    ({"emdb": "EMD-1234"}, {"ecoli"}),
    ({"file_type": ("keymov",)}, {"sulfo", "sulfo2", "vibrio_b", "caulo"}),
    ({"file_type": ("tiltSeries", "keymov")}, {"sulfo", "sulfo2", "vibrio_b"}),
    ({"file_type": ("keymov", "snapshot", "thumbnail")}, {"sulfo", "sulfo2"}),
    ({"species": ("Vibrio cholerae",), "tilt_axis": 2}, {"vibrio_a"}),
    ({"q": "vibrio", "publisher": (P2,)}, {"vibrio_p"}),
    ({"q": "vibrio", "file_type": ("keymov",)}, {"vibrio_b", "caulo"}),
]


@pytest.mark.parametrize(("filters", "expected"), FILTER_CASES, ids=lambda v: repr(v)[:50])
def test_filters(shared: SqlCatalog, filters: dict[str, Any], expected: set[str]) -> None:
    result = shared.search(SearchQuery(limit=MAX_LIMIT, **filters))
    assert set(names(result)) == expected
    assert result.total == len(expected)
    # The same filters with facets: the total comes from the facet statement.
    faceted = shared.search(SearchQuery(limit=1, facets=("species",), **filters))
    assert faceted.total == len(expected)


def test_deactivated_hidden_unless_asked(loaded: SqlCatalog) -> None:
    loaded.deactivate(Deactivation(txid("d"), ID["ecoli"], 1, Position(300, 0, "h", 1)))
    assert "ecoli" not in find(loaded)
    assert find(loaded, include_deactivated=True) == set(DATASET)
    hit = loaded.search(SearchQuery(species=("Escherichia coli",), include_deactivated=True))
    assert [i.deactivated for i in hit.items] == [True]
    detail = loaded.get(ID["ecoli"])
    assert detail is not None
    assert detail.provenance.deactivated and detail.provenance.deactivated_by == txid("d")
    assert loaded.summary().records == len(DATASET) - 1
    assert_counts_consistent(loaded)


# -- full text --------------------------------------------------------------------------------

TEXT_CASES: list[tuple[str, set[str]]] = [
    ("Vibrio chol", {"vibrio_a", "vibrio_b"}),  # prefix on the last word
    ("VIBRIO CHOLERAE", {"vibrio_a", "vibrio_b"}),
    ("vibrio chol ", set()),  # a trailing space: "chol" is a whole word
    ("vibrio", {"vibrio_a", "vibrio_b", "vibrio_p", "caulo"}),  # caulo: in its notes
    ("vibrio pole", {"vibrio_b", "caulo"}),  # AND
    ("muller", {"ecoli"}),
    ("Müller", {"ecoli"}),
    ("MÜLLER lab", {"ecoli"}),
    ("universitat", {"ecoli"}),
    ("ΔminCDE", {"ecoli"}),
    ("rr2014-01-14-5", {"sulfo", "sulfo2"}),  # sid of one, file names of both
    ("rr2014-01-14-6", {"sulfo2"}),
    ("stiv10h3_0004_full.rec", {"sulfo", "sulfo2", "vibrio_a", "ecoli"}),  # reconstructions
    ("keymov_et2011", {"caulo"}),
    ("STIV turrets", {"sulfo", "sulfo2", "ecoli"}),  # the snapshot's fNotes
    ("chemoreceptor", {"vibrio_a"}),
    ("caulobacter stalk", {"caulo"}),
    ("jensen.lab", set(DATASET)),  # every record has the real one's tags
    ("jensen lab", set(DATASET)),
    ("jensen lab universitat", {"ecoli"}),
    ("Ariane", {"vibrio_a", "vibrio_b", "nospecies"}),
    ("N16961", {"vibrio_a"}),
    ("title:vibrio", set()),  # not FTS5 column syntax: the words "title" and "vibrio"
    ('"vibrio"', {"vibrio_a", "vibrio_b", "vibrio_p", "caulo"}),
    ("vib*", {"vibrio_a", "vibrio_b", "vibrio_p", "caulo"}),
    ("-vibrio", {"vibrio_a", "vibrio_b", "vibrio_p", "caulo"}),  # no NOT operator
    ("vibrio OR coli", set()),  # no OR operator: "or" is a word
    ("x" * 150, set()),  # longer than any indexed word
    ("***", set(DATASET)),  # no words: q is ignored
]


@pytest.mark.parametrize(("q", "expected"), TEXT_CASES, ids=lambda v: repr(v)[:30])
def test_text_search(shared: SqlCatalog, q: str, expected: set[str]) -> None:
    assert find(shared, q=q) == expected


def test_relevance(shared: SqlCatalog) -> None:
    result = shared.search(SearchQuery(q="vibrio", sort="relevance"))
    assert names(result)[-1] == "caulo"  # only its notes mention vibrio
    assert set(names(result)) == {"vibrio_a", "vibrio_b", "vibrio_p", "caulo"}
    worst_first = shared.search(SearchQuery(q="vibrio", sort="relevance", order="asc"))
    assert names(worst_first)[0] == "caulo"
    with pytest.raises(ValueError, match="sort"):
        shared.search(SearchQuery(sort="relevance"))


HOSTILE = [
    '"',
    '""',
    "'",
    'a"b',
    "NEAR(vibrio pole)",
    "vibrio NEAR pole",
    "NEAR/2",
    "*",
    "vib*",
    "-",
    "a -b",
    "title:x",
    "{title species}: vibrio",
    "^vibrio",
    "vibrio + pole",
    "vibrio AND NOT pole",
    "(vibrio",
    "vibrio)",
    "'; DROP TABLE records; --",
    "1=1 OR 1=1",
    "%",
    "_",
    "\\",
    "\x00",
    "vib\x00rio",
    "\ud800",
    "😀",
    "東京",
    "ǅ ß ﬁ Ⅻ ٣ İ",
    "\u200b",
    ":*",
    "vibrio:*",
    "&|!",
    "a <-> b",
    "!vibrio",
    "vibrio & pole",
    "x" * 1000,
    "x" * 1001,
    " ".join(["vibrio"] * 32),
    " ".join(["vibrio"] * 33),
    "a\tb\nc\r",
    "  ",
    "",
]


@pytest.mark.parametrize("q", HOSTILE, ids=range(len(HOSTILE)))
@pytest.mark.parametrize("sort", ["published", "relevance"])
def test_hostile_text_is_text(shared: SqlCatalog, q: str, sort: str) -> None:
    try:
        result = shared.search(SearchQuery(q=q, sort=sort, facets=("species", "file_type")))
    except ValueError as exc:
        assert str(exc).startswith(("q:", "sort:")), exc
        return
    assert result.total == len(result.items)
    assert set(names(result)) <= set(DATASET)


def test_hostile_filter_values(shared: SqlCatalog) -> None:
    for value in ("'; DROP TABLE records; --", "\x00", "\ud800", "%", "x" * 10_000):
        assert find(shared, species=(value,), lab=(value,), emdb=value, file_type=(value,)) == set()
    with pytest.raises(ValueError, match="species"):
        shared.search(SearchQuery(species=("a",) * 101))
    with pytest.raises(ValueError, match="taxid"):
        shared.search(SearchQuery(taxid=("666",)))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="date"):
        shared.search(SearchQuery(date=Range(float("nan"))))
    with pytest.raises(ValueError, match="tilt_axis"):
        shared.search(SearchQuery(tilt_axis=3))
    assert find(shared) == set(DATASET)  # still there


def test_odd_record_values_are_stored(catalog: SqlCatalog) -> None:
    odd = make_artifact(
        species="Vib\x00rio \ud800",
        title="東京 tomogram",
        date=10**30,
        tilt_min=10**400,
        taxid=2**63,
        files=[{"fname": "a\x00.mrc", "fsize": 2**70, "subtype": "tiltSeries"}],
    )
    catalog.add_record(published(odd, id=txid("odd")))
    d = catalog.get(txid("odd"))
    assert d is not None and d.artifact == odd
    assert (d.summary.species, d.summary.date, d.summary.total_bytes) == (
        "Vibrio ?",
        None,
        2**63 - 1,
    )
    assert catalog.search(SearchQuery(q="東京")).total == 1
    assert_counts_consistent(catalog)


# -- facets -----------------------------------------------------------------------------------


def test_facets_under_filters(shared: SqlCatalog) -> None:
    result = shared.search(SearchQuery(species=("Vibrio cholerae",), facets=tuple(FACETS), limit=1))
    f = result.facets
    assert result.total == 2
    assert f["species"] == [FacetValue("Vibrio cholerae", 2)]
    assert f["taxid"] == [FacetValue("666", 2)]
    assert f["strain"] == [FacetValue("N16961", 1), FacetValue("O395", 1)]
    assert f["tilt_axis"] == [FacetValue("1", 1), FacetValue("2", 1)]
    assert f["year"] == [FacetValue("2009", 2)]
    assert f["publisher"] == [FacetValue(P1, 2)]
    assert f["file_type"] == [
        FacetValue("tiltSeries", 2),
        FacetValue("keyimg", 1),
        FacetValue("keymov", 1),
        FacetValue("reconstruction", 1),
        FacetValue("thumbnail", 1),
    ]
    text = shared.search(SearchQuery(q="vibrio", facets=("species", "microscopist")))
    assert text.facets["species"] == [
        FacetValue("Vibrio cholerae", 2),
        FacetValue("Caulobacter crescentus", 1),
        FacetValue("Vibrio parahaemolyticus", 1),
    ]
    assert text.facets["microscopist"] == [
        FacetValue("Ariane Briegel", 2),
        FacetValue("Elitza Tocheva", 1),
    ]  # vibrio_p has none: NULLs are not a facet value


def test_unfiltered_facets_come_from_counts(shared: SqlCatalog) -> None:
    result = shared.search(SearchQuery(facets=tuple(FACETS), limit=1))
    assert result.total == len(DATASET)
    assert result.facets["species"][0] == FacetValue("Sulfolobus solfataricus", 2)
    assert result.facets["year"][0] == FacetValue("2009", 2)
    assert_counts_consistent(shared)


def test_facet_top_n(shared: SqlCatalog, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(search_mod, "FACET_TOP", 2)
    counted = shared.search(SearchQuery(facets=("species", "taxid")))
    live = shared.search(SearchQuery(facets=("species", "taxid"), published=Range(lo=0)))
    assert counted.facets["species"] == [
        FacetValue("Sulfolobus solfataricus", 2),
        FacetValue("Vibrio cholerae", 2),
    ]
    assert counted.facets["taxid"] == [FacetValue("666", 2), FacetValue("273057", 2)]
    assert live.facets["species"][0] == FacetValue("Sulfolobus solfataricus", 2)
    assert live.facets["taxid"] == [FacetValue("666", 2), FacetValue("273057", 2)]


# -- sorting and keyset pages -----------------------------------------------------------------


def _sort_value(name: str, sort: str) -> Any:
    base = make_artifact(**DATASET[name][1])
    d = base.get("details", {})
    value = {
        "date": d.get("date"),
        "published": base.get("timestamp"),
        "species": d.get("speciesName"),
        "microscopist": d.get("microscopist"),
    }[sort]
    return value.strip() if isinstance(value, str) else value


def expected_order(sort: str, order: str) -> list[str]:
    """The documented order: non-NULL values, ties by id in the same direction; then NULLs
    by id."""
    desc = order == "desc"
    valued = [n for n in DATASET if _sort_value(n, sort) is not None]
    nulls = [n for n in DATASET if _sort_value(n, sort) is None]
    valued.sort(key=lambda n: (_sort_value(n, sort), ID[n]), reverse=desc)
    nulls.sort(key=lambda n: ID[n], reverse=desc)
    return valued + nulls


@pytest.mark.parametrize("sort", ["published", "date", "species", "microscopist"])
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_sort_and_keyset_walk(shared: SqlCatalog, sort: str, order: str) -> None:
    expected = expected_order(sort, order)
    one = shared.search(SearchQuery(sort=sort, order=order, limit=MAX_LIMIT))  # type: ignore[arg-type]
    assert names(one) == expected and one.next is None
    for limit in (1, 3):
        seen: list[str] = []
        after = None
        while True:
            page = shared.search(
                SearchQuery(sort=sort, order=order, limit=limit, after=after)  # type: ignore[arg-type]
            )
            seen += names(page)
            assert page.total == len(DATASET)
            if page.next is None:
                break
            after = page.next
        assert seen == expected, (limit, seen)


def test_relevance_keyset_walk(shared: SqlCatalog) -> None:
    q = SearchQuery(q="vibrio jensen", sort="relevance", limit=MAX_LIMIT)
    full = names(shared.search(q))
    assert set(full) == {"vibrio_a", "vibrio_b", "vibrio_p", "caulo"}
    seen, after = [], None
    while True:
        page = shared.search(replace(q, limit=1, after=after))
        seen += names(page)
        if (after := page.next) is None:
            break
    assert seen == full


def test_bad_limit_and_after(shared: SqlCatalog) -> None:
    for limit in (0, -1, MAX_LIMIT + 1):
        with pytest.raises(ValueError, match="limit"):
            shared.search(SearchQuery(limit=limit))
    token = shared.search(SearchQuery(sort="date", limit=2)).next
    assert token is not None
    shared.search(SearchQuery(sort="date", limit=2, after=token))
    body, mac = token.split(".")
    raw = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    raw["k"][1] = "0" * 64
    forged = base64.urlsafe_b64encode(json.dumps(raw).encode()).decode().rstrip("=") + "." + mac
    bad = [
        "garbage",
        "a.b",
        "..",
        token + "x",
        forged,
        "x" * 5000,
        "\x00.\x00",
    ]
    for after in bad:
        with pytest.raises(ValueError, match=r"^after"):
            shared.search(SearchQuery(sort="date", limit=2, after=after))
    for other in (
        SearchQuery(sort="published", limit=2, after=token),
        SearchQuery(sort="date", order="asc", limit=2, after=token),
        SearchQuery(sort="date", limit=2, after=token, species=("Vibrio cholerae",)),
    ):
        with pytest.raises(ValueError, match=r"^after"):
            shared.search(other)
    # Paging options do not change the query: another limit or facets keep the token valid.
    shared.search(SearchQuery(sort="date", limit=5, after=token, facets=("year",)))
    with pytest.raises(ValueError, match=r"^sort"):
        shared.search(SearchQuery(sort="title"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^order"):
        shared.search(SearchQuery(order="up"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^facets"):
        shared.search(SearchQuery(facets=("colour",)))


# -- edits, deactivation, rollback ------------------------------------------------------------


def _edit(record: str, height: int, **overrides: Any) -> AppliedEdit:
    base = dict(DATASET[record][1])
    base.update(overrides)
    after = make_artifact(**base, publisher=DATASET[record][0])
    patch = [{"op": "replace", "path": "/x", "value": height}]
    return AppliedEdit(
        txid(f"edit-{height}"), ID[record], height, patch, after, Position(height, 1, "h", height)
    )


def test_edits_and_rollback(loaded: SqlCatalog) -> None:
    loaded.apply_edit(_edit("sulfo", 200, species="Vibrio cholerae", title="Renamed"))
    loaded.apply_edit(
        _edit("sulfo", 210, species="Vibrio cholerae", title="Renamed", microscopist="Grant Jensen")
    )
    assert find(loaded, species=("Vibrio cholerae",)) == {"sulfo", "vibrio_a", "vibrio_b"}
    assert find(loaded, q="renamed") == {"sulfo"}
    assert find(loaded, microscopist=("Grant Jensen",)) == {"sulfo"}
    d = loaded.get(ID["sulfo"])
    assert d is not None
    assert d.artifact["info"]["title"] == "Renamed" and d.original == make_artifact(publisher=P1)
    assert [e["txid"] for e in d.provenance.edits] == [txid("edit-200"), txid("edit-210")]
    assert d.provenance.edits[0]["patch"] == [{"op": "replace", "path": "/x", "value": 200}]
    assert_counts_consistent(loaded)

    loaded.rollback(210)  # back to edit 200
    assert find(loaded, microscopist=("Grant Jensen",)) == set()
    assert find(loaded, microscopist=("Rasika Ramdasi",)) == {"sulfo", "sulfo2"}
    assert find(loaded, species=("Vibrio cholerae",)) == {"sulfo", "vibrio_a", "vibrio_b"}
    assert find(loaded, q="renamed") == {"sulfo"}
    d = loaded.get(ID["sulfo"])
    assert d is not None and [e["txid"] for e in d.provenance.edits] == [txid("edit-200")]
    assert_counts_consistent(loaded)

    loaded.rollback(150)  # back to the original
    d = loaded.get(ID["sulfo"])
    assert d is not None and d.artifact == d.original and d.provenance.edits == ()
    assert find(loaded, q="renamed") == set()
    assert find(loaded, species=("Sulfolobus solfataricus",)) == {"sulfo", "sulfo2"}
    assert loaded.get(txid("edit-200")[:10]) is None
    assert_counts_consistent(loaded)

    loaded.rollback(104)  # records 104.. (ecoli, caulo, nospecies, sulfo2) go
    assert find(loaded, include_deactivated=True) == {"sulfo", "vibrio_a", "vibrio_b", "vibrio_p"}
    assert find(loaded, q="muller") == set()
    assert loaded.get(ID["ecoli"]) is None
    assert_counts_consistent(loaded)


def test_deactivation_rollback(loaded: SqlCatalog) -> None:
    loaded.deactivate(Deactivation(txid("d1"), ID["vibrio_a"], 1, Position(300, 0, "h", 1)))
    loaded.apply_edit(_edit("vibrio_a", 310, title="edited while deactivated"))
    assert_counts_consistent(loaded)
    loaded.rollback(300)
    assert "vibrio_a" in find(loaded)
    d = loaded.get(ID["vibrio_a"])
    assert d is not None and not d.provenance.deactivated and d.provenance.deactivated_by is None
    assert d.artifact == d.original
    assert_counts_consistent(loaded)


def test_rollback_rejections_and_parts(catalog: SqlCatalog) -> None:
    with catalog.transaction():
        for h in (10, 20, 30):
            catalog.add_rejection(Rejection(txid(f"r{h}"), h, 0, h, "publish", "bad", "{}"))
            catalog.add_part(
                PendingPart(
                    txid(f"k{h}"), txid(f"p{h}"), 0, 1, P1, f"part {h}", Position(h, 0, "h", h)
                )
            )
    catalog.rollback(20)
    assert [r.height for r in catalog.rejections()] == [10]
    assert catalog.pending_multiparts() == 1


def test_find_identity(catalog: SqlCatalog) -> None:
    key = PrivateKey.generate()
    art = signed_artifact(key, title="signed")
    catalog.add_record(published(art, id=txid("signed")))
    held = catalog.find_identity(record_identity(art))
    assert held == IndexedCopy(txid("signed"), False, False, False)
    # Another spelling of the same signature, other metadata: the same identity.
    copy = {**art, "signature": art["signature"][:-2] + "x=", "info": {"title": "forged"}}
    assert catalog.find_identity(record_identity(copy)) == held
    assert catalog.find_identity(record_identity({**art, "floAddress": P2})) is None
    assert catalog.find_identity(record_identity({**art, "timestamp": 1})) is None
    # Superseded, it steps aside for the copy that replaced it.
    with catalog.transaction():
        catalog.supersede(txid("signed"), txid("copy"), Position(200, 0, "h", 1))
        catalog.add_record(published(copy, id=txid("copy"), height=200))
    found = catalog.find_identity(record_identity(art))
    assert found is not None and found.id == txid("copy")
    old = catalog.get(txid("signed"))
    assert old is not None and old.provenance.superseded_by == txid("copy")
    assert old.provenance.deactivated
    catalog.rollback(200)
    assert catalog.find_identity(record_identity(art)) == held
    restored = catalog.get(txid("signed"))
    assert restored is not None and restored.provenance.superseded_by is None
    assert not restored.provenance.deactivated
    state = catalog.record_state(txid("signed"))
    assert state is not None
    assert (state.publisher, state.artifact, state.deactivated, state.height) == (
        key.address,
        art,
        False,
        100,
    )
    with pytest.raises(sa.exc.IntegrityError):  # a replay can never be stored twice
        catalog.add_record(published(art, id=txid("replay")))


def test_rejections_paging(catalog: SqlCatalog) -> None:
    positions = [(5, 0), (5, 1), (5, 1), (7, 0), (9, 3), (9, 4), (12, 0)]
    assert catalog.rejection_count() == 0
    with catalog.transaction():
        for i, (h, idx) in enumerate(reversed(positions)):
            catalog.add_rejection(
                Rejection(txid(f"rej{i}"), h, idx, 1000 + h, "edit", f"reason \x00{i}", "x")
            )
    everything = catalog.rejections()
    assert [(r.height, r.index) for r in everything] == positions
    assert catalog.rejection_count() == len(positions)
    assert everything[0].reason.startswith("reason ")
    for limit in (1, 2, 3):
        seen, after = [], None
        while page := catalog.rejections(limit=limit, after=after):
            seen += page
            after = f"{page[-1].height}:{page[-1].index}"
        assert seen == everything
    for bad in ("x", "1", "1:2:3", "a:b"):
        with pytest.raises(ValueError, match="after"):
            catalog.rejections(after=bad)
    with pytest.raises(ValueError, match="limit"):
        catalog.rejections(limit=0)


# -- transactions, state, schema --------------------------------------------------------------


def test_transaction_rollback_leaves_nothing(catalog: SqlCatalog) -> None:
    with pytest.raises(RuntimeError), catalog.transaction():
        catalog.add_record(published(make_artifact(), id=txid("t1")))
        with catalog.transaction():  # joins
            catalog.add_record(published(make_artifact(title="inner"), id=txid("t2")))
            catalog.add_rejection(Rejection(txid("r"), 1, 0, 1, "publish", "x", "y"))
            catalog.set_meta("cursor", json.dumps({"height": 5}))
            catalog.add_part(PendingPart("k", "p", 0, 1, P1, "t", Position(1, 0, "h", 1)))
            assert catalog.record_state(txid("t2")) is not None  # reads see the writes
            assert catalog.search(SearchQuery(q="inner")).total == 1
        raise RuntimeError("crash mid-block")
    assert catalog.search(SearchQuery(include_deactivated=True)).total == 0
    assert catalog.summary().records == 0
    assert catalog.rejections() == [] and catalog.pending_multiparts() == 0
    assert catalog.indexed_height() == -1 and catalog.get(txid("t1")) is None
    with catalog.transaction():
        catalog.add_record(published(make_artifact(), id=txid("t1")))
        with catalog.transaction():
            catalog.add_record(published(make_artifact(), id=txid("t2"), signature="s2"))
    assert catalog.summary().records == 2


def test_meta_cursor_and_clear(loaded: SqlCatalog) -> None:
    assert loaded.indexed_height() == -1
    loaded.set_meta("cursor", json.dumps({"height": 123, "hash": "ab"}))
    assert loaded.indexed_height() == 123 and loaded.get_meta("cursor") is not None
    loaded.set_meta("cursor", "not json")
    assert loaded.indexed_height() == -1
    with pytest.raises(ValueError, match="schema_version"):
        loaded.set_meta("schema_version", "0")
    loaded.add_part(PendingPart("k", "p", 0, 1, P1, "t\x00\ud800", Position(1, 0, "h", 1)))
    assert loaded.parts("k")[0].text == "t\x00\ud800"
    loaded.clear()
    assert loaded.search(SearchQuery(include_deactivated=True, q="vibrio")).total == 0
    assert loaded.summary().records == 0 and loaded.publishers() == []
    assert loaded.get_meta("cursor") is None and loaded.pending_multiparts() == 0
    load(loaded, ["vibrio_a"])  # still usable: the FTS index was emptied consistently
    assert find(loaded, q="vibrio") == {"vibrio_a"}
    assert_counts_consistent(loaded)


def test_parts(catalog: SqlCatalog) -> None:
    k = txid("key")
    for part, h in ((1, 11), (0, 10), (2, 12)):
        catalog.add_part(
            PendingPart(
                k, txid(f"part{part}"), part, 2, P1, f"p{part}", Position(h, 0, "h", 1000 + h)
            )
        )
    catalog.add_part(PendingPart("other", txid("o"), 0, 1, P1, "o", Position(20, 0, "h", 2000)))
    assert [p.part for p in catalog.parts(k)] == [0, 1, 2]
    assert catalog.parts(k)[0].position == Position(10, 0, "h", 1010)
    assert catalog.pending_multiparts() == 2
    expired = catalog.expire_parts(1012)
    assert [p.part for p in expired] == [0, 1]
    assert [p.part for p in catalog.parts(k)] == [2]
    catalog.drop_parts(k)
    assert catalog.parts(k) == [] and catalog.pending_multiparts() == 1


def test_publishers_and_summary(shared: SqlCatalog) -> None:
    pubs = shared.publishers()
    assert [(p.address, p.records) for p in pubs] == [(P1, 5), (P2, 3)]
    assert (pubs[0].first_published, pubs[0].last_published) == (T0 + 100, 1528156632)
    s = shared.summary()
    assert s.records == 8 and s.publishers == {P1: 5, P2: 3}
    assert s.species["Vibrio cholerae"] == 2 and None not in s.species


def test_schema_version_check(catalog_url: str) -> None:
    cat = open_catalog(catalog_url)
    load(cat, ["sulfo"])
    cat.close()
    cat = open_catalog(catalog_url)  # reopening checks, keeps the data
    assert cat.summary().records == 1
    for value, message in (("99", "newer"), ("abc", "unknown"), ("0", "unknown")):
        with cat.engine.begin() as conn:
            conn.execute(
                sa.text("UPDATE meta SET value = :v WHERE key = 'schema_version'"), {"v": value}
            )
        with pytest.raises(CatalogSchemaError, match=message):
            open_catalog(catalog_url)
    with cat.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM meta WHERE key = 'schema_version'"))
    with pytest.raises(CatalogSchemaError, match="not an etdb catalog"):
        open_catalog(catalog_url)
    cat.close()


def test_open_catalog_urls(tmp_path) -> None:
    with pytest.raises(ValueError, match="unsupported"):
        open_catalog("mysql://x/y")
    mem = open_catalog("sqlite://")
    load(mem, ["sulfo"])
    assert mem.summary().records == 1
    mem.close()
    nested = open_catalog(f"sqlite:///{tmp_path / 'a' / 'b' / 'c.sqlite3'}")
    assert nested.indexed_height() == -1
    nested.close()
