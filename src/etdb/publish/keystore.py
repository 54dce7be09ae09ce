"""Publisher keys at rest: one passphrase-encrypted JSON file per key.

go-etdb left keys inside the flod wallet; etdb signs locally, so keys need safe storage:

* ``<folder>/<name>.key.json``, mode 0600, in a 0700 folder; written atomically (temp file,
  fsync, then a no-clobber hard link or ``os.replace``) so a crash never leaves half a key.
* The 32-byte secret is sealed with AES-256-GCM under a scrypt-derived key. The address and
  network are stored in clear, so ``key list`` needs no passphrase, and are bound to the
  ciphertext as associated data: editing them makes decryption fail instead of silently
  signing for another address or chain (``key show`` decrypts to check exactly that).

Secrets (WIF, raw key, passphrase) never appear in exceptions, reprs or logs.
"""

from __future__ import annotations

import base64
import binascii
import getpass
import json
import os
import re
import secrets
import sys
import tempfile
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from etdb.content.fsutil import fsync_dir
from etdb.record.signing import (
    MAINNET,
    Network,
    PrivateKey,
    SigningError,
    is_valid_address,
    network_by_name,
)

__all__ = [
    "DEFAULT_SCRYPT_N",
    "PASSPHRASE_ENV",
    "KeyInfo",
    "Keystore",
    "KeystoreError",
    "UnreadableKey",
    "resolve_passphrase",
]

PASSPHRASE_ENV = "ETDB_KEY_PASSPHRASE"
FORMAT_VERSION = 1
DEFAULT_SCRYPT_N = 2**15  # ~0.1 s and 32 MiB per unlock with r=8
SCRYPT_R = 8
SCRYPT_P = 1
# Upper bounds when *reading*: a hostile or corrupt file must not make us allocate gigabytes
# or spin for minutes. scrypt needs 128 * n * r bytes.
_MAX_SCRYPT_N = 2**20
_MAX_SCRYPT_R = 32
_MAX_SCRYPT_P = 16
_MAX_SCRYPT_MEMORY = 2**30
_SALT_BYTES = 16
_NONCE_BYTES = 12  # the GCM standard nonce size
_SUFFIX = ".key.json"
# No leading dot: ".", ".." and hidden files are confusing names for a key.
_NAME_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}")


class KeystoreError(Exception):
    """A keystore operation failed; the message is meant for the user and holds no secret."""


@dataclass(frozen=True)
class KeyInfo:
    """What can be known about a stored key without its passphrase."""

    name: str
    address: str
    network: Network
    created: str  # ISO 8601 UTC, e.g. "2026-01-31T12:00:00Z"

    def to_dict(self) -> dict[str, str]:
        return {
            "name": self.name,
            "address": self.address,
            "network": self.network.name,
            "created": self.created,
        }


@dataclass(frozen=True)
class UnreadableKey:
    """A key file in the folder that cannot be read; ``reason`` says why (no secret in it)."""

    name: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "error": self.reason}


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise KeystoreError(
            f"invalid key name {name!r}: use 1-64 characters from A-Z a-z 0-9 . _ - "
            "(not starting with a dot)"
        )
    return name


