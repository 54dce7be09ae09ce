"""FLO message signing, as used by OIP 0.4.2 records (reference oip_etdb.md §2).

ETDB's publisher (go-etdb) signed every record through the wallet RPC ``signmessage``; oipd
checked it with bitspill/flosig. Both use Bitcoin's "signed message" scheme with FLO's magic:

    hash = SHA256d(varstr("Florincoin Signed Message:\\n") || varstr(utf8(message)))
    signature = base64([header, r(32), s(32)]), header = 27 + recid (+4 if the key is compressed)

flosig also accepts Trezor-style headers 35-38, meaning the address is the P2SH-wrapped
P2WPKH of the (compressed) key. We sign only P2PKH with compressed keys, like flod's wallet.

A :class:`Network` is plain data, so the same code signs for other Bitcoin-family chains (the
Litecoin regtest ledger adapter passes :data:`LITECOIN_REGTEST`). Base58check and a RIPEMD-160
fallback are implemented here because the stdlib may lack RIPEMD-160 (OpenSSL 3 without the
legacy provider), and ``etdb.record`` deliberately depends only on stdlib, coincurve, pydantic.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import coincurve

from etdb.record.errors import RecordError
from etdb.record.ripemd160 import ripemd160 as ripemd160_pure

__all__ = [
    "CURVE_ORDER",
    "FLO_MESSAGE_MAGIC",
    "FLO_NETWORKS",
    "HALF_ORDER",
    "LITECOIN_REGTEST",
    "MAINNET",
    "NETWORKS",
    "TESTNET",
    "AddressInfo",
    "Network",
    "PrivateKey",
    "SigningError",
    "address_network",
    "b58check_decode",
    "b58check_encode",
    "b58decode",
    "b58encode",
    "deactivate_preimage",
    "decode_address",
    "edit_preimage",
    "hash160",
    "is_valid_address",
    "message_hash",
    "multipart_preimage",
    "network_by_name",
    "p2pkh_address",
    "p2sh_p2wpkh_address",
    "publish_preimage",
    "recover_address",
    "sha256d",
    "sign_message",
    "signature_problem",
    "verify_message",
]

FLO_MESSAGE_MAGIC = "Florincoin Signed Message:\n"

# secp256k1 group order: valid private keys are 1..n-1.
CURVE_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


class SigningError(RecordError):
    """A key, address or signature is malformed, or a signature cannot be produced/recovered."""


# --------------------------------------------------------------------------------------------
# Networks


@dataclass(frozen=True)
class Network:
    """Version bytes and message magic of one chain. The first entry of a tuple is what we emit."""

    name: str
    p2pkh_version: int
    p2sh_versions: tuple[int, ...]
    wif_versions: tuple[int, ...]
    message_magic: str = FLO_MESSAGE_MAGIC

    def __post_init__(self) -> None:
        versions = (self.p2pkh_version, *self.p2sh_versions, *self.wif_versions)
        if not self.p2sh_versions or not self.wif_versions:
            raise ValueError(f"network {self.name!r}: needs at least one P2SH and one WIF version")
        if any(not 0 <= v <= 255 for v in versions):
            raise ValueError(f"network {self.name!r}: version bytes must be 0..255")
        if self.p2pkh_version in self.p2sh_versions:
            raise ValueError(f"network {self.name!r}: P2PKH and P2SH versions must differ")


# floblockchain/flo chainparams.cpp. P2SH: flod/flosig emit SCRIPT_ADDRESS2 (94, "e...") on
# mainnet and 198 on testnet, so those come first; the legacy 8 / 58 are still accepted.
# WIF: SECRET_KEY 163 is emitted, SECRET_KEY2 176 (older wallets) accepted.
MAINNET = Network("mainnet", p2pkh_version=35, p2sh_versions=(94, 8), wif_versions=(163, 176))
TESTNET = Network("testnet", p2pkh_version=115, p2sh_versions=(198, 58), wif_versions=(239,))
# Litecoin Core regtest (chainparams.cpp), for the regtest ledger adapter.
LITECOIN_REGTEST = Network(
    "litecoin-regtest",
    p2pkh_version=111,
    p2sh_versions=(196, 58),
    wif_versions=(239,),
    message_magic="Litecoin Signed Message:\n",
)

# What "a FLO address / WIF" means when no network is given. Their version bytes don't overlap.
FLO_NETWORKS: tuple[Network, ...] = (MAINNET, TESTNET)
NETWORKS: dict[str, Network] = {n.name: n for n in (MAINNET, TESTNET, LITECOIN_REGTEST)}


def network_by_name(name: str) -> Network:
    try:
        return NETWORKS[name]
    except (KeyError, TypeError):
        raise SigningError(
            f"unknown network {name!r} (known: {', '.join(sorted(NETWORKS))})"
        ) from None


def _names(networks: Iterable[Network]) -> str:
    return "/".join(n.name for n in networks)


# --------------------------------------------------------------------------------------------
# Hashes


def sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def hash160(data: bytes) -> bytes:
    """RIPEMD160(SHA256(data)), the hash inside P2PKH and P2SH addresses."""
    return _ripemd160(hashlib.sha256(data).digest())


def _ripemd160(data: bytes) -> bytes:
    try:
        return hashlib.new("ripemd160", data).digest()
    except ValueError:  # OpenSSL 3 builds without the legacy provider
        return ripemd160_pure(data)


# --------------------------------------------------------------------------------------------
# Base58check

_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58_ALPHABET)}
# Decoding is quadratic; nothing we decode (addresses, WIFs) is anywhere near this long.
_B58_MAX_LEN = 128


def b58encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    digits: list[str] = []
    while n:
        n, rem = divmod(n, 58)
        digits.append(_B58_ALPHABET[rem])
    zeros = len(data) - len(data.lstrip(b"\x00"))
    return "1" * zeros + "".join(reversed(digits))


def b58decode(text: str) -> bytes:
    """Decode base58. Errors name the position, never the text (it may be a secret WIF)."""
    if len(text) > _B58_MAX_LEN:
        raise SigningError(f"base58 text too long ({len(text)} characters)")
    n = 0
    for pos, char in enumerate(text):
        digit = _B58_INDEX.get(char)
        if digit is None:
            raise SigningError(f"invalid base58 character at position {pos}")
        n = n * 58 + digit
    zeros = len(text) - len(text.lstrip("1"))
    return b"\x00" * zeros + n.to_bytes((n.bit_length() + 7) // 8, "big")


def b58check_encode(payload: bytes) -> str:
    return b58encode(payload + sha256d(payload)[:4])


def b58check_decode(text: str) -> bytes:
    raw = b58decode(text)
    if len(raw) < 5:
        raise SigningError("base58check data too short")
    payload, checksum = raw[:-4], raw[-4:]
    if sha256d(payload)[:4] != checksum:
        raise SigningError("base58check checksum mismatch")
    return payload


# --------------------------------------------------------------------------------------------
# Addresses

AddressKind = Literal["p2pkh", "p2sh"]


@dataclass(frozen=True)
class AddressInfo:
    """A decoded base58 address: its network, kind and 20-byte hash."""

    network: Network
    kind: AddressKind
    hash160: bytes


def decode_address(address: str, networks: Iterable[Network] = FLO_NETWORKS) -> AddressInfo:
    """Decode a P2PKH/P2SH address of one of ``networks``; SigningError says what is wrong."""
    networks = tuple(networks)
    if not isinstance(address, str):
        raise SigningError(f"an address must be a string, not {type(address).__name__}")
    try:
        payload = b58check_decode(address)
    except SigningError as exc:
        raise SigningError(
            f"{address!r} is not a valid {_names(networks)} address: {exc}"
        ) from None
    if len(payload) != 21:
        raise SigningError(
            f"{address!r} is not a valid {_names(networks)} address: "
            f"payload is {len(payload)} bytes, expected 21"
        )
    version, digest = payload[0], payload[1:]
    for net in networks:
        if version == net.p2pkh_version:
            return AddressInfo(net, "p2pkh", digest)
        if version in net.p2sh_versions:
            return AddressInfo(net, "p2sh", digest)
    raise SigningError(
        f"{address!r} is not a valid {_names(networks)} address: unknown version byte {version}"
    )


def address_network(address: str, networks: Iterable[Network] = FLO_NETWORKS) -> Network:
    return decode_address(address, networks).network


def is_valid_address(address: str, networks: Iterable[Network] = FLO_NETWORKS) -> bool:
    try:
        decode_address(address, networks)
    except SigningError:
        return False
    return True


def p2pkh_address(public_key: bytes, network: Network = MAINNET) -> str:
    return b58check_encode(bytes([network.p2pkh_version]) + hash160(public_key))


def _p2wpkh_script(public_key: bytes) -> bytes:
    return b"\x00\x14" + hash160(public_key)  # OP_0 <20-byte key hash>


def p2sh_p2wpkh_address(public_key: bytes, network: Network = MAINNET) -> str:
    return b58check_encode(bytes([network.p2sh_versions[0]]) + hash160(_p2wpkh_script(public_key)))


# --------------------------------------------------------------------------------------------
# Private keys


class PrivateKey:
    """A secp256k1 private key bound to a network. Public keys are always compressed."""

    __slots__ = ("_key", "_network")

    def __init__(self, secret: bytes, network: Network = MAINNET) -> None:
        if not isinstance(secret, bytes | bytearray) or len(secret) != 32:
            raise SigningError("a private key is exactly 32 bytes")
        if not 0 < int.from_bytes(secret, "big") < CURVE_ORDER:
            raise SigningError("private key out of range (must be 1 .. n-1)")
        self._key = coincurve.PrivateKey(bytes(secret))
        self._network = network

    @classmethod
    def generate(cls, network: Network = MAINNET) -> PrivateKey:
        # coincurve draws from os.urandom and retries until the secret is in range.
        return cls(coincurve.PrivateKey().secret, network)

    @classmethod
    def from_wif(cls, wif: str, network: Network | None = None) -> PrivateKey:
        """Import a compressed-key WIF; the network comes from its version byte (FLO by default).

        Error messages never contain the WIF itself.
        """
        if not isinstance(wif, str):
            raise SigningError("a WIF private key must be a string")
        try:
            payload = b58check_decode(wif.strip())
        except SigningError as exc:
            raise SigningError(f"invalid WIF private key: {exc}") from None
        if len(payload) == 33:
            # Same secret, but its address is the hash of the *uncompressed* key: importing it as
            # compressed would silently publish under a different address than the user expects.
            raise SigningError(
                "invalid WIF private key: uncompressed-key WIFs are not supported "
                "(etdb uses compressed public keys only)"
            )
        if len(payload) != 34 or payload[33] != 0x01:
            raise SigningError(
                f"invalid WIF private key: payload is {len(payload)} bytes, "
                "expected 34 (version + 32-byte secret + 0x01 compression flag)"
            )
        candidates = FLO_NETWORKS if network is None else (network,)
        version = payload[0]
        for net in candidates:
            if version in net.wif_versions:
                return cls(payload[1:33], net)
        expected = "; ".join(f"{n.name}: {', '.join(map(str, n.wif_versions))}" for n in candidates)
        raise SigningError(
            f"invalid WIF private key: version byte {version} is not one of ({expected})"
        )

    def to_wif(self) -> str:
        return b58check_encode(bytes([self._network.wif_versions[0]]) + self._key.secret + b"\x01")

    def secret_bytes(self) -> bytes:
        """The raw 32-byte secret (for encrypted storage). Handle with care."""
        return self._key.secret

    def with_network(self, network: Network) -> PrivateKey:
        return PrivateKey(self._key.secret, network)

    @property
    def network(self) -> Network:
        return self._network

    @property
    def public_key(self) -> bytes:
        return self._key.public_key.format(compressed=True)

    @property
    def address(self) -> str:
        return p2pkh_address(self.public_key, self._network)

    def _sign_recoverable(self, digest: bytes) -> bytes:
        # libsecp256k1: RFC 6979 nonce, low-S; returns r(32) || s(32) || recid(1).
        return self._key.sign_recoverable(digest, hasher=None)

    def __repr__(self) -> str:  # never the secret
        return f"PrivateKey(address={self.address!r}, network={self._network.name!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PrivateKey):
            return NotImplemented
        same_secret = hmac.compare_digest(self._key.secret, other._key.secret)
        return same_secret and self._network == other._network

    def __hash__(self) -> int:
        return hash((self.public_key, self._network))

    def __reduce__(self) -> str | tuple[object, ...]:
        # Pickling would write the secret in clear to wherever the pickle goes (caches, queues).
        raise TypeError("PrivateKey cannot be pickled; store it with etdb.publish.keystore")


# --------------------------------------------------------------------------------------------
# Message signing


def _varint(n: int) -> bytes:
    if n < 0xFD:
        return bytes([n])
    if n <= 0xFFFF:
        return b"\xfd" + n.to_bytes(2, "little")
    if n <= 0xFFFFFFFF:
        return b"\xfe" + n.to_bytes(4, "little")
    return b"\xff" + n.to_bytes(8, "little")


def _varstr(data: bytes) -> bytes:
    return _varint(len(data)) + data


def _utf8(message: str) -> bytes:
    if not isinstance(message, str):
        raise SigningError(f"the message must be text (str), not {type(message).__name__}")
    try:
        return message.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates
        raise SigningError(f"the message is not encodable as UTF-8: {exc.reason}") from None


def message_hash(message: str, network: Network = MAINNET) -> bytes:
    """The 32-byte digest that a signed message signs."""
    magic = network.message_magic.encode("utf-8")
    return sha256d(_varstr(magic) + _varstr(_utf8(message)))


def sign_message(key: PrivateKey, message: str) -> str:
    """Sign like ``flod signmessage``: deterministic (RFC 6979), compressed P2PKH header."""
    sig = key._sign_recoverable(message_hash(message, key.network))
    header = 27 + 4 + sig[64]
    return base64.b64encode(bytes([header]) + sig[:64]).decode("ascii")


#: Half the group order: a canonical (BIP 62 / libsecp256k1 "normalized") S is at most this.
HALF_ORDER = CURVE_ORDER // 2


def signature_problem(signature_b64: str) -> str | None:
    """Why ``signature_b64`` is not in canonical form, or None if it is.

    A signature has many encodings that all verify: base64 text whose unused low bits of the
    last character differ, and the twin ``(r, n - s)`` with the recovery id flipped. Only one
    is canonical: the text is exactly the standard padded base64 of its 65 bytes, and
    S <= n/2 (low S). What counts as the same signature is decided elsewhere (by what it
    signs); this only says whether the encoding is the one a signer produces.
    """
    if not isinstance(signature_b64, str):
        return "the signature is not text"
    try:
        raw = base64.b64decode(signature_b64.encode("ascii"), validate=True)
    except ValueError:
        return "the signature is not valid base64"
    if len(raw) != 65:
        return f"the signature is {len(raw)} bytes, expected 65"
    if base64.b64encode(raw).decode("ascii") != signature_b64:
        return "base64 text is not the standard encoding of its bytes"
    if int.from_bytes(raw[33:65], "big") > HALF_ORDER:
        return "high S"
    return None


_RecoveredKind = Literal["p2pkh", "p2sh-p2wpkh"]


def _recover(message: str, signature_b64: str, network: Network) -> tuple[_RecoveredKind, bytes]:
    """Return the address kind the header claims and the recovered serialized public key."""
    if not isinstance(signature_b64, str):
        raise SigningError("the signature must be a base64 string")
    try:
        raw = base64.b64decode(signature_b64.encode("ascii"), validate=True)
    except ValueError:  # binascii.Error and UnicodeEncodeError are both ValueErrors
        raise SigningError("the signature is not valid base64") from None
    if len(raw) != 65:
        raise SigningError(f"the signature is {len(raw)} bytes, expected 65 (header, r, s)")
    header = raw[0]
    kind: _RecoveredKind
    if 27 <= header <= 30:
        kind, compressed, recid = "p2pkh", False, header - 27
    elif 31 <= header <= 34:
        kind, compressed, recid = "p2pkh", True, header - 31
    elif 35 <= header <= 38:  # Trezor/flosig: P2SH-wrapped P2WPKH, always a compressed key
        kind, compressed, recid = "p2sh-p2wpkh", True, header - 35
    else:
        raise SigningError(
            f"signature header byte {header} is not 27-38 (27-34: P2PKH, 35-38: P2SH-P2WPKH)"
        )
    digest = message_hash(message, network)
    try:
        pub = coincurve.PublicKey.from_signature_and_message(
            raw[1:] + bytes([recid]), digest, hasher=None
        )
    except ValueError:
        raise SigningError(
            "no public key can be recovered from this signature and message "
            "(r or s out of range, or no curve point for r)"
        ) from None
    return kind, pub.format(compressed=compressed)


def recover_address(message: str, signature_b64: str, network: Network | None = None) -> str:
    """The address that signed ``message``. A signature carries no network: default MAINNET."""
    net = MAINNET if network is None else network
    kind, pub = _recover(message, signature_b64, net)
    if kind == "p2pkh":
        return p2pkh_address(pub, net)
    return p2sh_p2wpkh_address(pub, net)


def verify_message(
    address: str, message: str, signature_b64: str, network: Network | None = None
) -> bool:
    """True if ``signature_b64`` signs ``message`` for ``address``. Never raises on bad input.

    The network (hence the message magic) is the address's: one of FLO mainnet/testnet unless
    ``network`` is given. Either P2SH version byte of the network is accepted.
    """
    try:
        info = decode_address(address, FLO_NETWORKS if network is None else (network,))
        kind, pub = _recover(message, signature_b64, info.network)
    except SigningError:
        return False
    if kind == "p2pkh":
        return info.kind == "p2pkh" and hash160(pub) == info.hash160
    return info.kind == "p2sh" and hash160(_p2wpkh_script(pub)) == info.hash160


# --------------------------------------------------------------------------------------------
# OIP 0.4.2 preimages (reference §2-§4): what the signature of each message type covers.


def _decimal(value: int, what: str) -> str:
    # A float or str here would silently yield a different preimage ("1528156632.0").
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    return str(value)


def publish_preimage(location: str, flo_address: str, timestamp: int) -> str:
    """``location-floAddress-timestamp``; location is "" when the record has no storage."""
    return f"{location}-{flo_address}-{_decimal(timestamp, 'timestamp')}"


def edit_preimage(original_txid: str, timestamp: int) -> str:
    """Newer oipd edit: ``originalTxid-timestamp``."""
    return f"{original_txid}-{_decimal(timestamp, 'timestamp')}"


def deactivate_preimage(artifact_id: str, publisher: str, timestamp: int) -> str:
    """2018 daemon edit/deactivate: ``artifactID-publisher-timestamp``."""
    return f"{artifact_id}-{publisher}-{_decimal(timestamp, 'timestamp')}"


def multipart_preimage(part: int, max_index: int, address: str, reference: str, data: str) -> str:
    """``part-max-address-reference-data``; the reference of part 0 is ""."""
    return (
        f"{_decimal(part, 'part')}-{_decimal(max_index, 'max_index')}-{address}-{reference}-{data}"
    )
