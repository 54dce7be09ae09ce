"""`etdb record verify|sign|encode` through Typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from etdb.commands.record import app
from etdb.config import load_settings
from etdb.publish.keystore import Keystore
from etdb.record import PrivateKey, decode, encode_edit, sign_edit, verify_publish

runner = CliRunner()
JENSEN = "FTSTq8xx8yWUKJA5E3bgXLzZqqG9V6dvnr"
TXID = "8a07e957cce6473887e8f9d042b0a3b95fc7dd2b9110b4a37890887de6528f10"
KEY = PrivateKey(bytes.fromhex("11" * 32))
PASSPHRASE = "correct horse battery staple"

DRAFT = {
    "type": "research",
    "subtype": "tomogram",
    "info": {"title": "Test tomogram", "description": "made by a test"},
    "details": {"date": 1389657600, "speciesName": "Escherichia coli", "defocus": -8},
    "storage": {"network": "ipfs", "location": "QmTest", "files": [{"fname": "a.mrc"}]},
}


@pytest.fixture
def record_file(conformance_dir) -> Path:
    return conformance_dir / "oip042" / "etdb_tomogram_rr2014-01-14-5_oipd_record.json"


@pytest.fixture
def keyed_home(etdb_home, monkeypatch) -> Path:
    monkeypatch.setenv("ETDB_KEY_PASSPHRASE", PASSPHRASE)
    Keystore(load_settings().keys_path, scrypt_n=2**10).import_wif("pub", KEY.to_wif(), PASSPHRASE)
    return etdb_home


def test_verify_real_record(record_file):
    result = runner.invoke(app, ["verify", str(record_file)])
    assert result.exit_code == 0, result.output
    assert f"valid publish signed by {JENSEN}" in result.output


def test_verify_json(record_file):
    result = runner.invoke(app, ["verify", "--json", str(record_file)])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["valid"] is True and data["address"] == JENSEN and data["kind"] == "publish"
    assert data["txid"] == TXID and data["reason"]


def test_verify_multipart_fixture(conformance_dir):
    path = conformance_dir / "oip042" / "etdb_multipart_part0_666a12f0.json"
    result = runner.invoke(app, ["verify", "--json", str(path)])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["kind"] == "multipart" and data["part"] == 0 and data["max"] == 1
    raw = json.loads(path.read_text())["floData"]
    result = runner.invoke(app, ["verify", "-"], input=raw + "\n")
    assert result.exit_code == 0 and "part 0/1" in result.output


def test_verify_tampered_record_exits_1_with_reason(record_file, tmp_path):
    doc = json.loads(record_file.read_text())
    doc["artifact"]["timestamp"] += 1
    path = tmp_path / "tampered.json"
    path.write_text(json.dumps(doc))
    result = runner.invoke(app, ["verify", str(path)])
    assert result.exit_code == 1
    assert "bad signature" in result.output and JENSEN in result.output
    result = runner.invoke(app, ["verify", "--json", str(path)])
    assert result.exit_code == 1 and json.loads(result.stdout)["valid"] is False


def test_verify_missing_mandatory_field(record_file, tmp_path):
    doc = json.loads(record_file.read_text())
    del doc["artifact"]["details"]["speciesName"]
    path = tmp_path / "incomplete.json"
    path.write_text(json.dumps(doc))
    result = runner.invoke(app, ["verify", "--json", str(path)])
    assert result.exit_code == 1
    assert "details.speciesName" in json.loads(result.stdout)["reason"]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("hello", "not an OIP 0.4.2 message"),
        ("json:{", "not valid JSON"),
        ("oip-mp(0,1,x):y", "fields"),
    ],
)
def test_verify_garbage(text, words):
    result = runner.invoke(app, ["verify", "-"], input=text)
    assert result.exit_code == 1 and words in result.output


def test_verify_unreadable_file(tmp_path):
    result = runner.invoke(app, ["verify", str(tmp_path / "nope.json")])
    assert result.exit_code == 1 and "cannot read" in result.output


def test_verify_edit_needs_the_publisher():
    text = encode_edit(
        sign_edit(TXID, [{"op": "remove", "path": "/details/strain"}], KEY, timestamp=1600000000)
    )
    result = runner.invoke(app, ["verify", "-"], input=text)
    assert result.exit_code == 1 and "--publisher" in result.output
    result = runner.invoke(app, ["verify", "--json", "--publisher", KEY.address, "-"], input=text)
    assert result.exit_code == 0
    assert json.loads(result.stdout) | {"reason": ""} == {
        "valid": True,
        "address": KEY.address,
        "reason": "",
        "kind": "edit",
        "txid": TXID,
    }


def test_sign_a_bare_draft(keyed_home, tmp_path):
    path = tmp_path / "draft.json"
    path.write_text(json.dumps(DRAFT))
    result = runner.invoke(app, ["sign", str(path), "--key", "pub", "--timestamp", "1700000000"])
    assert result.exit_code == 0, result.output
    flo_data = result.stdout.strip()
    assert flo_data.startswith('json:{"oip042":{"publish":{"artifact":{"floAddress":"')
    art = decode(flo_data).artifact
    assert art.floAddress == KEY.address and art.timestamp == 1700000000
    assert verify_publish(art).valid
    assert '"defocus":-8' in flo_data


def test_sign_an_envelope_to_a_file_and_as_json(keyed_home, tmp_path):
    src = tmp_path / "draft.json"
    src.write_text(json.dumps({"oip042": {"publish": {"artifact": DRAFT}}}))
    out = tmp_path / "signed.json"
    result = runner.invoke(app, ["sign", str(src), "-k", "pub", "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    envelope = json.loads(result.stdout)
    assert json.loads(out.read_text()) == envelope
    assert verify_publish(decode(envelope).artifact).valid
    verified = runner.invoke(app, ["verify", str(out)])
    assert verified.exit_code == 0 and KEY.address in verified.output


def test_sign_refuses_a_different_publisher(keyed_home, tmp_path):
    path = tmp_path / "draft.json"
    path.write_text(json.dumps({**DRAFT, "floAddress": JENSEN}))
    result = runner.invoke(app, ["sign", str(path), "--key", "pub"])
    assert result.exit_code == 1 and "refusing" in result.output


def test_sign_refuses_an_incomplete_draft(keyed_home, tmp_path):
    path = tmp_path / "draft.json"
    path.write_text(json.dumps({**DRAFT, "info": {}}))
    result = runner.invoke(app, ["sign", str(path), "--key", "pub"])
    assert result.exit_code == 1 and "info.title" in result.output


def test_sign_unknown_key_or_wrong_passphrase(keyed_home, tmp_path, monkeypatch):
    path = tmp_path / "draft.json"
    path.write_text(json.dumps(DRAFT))
    result = runner.invoke(app, ["sign", str(path), "--key", "nobody"])
    assert result.exit_code == 1 and "nobody" in result.output
    monkeypatch.setenv("ETDB_KEY_PASSPHRASE", "wrong")
    result = runner.invoke(app, ["sign", str(path), "--key", "pub"])
    assert result.exit_code == 1


def test_sign_refuses_an_edit(keyed_home):
    text = encode_edit(sign_edit(TXID, [], KEY, timestamp=1))
    result = runner.invoke(app, ["sign", "-", "--key", "pub"], input=text)
    assert result.exit_code == 1 and "only a publish" in result.output


def test_encode_reproduces_go_floData(record_file):
    result = runner.invoke(app, ["encode", str(record_file)])
    assert result.exit_code == 0
    text = result.stdout.strip()
    assert text.startswith('json:{"oip042":{"publish":{"artifact":{"floAddress":"' + JENSEN)
    assert verify_publish(decode(text).artifact).valid
