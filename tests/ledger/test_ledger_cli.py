"""`etdb ledger ...` end to end through the CLI, on the embedded ledger and a fake node."""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from typing import ClassVar

import pytest
from typer.testing import CliRunner

from etdb.cli import app
from etdb.ledger import BACKENDS, FeeEstimate, LedgerUnavailable, Tip
from etdb.ledger import costs as costs_module
from etdb.ledger.local import open_local
from etdb.publish.keystore import Keystore
from etdb.record.multipart import MultipartAssembler, parse_part
from etdb.record.signing import PrivateKey

runner = CliRunner()
PASS = "ledger cli passphrase"
SECRET = "s3cr3t-pw"


@pytest.fixture
def home(etdb_home, monkeypatch):
    monkeypatch.setenv("ETDB_KEY_PASSPHRASE", PASS)
    return etdb_home


def run(*args: str, input: str | None = None):
    return runner.invoke(app, ["ledger", *args], input=input)


def ok(*args: str, input: str | None = None):
    result = run(*args, input=input)
    assert result.exit_code == 0, result.output
    return result


def err(*args: str, input: str | None = None, code: int = 1) -> str:
    result = run(*args, input=input)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result.stderr


# -- a fake node backend, to test what the CLI does for non-local ledgers ----------------------


class FakeNode:
    """Enough of a node-backed Ledger for the CLI: fees, a tip, no chain file."""

    max_payload = 1040
    confirmations = 6
    opened: ClassVar[list[str]] = []

    def __init__(self, raw_url: str) -> None:
        self.url = "fake+http://127.0.0.1:1/"  # what a backend shows: no password
        FakeNode.opened.append(raw_url)

    def tip(self) -> Tip:
        if "down" in FakeNode.opened[-1]:
            # A careless backend message quoting the raw URL: the CLI must still mask it.
            raise LedgerUnavailable(f"cannot reach {FakeNode.opened[-1]}")
        return Tip(41, "ab" * 32)

    def estimate_fee(self, payload_bytes: int, transactions: int = 1) -> FeeEstimate:
        return FeeEstimate(
            Decimal("0.0001") * transactions, "FAKE", transactions, payload_bytes, "fake rate"
        )

    def close(self) -> None:
        pass


def open_fake(url, home):
    return FakeNode(url)


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setitem(BACKENDS, "fake+http", f"{__name__}:open_fake")
    monkeypatch.setitem(costs_module.FEE_RATE_OPTIONS, "fake", ("fee_rate", "FAKE per kB"))
    FakeNode.opened = []
    return f"fake+http://user:{SECRET}@127.0.0.1:1/?wallet=w"


# -- local ----------------------------------------------------------------------------------------


def test_info_on_a_fresh_home_creates_nothing(home):
    data = json.loads(ok("info", "--json").stdout)
    assert data["backend"] == "local" and data["tip_height"] == -1
    assert data["url"] == f"local://{home}/ledger.sqlite3"
    assert data["max_payload"] == 65536 and data["confirmations"] == 1
    assert data["exists"] is False and not (home / "ledger.sqlite3").exists()
    assert "no ledger file yet" in ok("info").stdout


def test_publish_read_verify(home, tmp_path):
    record = tmp_path / "record.txt"
    record.write_text('json:{"oip042":{"n":1}}\n')  # as `etdb record sign` prints it
    first = ok("publish", str(record)).stdout.strip()
    second = json.loads(
        ok("publish", "-", "--json", input='{"floData": "json:{\\"n\\":2}"}').stdout
    )
    assert len(first) == 64 and second["heights"] == [1]
    lines = [json.loads(x) for x in ok("read", "--json").stdout.splitlines()]
    assert [x["payload"] for x in lines] == ['json:{"oip042":{"n":1}}', 'json:{"n":2}']
    assert lines[0]["txid"] == first and lines[1]["txid"] == second["txids"][0]
    last = ok("read", "--json", "--from", "-1").stdout.splitlines()
    assert [json.loads(x)["height"] for x in last] == [1]
    human = ok("read", "--to", "0").stdout
    assert first in human and "oip042" in human and 'n":2' not in human
    assert "OK: 2 blocks, 2 entries" in ok("verify").stdout
    info = json.loads(ok("info", "--json").stdout)
    assert (info["tip_height"], info["blocks"], info["entries"]) == (1, 2, 2)


