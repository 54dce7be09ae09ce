"""A lab's SQL database as a source of datasets, read through a mapping file.

Reading goes in two steps so that 30,000 datasets never sit in memory at once and a publishing
run that takes days never holds a connection open between datasets:

1. stream the sid column of the datasets query (``SELECT sid FROM (<query>)``): the run's
   order (sorted by sid, in Python's order, not the database collation's) and its duplicates;
2. per chunk of sids, fetch the full rows (``... WHERE sid IN :sids``) and their files (one
   files query per chunk), on a fresh pooled connection, and yield the chunk's datasets.

Values only ever reach the database as bound parameters. The rows read become datasets in
:mod:`etdb.publish.sources.sql_rows`: a row that cannot become a dataset yields a
:class:`DatasetProblem` naming the row, the field and the column; a database or query
failure is a :class:`SourceError` naming the source (password removed) and the driver's message.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from etdb.publish.source import KEY_MEDIA_FLAGS, DatasetProblem, SourceDataset, SourceError
from etdb.publish.sources.mapping import FilesSpec, LoadedMapping, Template, redact
from etdb.publish.sources.sql_rows import DatasetBuilder

__all__ = ["SqlSource"]

_SIDS = "etdb_sids"  # our bind parameter; user queries may use :sids in the files query


class _Columns:
    """Result column names, matched case-insensitively where unambiguous (PostgreSQL folds
    unquoted names to lower case, so one mapping works on MariaDB, SQLite and PostgreSQL)."""

    def __init__(self, keys: Iterable[str], query: str, where: str) -> None:
        self.keys = list(keys)
        self.query, self.where = query, where

    def find(self, name: str) -> str:
        if name in self.keys:
            return name
        folded = [k for k in self.keys if k.lower() == name.lower()]
        if len(folded) == 1:
            return folded[0]
        raise SourceError(
            f"{self.where}: {self.query} returns no column {name!r} "
            f"(it returns: {', '.join(self.keys)})"
        )


def _plain(value: Any) -> Any:
    """Text columns sometimes come back as bytes (binary collations, BLOB notes)."""
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return bytes(value)
    return value


class SqlSource:
    """Datasets from a SQL database (MariaDB/MySQL, PostgreSQL, SQLite) through a mapping."""

    def __init__(
        self,
        mapping: LoadedMapping,
        *,
        url: str | None = None,
        base: str | Path | None = None,
        chunk_size: int = 500,
    ) -> None:
        self.mapping = mapping
        self._url = mapping.database_url(url)
        self.name = f"{mapping.path} ({redact(self._url)})"
        self.rules = mapping.rules
        spec = mapping.spec.datasets
        if base is not None:
            self._root = Path(base).resolve()
        else:
            self._root = mapping.directory / (spec.root or ".")
        self._builder = DatasetBuilder(mapping, self._root)
        self._chunk_size = chunk_size
        self._engine: Engine | None = None
        self._query = mapping.spec.datasets.query.strip().rstrip(";")
        self._dataset_cols: dict[str, str] | None = None  # mapping name -> result column
        self._file_cols: dict[str, str] | None = None

    # -- connections ----------------------------------------------------------------------

    @contextmanager
    def _connect(self, what: str) -> Iterator[Connection]:
        """A pooled connection; any database error becomes a SourceError saying ``what``."""
        try:
            if self._engine is None:
                self._engine = sa.create_engine(self._url, pool_pre_ping=True)
            with self._engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise SourceError(
                f"{self.name}: {what} failed: {self._driver_message(exc)}{self._no_password()}"
            ) from None
        except ImportError as exc:
            raise SourceError(f"{self.name}: database driver missing: {exc}") from None

    def _driver_message(self, exc: SQLAlchemyError) -> str:
        orig = getattr(exc, "orig", None)
        text = str(orig if orig is not None else exc).strip().splitlines()[0]
        if self._url.password:
            text = text.replace(self._url.password, "***")
        return text

    def _no_password(self) -> str:
        env = self.mapping.spec.database.password_env
        if self._url.password is None and env and env not in os.environ:
            return f" (connected without a password: ${env} is not set)"
        return ""

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # -- reading --------------------------------------------------------------------------

    def datasets(
        self, only: Collection[str] | None = None
    ) -> Iterator[SourceDataset | DatasetProblem]:
        wanted = None if only is None else {str(s) for s in only}
        raw_by_sid, counts, nulls = self._sids()
        if nulls and wanted is None:
            col = self.mapping.spec.datasets.sid
            yield DatasetProblem(
                None, "datasets query", f"{nulls} rows have no sid ({col} is NULL)"
            )
        order = [s for s in sorted(counts) if wanted is None or s in wanted]
        for start in range(0, len(order), self._chunk_size):
            window = order[start : start + self._chunk_size]
            fetch = [s for s in window if counts[s] == 1]
            rows, files = self._chunk([raw_by_sid[s] for s in fetch]) if fetch else ({}, {})
            for sid in window:
                if counts[sid] > 1:
                    yield DatasetProblem(
                        sid,
                        "datasets query",
                        f"{counts[sid]} rows have this sid; sids must be unique",
                    )
                elif sid in rows:  # else: deleted since step 1; it is simply gone
                    yield self._builder.dataset(sid, rows[sid], files.get(sid))

    def _sids(self) -> tuple[dict[str, Any], Counter[str], int]:
        """Step 1: every sid (as text, with its raw value for binding), counted."""
        with self._connect("the datasets query") as conn:
            probe = conn.execute(sa.text(f"SELECT * FROM ({self._query}) etdb_d WHERE 1 = 0"))
            cols = self._resolve_dataset_columns(probe.keys())
            sid_col = conn.dialect.identifier_preparer.quote_identifier(cols["sid"])
            stmt = sa.text(f"SELECT etdb_d.{sid_col} FROM ({self._query}) etdb_d")
            result = conn.execution_options(stream_results=True, yield_per=5000).execute(stmt)
            raw_by_sid: dict[str, Any] = {}
            counts: Counter[str] = Counter()
            nulls = 0
            for (raw,) in result:
                sid = None if raw is None else str(_plain(raw))
                if not sid or not sid.strip():
                    nulls += 1
                    continue
                raw_by_sid.setdefault(sid, raw)
                counts[sid] += 1
        return raw_by_sid, counts, nulls

    def _resolve_dataset_columns(self, keys: Iterable[str]) -> dict[str, str]:
        if self._dataset_cols is None:
            spec = self.mapping.spec
            cols = _Columns(keys, "the datasets query", self.mapping.path)
            names = {spec.datasets.sid}
            names.update(f.column for f in spec.fields.values() if f.column)
            names.update(self._builder.template_names())
            names.discard("sid")  # {sid} is always the dataset's sid
            found = {n: cols.find(n) for n in names}
            found["sid"] = cols.find(spec.datasets.sid)
            if spec.datasets.public:
                found["public"] = cols.find(spec.datasets.public)
            for flag in KEY_MEDIA_FLAGS:
                if getattr(spec.datasets, flag):
                    found[flag] = cols.find(getattr(spec.datasets, flag))
            self._dataset_cols = found
        return self._dataset_cols

    def _chunk(
        self, raw_sids: list[Any]
    ) -> tuple[dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]]]:
        """Step 2: full rows and file rows of one chunk of datasets."""
        assert self._dataset_cols is not None
        with self._connect("the datasets query") as conn:
            quote = conn.dialect.identifier_preparer.quote_identifier
            stmt = sa.text(
                f"SELECT * FROM ({self._query}) etdb_d "
                f"WHERE etdb_d.{quote(self._dataset_cols['sid'])} IN :{_SIDS}"
            ).bindparams(sa.bindparam(_SIDS, expanding=True))
            rows: dict[str, dict[str, Any]] = {}
            for row in conn.execute(stmt, {_SIDS: raw_sids}).mappings():
                values = {k: _plain(row[c]) for k, c in self._dataset_cols.items()}
                values["sid"] = str(values["sid"])
                rows[values["sid"]] = values
        files: dict[str, list[dict[str, Any]]] = defaultdict(list)
        spec = self.mapping.spec.files
        if spec is not None:
            with self._connect("the files query") as conn:
                for file_row in self._file_rows(conn, spec, raw_sids):
                    files[str(file_row["sid"])].append(file_row)
        return rows, files

    def _file_rows(
        self, conn: Connection, spec: FilesSpec, raw_sids: list[Any]
    ) -> Iterator[dict[str, Any]]:
        query = spec.query.strip().rstrip(";")
        if ":sids" in query:
            stmt = sa.text(query).bindparams(sa.bindparam("sids", expanding=True))
            params = {"sids": raw_sids}
        else:
            if self._file_cols is None:
                probe = conn.execute(sa.text(f"SELECT * FROM ({query}) etdb_f WHERE 1 = 0"))
                self._resolve_file_columns(probe.keys())
            assert self._file_cols is not None
            quote = conn.dialect.identifier_preparer.quote_identifier
            stmt = sa.text(
                f"SELECT * FROM ({query}) etdb_f WHERE etdb_f.{quote(self._file_cols['sid'])} "
                f"IN :{_SIDS}"
            ).bindparams(sa.bindparam(_SIDS, expanding=True))
            params = {_SIDS: raw_sids}
        result = conn.execute(stmt, params)
        cols = self._resolve_file_columns(result.keys())
        for row in result.mappings():
            values = {k: _plain(row[c]) for k, c in cols.items()}
            values["sid"] = _plain(values["sid"])
            yield values

    def _resolve_file_columns(self, keys: Iterable[str]) -> dict[str, str]:
        if self._file_cols is None:
            spec = self.mapping.spec.files
            assert spec is not None
            cols = _Columns(keys, "the files query", self.mapping.path)
            names = {c for c in (spec.notes, spec.display_name, spec.software) if c}
            kinds = spec.kinds.values()
            for tpl in [spec.kind, spec.origin, *(t for k in kinds for t in (k.path, k.location))]:
                names.update(Template(tpl).names if tpl else ())
            names.discard("sid")
            found = {n: cols.find(n) for n in names}
            found["sid"] = cols.find(spec.sid)
            self._file_cols = found
        return self._file_cols
