"""Catalog tables, indexes and the schema version, for SQLite and PostgreSQL alike.

One SQLAlchemy Core description serves both dialects; the few differences are variants:

* Text that is compared, sorted or grouped uses ``COLLATE "C"`` on PostgreSQL, so ordering and
  facet tie-breaks are byte order as on SQLite, whatever the database's locale, and a txid
  prefix range (``id >= 'abc' AND id < 'abcg'``) is a plain B-tree range.
* ``records.seq`` is an integer surrogate key: SQLite's FTS5 table is keyed by it (an
  ``INTEGER PRIMARY KEY`` is the rowid, which VACUUM never renumbers, unlike an implicit
  rowid) and child tables stay small. ``id`` (the txid) is UNIQUE NOT NULL: the record's key
  for every reader. (A 64-char text key repeated in ``record_file_types`` would triple it.)
* Full text: a contentless FTS5 table on SQLite; on PostgreSQL a narrow side table
  ``record_search`` (seq, tsvector) with a GIN index, its vectors stored out of line (see
  there). Each exists on its own dialect only.

The catalog is derived data (rebuildable from the ledger): a schema change bumps
``SCHEMA_VERSION`` and either adds a step to ``MIGRATIONS`` or tells the user to rebuild.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from etdb.index.fields import column_fields, flat_columns
from etdb.index.flatten import TEXT_FIELDS

log = logging.getLogger(__name__)

#: Bump on any change to tables, indexes or what ``flatten.py`` produces.
#: 2: PostgreSQL full text moved from ``records.search`` to ``record_search``.
#: 3: records are unique per identity (what their signature covers), not per signature text;
#: ``metadata_signed``, ``superseded_by``; ``edits.identity``. See ``_v2_reindex``.
SCHEMA_VERSION = 3


class CatalogSchemaError(RuntimeError):
    """The catalog database has a schema this etdb cannot use."""


Key = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")
Int = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
#: fields.ColumnType -> the column's SQL type.
_COLUMN_TYPES: dict[str | None, sa.types.TypeEngine[Any]] = {
    "key": Key,
    "int": Int,
    "float": sa.Float(),
}


metadata = sa.MetaData()

records = sa.Table(
    "records",
    metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("id", Key, nullable=False, unique=True),
    sa.Column("publisher", Key, nullable=False),
    # flattened (flatten.COLUMNS)
    sa.Column("title", Key, nullable=False),
    # the registry's searchable fields (etdb.index.fields), in its order
    *(sa.Column(f.name, _COLUMN_TYPES[f.column]) for f in flat_columns()),
    sa.Column("magnification", sa.Float),
    sa.Column("sid", Key),
    sa.Column("location", sa.Text),
    sa.Column("thumbnail", sa.Text),
    sa.Column("total_bytes", Int, nullable=False),
    sa.Column("file_types", sa.Text, nullable=False),  # comma-joined, for result rows
    sa.Column("signature", sa.Text, nullable=False),
    sa.Column("signature_valid", sa.Boolean, nullable=False),
    # SHA-256 of the publish preimage (record.metasign.record_identity): copies of one
    # identity are one record, whatever their signature's spelling.
    sa.Column("identity", Key, nullable=False),
    # A valid metaSignature covers the current artifact (re-derived after every edit).
    sa.Column("metadata_signed", sa.Boolean, nullable=False),
    # The metadata-signed copy of the same identity that replaced this location-only one
    # (also marked deactivated at that height, so rollback restores it like a deactivation).
    sa.Column("superseded_by", sa.Text),
    # provenance
    sa.Column("txids", sa.Text, nullable=False),  # JSON list, part 0 first
    sa.Column("height", Int, nullable=False),
    sa.Column("idx", Int, nullable=False),
    sa.Column("block_hash", sa.Text, nullable=False),
    sa.Column("block_time", Int, nullable=False),
    sa.Column("updated_height", Int),  # of the newest edit applied
    sa.Column("deactivated", sa.Boolean, nullable=False, default=False),
    sa.Column("deactivated_by", sa.Text),
    sa.Column("deactivated_height", Int),
    # The write transaction that last changed the row (meta "rev"): memindex.py reloads
    # only rows with a newer one.
    sa.Column("rev", Int, nullable=False),
)

# Sort keys: (column, id) so that keyset pages are one index range in either direction.
for _col in ("published", "date", "species", "microscopist"):
    sa.Index(f"records_{_col}_id", records.c[_col], records.c.id)
# Filters the registry marks ``indexed``. tilt_axis (two values) is not worth an index; the
# numeric ranges are, for the selective ends ("tilt_min <= -65").
for _field in column_fields():
    if _field.indexed:
        sa.Index(f"records_{_field.name}", records.c[_field.name])
sa.Index("records_publisher_published", records.c.publisher, records.c.published)
# Replay detection: one record per identity (find_identity); superseded copies step aside.
sa.Index(
    "records_identity",
    records.c.identity,
    unique=True,
    sqlite_where=records.c.superseded_by.is_(None),
    postgresql_where=records.c.superseded_by.is_(None),
)
sa.Index("records_height", records.c.height)
sa.Index("records_deactivated_height", records.c.deactivated_height)
sa.Index("records_rev", records.c.rev)

# The artifacts, apart from the flat row: ~2 KB of JSON inline would make every filter and
# facet scan read (and SQLite store) one record per page instead of a dozen.
documents = sa.Table(
    "documents",
    metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("original", sa.Text, nullable=False),  # as first published
    sa.Column("artifact", sa.Text),  # the current one once edited; NULL = the original
)

# WITHOUT ROWID on SQLite: the primary key is the table (one B-tree, not two).
record_file_types = sa.Table(
    "record_file_types",
    metadata,
    sa.Column("record_seq", Int, primary_key=True),
    sa.Column("subtype", Key, primary_key=True),
    sqlite_with_rowid=False,
)
sa.Index("record_file_types_subtype", record_file_types.c.subtype, record_file_types.c.record_seq)

# Txids of multipart parts other than part 0 (whose txid is the record id).
record_txids = sa.Table(
    "record_txids",
    metadata,
    sa.Column("txid", Key, primary_key=True),
    sa.Column("record_seq", Int, nullable=False, index=True),
    sqlite_with_rowid=False,
)

edits = sa.Table(
    "edits",
    metadata,
    sa.Column("txid", Key, primary_key=True),
    sa.Column("record_id", Key, nullable=False),
    sa.Column("height", Int, nullable=False, index=True),
    sa.Column("idx", Int, nullable=False),
    sa.Column("block_hash", sa.Text, nullable=False),
    sa.Column("time", Int, nullable=False),
    sa.Column("timestamp", Int, nullable=False),
    sa.Column("patch", sa.Text, nullable=False),  # JSON
    sa.Column("artifact_after", sa.Text, nullable=False),  # JSON
    # Identity of artifact_after (an edit re-signs): a publish of that state is a replay too.
    sa.Column("identity", Key, nullable=False, index=True),
)
sa.Index("edits_record", edits.c.record_id, edits.c.height, edits.c.idx)

rejections = sa.Table(
    "rejections",
    metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("txid", Key, nullable=False),
    sa.Column("height", Int, nullable=False),
    sa.Column("idx", Int, nullable=False),
    sa.Column("time", Int, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("payload_excerpt", sa.Text, nullable=False),
)
sa.Index("rejections_position", rejections.c.height, rejections.c.idx, rejections.c.seq)

pending_parts = sa.Table(
    "pending_parts",
    metadata,
    sa.Column("txid", Key, primary_key=True),
    sa.Column("key", Key, nullable=False, index=True),
    sa.Column("part", Int, nullable=False),
    sa.Column("max_index", Int, nullable=False),
    sa.Column("address", sa.Text, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("height", Int, nullable=False, index=True),
    sa.Column("idx", Int, nullable=False),
    sa.Column("block_hash", sa.Text, nullable=False),
    sa.Column("time", Int, nullable=False, index=True),
)

meta = sa.Table(
    "meta",
    metadata,
    sa.Column("key", Key, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

# Facet counts of the active (not deactivated) records, kept up to date by every write, so
# the unfiltered browse page (facets over the whole catalog) is a lookup, not 11 scans.
# Pseudo-facets: "_records" (count, value "") and "_bytes" (sum of total_bytes, in two parts
# that cannot overflow: flatten.byte_counts).
facet_counts = sa.Table(
    "facet_counts",
    metadata,
    sa.Column("facet", Key, primary_key=True),
    sa.Column("value", Key, primary_key=True),
    sa.Column("n", Int, nullable=False),
)

#: PostgreSQL full text. Why a side table, and one whose vectors live out of line: GIN has
#: no index-only scans, so every match costs a visit to its heap row (for seq), and a page
#: read per matching row when matches are spread out. In ``records`` (~2 KB rows), or inline
#: here (~1 KB), a word in 120,000 of a million records read 1-2 GB of pages: 0.6-0.9 s.
#: Out of line, a heap row is (seq, TOAST pointer, spill), ~100 rows per page, 85 MB for a
#: million: 10x faster. A vector is then read only to re-check a phrase or compute ts_rank.
#:
#: ``spill``: PostgreSQL toasts only rows over TOAST_TUPLE_THRESHOLD (~2 KB, fixed:
#: heap_prepare_insert), whatever ``toast_tuple_target`` says, and most vectors are smaller.
#: Its default (2,100 spaces) lifts every new row over it; the toaster then compresses the
#: spaces to ~35 bytes and moves the vector (STORAGE EXTERNAL: uncompressed, nothing to
#: decompress when read) out of line, down to ``toast_tuple_target``.
record_search = sa.Table(
    "record_search",
    sa.MetaData(),  # not ``metadata``: PostgreSQL only (schema._create)
    sa.Column("seq", sa.BigInteger, primary_key=True),
    sa.Column("search", postgresql.TSVECTOR, nullable=False),
    sa.Column("spill", sa.Text, nullable=False, server_default=sa.text("repeat(' ', 2100)")),
    postgresql_with={"toast_tuple_target": 128},
)
sa.Index("record_search_search", record_search.c.search, postgresql_using="gin")

#: SQLite full text: contentless (``content=''``, FTS5 docs §4.4.4) so the words are not
#: stored twice; deletes hand FTS5 the indexed words again (``fts.py``). The ``ascii``
#: tokenizer is enough because ``flatten.words`` already normalised and split the text
#: (non-ASCII code points are word characters for it). No ``prefix=`` indexes: they more
#: than doubled the index (110 vs 43 MB at 100k records) and only serve 2-3 character
#: prefixes, which fts.py does not search as prefixes; "chol*" is a term-range scan anyway.
FTS5_DDL = (
    "CREATE VIRTUAL TABLE records_fts USING fts5("
    f"{', '.join(TEXT_FIELDS)}, content='', tokenize='ascii')"
)

#: Meta keys owned by the store, kept by ``clear()``: the page-token key, "rev" (number of
#: the last write transaction that changed records) and "epoch" (changes when records are
#: deleted: rollback, clear; readers holding copies must reload).
STORE_META = ("schema_version", "token_key", "rev", "epoch")
#: Also the store's, but reset by ``clear()``: record count at the last ANALYZE.
RESERVED_META = (*STORE_META, "analyzed")


def ensure_schema(engine: sa.Engine) -> None:
    """Create the catalog in an empty database, or check (and migrate) an existing one."""
    if engine.dialect.name == "sqlite" and _current(engine):
        return  # the usual case, checked without taking SQLite's write lock
    # SQLite: a write transaction from the start (BEGIN IMMEDIATE, see catalog._sqlite_setup).
    # Two processes opening one new catalog then queue on busy_timeout instead of one failing
    # with "database is locked" when it upgrades its read transaction to create the tables.
    with engine.connect() as conn, conn.execution_options(etdb_write=True).begin():
        if conn.dialect.name == "postgresql":
            # Two processes opening one new catalog: the second waits, then finds it made.
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(7201534291)"))
        if not sa.inspect(conn).has_table("meta"):
            _create(conn)
            return
        found = conn.execute(
            sa.select(meta.c.value).where(meta.c.key == "schema_version")
        ).scalar_one_or_none()
        version = _parse_version(found)
        if version > SCHEMA_VERSION:
            raise CatalogSchemaError(
                f"catalog schema version {version} is newer than this etdb supports "
                f"({SCHEMA_VERSION}): upgrade etdb, or point it at another catalog"
            )
        while version < SCHEMA_VERSION:
            step = MIGRATIONS.get(version)
            if step is None:
                raise CatalogSchemaError(
                    f"catalog schema version {version} cannot be migrated to {SCHEMA_VERSION}: "
                    "rebuild the catalog (etdb index --rebuild, or delete the database)"
                )
            step(conn)
            version += 1
            set_meta(conn, "schema_version", str(version))


def _current(engine: sa.Engine) -> bool:
    """Whether the database already holds a catalog of exactly this schema version."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("meta"):
            return False
        found = conn.execute(
            sa.select(meta.c.value).where(meta.c.key == "schema_version")
        ).scalar_one_or_none()
        return found == str(SCHEMA_VERSION)


