"""The catalog store: SQLite (FTS5, the embedded default) or PostgreSQL, one implementation.

    from etdb.index.catalog import open_catalog
    catalog = open_catalog("sqlite:///catalog.sqlite3")   # or postgresql://user@host/db
    with catalog.transaction():                            # the indexer, per block
        catalog.add_record(record)
    catalog.search(SearchQuery(q="vibrio chol", facets=("species",)))

:class:`SqlCatalog` implements :class:`~etdb.index.store.CatalogStore` (and so
:class:`~etdb.index.query.CatalogReader`). It is safe to share between threads: each thread
reads on its own pooled connection; a transaction belongs to the thread that opened it, and a
nested ``transaction()`` joins it. Inside a transaction every read sees that transaction's
writes. Tables: ``schema.py``; full text: ``fts.py``; queries: ``search.py``; writes:
``writes.py``; reads: ``reads.py``.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

from etdb.index import lookups, reads
from etdb.index.fts import FullText, for_dialect
from etdb.index.memindex import MemoryIndex
from etdb.index.query import (
    CatalogVersion,
    Changes,
    CurrentArtifact,
    PublisherInfo,
    RecordDetail,
    Rejection,
    SearchQuery,
    SearchResult,
    Summary,
)
from etdb.index.schema import (
    RESERVED_META,
    STORE_META,
    CatalogSchemaError,
    documents,
    edits,
    ensure_schema,
    facet_counts,
    meta,
    pending_parts,
    record_file_types,
    record_txids,
    records,
    rejections,
)
from etdb.index.store import (
    AppliedEdit,
    Deactivation,
    IndexedCopy,
    PendingPart,
    Position,
    PublishedRecord,
    RecordState,
)
from etdb.index.textcache import DEFAULT_MAX_BYTES
from etdb.index.writes import Writer, current_artifact, state_query

__all__ = ["CatalogSchemaError", "SqlCatalog", "open_catalog"]

#: SQLite settings per connection. WAL lets the API read while the indexer writes.
#: synchronous=NORMAL (not FULL): in WAL mode a power cut can lose the last commits but never
#: corrupts the file (sqlite.org/pragma.html#pragma_synchronous); the catalog is derived from
#: the ledger and the indexer's cursor is committed with the data, so it just re-reads them.
_SQLITE_PRAGMAS = (
    "PRAGMA busy_timeout=10000",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA cache_size=-65536",  # 64 MiB page cache per connection
    "PRAGMA mmap_size=1073741824",
    "PRAGMA temp_store=MEMORY",
    "PRAGMA analysis_limit=1000",  # ANALYZE samples: ~50 ms at 100k records, not seconds
)


def open_catalog(
    url: str, *, memory_index: bool = True, text_cache_bytes: int = DEFAULT_MAX_BYTES
) -> SqlCatalog:
    """Open (creating if needed) the catalog at a SQLAlchemy URL: ``sqlite:///path``,
    ``sqlite://`` (in memory, one shared connection: tests), ``postgresql+psycopg://...``
    (``postgresql://`` and ``postgres://`` mean psycopg 3). Raises
    :class:`CatalogSchemaError` for a catalog of another schema version.

    ``memory_index``: serve filtered searches from a columnar copy in this process
    (memindex.py; ~110 bytes per record, loaded at the first filtered search). Processes
    that only write (the indexer) never load it. ``text_cache_bytes``: its cache of text
    matches per catalog version (textcache.py; 0 turns it off)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    kwargs: dict[str, Any] = {}
    if backend in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
        kwargs = {"pool_pre_ping": True}
    elif backend == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            kwargs = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
        else:
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    else:
        raise ValueError(f"catalog URL: unsupported database {backend!r} (sqlite or postgresql)")
    engine = sa.create_engine(parsed, **kwargs)
    if backend == "sqlite":
        _sqlite_setup(engine)
    try:
        ensure_schema(engine)
    except BaseException:
        engine.dispose()
        raise
    return SqlCatalog(engine, memory_index=memory_index, text_cache_bytes=text_cache_bytes)


def _sqlite_setup(engine: sa.Engine) -> None:
    # pysqlite's own transaction handling defers BEGIN oddly; take it over (SQLAlchemy docs,
    # "Serializable isolation / Savepoints / Transactional DDL" for pysqlite) so writes can
    # BEGIN IMMEDIATE: a writer takes the lock up front instead of failing to upgrade a read
    # transaction with SQLITE_BUSY when another connection wrote in between.
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        try:
            for pragma in _SQLITE_PRAGMAS:
                cur.execute(pragma)
            _enter_wal(cur)
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        write = conn.get_execution_options().get("etdb_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


#: How long a new connection keeps asking for WAL mode while other processes hold the file.
_WAL_WAIT_SECONDS = 10.0


def _enter_wal(cur: Any) -> None:
    """Put the database in WAL mode. Switching a new file's journal mode needs it to itself,
    and SQLite answers "database is locked" at once, without its busy handler, while another
    process is opening the same new file (seen with six processes starting together), so
    this retries until ``_WAL_WAIT_SECONDS`` have passed."""
    deadline = time.monotonic() + _WAL_WAIT_SECONDS
    delay = 0.005
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


class _Tx:
    def __init__(self, conn: sa.Connection, fts: FullText) -> None:
        self.conn = conn
        self.writer = Writer(conn, fts)


class SqlCatalog:
    """A catalog on one SQLAlchemy engine (see the module docstring)."""

    def __init__(
        self,
        engine: sa.Engine,
        *,
        memory_index: bool = True,
        text_cache_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._fts = for_dialect(self.dialect)
        self._mem = (
            MemoryIndex(self._fts, text_cache_bytes=text_cache_bytes) if memory_index else None
        )
        self._local = threading.local()
        self._token_key: bytes | None = None

    def __repr__(self) -> str:
        return f"SqlCatalog({self.engine.url.render_as_string(hide_password=True)!r})"

    # -- transactions -------------------------------------------------------------------

    def _tx(self) -> _Tx | None:
        return getattr(self._local, "tx", None)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self._tx() is not None:
            yield  # join the outer transaction: it commits or rolls back everything
            return
        with self.engine.connect() as conn:
            conn.execution_options(etdb_write=True)
            with conn.begin():
                self._local.tx = tx = _Tx(conn, self._fts)
                try:
                    yield
                    tx.writer.commit()
                finally:
                    self._local.tx = None

    @contextmanager
    def _writing(self) -> Iterator[Writer]:
        with self.transaction():
            tx = self._tx()
            assert tx is not None
            yield tx.writer

    @contextmanager
    def _reading(self) -> Iterator[sa.Connection]:
        tx = self._tx()
        if tx is not None:
            tx.writer.flush()
            yield tx.conn
            return
        with self.engine.connect() as conn:
            yield conn

    def close(self) -> None:
        self.engine.dispose()

    def preload(self) -> None:
        """Load the memory index now (at API start-up, e.g. in a background thread) rather
        than in the first filtered search: ~8 s per million records, 0.1 s for ETDB's 11k."""
        if self._mem is not None:
            with self._reading() as conn, self._mem.lock:
                self._mem.sync(conn)

    # -- reads --------------------------------------------------------------------------

    def search(self, query: SearchQuery) -> SearchResult:
        # Inside this thread's write transaction only SQL sees the uncommitted rows.
        mem = self._mem if self._tx() is None else None
        with self._reading() as conn:
            return reads.search(conn, self._fts, query, self._key(conn), mem)

    def get(self, id_or_prefix: str) -> RecordDetail | None:
        with self._reading() as conn:
            return lookups.get(conn, id_or_prefix)

    def first_match(self, id_or_prefix: str) -> str | None:
        with self._reading() as conn:
            return lookups.first_match(conn, id_or_prefix)

    def changes(self, since: CatalogVersion | None, limit: int) -> Changes:
        with self._reading() as conn:
            return lookups.changes(conn, since, limit)

    def current_artifacts(self, ids: Sequence[str]) -> list[CurrentArtifact]:
        with self._reading() as conn:
            return lookups.current_artifacts(conn, ids)

    def publishers(self) -> list[PublisherInfo]:
        with self._reading() as conn:
            return lookups.publishers(conn)

    def summary(self) -> Summary:
        with self._reading() as conn:
            return lookups.summary(conn)

    def rejections(self, limit: int = 100, after: str | None = None) -> list[Rejection]:
        with self._reading() as conn:
            return lookups.rejection_page(conn, limit, after)

    def rejection_count(self) -> int:
        with self._reading() as conn:
            return lookups.rejection_count(conn)

    def indexed_height(self) -> int:
        return lookups.cursor_height(self.get_meta("cursor"))

    def pending_multiparts(self) -> int:
        with self._reading() as conn:
            return conn.execute(
                sa.select(sa.func.count(sa.distinct(pending_parts.c.key)))
            ).scalar_one()

    def _key(self, conn: sa.Connection) -> bytes:
        if self._token_key is None:
            value = conn.execute(
                sa.select(meta.c.value).where(meta.c.key == "token_key")
            ).scalar_one()
            self._token_key = bytes.fromhex(value)
        return self._token_key

    # -- indexer state ------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        with self._reading() as conn:
            return conn.execute(
                sa.select(meta.c.value).where(meta.c.key == key)
            ).scalar_one_or_none()

    def set_meta(self, key: str, value: str) -> None:
        if key in RESERVED_META:
            raise ValueError(f"set_meta: {key!r} belongs to the catalog store")
        with self._writing() as w:
            w.flush()
            w.conn.execute(sa.delete(meta).where(meta.c.key == key))
            w.conn.execute(sa.insert(meta).values(key=key, value=value))

    def record_state(self, record_id: str) -> RecordState | None:
        with self._reading() as conn:
            row = conn.execute(state_query().where(records.c.id == record_id)).first()
        if row is None:
            return None
        return RecordState(
            row.id, row.publisher, current_artifact(row), bool(row.deactivated), row.height
        )

    def find_identity(self, identity: str) -> IndexedCopy | None:
        with self._reading() as conn:
            return lookups.find_identity(conn, identity)

    def parts(self, key: str) -> list[PendingPart]:
        with self._reading() as conn:
            rows = conn.execute(
                sa.select(pending_parts)
                .where(pending_parts.c.key == key)
                .order_by(pending_parts.c.part, pending_parts.c.height, pending_parts.c.idx)
            ).all()
        return [lookups.part_of(r) for r in rows]

    # -- writes -------------------------------------------------------------------------

    def add_record(self, record: PublishedRecord) -> None:
        with self._writing() as w:
            w.add_record(record)

    def apply_edit(self, edit: AppliedEdit) -> None:
        with self._writing() as w:
            w.apply_edit(edit)

    def supersede(self, record_id: str, by: str, position: Position) -> None:
        with self._writing() as w:
            w.deactivate(Deactivation(by, record_id, position.time, position), superseded=True)

    def deactivate(self, deactivation: Deactivation) -> None:
        with self._writing() as w:
            w.deactivate(deactivation)

    def add_rejection(self, rejection: Rejection) -> None:
        with self._writing() as w:
            w.add_rejection(rejection)

    def add_part(self, part: PendingPart) -> None:
        pos = part.position
        with self._writing() as w:
            w.flush()
            w.conn.execute(
                sa.insert(pending_parts).values(
                    key=part.key,
                    txid=part.txid,
                    part=part.part,
                    max_index=part.max_index,
                    address=part.address,
                    # JSON-quoted: lossless even for NUL or lone surrogates, which PostgreSQL
                    # text cannot hold; reassembly needs the exact floData.
                    text=json.dumps(part.text),
                    height=pos.height,
                    idx=pos.index,
                    block_hash=pos.block_hash,
                    time=pos.time,
                )
            )

    def drop_parts(self, key: str) -> None:
        with self._writing() as w:
            w.flush()
            w.conn.execute(sa.delete(pending_parts).where(pending_parts.c.key == key))

    def expire_parts(self, before_time: int) -> list[PendingPart]:
        with self._writing() as w:
            w.flush()
            old = pending_parts.c.time < before_time
            rows = w.conn.execute(
                sa.select(pending_parts)
                .where(old)
                .order_by(pending_parts.c.key, pending_parts.c.part)
            ).all()
            w.conn.execute(sa.delete(pending_parts).where(old))
        return [lookups.part_of(r) for r in rows]

    def rollback(self, from_height: int) -> None:
        with self._writing() as w:
            w.rollback(from_height)

    def clear(self) -> None:
        """Empty the catalog, including indexer state (meta ``cursor`` ...); keeps the
        schema version and the page-token key."""
        tables: tuple[sa.Table, ...] = (records, documents, record_file_types, record_txids)
        tables += (edits, rejections, pending_parts)
        with self._writing() as w:
            w.flush()
            conn = w.conn
            if self.dialect == "postgresql":
                names = ", ".join(t.name for t in (*tables, facet_counts))
                conn.exec_driver_sql(f"TRUNCATE {names}")
            else:
                for table in (*tables, facet_counts):
                    conn.execute(sa.delete(table))
            self._fts.clear(conn)
            conn.execute(sa.delete(meta).where(meta.c.key.not_in(STORE_META)))
            w.new_epoch()
