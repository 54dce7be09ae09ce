"""Encrypted key storage: format, permissions, tamper resistance, atomic writes, passphrases."""

from __future__ import annotations

import base64
import json
import os
import stat
import unicodedata
from pathlib import Path

import pytest

from etdb.publish import keystore as ks_module
from etdb.publish.keystore import (
    DEFAULT_SCRYPT_N,
    KeyInfo,
    Keystore,
    KeystoreError,
    resolve_passphrase,
)
from etdb.record.signing import (
    MAINNET,
    TESTNET,
    PrivateKey,
    sign_message,
    verify_message,
)

PASS = "correct horse battery staple"
posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")


@pytest.fixture
def store(tmp_path) -> Keystore:
    return Keystore(tmp_path / "keys", scrypt_n=2**4)  # cheap KDF: these tests are not about cost


def _doc(store: Keystore, name: str) -> dict:
    return json.loads((store.path / f"{name}.key.json").read_text())


def _write_doc(store: Keystore, name: str, doc: dict) -> None:
    (store.path / f"{name}.key.json").write_text(json.dumps(doc))


def test_create_load_sign(store):
    info = store.create("alice", PASS)
    assert isinstance(info, KeyInfo)
    assert (info.name, info.network) == ("alice", MAINNET)
    assert info.address.startswith("F")
    assert info.created.endswith("Z")
    key = store.load("alice", PASS)
    assert key.address == info.address
    assert verify_message(info.address, "hello", sign_message(key, "hello"))
    assert store.info("alice") == info
    assert store.list() == [info]
    assert info.to_dict() == {
        "name": "alice",
        "address": info.address,
        "network": "mainnet",
        "created": info.created,
    }


def test_file_format(store):
    info = store.create("alice", PASS, network=TESTNET)
    doc = _doc(store, "alice")
    assert set(doc) == {
        "version",
        "name",
        "address",
        "network",
        "created",
        "kdf",
        "cipher",
        "ciphertext",
    }
    assert (doc["version"], doc["name"], doc["address"], doc["network"]) == (
        1,
        "alice",
        info.address,
        "testnet",
    )
    assert doc["kdf"]["name"] == "scrypt"
    assert (doc["kdf"]["n"], doc["kdf"]["r"], doc["kdf"]["p"]) == (2**4, 8, 1)
    assert len(base64.b64decode(doc["kdf"]["salt"])) == 16
    assert doc["cipher"]["name"] == "aes-256-gcm"
    assert len(base64.b64decode(doc["cipher"]["nonce"])) == 12
    assert len(base64.b64decode(doc["ciphertext"])) == 32 + 16  # secret + GCM tag


def test_default_cost(tmp_path):
    store = Keystore(tmp_path / "keys")
    assert store.scrypt_n == DEFAULT_SCRYPT_N == 2**15
    store.create("k", PASS)
    assert _doc(store, "k")["kdf"]["n"] == 2**15
    assert store.load("k", PASS).address == store.info("k").address


@posix_only
def test_permissions(store):
    store.create("alice", PASS)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o700
    assert stat.S_IMODE((store.path / "alice.key.json").stat().st_mode) == 0o600


@posix_only
def test_existing_loose_folder_is_tightened(tmp_path):
    folder = tmp_path / "keys"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    Keystore(folder, scrypt_n=2**4).create("a", PASS)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_secret_not_in_file(store):
    key = PrivateKey.generate()
    store.add("alice", key, PASS)
    text = (store.path / "alice.key.json").read_text()
    secret = key.secret_bytes()
    for form in (
        key.to_wif(),
        secret.hex(),
        secret.hex().upper(),
        base64.b64encode(secret).decode(),
        PASS,
    ):
        assert form not in text


def test_wrong_passphrase(store):
    store.create("alice", PASS)
    with pytest.raises(KeystoreError, match="wrong passphrase for key 'alice'") as info:
        store.load("alice", PASS + "!")
    assert PASS not in str(info.value)
    with pytest.raises(KeystoreError, match="wrong passphrase"):
        store.export_wif("alice", "nope")


def test_empty_passphrase_refused(store):
    with pytest.raises(KeystoreError, match="empty passphrase"):
        store.create("alice", "")
    assert not store.exists("alice")


def test_passphrase_unicode_normalization(store):
    composed = "caf\u00e9 passphrase"
    store.create("a", composed)
    assert (
        store.load("a", unicodedata.normalize("NFD", composed)).address == store.info("a").address
    )


def test_exists_already(store):
    store.create("alice", PASS)
    before = (store.path / "alice.key.json").read_bytes()
    with pytest.raises(KeystoreError, match="exists already"):
        store.create("alice", PASS)
    with pytest.raises(KeystoreError, match="exists already"):
        store.import_wif("alice", PrivateKey.generate().to_wif(), PASS)
    assert (store.path / "alice.key.json").read_bytes() == before