def _parse_version(found: str | None) -> int:
    if found is None:
        raise CatalogSchemaError(
            "database has a meta table but no catalog schema_version: "
            "not an etdb catalog (or a damaged one)"
        )
    try:
        version = int(found)
    except ValueError:
        raise CatalogSchemaError(f"unknown catalog schema version {found!r}") from None
    if version < 1:
        raise CatalogSchemaError(f"unknown catalog schema version {found!r}")
    return version


def _create(conn: sa.Connection) -> None:
    metadata.create_all(conn)
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(FTS5_DDL)
    else:
        _create_record_search(conn)
    set_meta(conn, "schema_version", str(SCHEMA_VERSION))
    # Key for keyset tokens (search.py): per catalog, so tokens survive restarts.
    set_meta(conn, "token_key", secrets.token_hex(32))
    set_meta(conn, "rev", "0")
    set_meta(conn, "epoch", secrets.token_hex(8))


def set_meta(conn: sa.Connection, key: str, value: str) -> None:
    conn.execute(sa.delete(meta).where(meta.c.key == key))
    conn.execute(sa.insert(meta).values(key=key, value=value))


def _create_record_search(conn: sa.Connection) -> None:
    record_search.create(conn)
    conn.exec_driver_sql("ALTER TABLE record_search ALTER COLUMN search SET STORAGE EXTERNAL")


