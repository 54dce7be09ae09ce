"""`etdb key ...` end to end through the CLI (default scrypt cost: ~0.1 s per key operation)."""

from __future__ import annotations

import json
import stat

import pytest
from typer.testing import CliRunner

from etdb.cli import app
from etdb.record.signing import MAINNET, TESTNET, PrivateKey, address_network

PASS = "cli test passphrase"
runner = CliRunner()


@pytest.fixture
def home(etdb_home, monkeypatch):
    monkeypatch.setenv("ETDB_KEY_PASSPHRASE", PASS)
    return etdb_home


def run(*args: str, input: str | None = None):
    return runner.invoke(app, ["key", *args], input=input)


def ok(*args: str, input: str | None = None):
    result = run(*args, input=input)
    assert result.exit_code == 0, result.output
    return result


def err(*args: str, input: str | None = None) -> str:
    result = run(*args, input=input)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "error:" in result.stderr
    return result.stderr


def test_new_show_list(home):
    created = json.loads(ok("new", "alice", "--json").stdout)
    assert set(created) == {"name", "address", "network", "created"}
    assert created["name"] == "alice" and created["network"] == "mainnet"
    assert address_network(created["address"]) is MAINNET
    assert json.loads(ok("show", "alice", "--json").stdout) == created | {"verified": True}
    assert json.loads(ok("list", "--json").stdout) == [created]
    human = ok("show", "alice").stdout
    assert created["address"] in human and "mainnet" in human
    assert created["address"] in ok("list").stdout


def test_new_testnet(home):
    created = json.loads(ok("new", "t", "--testnet", "--json").stdout)
    assert created["network"] == "testnet"
    assert address_network(created["address"]) is TESTNET


def test_files_private(home):
    ok("new", "alice")
    assert stat.S_IMODE((home / "keys").stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "keys" / "alice.key.json").stat().st_mode) == 0o600


def test_list_empty(home):
    assert json.loads(ok("list", "--json").stdout) == []
    assert "No keys" in ok("list").stdout


def test_import_from_stdin_and_file(home, tmp_path):
    key = PrivateKey.generate()
    out = ok("import", "piped", "--json", input=key.to_wif() + "\n")
    assert json.loads(out.stdout)["address"] == key.address
    assert key.to_wif() not in out.output

    tkey = PrivateKey.generate(TESTNET)
    wif_file = tmp_path / "wif.txt"
    wif_file.write_text(f"  {tkey.to_wif()}\n")
    info = json.loads(ok("import", "filed", "--wif-file", str(wif_file), "--json").stdout)
    assert (info["address"], info["network"]) == (tkey.address, "testnet")

    dash = PrivateKey.generate()
    ok("import", "dash", "--wif-file", "-", input=dash.to_wif())
    assert json.loads(ok("show", "dash", "--json").stdout)["address"] == dash.address


def test_import_never_takes_wif_as_argument(home):
    wif = PrivateKey.generate().to_wif()
    result = run("import", "x", wif)
    assert result.exit_code != 0
    assert not (home / "keys" / "x.key.json").exists()


def test_import_errors(home, tmp_path):
    key = PrivateKey.generate()
    bad = key.to_wif()[:-1] + ("1" if key.to_wif()[-1] != "1" else "2")
    message = err("import", "x", input=bad)
    assert "invalid WIF" in message and "checksum" in message
    assert bad not in message
    assert "no WIF private key on stdin" in err("import", "x", input="\n")
    assert "No such file" in err("import", "x", "--wif-file", str(tmp_path / "missing"))
    ok("import", "x", input=key.to_wif())
    assert "exists already" in err("import", "x", input=key.to_wif())


def test_export(home):
    key = PrivateKey.generate()
    ok("import", "alice", input=key.to_wif())
    assert "--yes-show-secret" in err("export", "alice")
    out = ok("export", "alice", "--yes-show-secret")
    assert out.stdout == key.to_wif() + "\n"
    data = json.loads(ok("export", "alice", "--yes-show-secret", "--json").stdout)
    assert data["wif"] == key.to_wif() and data["address"] == key.address


def test_wrong_passphrase(home, monkeypatch):
    ok("new", "alice")
    monkeypatch.setenv("ETDB_KEY_PASSPHRASE", "not it")
    message = err("export", "alice", "--yes-show-secret")
    assert "wrong passphrase for key 'alice'" in message
    assert "not it" not in message


def test_empty_env_passphrase(home, monkeypatch):
    monkeypatch.setenv("ETDB_KEY_PASSPHRASE", "")
    assert "empty" in err("new", "alice")
    assert not (home / "keys" / "alice.key.json").exists()