def test_read_empty_range(home):
    assert "no entries" in ok("read", "--from", "5").stderr


def test_publish_oversized_needs_a_key_then_goes_multipart(home):
    url = "local://?max_payload=1040"
    big = "json:" + "y" * 2500
    assert "give --key NAME" in err("publish", "-", "--ledger", url, input=big)
    key = PrivateKey(bytes([7]) * 32)
    Keystore(home / "keys").add("lab", key, PASS)
    txids = ok("publish", "-", "--ledger", url, "--key", "lab", input=big).stdout.split()
    assert len(txids) >= 3
    # `ledger cost` counts exactly what publishing sent.
    planned = json.loads(
        ok("cost", "--records", "1", "--bytes", str(len(big)), "--ledger", url, "--json").stdout
    )
    assert planned["transactions"] == len(txids)
    entries = [json.loads(x) for x in ok("read", "--json", "--ledger", url).stdout.splitlines()]
    assembler, done = MultipartAssembler(), []
    for e in entries:
        result = assembler.add(parse_part(e["payload"]), e["txid"])
        if result is not None:
            done.append(result)
    assert [d.data for d in done] == [big] and done[0].txid == txids[0]
    assert "nobody" in err("publish", "-", "--ledger", url, "--key", "nobody", input=big)


def test_publish_errors(home, tmp_path):
    assert "cannot read" in err("publish", str(tmp_path / "missing"))
    assert "holds no payload" in err("publish", "-", input="")
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\xff\xfe")
    assert "not UTF-8" in err("publish", str(bad))


def test_verify_reports_the_first_broken_link(home):
    for i in range(4):
        ok("publish", "-", input=f"p{i}")
    conn = sqlite3.connect(home / "ledger.sqlite3")
    conn.execute("UPDATE entries SET payload = 'evil' WHERE height = 2")
    conn.commit()
    conn.close()
    result = run("verify")
    assert result.exit_code == 1 and "BROKEN at height 2" in result.stdout
    data = json.loads(run("verify", "--json").stdout)
    assert data["ok"] is False and data["broken_height"] == 2


def test_export_import_round_trip(home, tmp_path):
    for i in range(3):
        ok("publish", "-", input=f"p{i}")
    out = tmp_path / "chain.ndjson"
    exported = json.loads(ok("export", "-o", str(out), "--json").stdout)
    assert exported["blocks"] == 3 and out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".chain")]  # no temp left
    copy = "local:copy.sqlite3"
    imported = json.loads(ok("import", str(out), "--ledger", copy, "--json").stdout)
    assert (imported["blocks"], imported["entries"]) == (3, 3)
    assert imported["tip_hash"] == exported["tip_hash"]
    assert "3 blocks were already here" in ok("import", str(out), "--ledger", copy).stdout
    # stdout and stdin work too
    text = ok("export", "-o", "-").stdout
    assert text.splitlines()[0].startswith('{"format":"etdb-local-ledger"')
    ok("import", "-", "--ledger", "local:copy2.sqlite3", input=text)


def test_import_of_a_tampered_export_fails_cleanly(home, tmp_path):
    for i in range(3):
        ok("publish", "-", input=f"p{i}")
    lines = ok("export", "-o", "-").stdout.splitlines()
    block = json.loads(lines[2])
    block["entries"][0]["payload"] = "evil"
    lines[2] = json.dumps(block)
    path = tmp_path / "bad.ndjson"
    path.write_text("\n".join(lines) + "\n")
    message = err("import", str(path), "--ledger", "local:copy.sqlite3")
    assert "damaged at height 1" in message and "nothing was imported" in message
    assert open_local(f"local://{home}/copy.sqlite3").tip().height == -1
    assert "cannot read" in err("import", str(tmp_path / "missing.ndjson"))