# -- migrations -------------------------------------------------------------------------------


def _v1_record_search(conn: sa.Connection) -> None:
    """v1 -> v2: PostgreSQL's vectors move from ``records.search`` to ``record_search``
    (copied, not recomputed: the same words). SQLite only loses the always-NULL column.

    PostgreSQL drops a column without rewriting the table: the old vectors' space in
    ``records`` is reused by new rows only, and given back by ``VACUUM FULL records`` (which
    cannot run inside this transaction). 52 s per million records on the benchmark machine."""
    if conn.dialect.name == "postgresql":
        # Table first, GIN index after the copy: one sorted build instead of 1M inserts.
        conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '256MB'")
        conn.execute(sa.schema.CreateTable(record_search))
        conn.exec_driver_sql("ALTER TABLE record_search ALTER COLUMN search SET STORAGE EXTERNAL")
        conn.exec_driver_sql(
            "INSERT INTO record_search (seq, search) "
            "SELECT seq, search FROM records WHERE search IS NOT NULL"
        )
        for index in record_search.indexes:
            index.create(conn)
        conn.exec_driver_sql("ANALYZE record_search")
    conn.exec_driver_sql("ALTER TABLE records DROP COLUMN search")


def _v2_reindex(conn: sa.Connection) -> None:
    """v2 -> v3: empty the catalog, so the indexer builds it again from block 0.

    Why not convert it: a v2 catalog was built under rules that let forged copies in (replays
    were found by signature *text*, and non-canonical signatures verified), so its records
    cannot be trusted; computing identities from them would fail on exactly the forged copies
    (two rows, one identity) or keep whichever came first. Only a re-index under the new rules
    gives what a v3 rebuild gives. The data tables are dropped and made anew, indexer state
    (cursor, ledger identity, settings, multipart notes) forgotten; the page-token key stays.
    ``etdb index`` (or ``etdb serve``) then re-indexes from the ledger; ``etdb index --status``
    shows the catalog at height -1 until it has."""
    log.warning("catalog schema v2 -> v3: emptied; it is re-indexed from block 0 (etdb index)")
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("DROP TABLE IF EXISTS record_search")
    else:
        conn.exec_driver_sql("DROP TABLE IF EXISTS records_fts")
    for table in reversed(metadata.sorted_tables):
        if table is not meta:
            table.drop(conn)
    conn.execute(sa.delete(meta).where(meta.c.key.not_in(STORE_META)))
    for table in metadata.sorted_tables:
        if table is not meta:
            table.create(conn)
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(FTS5_DDL)
    else:
        _create_record_search(conn)
    set_meta(conn, "epoch", secrets.token_hex(8))  # readers' copies are gone


#: version -> step upgrading a catalog from that version to the next (in the caller's
#: transaction: a failed step leaves the catalog as it was, at the old version).
MIGRATIONS: dict[int, Callable[[sa.Connection], None]] = {
    1: _v1_record_search,
    2: _v2_reindex,
}