class Keystore:
    """A folder of encrypted keys. ``scrypt_n`` is the cost for keys created from now on."""

    def __init__(self, path: Path | str, *, scrypt_n: int = DEFAULT_SCRYPT_N) -> None:
        self.path = Path(path)
        _check_scrypt_n(scrypt_n, upper=_MAX_SCRYPT_N)
        self.scrypt_n = scrypt_n

    def __repr__(self) -> str:
        return f"Keystore({str(self.path)!r})"

    # -- reading (no passphrase) ------------------------------------------------------------

    def exists(self, name: str) -> bool:
        return self._file(name).is_file()

    def info(self, name: str) -> KeyInfo:
        return self._read(name)[0]

    def list(self) -> list[KeyInfo | UnreadableKey]:
        """Every key file, by name; one that cannot be read is listed with the reason (one
        corrupt file must not hide the others)."""
        if not self.path.is_dir():
            return []
        names = sorted(p.name[: -len(_SUFFIX)] for p in self.path.glob(f"*{_SUFFIX}"))
        return [self._entry(n) for n in names if _NAME_RE.fullmatch(n)]

    def _entry(self, name: str) -> KeyInfo | UnreadableKey:
        try:
            return self.info(name)
        except KeystoreError as exc:
            return UnreadableKey(name, str(exc))

    def verified_info(self, name: str, passphrase: str) -> KeyInfo:
        """``info``, after decrypting the secret and checking that it is the key of the stored
        address and network (an edited address fails here, not silently later)."""
        self.load(name, passphrase)
        return self.info(name)

    # -- secrets ----------------------------------------------------------------------------

    def create(self, name: str, passphrase: str, network: Network = MAINNET) -> KeyInfo:
        return self.add(name, PrivateKey.generate(network), passphrase)

    def import_wif(self, name: str, wif: str, passphrase: str) -> KeyInfo:
        try:
            key = PrivateKey.from_wif(wif)
        except SigningError as exc:  # its messages never quote the WIF
            raise KeystoreError(str(exc)) from None
        return self.add(name, key, passphrase)

    def add(self, name: str, key: PrivateKey, passphrase: str) -> KeyInfo:
        """Store ``key`` under a new ``name``; never overwrites an existing key."""
        validate_name(name)
        if self.exists(name):
            raise KeystoreError(f"a key named {name!r} exists already in {self.path}")
        info = KeyInfo(name, key.address, key.network, _now())
        salt = secrets.token_bytes(_SALT_BYTES)
        nonce = secrets.token_bytes(_NONCE_BYTES)
        kdf = {"name": "scrypt", "n": self.scrypt_n, "r": SCRYPT_R, "p": SCRYPT_P}
        sealing_key = _derive(passphrase, salt, self.scrypt_n, SCRYPT_R, SCRYPT_P)
        ciphertext = AESGCM(sealing_key).encrypt(nonce, key.secret_bytes(), _aad(info))
        doc = {
            "version": FORMAT_VERSION,
            "name": name,
            "address": info.address,
            "network": info.network.name,
            "created": info.created,
            "kdf": {**kdf, "salt": _b64(salt)},
            "cipher": {"name": "aes-256-gcm", "nonce": _b64(nonce)},
            "ciphertext": _b64(ciphertext),
        }
        self._ensure_folder()
        _write_new_file(self._file(name), (json.dumps(doc, indent=2) + "\n").encode())
        return info

    def load(self, name: str, passphrase: str) -> PrivateKey:
        info, doc = self._read(name)
        kdf, cipher = doc["kdf"], doc["cipher"]
        sealing_key = _derive(passphrase, kdf["salt"], kdf["n"], kdf["r"], kdf["p"])
        try:
            secret = AESGCM(sealing_key).decrypt(cipher["nonce"], doc["ciphertext"], _aad(info))
        except InvalidTag:
            raise KeystoreError(
                f"wrong passphrase for key {name!r}, or its file was modified (the stored "
                "address and network are sealed with the secret)"
            ) from None
        try:
            key = PrivateKey(secret, info.network)
        except SigningError:
            raise KeystoreError(
                self._corrupt(name, "decrypted secret is not a valid key")
            ) from None
        if key.address != info.address:  # belt and braces: AAD already binds the address
            raise KeystoreError(self._corrupt(name, "secret does not match the stored address"))
        return key

    def export_wif(self, name: str, passphrase: str) -> str:
        return self.load(name, passphrase).to_wif()

    def delete(self, name: str) -> None:
        try:
            self._file(name).unlink()
        except FileNotFoundError:
            raise self._unknown(name) from None
        fsync_dir(self.path)

    # -- internals --------------------------------------------------------------------------

    def _file(self, name: str) -> Path:
        return self.path / f"{validate_name(name)}{_SUFFIX}"

    def _unknown(self, name: str) -> KeystoreError:
        return KeystoreError(f"unknown key {name!r} (no {name}{_SUFFIX} in {self.path})")

    def _corrupt(self, name: str, reason: str) -> str:
        return f"corrupt key file {self._file(name)}: {reason}"

    def _read(self, name: str) -> tuple[KeyInfo, dict[str, Any]]:
        """Parse and validate a key file; binary fields come back decoded."""
        path = self._file(name)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise self._unknown(name) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise KeystoreError(self._corrupt(name, f"cannot read it ({exc})")) from None
        try:
            doc = _parse(text, name)
        except _FormatError as exc:
            raise KeystoreError(self._corrupt(name, str(exc))) from None
        info = KeyInfo(name, doc["address"], doc["network"], doc["created"])
        return info, doc

    def _ensure_folder(self) -> None:
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        # mkdir's mode is filtered by the umask and ignored for an existing folder.
        if os.name == "posix" and (self.path.stat().st_mode & 0o777) != 0o700:
            os.chmod(self.path, 0o700)


# ------------------------------------------------------------------------------------------
# File format


class _FormatError(ValueError):
    pass


