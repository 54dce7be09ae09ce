"""A Caltech-style lab database on MariaDB, SQLite and PostgreSQL, and its dataset folders.

MariaDB: ``ETDB_TEST_MARIADB`` (default ``mysql+pymysql://root@127.0.0.1:3306/test``); each
test session gets its own database ``etdb_src_<random>``, dropped afterwards. PostgreSQL:
``ETDB_TEST_POSTGRES``; a schema of its own. Unreachable servers skip here and fail in CI
(``skip_or_fail``). The schema and most rows are ``caltech_schema.sql``; rows with odd strings
are inserted below with bound parameters, and :data:`ODD` holds what they must read back as.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from etdb.publish.sources.mapping import packaged_mapping
from tests.conftest import skip_or_fail

MARIADB_URL = os.environ.get("ETDB_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/test")
PG_URL = os.environ.get("ETDB_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
SCHEMA = Path(__file__).with_name("caltech_schema.sql")
CALTECH = Path(str(packaged_mapping("caltech").directory)) / "caltech.toml"

# The odd-string rows: quotes, backslashes, latin1 µ/°/Å (the lab's tables are latin1: what
# latin1 cannot hold cannot be there), blank-padded tax id, 10 kB notes.
LONG_NOTES = "Line one: 'single' \"double\" \\backslash\\ µ° Å\n" + "x" * 10_000 + "\nend"
ODD = {
    "species": 'Psychróphilus "quoted" O\'Brien \\ back\\slash µ°Å',
    "strain": "naïve\tstrain",
    "tax_id": " 562 ",
    "species_notes": LONG_NOTES,
    "title": 'It\'s "odd" \\n is not a newline; DROP TABLE x; --',
    "notes": "",
    "date": "2016-05-05 23:59:59",
    "tilt_step": "2.0 deg",
    "file": 'it\'s a "file" ü.mrc',
}


CRLF = "line one\r\nline two\r\n"


def statements(dialect: str) -> list[str]:
    text = "\n".join(
        line for line in SCHEMA.read_text("utf-8").splitlines() if not line.startswith("--")
    )
    if dialect != "mysql":  # MariaDB's table options (latin1 tables)
        text = text.replace(" DEFAULT CHARSET=latin1", "")
    if dialect == "postgresql":
        text = text.replace("`", '"').replace("DATETIME", "TIMESTAMP")
    return [s.strip() for s in re.split(r";\s*$", text, flags=re.M) if s.strip()]


def load(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        for stmt in statements(engine.dialect.name):
            conn.exec_driver_sql(stmt)
        conn.execute(
            sa.text("INSERT INTO SpeciesData VALUES (4, :name, :strain, :tax, :notes)"),
            {"name": ODD["species"], "strain": ODD["strain"], "tax": ODD["tax_id"]}
            | {"notes": ODD["species_notes"]},
        )
        conn.execute(
            sa.text(
                "INSERT INTO TiltSeriesData (DEF_id, tiltseriesID, title, tomo_date, TXT_notes,"
                " single_dual, tilt_step, ispublic, "
                + (
                    '"REF|UserData|user", "REF|SpeciesData|specie")'
                    if _pg(engine)
                    else "`REF|UserData|user`, `REF|SpeciesData|specie`)"
                )
                + " VALUES (5, 'cd2016-05-05-5', :title, :date, :notes, 1, :step, 1, 2, 4)"
            ),
            {"title": ODD["title"], "notes": ODD["notes"], "step": ODD["tilt_step"]}
            | {"date": _date(engine, ODD["date"])},
        )
        conn.execute(
            sa.text(
                "INSERT INTO ThreeDFile VALUES (15, 'cd2016-05-05-5', 'rawdata', :name, NULL, 0)"
            ),
            {"name": ODD["file"]},
        )
        # CRLF notes, as the lab's web forms stored them.
        conn.execute(
            sa.text("UPDATE TiltSeriesData SET TXT_notes = :n WHERE DEF_id = 11"), {"n": CRLF}
        )
        conn.execute(sa.text("UPDATE ThreeDFile SET TXT_notes = :n WHERE DEF_id = 41"), {"n": CRLF})


def _pg(engine: sa.Engine) -> bool:
    return engine.dialect.name == "postgresql"


def _date(engine: sa.Engine, text: str) -> object:
    from datetime import datetime

    return text if engine.dialect.name == "sqlite" else datetime.fromisoformat(text)


def pg_mapping(folder: Path) -> Path:
    """caltech.toml with PostgreSQL's identifier quotes: the only change it needs there."""
    path = folder / "caltech-pg.toml"
    path.write_text(CALTECH.read_text("utf-8").replace("`", '"'), "utf-8")
    return path


@dataclass(frozen=True)
class LabDatabase:
    url: str  # with no password: the tests pass it as ``url=``
    mapping: str  # "caltech", or a path to caltech.toml adapted to the dialect


def _mariadb() -> Iterator[LabDatabase]:
    admin = sa.create_engine(MARIADB_URL)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except Exception as exc:
        admin.dispose()
        skip_or_fail(f"MariaDB at {MARIADB_URL} unreachable: {exc}")
    name = f"etdb_src_{uuid.uuid4().hex[:12]}"
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    url = sa.make_url(MARIADB_URL).set(database=name)
    engine = sa.create_engine(url)
    try:
        load(engine)
        engine.dispose()
        yield LabDatabase(url.render_as_string(hide_password=False), "caltech")
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        admin.dispose()


def _postgres(folder: Path) -> Iterator[LabDatabase]:
    base = PG_URL.replace("postgresql://", "postgresql+psycopg://", 1)
    admin = sa.create_engine(base)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except Exception as exc:
        admin.dispose()
        skip_or_fail(f"PostgreSQL at {PG_URL} unreachable: {exc}")
    schema = f"etdb_src_{uuid.uuid4().hex[:12]}"
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in base else "?"
    url = f"{base}{sep}options={quote(f'-csearch_path={schema}')}"
    engine = sa.create_engine(url)
    try:
        load(engine)
        engine.dispose()
        yield LabDatabase(url, str(pg_mapping(folder)))
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


def _sqlite(folder: Path) -> Iterator[LabDatabase]:
    url = f"sqlite:///{folder / 'tomography.sqlite3'}"
    engine = sa.create_engine(url)
    load(engine)
    engine.dispose()
    yield LabDatabase(url, "caltech")  # SQLite reads MySQL's `quoted` names as they are


@pytest.fixture(scope="session")
def mariadb_lab() -> Iterator[LabDatabase]:
    yield from _mariadb()


@pytest.fixture(scope="module")
def sqlite_lab(tmp_path_factory) -> Iterator[LabDatabase]:
    yield from _sqlite(tmp_path_factory.mktemp("sqlite-lab"))


@pytest.fixture(scope="module")
def postgres_lab(tmp_path_factory) -> Iterator[LabDatabase]:
    yield from _postgres(tmp_path_factory.mktemp("pg-lab"))


@pytest.fixture(
    params=[
        pytest.param("mariadb", marks=pytest.mark.mariadb),
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def lab(request) -> LabDatabase:
    """The same lab database on each backend."""
    return request.getfixturevalue(f"{request.param}_lab")


@pytest.fixture(autouse=True)
def _password_env(monkeypatch) -> None:
    # caltech.toml takes the password from $ETDB_SOURCE_PASSWORD; the test servers have none.
    monkeypatch.setenv("ETDB_SOURCE_PASSWORD", "")
    monkeypatch.delenv("ETDB_SOURCE_URL", raising=False)
