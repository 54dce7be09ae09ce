"""The schema: migrations from a catalog in the old version's layout (both backends), and
PostgreSQL's narrow full-text heap. (v2 -> v3 empties the catalog: a v1 catalog passes through
v2 on its way, then is emptied too.)

v1 -> v2: PostgreSQL's full text moved from a ``records.search`` column (GIN index) to the
narrow ``record_search`` side table; SQLite only drops the always-NULL column. The v1
catalog is made the way v1 made it: a current catalog is loaded, then turned back into v1's
layout (the column, its vectors and index, no side table, schema_version 1), so the data the
migration starts from is real catalog data, not a fixture file.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from etdb.index.catalog import SqlCatalog, open_catalog
from etdb.index.query import MAX_LIMIT, SearchQuery
from etdb.index.schema import SCHEMA_VERSION
from etdb.index.store import AppliedEdit, Position

from .records import file_set, make_artifact, published, txid

ARTIFACTS = [
    dict(species="Vibrio cholerae", title="Vibrio cholerae chemoreceptor arrays", sid="ab1"),
    dict(species="Vibrio fischeri", title="Vibrio fischeri pole", notes="flagellar motor"),
    dict(species="Escherichia coli", title="E. coli minicell", microscopist="Jörg Müller"),
    dict(species="Caulobacter crescentus", title="stalk", files=file_set("keymov", stem="x-1")),
]
QUERIES = [
    SearchQuery(q="vibrio", limit=MAX_LIMIT),
    SearchQuery(q="vibrio chol", sort="relevance", limit=MAX_LIMIT),
    SearchQuery(q="flagellar motor", species=("Vibrio fischeri",), limit=MAX_LIMIT),
    SearchQuery(q="muller", facets=("species", "file_type"), limit=MAX_LIMIT),
    SearchQuery(q="x-1", limit=MAX_LIMIT),  # a phrase: the vectors' positions are needed
    SearchQuery(q="crescentus", sort="relevance", limit=MAX_LIMIT),
]


def answers(cat: SqlCatalog) -> list[Any]:
    out = []
    for query in QUERIES:
        result = cat.search(query)
        out.append(([i.id for i in result.items], result.total, result.facets))
    return out


def load(cat: SqlCatalog) -> None:
    with cat.transaction():
        for i, overrides in enumerate(ARTIFACTS):
            cat.add_record(published(make_artifact(**overrides), id=txid(f"m{i}"), height=10 + i))


def as_version_1(cat: SqlCatalog) -> None:
    """Turn a current catalog back into v1's layout, keeping its data."""
    with cat.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("ALTER TABLE records ADD COLUMN search tsvector")
            conn.exec_driver_sql(
                "UPDATE records SET search = s.search FROM record_search s WHERE s.seq = records.seq"
            )
            conn.exec_driver_sql("CREATE INDEX records_search ON records USING gin (search)")
            conn.exec_driver_sql("DROP TABLE record_search")
        else:
            conn.exec_driver_sql("ALTER TABLE records ADD COLUMN search TEXT")
        conn.exec_driver_sql("UPDATE meta SET value = '1' WHERE key = 'schema_version'")


def layout(url: str) -> dict[str, Any]:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            inspect = sa.inspect(conn)
            version = conn.exec_driver_sql(
                "SELECT value FROM meta WHERE key = 'schema_version'"
            ).scalar()
            return {
                "version": int(version),
                "records.search": "search" in {c["name"] for c in inspect.get_columns("records")},
                "record_search": inspect.has_table("record_search"),
            }
    finally:
        engine.dispose()