def test_no_clobber_even_when_racing(store, monkeypatch):
    # Another process creates the same name between our exists() check and the write.
    store.create("alice", PASS)
    before = (store.path / "alice.key.json").read_bytes()
    monkeypatch.setattr(Keystore, "exists", lambda self, name: False)
    with pytest.raises(KeystoreError, match="exists already"):
        store.create("alice", PASS)
    assert (store.path / "alice.key.json").read_bytes() == before
    assert sorted(p.name for p in store.path.iterdir()) == ["alice.key.json"]


def test_failed_write_leaves_nothing(store, monkeypatch):
    store.path.mkdir(mode=0o700)

    def broken_fsync(fd):
        raise OSError("disk on fire")

    monkeypatch.setattr(ks_module.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk on fire"):
        store.create("alice", PASS)
    assert list(store.path.iterdir()) == []


@pytest.mark.parametrize(
    "name", ["", "a/b", "../x", ".", "..", ".hidden", "a" * 65, "é", "a b", "x\n", None]
)
def test_invalid_names(store, name):
    with pytest.raises(KeystoreError, match="invalid key name"):
        store.create(name, PASS)
    with pytest.raises(KeystoreError, match="invalid key name"):
        store.info(name)
    assert not store.path.exists() or list(store.path.iterdir()) == []


@pytest.mark.parametrize("name", ["a", "A.b_c-1", "a" * 64, "2024-key", "_x", "-x", "x.."])
def test_valid_names(store, name):
    assert store.create(name, PASS).name == name
    assert store.info(name).name == name


def test_unknown_key(store):
    for call in (
        lambda: store.info("ghost"),
        lambda: store.load("ghost", PASS),
        lambda: store.export_wif("ghost", PASS),
        lambda: store.delete("ghost"),
    ):
        with pytest.raises(KeystoreError, match="unknown key 'ghost'"):
            call()
    assert store.list() == []  # the folder doesn't even exist
    assert not store.exists("ghost")


@pytest.mark.parametrize("network", [MAINNET, TESTNET])
def test_import_export_wif(store, network):
    key = PrivateKey.generate(network)
    info = store.import_wif("imported", key.to_wif(), PASS)
    assert (info.address, info.network) == (key.address, network)
    assert store.export_wif("imported", PASS) == key.to_wif()
    assert store.load("imported", PASS) == key


def test_import_bad_wif_never_echoes_it(store):
    key = PrivateKey.generate()
    wif = key.to_wif()
    bad = wif[:-1] + ("1" if wif[-1] != "1" else "2")
    with pytest.raises(KeystoreError, match="invalid WIF") as info:
        store.import_wif("x", bad, PASS)
    assert bad not in str(info.value) and wif not in str(info.value)
    assert not store.exists("x")


def test_list_and_delete(store):
    store.create("b", PASS)
    store.create("a", PASS, network=TESTNET)
    (store.path / "notes.txt").write_text("not a key")
    (store.path / ".a.key.json.123.tmp").write_text("leftover temp file")
    assert [i.name for i in store.list()] == ["a", "b"]
    assert store.list()[0].network is TESTNET
    store.delete("a")
    assert [i.name for i in store.list()] == ["b"]
    assert not store.exists("a")


def _other_address() -> str:
    return PrivateKey.generate().address


def test_swapped_address_fails(store):
    store.create("alice", PASS)
    doc = _doc(store, "alice")
    doc["address"] = _other_address()
    _write_doc(store, "alice", doc)
    assert store.info("alice").address == doc["address"]  # readable, but...
    with pytest.raises(KeystoreError, match=r"wrong passphrase .*modified"):
        store.load("alice", PASS)  # ...it can't be used


def test_swapped_network_fails(store):
    info = store.create("alice", PASS)
    doc = _doc(store, "alice")
    doc["network"] = "testnet"
    doc["address"] = PrivateKey.generate(TESTNET).address
    _write_doc(store, "alice", doc)
    with pytest.raises(KeystoreError, match="wrong passphrase"):
        store.load("alice", PASS)
    doc["address"] = info.address  # mainnet address, testnet label: no testnet address
    _write_doc(store, "alice", doc)
    with pytest.raises(KeystoreError, match="is not a testnet address"):
        store.load("alice", PASS)


def test_swapped_ciphertext_fails(store):
    store.create("alice", PASS)
    store.create("bob", PASS)
    alice, bob = _doc(store, "alice"), _doc(store, "bob")
    for field in ("kdf", "cipher", "ciphertext"):
        alice[field] = bob[field]
    _write_doc(store, "alice", alice)  # bob's secret, alice's address
    with pytest.raises(KeystoreError, match="wrong passphrase"):
        store.load("alice", PASS)


def _corrupt(doc: dict, path: str, value) -> dict:
    *parents, last = path.split(".")
    target = doc
    for p in parents:
        target = target[p]
    if value is KeyError:
        del target[last]
    else:
        target[last] = value
    return doc


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        ("version", 2, "unsupported version"),
        ("name", "mallory", "does not match the file name"),
        ("address", KeyError, "'address' missing"),
        ("network", "dogecoin", "unknown network"),
        ("kdf.name", "pbkdf2", "unsupported kdf"),
        ("cipher.name", "aes-128-cbc", "unsupported kdf or cipher"),
        ("kdf.n", 3, "power of two"),
        ("kdf.n", 2**30, "power of two"),
        ("kdf.n", "16", "'n' missing or not a int"),
        ("kdf.r", 1000, "out of range"),
        ("kdf.salt", "***", "not valid base64"),
        ("cipher.nonce", base64.b64encode(b"short").decode(), "12 bytes"),
        ("ciphertext", KeyError, "'ciphertext' missing"),
    ],
)
def test_corrupt_fields(store, path, value, reason):
    store.create("alice", PASS)
    _write_doc(store, "alice", _corrupt(_doc(store, "alice"), path, value))
    with pytest.raises(KeystoreError, match=f"corrupt key file .*alice.key.json: .*{reason}"):
        store.load("alice", PASS)