def test_no_passphrase_no_terminal(home, monkeypatch):
    from etdb.publish import keystore

    monkeypatch.delenv("ETDB_KEY_PASSPHRASE")
    monkeypatch.setattr(keystore, "_has_tty", lambda: False)
    assert "set ETDB_KEY_PASSPHRASE" in err("new", "alice")


def test_secrets_never_in_output_except_export(home):
    key = PrivateKey.generate()
    secret_forms = (key.to_wif(), key.secret_bytes().hex(), PASS)
    outputs = [
        run("import", "alice", input=key.to_wif()),
        run("import", "alice", "--json", input=key.to_wif()),  # fails: exists
        run("show", "alice"),
        run("show", "alice", "--json"),
        run("list"),
        run("list", "--json"),
        run("export", "alice"),  # refused without the flag
        run("new", "bob"),
        run("new", "bob", "--json"),  # fails: exists
        run("delete", "alice"),  # refused without --yes
    ]
    for result in outputs:
        for form in secret_forms:
            assert form not in result.output
            assert form not in result.stderr
    assert key.address in outputs[2].stdout


def test_swapped_address_in_file_fails(home):
    ok("new", "alice")
    path = home / "keys" / "alice.key.json"
    doc = json.loads(path.read_text())
    doc["address"] = PrivateKey.generate().address
    path.write_text(json.dumps(doc))
    assert "wrong passphrase" in err("export", "alice", "--yes-show-secret")


def test_ciphertext_does_not_contain_wif(home):
    key = PrivateKey.generate()
    ok("import", "alice", input=key.to_wif())
    text = (home / "keys" / "alice.key.json").read_text()
    assert key.to_wif() not in text and key.secret_bytes().hex() not in text


def test_delete(home):
    ok("new", "alice")
    assert "--yes" in err("delete", "alice")
    assert (home / "keys" / "alice.key.json").exists()
    out = json.loads(ok("delete", "alice", "--yes", "--json").stdout)
    assert out["deleted"] == "alice"
    assert not (home / "keys" / "alice.key.json").exists()
    assert "unknown key 'alice'" in err("show", "alice")
    assert "unknown key 'alice'" in err("delete", "alice", "--yes")


@pytest.mark.parametrize("name", ["a/b", "..", ".hidden", "x" * 65, "a b"])
def test_bad_names(home, name):
    assert "invalid key name" in err("new", name)
    assert not (home / "keys").exists() or list((home / "keys").iterdir()) == []


def test_new_refuses_existing_name(home):
    first = json.loads(ok("new", "alice", "--json").stdout)
    assert "exists already" in err("new", "alice")
    assert json.loads(ok("show", "alice", "--json").stdout) == first | {"verified": True}


def test_corrupt_file_is_a_clear_error(home):
    ok("new", "alice")
    (home / "keys" / "alice.key.json").write_text("{not json")
    assert "corrupt key file" in err("show", "alice")
    assert "corrupt key file" in ok("list").stdout  # listed as unreadable, with the reason
    ok("delete", "alice", "--yes")  # ...and can be removed


def test_new_prompts_twice_without_env(home, monkeypatch):
    from etdb.publish import keystore

    answers = ["typed secret", "typed secret"]
    monkeypatch.delenv("ETDB_KEY_PASSPHRASE")
    monkeypatch.setattr(keystore, "_has_tty", lambda: True)
    monkeypatch.setattr(keystore.getpass, "getpass", lambda prompt="": answers.pop(0))
    result = ok("new", "alice")
    assert answers == [] and "typed secret" not in result.output
    monkeypatch.setenv("ETDB_KEY_PASSPHRASE", "typed secret")
    assert ok("export", "alice", "--yes-show-secret").stdout.strip()


def test_wif_prompt_when_stdin_is_a_terminal(monkeypatch):
    from etdb.commands import key as key_cmd

    class Tty:
        def isatty(self) -> bool:
            return True

    prompts: list[str] = []
    monkeypatch.setattr(key_cmd.sys, "stdin", Tty())
    monkeypatch.setattr(
        key_cmd.getpass, "getpass", lambda prompt="": prompts.append(prompt) or " W \n"
    )
    assert key_cmd._read_wif(None) == "W"
    assert prompts == ["WIF private key (hidden): "]


def test_import_binary_file(home, tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\xff\xfe\x00garbage")
    assert "not text" in err("import", "x", "--wif-file", str(junk))
