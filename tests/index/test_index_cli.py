"""`etdb index`, `etdb index status`, `etdb index rejections` (CliRunner, a fresh ETDB_HOME)."""

from __future__ import annotations

import json
import sqlite3

import pytest
from typer.testing import CliRunner

from etdb.cli import app
from tests.index.test_indexer import OTHER, OWNER, Chain, publish

runner = CliRunner()


def etdb(*args: str, code: int = 0):
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result


@pytest.fixture
def chain(etdb_home):
    # The default settings: ledger local:// is <home>/ledger.sqlite3, the catalog
    # <home>/catalog.sqlite3.
    c = Chain(etdb_home / "ledger.sqlite3")
    yield c
    c.close()


def test_index_then_nothing_new(chain, etdb_home):
    chain.block(publish(OWNER, 1), publish(OWNER, 2), "junk")
    chain.block(chain.parts(publish(OWNER, 3), OWNER)[0])
    out = etdb("index").output
    assert "indexed 2 blocks to height 1 (ledger tip 1): 2 records" in out
    assert "1 rejected" in out
    assert (etdb_home / "catalog.sqlite3").is_file()
    again = json.loads(etdb("index", "--json").output)["index"]
    assert again["blocks"] == 0 and again["height"] == 1 and again["tip"] == 1


def test_status_and_rejections(chain):
    chain.block(publish(OWNER, 1), "junk")
    chain.block(chain.parts(publish(OWNER, 2), OWNER)[0])
    etdb("index", "--limit-blocks", "1")
    status = json.loads(etdb("index", "status", "--json").output)
    assert status == {
        "ledger_url": chain.ledger.url,
        "ledger_tip": 1,
        "indexed_height": 0,
        "lag": 1,
        "records": 1,
        "rejected": 1,
        "pending_multiparts": 0,
    }
    assert "indexed_height  0" in etdb("index", "status").output
    rows = json.loads(etdb("index", "rejections", "--json").output)
    assert [(r["height"], r["index"], r["kind"]) for r in rows] == [(0, 1, "unknown")]
    assert rows[0]["reason"].startswith("not an OIP 0.4.2 message: floData starts with 'junk'")
    assert rows[0]["payload_excerpt"] == "junk"
    text = etdb("index", "rejections").output
    assert "0:1" in text and "[unknown] not an OIP 0.4.2 message" in text
    assert json.loads(etdb("index", "rejections", "--after", "0:1", "--json").output) == []
    assert (
        "expected '<height>:<index>'" in etdb("index", "rejections", "--after", "x", code=1).output
    )


def test_check_rebuild_and_tampering(chain, etdb_home):
    (a,) = chain.block(publish(OWNER, 1))
    etdb("index")
    assert (
        "equals a fresh rebuild to height 0 (1 records, 0 rejections)"
        in etdb("index", "--check").output
    )
    db = sqlite3.connect(etdb_home / "catalog.sqlite3")
    with db:
        db.execute("UPDATE records SET deactivated = 1")
    db.close()
    result = etdb("index", "--check", "--json", code=1)
    assert json.loads(result.output)["check"]["differences"] == [
        f"record {a}: deactivated in the catalog, active in a rebuild"
    ]
    assert "1 differences" in etdb("index", "--check", code=1).output
    data = json.loads(etdb("index", "--rebuild", "--check", "--json").output)
    assert data["index"]["records"] == 1 and data["check"]["equal"] is True


def test_settings_and_overrides(chain, etdb_home, tmp_path, monkeypatch):
    chain.block(publish(OWNER, 1), publish(OTHER, 2))
    other_catalog = f"sqlite:///{tmp_path / 'elsewhere.sqlite3'}"
    monkeypatch.setenv("ETDB_PUBLISHERS", OWNER.address)
    out = json.loads(etdb("index", "--catalog", other_catalog, "--json").output)["index"]
    assert (out["records"], out["rejections"]) == (1, 1)
    assert not (etdb_home / "catalog.sqlite3").exists()
    monkeypatch.setenv("ETDB_PUBLISHERS", "*")
    err = etdb("index", "--catalog", other_catalog, code=1).output
    assert "indexed with" in err and "--rebuild" in err
    monkeypatch.setenv("ETDB_MULTIPART_EXPIRY", "soon")
    assert "multipart_expiry='soon' is not a number of seconds" in etdb("index", code=1).output


def test_errors_are_one_line(chain, etdb_home, tmp_path):
    chain.block(publish(OWNER, 1))
    etdb("index")
    other = Chain(tmp_path / "other.sqlite3")
    other.block(publish(OWNER, 2))
    for args in (
        ("index", "--ledger", other.url),
        ("index", "status", "--ledger", other.url),
        ("index", "--ledger", other.url, "status"),
    ):
        out = etdb(*args, code=1).output
        assert out.startswith("error: this catalog was built from") and "Traceback" not in out
    assert json.loads(etdb("index", "--ledger", other.url, "--rebuild", "--json").output)
    bad = etdb("index", "--ledger", "nope://x", code=1).output
    assert "unknown ledger URL scheme 'nope'" in bad
    bad = etdb("index", "--catalog", "mysql://h/db", code=1).output
    assert "unsupported database" in bad and "Traceback" not in bad
    other.close()