def test_v1_catalog_is_migrated_and_answers_the_same(catalog_url: str) -> None:
    pg = catalog_url.startswith("postgresql")
    cat = open_catalog(catalog_url)
    load(cat)
    before = answers(cat)
    assert before[0][1] == 2 and before[4][1] == 1  # the queries do find things
    as_version_1(cat)
    cat.close()
    assert layout(catalog_url) == {"version": 1, "records.search": True, "record_search": False}

    cat = open_catalog(catalog_url)  # migrates
    try:
        assert layout(catalog_url) == {
            "version": SCHEMA_VERSION,
            "records.search": False,
            "record_search": pg,
        }
        # v2 -> v3 empties the catalog (schema._v2_reindex: it is re-indexed from block 0)...
        assert all(total == 0 for _, total, _ in answers(cat))
        load(cat)
        assert answers(cat) == before  # ...and loaded again, it answers as before
        # ...and the migrated catalog keeps being written: a new record, an edit.
        with cat.transaction():
            cat.add_record(
                published(make_artifact(title="Treponema pallidum"), id=txid("m9"), height=20)
            )
            cat.apply_edit(
                AppliedEdit(
                    txid=txid("e1"),
                    record_id=txid("m0"),
                    position=Position(21, 0, f"{21:064x}", 1_500_001_260),
                    timestamp=1_500_001_260,
                    patch=[{"op": "replace", "path": "/info/title", "value": "spirochete"}],
                    artifact_after=make_artifact(**{**ARTIFACTS[0], "title": "spirochete"}),
                )
            )
        assert cat.search(SearchQuery(q="pallidum")).total == 1
        assert [i.id for i in cat.search(SearchQuery(q="spirochete")).items] == [txid("m0")]
        assert cat.search(SearchQuery(q="vibrio")).total == 2  # species still says Vibrio
    finally:
        cat.close()


def test_failed_migration_leaves_the_v1_catalog(catalog_url: str) -> None:
    """A step that fails half-way rolls back whole: still v1, its data intact."""
    cat = open_catalog(catalog_url)
    load(cat)
    as_version_1(cat)
    with cat.engine.begin() as conn:
        # Something in the way of the step's last statement (DROP COLUMN search): on
        # PostgreSQL a view on the column, on SQLite an index on it.
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("CREATE VIEW in_the_way AS SELECT search FROM records")
        else:
            conn.exec_driver_sql("CREATE INDEX in_the_way ON records (search)")
    cat.close()
    with pytest.raises(sa.exc.DBAPIError):
        open_catalog(catalog_url)
    assert layout(catalog_url) == {"version": 1, "records.search": True, "record_search": False}
    if catalog_url.startswith("postgresql"):
        engine = sa.create_engine(catalog_url.replace("postgresql://", "postgresql+psycopg://"))
        with engine.connect() as conn:
            found = conn.exec_driver_sql(
                "SELECT count(*) FROM records WHERE search @@ to_tsquery('simple', 'vibrio')"
            ).scalar()
        engine.dispose()
        assert found == 2


def test_postgresql_vectors_live_out_of_line(pg_schema_url: str) -> None:
    """record_search's heap rows stay narrow however long the text (schema.py, ``spill``):
    400 records with ~1 KB vectors (under the 2 KB at which PostgreSQL would toast them
    anyway) fit in a few pages; inline they would fill ~60."""
    cat = open_catalog(pg_schema_url)
    try:
        words = " ".join(f"word{i}" for i in range(80))
        with cat.transaction():
            for i in range(400):
                art = make_artifact(title=f"long notes {i}", notes=f"{words} n{i}")
                cat.add_record(published(art, id=txid(f"long{i}"), height=10))
        with cat.engine.connect() as conn:
            pages = conn.exec_driver_sql(
                "SELECT pg_relation_size('record_search') / current_setting('block_size')::int"
            ).scalar()
        assert 0 < pages <= 8
        assert cat.search(SearchQuery(q="word17 n399")).total == 1
        assert cat.search(SearchQuery(q="word79", sort="relevance")).total == 400
    finally:
        cat.close()


def test_v2_catalog_is_emptied_for_reindexing(catalog_url: str) -> None:
    """v2 -> v3: a v2 catalog may hold forged copies (replays were found by signature text),
    so it is emptied, indexer state included, and the indexer starts again from block 0."""
    cat = open_catalog(catalog_url)
    load(cat)
    cat.set_meta("cursor", '{"height": 13, "hashes": []}')
    token_key = cat.get_meta("token_key")
    with cat.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    cat.close()
    cat = open_catalog(catalog_url)
    try:
        assert cat.get_meta("schema_version") == str(SCHEMA_VERSION) == "3"
        assert cat.search(SearchQuery(include_deactivated=True)).total == 0
        assert all(total == 0 for _, total, _ in answers(cat))
        assert cat.get_meta("cursor") is None and cat.indexed_height() == -1
        assert cat.get_meta("token_key") == token_key
        load(cat)
        assert cat.search(SearchQuery(q="vibrio")).total == 2
    finally:
        cat.close()
