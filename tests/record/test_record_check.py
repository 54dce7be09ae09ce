"""`etdb record check TXID [--content]`: a dataset verified from the ledger and the blockstore
alone (no catalog), single-transaction and multipart, with tampering and corruption caught."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from etdb.cli import app
from etdb.content.blockstore import FSBlockstore
from etdb.content.cid import CID
from etdb.ledger import open_ledger
from etdb.publish.dataset import publish_dataset
from etdb.record import PrivateKey, encode_deactivate, sign_deactivate
from tests.publish.test_dataset import META, make_folder

runner = CliRunner()
KEY = PrivateKey(bytes([7]) * 32)


def check(*args: str, code: int = 0) -> dict:
    result = runner.invoke(app, ["record", "check", *args, "--json"])
    assert result.exit_code == code, result.output
    return json.loads(result.stdout) if result.stdout.strip() else {}


@pytest.fixture(params=["local://", "local://?max_payload=1040"], ids=["single", "multipart"])
def published(request, etdb_home, monkeypatch, tmp_path):
    monkeypatch.setenv("ETDB_LEDGER", request.param)
    folder = make_folder(tmp_path)
    with (
        open_ledger(request.param, etdb_home) as ledger,
        FSBlockstore(etdb_home / "blocks") as store,
    ):
        ledger.publish("json:not a record, just noise between the parts")
        done = publish_dataset(folder, META, key=KEY, ledger=ledger, blockstore=store,
                               profile="kubo-v1", timestamp=1_600_000_000)  # fmt: skip
    return done


def test_a_published_record_checks_out_with_every_byte(published):
    out = check(published.txids[0], "--content")
    assert out["valid"] and out["address"] == KEY.address
    assert out["txids"] == list(published.txids) and out["location"] == str(published.cid)
    assert out["content"]["valid"] and out["content"]["blocks"] > 1
    assert out["content"]["bytes"] >= sum(f.fsize for f in published.artifact.files)


def test_a_corrupt_block_fails_the_content_check(published, etdb_home):
    root = CID.decode(str(published.cid))
    with FSBlockstore(etdb_home / "blocks") as store:
        path = store.path_of(root)
    path.chmod(0o644)
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    out = check(published.txids[0], "--content", code=1)
    assert out["valid"] and not out["content"]["valid"]
    assert out["content"]["problems"]
    assert check(published.txids[0])["valid"]  # the signature alone still verifies


def test_not_a_record_unknown_and_later_parts_are_refused(published, etdb_home, monkeypatch):
    unknown = runner.invoke(app, ["record", "check", "ab" * 32])
    assert unknown.exit_code == 1 and "no transaction" in unknown.stderr
    if len(published.txids) > 1:
        later = runner.invoke(app, ["record", "check", published.txids[1]])
        assert later.exit_code == 1 and "not its first" in later.stderr
    cfg_ledger = runner.invoke(app, ["record", "check", published.txids[0]])
    assert cfg_ledger.exit_code == 0 and "valid" in cfg_ledger.stdout
    with open_ledger("local://", etdb_home) as ledger:
        off = ledger.publish(encode_deactivate(sign_deactivate(published.txids[0], KEY)))
    result = runner.invoke(app, ["record", "check", off.txid])
    assert result.exit_code == 1 and "not a published record" in result.stderr


def test_help_names_the_command():
    assert "ledger alone" in runner.invoke(app, ["record", "check", "--help"]).stdout
