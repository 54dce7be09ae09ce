"""Catalog fixtures: every catalog test runs on SQLite (a temporary file) and on PostgreSQL.

Variants: ``sqlite`` and ``postgresql`` search through the memory index (the default),
``sqlite-sql`` through SQL alone (test_memindex.py checks both paths agree on both backends).

PostgreSQL: ``ETDB_TEST_POSTGRES`` (default ``postgresql://postgres@127.0.0.1:5432/test``,
trust auth). Each catalog gets a fresh schema (``search_path`` in the URL), dropped afterwards,
so concurrent test runs and other suites sharing the database never see each other. When the
server is unreachable the PostgreSQL variants skip on a laptop and fail in CI
(``skip_or_fail``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest

from etdb.index.catalog import SqlCatalog, open_catalog
from tests.conftest import skip_or_fail

PG_URL = os.environ.get("ETDB_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
VARIANTS = ["sqlite", "sqlite-sql", pytest.param("postgresql", marks=pytest.mark.postgres)]
_pg_problem: list[str | None] = []


def _pg_unreachable() -> str | None:
    """Why PostgreSQL cannot be used (checked once per session), or None."""
    if not _pg_problem:
        try:
            import psycopg

            with psycopg.connect(_libpq(PG_URL), connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            _pg_problem.append(None)
        except Exception as exc:  # ImportError, OperationalError...
            _pg_problem.append(f"PostgreSQL at {PG_URL} unreachable: {exc}".strip())
    return _pg_problem[0]


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@contextmanager
def pg_schema() -> Iterator[str]:
    """A fresh, empty PostgreSQL schema as a catalog URL; dropped on exit."""
    problem = _pg_unreachable()
    if problem:
        skip_or_fail(problem)
    import psycopg

    schema = f"etdb_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_libpq(PG_URL), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(_libpq(PG_URL), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextmanager
def catalog_for(variant: str, folder: Path) -> Iterator[SqlCatalog]:
    with pg_schema() if variant == "postgresql" else _nothing() as pg_url:
        url = pg_url or f"sqlite:///{folder / 'catalog.sqlite3'}"
        cat = open_catalog(url, memory_index=variant != "sqlite-sql")
        try:
            yield cat
        finally:
            cat.close()


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    with pg_schema() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def catalog_url(request, tmp_path) -> str:
    """A URL for tests that open and close catalogs themselves."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    return request.getfixturevalue("pg_schema_url")


@pytest.fixture(params=VARIANTS)
def catalog(request, tmp_path) -> Iterator[SqlCatalog]:
    """A fresh, empty catalog per test."""
    with catalog_for(request.param, tmp_path) as cat:
        yield cat


@pytest.fixture(scope="module", params=VARIANTS)
def module_catalog(request, tmp_path_factory) -> Iterator[SqlCatalog]:
    """One empty catalog per test module: for tests that only read what they share."""
    with catalog_for(request.param, tmp_path_factory.mktemp("catalog")) as cat:
        yield cat