def _parse(text: str, name: str) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _FormatError(f"not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(doc, dict):
        raise _FormatError("not a JSON object")
    if doc.get("version") != FORMAT_VERSION:
        raise _FormatError(f"unsupported version {doc.get('version')!r} (expected 1)")
    if doc.get("name") != name:
        raise _FormatError(f"its name field {doc.get('name')!r} does not match the file name")
    kdf, cipher = _field(doc, "kdf", dict), _field(doc, "cipher", dict)
    if kdf.get("name") != "scrypt" or cipher.get("name") != "aes-256-gcm":
        raise _FormatError("unsupported kdf or cipher (expected scrypt, aes-256-gcm)")
    n, r, p = _field(kdf, "n", int), _field(kdf, "r", int), _field(kdf, "p", int)
    try:
        _check_scrypt_n(n, upper=_MAX_SCRYPT_N)
    except KeystoreError as exc:
        raise _FormatError(str(exc)) from None
    if (
        not (1 <= r <= _MAX_SCRYPT_R and 1 <= p <= _MAX_SCRYPT_P)
        or 128 * n * r > _MAX_SCRYPT_MEMORY
    ):
        raise _FormatError(f"scrypt parameters n={n}, r={r}, p={p} out of range")
    try:
        network = network_by_name(_field(doc, "network", str))
    except SigningError as exc:
        raise _FormatError(str(exc)) from None
    nonce = _unb64(cipher, "nonce")
    if len(nonce) != _NONCE_BYTES:
        raise _FormatError("nonce must be 12 bytes")
    address = _field(doc, "address", str)
    if not is_valid_address(address, (network,)):
        raise _FormatError(f"address {address[:64]!r} is not a {network.name} address")
    return {
        "address": address,
        "network": network,
        "created": _field(doc, "created", str),
        "kdf": {"n": n, "r": r, "p": p, "salt": _unb64(kdf, "salt")},
        "cipher": {"nonce": nonce},
        "ciphertext": _unb64(doc, "ciphertext"),
    }


def _field(doc: Mapping[str, Any], key: str, kind: type) -> Any:
    value = doc.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise _FormatError(f"field {key!r} missing or not a {kind.__name__}")
    return value


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(doc: Mapping[str, Any], key: str) -> bytes:
    text = _field(doc, key, str)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _FormatError(f"field {key!r} is not valid base64") from None


def _aad(info: KeyInfo) -> bytes:
    # Canonical bytes of the clear-text fields the ciphertext is bound to.
    bound = {"version": FORMAT_VERSION, "address": info.address, "network": info.network.name}
    return json.dumps(bound, sort_keys=True, separators=(",", ":")).encode()


def _check_scrypt_n(n: int, *, upper: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 2 or n > upper or n & (n - 1):
        raise KeystoreError(f"scrypt n must be a power of two between 2 and {upper}, got {n!r}")


def _derive(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    if not isinstance(passphrase, str) or not passphrase:
        raise KeystoreError("an empty passphrase is not allowed")
    # NFC so the same passphrase typed on different systems (composed vs decomposed accents)
    # unlocks the same key.
    secret = unicodedata.normalize("NFC", passphrase).encode("utf-8")
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(secret)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------------------------------
# Atomic, private files


def _write_new_file(path: Path, data: bytes) -> None:
    """Write ``path`` (mode 0600) atomically; fail if it exists, even when racing another writer."""
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o600)  # mkstemp already uses 0600; be explicit
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # atomic and never clobbers
        except FileExistsError:
            raise KeystoreError(f"a key file {path} exists already") from None
        except OSError:  # no hard links on this filesystem: best effort
            if path.exists():
                raise KeystoreError(f"a key file {path} exists already") from None
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


# ------------------------------------------------------------------------------------------
# Passphrases


def _has_tty() -> bool:
    """Whether getpass can prompt on a terminal (it uses /dev/tty, not stdin, on POSIX)."""
    if os.name != "posix":
        return sys.stdin is not None and sys.stdin.isatty()
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return False
    os.close(fd)
    return True


def resolve_passphrase(*, confirm: bool = False, prompt: str = "Key passphrase: ") -> str:
    """``$ETDB_KEY_PASSPHRASE`` if set, else ask on the terminal (twice when ``confirm``)."""
    env = os.environ.get(PASSPHRASE_ENV)
    if env is not None:
        if not env:
            raise KeystoreError(f"{PASSPHRASE_ENV} is set but empty; empty passphrases are refused")
        return env
    if not _has_tty():
        raise KeystoreError(f"no passphrase: there is no terminal to ask on; set {PASSPHRASE_ENV}")
    passphrase = getpass.getpass(prompt)
    if not passphrase:
        raise KeystoreError("empty passphrases are refused")
    if confirm and getpass.getpass("Repeat passphrase: ") != passphrase:
        raise KeystoreError("the two passphrases differ")
    return passphrase