def test_export_of_an_empty_ledger(home, tmp_path):
    assert "nothing to export" in err("export", "-o", str(tmp_path / "x.ndjson"))


def test_cost_on_the_embedded_ledger(home):
    data = json.loads(ok("cost", "--records", "11293", "--bytes", "1000", "--json").stdout)
    assert data["transactions"] == 11293 and data["payload_bytes"] == 11_293_000
    assert data["fee"] == "0" and data["unit"] == "none"
    multipart = json.loads(
        ok(
            "cost",
            "--records",
            "10",
            "--bytes",
            "2500",
            "--ledger",
            "local://?max_payload=1040",
            "--json",
        ).stdout
    )
    assert multipart["transactions_per_record"] >= 3 and multipart["payload_bytes"] > 25_000
    result = ok("cost", "--records", "2", "--bytes", "10", "--fee-rate", "0.001")
    assert "ignored" in result.stderr and "0 none in all" in result.stdout


def test_bad_ledger_url_is_one_line(home):
    message = err("info", "--ledger", "local://?wallet=w")
    assert "unknown option 'wallet'" in message and message.count("\n") <= 2
    assert "unknown ledger URL scheme" in err("info", "--ledger", "nope://x")


# -- node backends (fake) -------------------------------------------------------------------------


def test_info_on_a_node_never_shows_the_password(home, fake):
    result = ok("info", "--ledger", fake)
    assert "fake+http" in result.stdout and "41" in result.stdout
    assert SECRET not in result.output
    message = err("info", "--ledger", fake.replace("wallet=w", "wallet=down"))
    assert "cannot reach" in message and SECRET not in message and "***" in message


def test_verify_export_import_on_a_node(home, fake, tmp_path):
    result = ok("verify", "--ledger", fake)
    assert "not applicable" in result.stdout and SECRET not in result.output
    assert json.loads(ok("verify", "--ledger", fake, "--json").stdout)["applicable"] is False
    assert "embedded ledger (local://) only" in err(
        "export", "-o", str(tmp_path / "x"), "--ledger", fake
    )
    assert "embedded ledger (local://) only" in err("import", "-", "--ledger", fake, input="")


def test_cost_on_a_node_with_a_fee_rate(home, fake):
    args = ["cost", "--records", "100", "--bytes", "1500", "--fee-rate", "0.0005"]
    data = json.loads(ok(*args, "--ledger", fake, "--json").stdout)
    assert data["transactions"] == 200 and data["transactions_per_record"] == 2
    assert Decimal(data["fee"]) == Decimal("0.02")
    assert Decimal(data["fee_per_record"]) == Decimal("0.0002")
    assert "fee_rate=0.0005" in FakeNode.opened[-1] and "wallet=w" in FakeNode.opened[-1]
    assert "is not a number" in err("cost", "--records", "1", "--bytes", "1", "--fee-rate", "x")
    assert "non-negative" in err("cost", "--records", "1", "--bytes", "1", "--fee-rate", "-1")


def test_with_fee_rate_and_sample_record():
    from etdb.ledger import LedgerConfigError
    from etdb.ledger.costs import sample_record, with_fee_rate

    url = "btc+http://u:p%40ss@h:1/?fee_rate=1&wallet=w"
    assert (
        with_fee_rate(url, Decimal("0.0002")) == "btc+http://u:p%40ss@h:1/?wallet=w&fee_rate=0.0002"
    )
    assert "gas_price=3" in with_fee_rate("evm+http://h:8545", Decimal(3))
    with pytest.raises(LedgerConfigError):
        with_fee_rate("local://", Decimal(1))
    assert sample_record(3) == "jso" and len(sample_record(1000)) == 1000
    with pytest.raises(ValueError):
        sample_record(0)