@pytest.mark.parametrize("content", ["", "{", "[]", "null", '"x"'])
def test_corrupt_json(store, content):
    store.create("alice", PASS)
    (store.path / "alice.key.json").write_text(content)
    with pytest.raises(KeystoreError, match="corrupt key file"):
        store.info("alice")
    store.delete("alice")  # a corrupt key can still be removed


def test_invalid_cost_parameter(tmp_path):
    for n in (0, 1, 3, 2**21, True):
        with pytest.raises(KeystoreError, match="power of two"):
            Keystore(tmp_path, scrypt_n=n)


def test_reprs_hold_no_secrets(store):
    key = PrivateKey.generate()
    info = store.add("alice", key, PASS)
    for text in (repr(store), repr(info), repr(store.load("alice", PASS))):
        assert key.to_wif() not in text
        assert key.secret_bytes().hex() not in text
        assert PASS not in text


def test_store_accepts_non_flo_networks(store):
    from etdb.record.signing import LITECOIN_REGTEST

    key = PrivateKey.generate(LITECOIN_REGTEST)
    store.add("ltc", key, PASS)
    assert store.info("ltc").network is LITECOIN_REGTEST
    assert store.load("ltc", PASS) == key


# --------------------------------------------------------------------------------------------
# resolve_passphrase


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv("ETDB_KEY_PASSPHRASE", raising=False)


def test_passphrase_from_env(monkeypatch):
    monkeypatch.setenv("ETDB_KEY_PASSPHRASE", "from env")
    assert resolve_passphrase() == "from env"
    assert resolve_passphrase(confirm=True) == "from env"


def test_empty_env_passphrase_refused(monkeypatch):
    monkeypatch.setenv("ETDB_KEY_PASSPHRASE", "")
    with pytest.raises(KeystoreError, match="empty"):
        resolve_passphrase()


def test_no_tty_no_env(no_env, monkeypatch):
    monkeypatch.setattr(ks_module, "_has_tty", lambda: False)
    with pytest.raises(KeystoreError, match="set ETDB_KEY_PASSPHRASE"):
        resolve_passphrase()


def _fake_prompts(monkeypatch, answers: list[str]) -> list[str]:
    prompts: list[str] = []

    def fake_getpass(prompt: str = "") -> str:
        prompts.append(prompt)
        return answers.pop(0)

    monkeypatch.setattr(ks_module, "_has_tty", lambda: True)
    monkeypatch.setattr(ks_module.getpass, "getpass", fake_getpass)
    return prompts


def test_prompt(no_env, monkeypatch):
    prompts = _fake_prompts(monkeypatch, ["typed"])
    assert resolve_passphrase(prompt="Passphrase for alice: ") == "typed"
    assert prompts == ["Passphrase for alice: "]


def test_prompt_with_confirmation(no_env, monkeypatch):
    prompts = _fake_prompts(monkeypatch, ["typed", "typed"])
    assert resolve_passphrase(confirm=True) == "typed"
    assert len(prompts) == 2
    _fake_prompts(monkeypatch, ["typed", "typo"])
    with pytest.raises(KeystoreError, match="differ"):
        resolve_passphrase(confirm=True)


def test_prompt_empty_refused(no_env, monkeypatch):
    _fake_prompts(monkeypatch, [""])
    with pytest.raises(KeystoreError, match="empty"):
        resolve_passphrase()


def test_keystore_path_is_a_path(tmp_path):
    assert Keystore(str(tmp_path)).path == Path(tmp_path)
