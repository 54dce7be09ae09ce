"""The Caltech lab database, end to end: `etdb publish caltech --db-url ... --data-root ...`
publishes every public, well-formed dataset; the records decode, verify and index; problems
and private datasets are reported, not published."""

from __future__ import annotations

import json
import sqlite3

import pytest
from typer.testing import CliRunner

from etdb.cli import app
from etdb.index.catalog import open_catalog
from etdb.index.query import SearchQuery
from etdb.publish.keystore import Keystore
from etdb.publish.overlay import MEDIA_SUBTYPES as MEDIA
from etdb.publish.source import DatasetProblem, SourceDataset
from etdb.publish.sources import open_source
from etdb.record import decode, verify_publish
from tests.publish.sources.conftest import LabDatabase
from tests.publish.sources.records import folder_root, make_folder

PASS = "caltech test passphrase"
runner = CliRunner()


@pytest.fixture(
    params=[pytest.param("mariadb", marks=pytest.mark.mariadb), "sqlite"],
)
def lab_db(request) -> LabDatabase:
    return request.getfixturevalue(f"{request.param}_lab")


def test_publish_from_the_caltech_database(lab_db, tmp_path, etdb_home, monkeypatch):
    monkeypatch.setenv("ETDB_KEY_PASSPHRASE", PASS)
    monkeypatch.setenv("ETDB_SOURCE_PASSWORD", "")  # etdb_home cleared every ETDB_* variable
    address = Keystore(etdb_home / "keys", scrypt_n=2**10).create("jensen", PASS).address
    root = folder_root(tmp_path)
    source = open_source(lab_db.mapping, url=lab_db.url, base=root)
    try:
        rows = list(source.datasets())
    finally:
        source.close()
    public = {d.sid: d for d in rows if isinstance(d, SourceDataset) and d.public}
    private = {d.sid for d in rows if isinstance(d, SourceDataset) and not d.public}
    problems = {d.sid for d in rows if isinstance(d, DatasetProblem)}
    assert public and private and problems
    for ds in public.values():
        make_folder(ds, "only_on_disk.txt")  # not in the database: reported, not published

    args = ["publish", lab_db.mapping, "--db-url", lab_db.url, "--data-root", str(root)]
    result = runner.invoke(app, [*args, "--yes", "--no-media", "--json"])
    assert result.exit_code == 1, result.output  # the problem rows are listed: exit 1
    out = json.loads(result.stdout)
    assert out["summary"]["counts"]["new"] == len(public)
    failed = {f["sid"] for f in out["summary"]["failed"]}
    assert problems - {None} <= failed and not (failed & set(public))
    assert out["plan"]["counts"]["private"] == len(private)
    warned = {d["sid"]: " | ".join(d["warnings"]) for d in out["plan"]["datasets"]}
    assert "ThreeDFile DEF_id=44: column filename is NULL" in warned["ij2010-01-14-14"]
    assert "DataFile DEF_id=61: column filename is NULL or blank" in warned["ij2010-01-14-14"]
    assert "column tilt_step '-': tiltStep left out" in warned["ij2010-01-13-13"]
    assert "only_on_disk.txt" in warned["ij2010-01-10-10"]

    # On the ledger: one valid record per public dataset, signed by the lab's key.
    with sqlite3.connect(etdb_home / "ledger.sqlite3") as conn:
        payloads = [p for (p,) in conn.execute("SELECT payload FROM entries")]
    artifacts = [decode(p).artifact for p in payloads]
    assert sorted(a.details.sid for a in artifacts) == sorted(public)
    for artifact in artifacts:
        check = verify_publish(artifact)
        assert check.valid and check.address == address
        assert artifact.details.institution == "Caltech" and artifact.details.lab == "Jensen Lab"

    # Indexed: every record is in the catalog with its files.
    assert runner.invoke(app, ["index"]).exit_code == 0
    catalog = open_catalog(f"sqlite:///{etdb_home / 'catalog.sqlite3'}", memory_index=False)
    try:
        page = catalog.search(SearchQuery(publisher=(address,), limit=100))
        assert sorted(i.sid for i in page.items) == sorted(public)
        for item in page.items:
            detail = catalog.get(item.id)
            files = detail.artifact["storage"].get("files", ())
            listed = {f.path: f.notes for f in public[item.sid].files or ()}
            # Exactly the database's files (plus the key media), with their notes.
            got = {f["fname"]: f.get("fNotes") for f in files if f["subtype"] not in MEDIA}
            assert got == listed, item.sid
    finally:
        catalog.close()

    # Nightly re-run: nothing to do.
    again = runner.invoke(app, [*args, "--yes", "--no-media", "--json"])
    assert json.loads(again.stdout)["plan"]["counts"].get("new", 0) == 0
