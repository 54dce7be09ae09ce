"""The memory index (memindex.py) answers exactly as SQL does, and follows every kind of
write: random records and queries, compared on the same database through two catalogs."""

from __future__ import annotations

import random
from typing import Any

import pytest

from etdb.index.catalog import SqlCatalog, open_catalog
from etdb.index.query import FACETS, Range, SearchQuery
from etdb.index.store import AppliedEdit, Deactivation, Position

from .records import file_set, make_artifact, published, txid

SPECIES = ["Vibrio cholerae", "Vibrio fischeri", "Escherichia coli", "Caulobacter crescentus", None]
PEOPLE = ["Ariane Briegel", "Jörg Müller", "Elitza Tocheva", None]
SUBTYPES = ["tiltSeries", "reconstruction", "keyimg", "thumbnail", "keymov", "snapshot"]
PUBLISHERS = ["FTSTq8xx8yWUKJA5E3bgXLzZqqG9V6dvnr", "F7aQr3GUdnGzMyi6aTRq7ik5hQvNkM7dss"]
WORDS = ["vibrio", "flagellar motor", "chemoreceptor", "pole", "Müller", "chol", "tilt", "rr2014"]


def random_artifact(rng: random.Random, n: int) -> dict[str, Any]:
    year = rng.choice([2008, 2009, 2012, 2014, None])
    return make_artifact(
        species=rng.choice(SPECIES),
        taxid=rng.choice([666, 562, None]),
        strain=rng.choice(["K-12", "N16961", None]),
        microscopist=rng.choice(PEOPLE),
        lab=rng.choice(["Jensen Lab", "Müller Lab"]),
        scope=rng.choice(["Caltech Polara", "Titan Krios"]),
        tilt_axis=rng.choice([1, 2, None]),
        date=None
        if year is None
        else 1_200_000_000 + (year - 2008) * 31_536_000 + rng.randrange(99),
        timestamp=rng.choice([None, 1_500_000_000 + rng.randrange(5) * 1000]),
        tilt_min=rng.choice([-60, -65, -55.5]),
        dosage=rng.choice([100, 150, 180]),
        emdb=rng.choice([None, "EMD-1"]),
        title=f"{rng.choice(WORDS)} tomogram {n}",
        notes=" ".join(rng.choices(WORDS, k=3)),
        files=file_set(*rng.sample(SUBTYPES, rng.randint(0, 4)), stem=f"s{n}"),
        publisher=rng.choice(PUBLISHERS),
    )


def random_query(rng: random.Random) -> SearchQuery:
    kw: dict[str, Any] = {}
    if rng.random() < 0.5:
        kw["q"] = rng.choice(WORDS)
    for name, values in (
        ("species", [s for s in SPECIES if s]),
        ("microscopist", [p for p in PEOPLE if p]),
        ("publisher", PUBLISHERS),
        ("file_type", SUBTYPES),
    ):
        if rng.random() < 0.2:
            kw[name] = tuple(rng.sample(values, rng.randint(1, 2)))
    if rng.random() < 0.2:
        kw["taxid"] = (rng.choice([666, 562, 1]),)
    if rng.random() < 0.2:
        kw["tilt_axis"] = rng.choice([1, 2])
    if rng.random() < 0.2:
        kw["date"] = Range(1_230_000_000, rng.choice([None, 1_300_000_000]))
    if rng.random() < 0.2:
        kw["tilt_min"] = Range(hi=-60)
    if rng.random() < 0.1:
        kw["emdb"] = "EMD-1"
    if rng.random() < 0.2:
        kw["include_deactivated"] = True
    if not kw:
        kw["dosage"] = Range(lo=0)  # something, so the query is "filtered"
    sort = rng.choice(
        ["published", "date", "species", "microscopist"] + (["relevance"] if "q" in kw else [])
    )
    return SearchQuery(
        sort=sort,
        order=rng.choice(["asc", "desc"]),
        limit=rng.choice([2, 5, 50]),
        facets=tuple(rng.sample(list(FACETS), rng.randint(0, len(FACETS)))),
        **kw,
    )


def walk(cat: SqlCatalog, query: SearchQuery) -> list[Any]:
    pages, after = [], None
    for _ in range(200):
        page = cat.search(SearchQuery(**{**_fields(query), "after": after}))
        pages.append(page)
        if (after := page.next) is None:
            return pages
    raise AssertionError("no last page")


def _fields(query: SearchQuery) -> dict[str, Any]:
    return {n: getattr(query, n) for n in query.__dataclass_fields__}


def assert_same(mem: SqlCatalog, sql: SqlCatalog, rng: random.Random, queries: int) -> None:
    for _ in range(queries):
        query = random_query(rng)
        assert walk(mem, query) == walk(sql, query), query


@pytest.mark.slow
def test_memory_index_equals_sql(catalog_url: str) -> None:
    rng = random.Random(42)
    mem, sql = open_catalog(catalog_url), open_catalog(catalog_url, memory_index=False)
    try:
        ids = [txid(f"m{n}") for n in range(120)]
        with mem.transaction():
            for n, record_id in enumerate(ids[:80]):
                mem.add_record(published(random_artifact(rng, n), id=record_id, height=10 + n))
        assert_same(mem, sql, rng, 50)
        # Follows later writes: new records, edits, deactivations, rollbacks, clear.
        with mem.transaction():
            for n, record_id in enumerate(ids[80:], start=80):
                mem.add_record(published(random_artifact(rng, n), id=record_id, height=200 + n))
        for k, record_id in enumerate(rng.sample(ids, 15)):
            after = random_artifact(rng, 1000 + k)
            sql.apply_edit(  # through the other catalog: as another process would
                AppliedEdit(txid(f"e{k}"), record_id, 1, [], after, Position(400 + k, 0, "h", 1))
            )
        for k, record_id in enumerate(rng.sample(ids, 15)):
            sql.deactivate(Deactivation(txid(f"d{k}"), record_id, 1, Position(500 + k, 0, "h", 1)))
        assert_same(mem, sql, rng, 40)
        sql.rollback(505)
        assert_same(mem, sql, rng, 20)
        mem.rollback(250)
        assert_same(mem, sql, rng, 20)
        mem.clear()
        with mem.transaction():
            for n, record_id in enumerate(ids[:30]):
                mem.add_record(published(random_artifact(rng, n), id=record_id, height=10 + n))
        assert_same(mem, sql, rng, 20)
        # The texts repeat (8 words): many of these searches were answered by the text cache
        # (textcache.py), and still equal SQL's after every kind of write above.
        assert mem._mem is not None and mem._mem.text_cache.stats().hits > 100
    finally:
        mem.close()
        sql.close()
