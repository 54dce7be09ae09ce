"""A file the lab withdraws (``status`` set to 1) after its dataset was published drops out
of the record at the next ``etdb publish`` run: an edit whose record no longer lists it, on
the real-schema fixture on real MariaDB. The file stays on disk (the lab keeps it there);
the database, not the folder, says what is published."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from etdb.cli import app
from etdb.index.catalog import open_catalog
from etdb.index.query import SearchQuery
from etdb.publish.keystore import Keystore
from etdb.publish.overlay import MEDIA_SUBTYPES as MEDIA
from etdb.publish.source import SourceDataset
from etdb.publish.sources import open_source
from tests.publish.sources.conftest import LabDatabase, _mariadb
from tests.publish.sources.records import folder_root, make_folder

pytestmark = pytest.mark.mariadb

PASS = "caltech test passphrase"
SID = "ab2014-01-14-1"
# DEF_id -> the path each row is published at (caltech.toml's files.kinds).
WITHDRAWN = {"ThreeDFile": (13, "3dimage_13/align.xf"), "DataFile": (33, "file_33/README.txt")}
runner = CliRunner()


@pytest.fixture
def own_lab() -> Iterator[LabDatabase]:
    """A database of its own: this test changes rows the session's database must keep."""
    yield from _mariadb()


def _record_files(etdb_home) -> list[str]:
    """The data files (not key media) of the dataset's current record, as indexed (the
    record with every edit on the ledger applied)."""
    assert runner.invoke(app, ["index"]).exit_code == 0
    catalog = open_catalog(f"sqlite:///{etdb_home / 'catalog.sqlite3'}", memory_index=False)
    try:
        (item,) = catalog.search(SearchQuery(limit=10)).items
        assert item.sid == SID
        files = catalog.get(item.id).artifact["storage"].get("files", ())
    finally:
        catalog.close()
    return sorted(f["fname"] for f in files if f["subtype"] not in MEDIA)


def _ledger_entries(etdb_home) -> int:
    with sqlite3.connect(etdb_home / "ledger.sqlite3") as conn:
        return conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0]


def test_a_withdrawn_file_drops_out_at_the_next_run(own_lab, tmp_path, etdb_home, monkeypatch):
    monkeypatch.setenv("ETDB_KEY_PASSPHRASE", PASS)
    monkeypatch.setenv("ETDB_SOURCE_PASSWORD", "")  # etdb_home cleared every ETDB_* variable
    Keystore(etdb_home / "keys", scrypt_n=2**10).create("jensen", PASS)
    root = folder_root(tmp_path)
    source = open_source(own_lab.mapping, url=own_lab.url, base=root)
    try:
        (ds,) = [d for d in source.datasets(only=[SID]) if isinstance(d, SourceDataset)]
    finally:
        source.close()
    make_folder(ds)
    args = ["publish", own_lab.mapping, "--db-url", own_lab.url, "--data-root", str(root)]
    args += ["--only", SID, "--yes", "--no-media", "--json"]

    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["summary"]["counts"]["new"] == 1
    before = _record_files(etdb_home)
    assert {path for _, path in WITHDRAWN.values()} <= set(before)

    engine = sa.create_engine(own_lab.url)
    try:
        with engine.begin() as conn:
            for table, (row_id, _) in WITHDRAWN.items():
                conn.execute(
                    sa.text(f"UPDATE {table} SET status = 1 WHERE DEF_id = :i"), {"i": row_id}
                )
    finally:
        engine.dispose()

    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    out = json.loads(second.stdout)
    counts = {k: n for k, n in out["summary"]["counts"].items() if n}
    assert counts == {"edit": 1}, out["summary"]
    assert _ledger_entries(etdb_home) == 2  # the first record and one edit
    after = _record_files(etdb_home)
    assert after == sorted(set(before) - {path for _, path in WITHDRAWN.values()})
    # Still on disk, now only there: reported, not published.
    (plan,) = out["plan"]["datasets"]
    for _, path in WITHDRAWN.values():
        assert (ds.folder / path).is_file()
        assert path in " | ".join(plan["warnings"])

    third = runner.invoke(app, args)  # and the run after that has nothing to do
    assert json.loads(third.stdout)["plan"]["counts"].get("edit", 0) == 0
