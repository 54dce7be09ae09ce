"""Ledger rows of the wrong type (issue 11 follow-up): a ledger file can come from anywhere.

SQLite stores any value in any column, and an embedded ledger file can be a copy, an import
or a foreign writer's. Before the fix, a payload stored as a BLOB reached the indexer as
bytes, which crashed it with a TypeError (``str`` expected) on every run, and ``etdb index``
printed the traceback. Now (``ledger/local_rows.py``) a UTF-8 BLOB is its text; other bytes
reach the indexer as lone surrogates, which the record text rule rejects with the reason, and
the records around it are indexed; a block header of the wrong type is a one-line
``CorruptLedgerError``; and ``etdb index`` turns any unexpected error into one line, exit 1.

Real embedded ledger files (altered with sqlite3 as a foreign writer would), the real indexer
and SQLite catalog, and ``etdb`` as a real subprocess.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from etdb.index.catalog import open_catalog
from etdb.index.indexer import Indexer
from etdb.ledger import CorruptLedgerError
from tests.index.test_indexer import OWNER, Chain, publish, rejected


def _sql(path: Path, statement: str, *args: object) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(statement, args)
    finally:
        conn.close()


def _etdb(home: Path, *args: str, code: int, prelude: str = "") -> str:
    """``etdb`` in a subprocess; its stderr (asserting the exit code)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETDB_")}
    env["ETDB_HOME"] = str(home)
    script = prelude + "from etdb.cli import main; main()"
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == code, (done.stdout, done.stderr)
    return done.stderr


@pytest.fixture
def chain(etdb_home):
    c = Chain(etdb_home / "ledger.sqlite3")  # the default `ledger` setting, local://
    yield c
    c.close()


def _blob_block(chain: Chain) -> dict[str, str]:
    """A block of five records; three of them rewritten as a foreign writer could. name -> txid"""
    names = ("text", "utf8 blob", "bad blob", "bad text", "after")
    txids = chain.block(*(publish(OWNER, n) for n in range(1, 6)))
    by_name = dict(zip(names, txids, strict=True))
    blob = "UPDATE entries SET payload = CAST(payload AS BLOB) WHERE txid = ?"
    _sql(chain.path, blob, by_name["utf8 blob"])
    # Each record's JSON with a byte no UTF-8 text has inside its (unsigned) title, stored as
    # a BLOB, and as TEXT (SQLite does not check that TEXT is UTF-8).
    bad = "UPDATE entries SET payload = replace(CAST(payload AS BLOB), CAST(? AS BLOB), ?) "
    _sql(chain.path, bad + "WHERE txid = ?", "record 3", b"record \xff", by_name["bad blob"])
    bad_text = bad.replace("?) ", "?) || ''") + " WHERE txid = ?"  # || makes it TEXT
    _sql(chain.path, bad_text, "record 4", b"record \xfe", by_name["bad text"])
    return by_name


def test_blob_payloads_are_read_or_rejected_never_raised(chain, tmp_path):
    txids = _blob_block(chain)
    chain.block(publish(OWNER, 6))  # a later block still gets indexed
    catalog = open_catalog(f"sqlite:///{tmp_path / 'catalog.sqlite3'}")
    try:
        indexer = Indexer(chain.ledger, catalog)
        report = indexer.run()
        assert report.records == 4
        assert catalog.get(txids["utf8 blob"]) is not None  # UTF-8 bytes: that very text
        assert catalog.get(txids["after"]) is not None
        reasons = rejected(catalog)
        assert reasons[txids["bad blob"]] == (
            "publish",
            "oip042.publish.artifact.info.title: a lone surrogate (U+DCFF) at character 7",
        )
        assert reasons[txids["bad text"]][1].endswith("a lone surrogate (U+DCFE) at character 7")
        assert indexer.check().equal  # incremental == rebuild
    finally:
        catalog.close()


def test_etdb_index_reads_blob_payloads(chain, etdb_home):
    txids = _blob_block(chain)
    stderr = _etdb(etdb_home, "index", code=0)
    assert "Traceback" not in stderr
    out = _etdb(etdb_home, "index", "rejections", code=0)
    assert "Traceback" not in out
    catalog = open_catalog(f"sqlite:///{etdb_home / 'catalog.sqlite3'}")
    try:
        assert {txids["bad blob"], txids["bad text"]} <= set(rejected(catalog))
    finally:
        catalog.close()


@pytest.mark.parametrize(
    ("column", "value", "said"),
    [
        ("time", "soon", "block 1 has time 'soon' (str), not an integer"),
        ("hash", b"\x01\x02", "block 1 has hash b'\\x01\\x02' (bytes), not text"),
    ],
)
def test_a_block_header_of_the_wrong_type_is_one_line(chain, etdb_home, column, value, said):
    chain.block(publish(OWNER, 1))
    chain.block(publish(OWNER, 2))
    _sql(chain.path, f"UPDATE blocks SET {column} = ? WHERE height = 1", value)
    with pytest.raises(CorruptLedgerError, match="damaged"):
        list(chain.ledger.blocks(0, 1))
    stderr = _etdb(etdb_home, "index", code=1)
    assert "Traceback" not in stderr
    assert said in " ".join(stderr.split())
    assert stderr.strip().startswith("error: the ledger file is damaged")


def test_an_unexpected_error_is_one_line_exit_1(chain, etdb_home):
    """A bug cannot be made on demand, so this one is planted: the subprocess replaces
    Indexer.run with a function raising the error a bug would (the only stand-in here)."""
    chain.block(publish(OWNER, 1))
    prelude = (
        "import etdb.index.indexer as m\n"
        "def run(*a, **k): raise TypeError('a bug: expected str, got bytes')\n"
        "m.Indexer.run = run\n"
    )
    stderr = _etdb(etdb_home, "index", code=1, prelude=prelude)
    assert "Traceback" not in stderr
    assert stderr.strip() == "error: unexpected TypeError: a bug: expected str, got bytes"
