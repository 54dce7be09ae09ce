"""FLO message signing: real ETDB records, flosig's vectors, and an independent implementation.

The independent secp256k1/RFC 6979/base58 code below is deliberately written from the specs
(SEC 1, RFC 6979 §3.2, Bitcoin's base58) without sharing anything with ``etdb.record.signing``,
so agreement between the two is evidence that both are right.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import pickle
import secrets
import struct
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etdb.record import signing
from etdb.record.errors import RecordError
from etdb.record.ripemd160 import ripemd160
from etdb.record.signing import (
    FLO_MESSAGE_MAGIC,
    LITECOIN_REGTEST,
    MAINNET,
    TESTNET,
    Network,
    PrivateKey,
    SigningError,
    address_network,
    deactivate_preimage,
    decode_address,
    edit_preimage,
    is_valid_address,
    message_hash,
    multipart_preimage,
    network_by_name,
    publish_preimage,
    recover_address,
    sign_message,
    verify_message,
)

# ============================================================================================
# Independent reference implementation (test-only)

_P = 2**256 - 2**32 - 977
_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_G = (
    0x79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798,
    0x483ADA7726A3C4655DA4FBFC0E1108A8FD17B448A68554199C47D08FFB10D4B8,
)
_INF = (0, 1, 0)  # Jacobian point at infinity (Z = 0)

Jac = tuple[int, int, int]
Aff = tuple[int, int]


def _jdouble(p: Jac) -> Jac:
    x, y, z = p
    if z == 0 or y == 0:
        return _INF
    s = 4 * x * y * y % _P
    m = 3 * x * x % _P  # curve a = 0
    x3 = (m * m - 2 * s) % _P
    y3 = (m * (s - x3) - 8 * pow(y, 4, _P)) % _P
    return x3, y3, 2 * y * z % _P


def _jadd(p: Jac, q: Jac) -> Jac:
    if p[2] == 0:
        return q
    if q[2] == 0:
        return p
    x1, y1, z1 = p
    x2, y2, z2 = q
    u1, u2 = x1 * z2 * z2 % _P, x2 * z1 * z1 % _P
    s1, s2 = y1 * pow(z2, 3, _P) % _P, y2 * pow(z1, 3, _P) % _P
    if u1 == u2:
        return _jdouble(p) if s1 == s2 else _INF
    h, r = (u2 - u1) % _P, (s2 - s1) % _P
    h2 = h * h % _P
    h3 = h * h2 % _P
    x3 = (r * r - h3 - 2 * u1 * h2) % _P
    y3 = (r * (u1 * h2 - x3) - s1 * h3) % _P
    return x3, y3, h * z1 * z2 % _P


def _jmul(k: int, p: Aff) -> Jac:
    acc, base = _INF, (p[0], p[1], 1)
    for bit in bin(k)[2:]:
        acc = _jdouble(acc)
        if bit == "1":
            acc = _jadd(acc, base)
    return acc


def _affine(p: Jac) -> Aff | None:
    if p[2] == 0:
        return None
    zi = pow(p[2], -1, _P)
    return p[0] * zi * zi % _P, p[1] * pow(zi, 3, _P) % _P


def _ref_pubkey(d: int) -> bytes:
    pt = _affine(_jmul(d, _G))
    assert pt is not None
    return bytes([2 + (pt[1] & 1)]) + pt[0].to_bytes(32, "big")


def _rfc6979_nonces(d: int, digest: bytes) -> Iterator[int]:
    """RFC 6979 §3.2 with HMAC-SHA256; qlen = hlen = 256 so bits2int is the identity."""

    def mac(key: bytes, data: bytes) -> bytes:
        return hmac.new(key, data, hashlib.sha256).digest()

    x = d.to_bytes(32, "big")
    h1 = (int.from_bytes(digest, "big") % _N).to_bytes(32, "big")
    v, k = b"\x01" * 32, b"\x00" * 32
    k = mac(k, v + b"\x00" + x + h1)
    v = mac(k, v)
    k = mac(k, v + b"\x01" + x + h1)
    v = mac(k, v)
    while True:
        v = mac(k, v)
        candidate = int.from_bytes(v, "big")
        if 1 <= candidate < _N:
            yield candidate
        k = mac(k, v + b"\x00")
        v = mac(k, v)


def _ref_sign(
    d: int, digest: bytes, nonces: Iterator[int] | None = None, low_s: bool = True
) -> tuple[int, int, int]:
    """ECDSA sign; returns (r, s, recid). Bitcoin Core normalizes to low S (flipping recid)."""
    z = int.from_bytes(digest, "big")
    for k in nonces if nonces is not None else _rfc6979_nonces(d, digest):
        rp = _affine(_jmul(k, _G))
        assert rp is not None
        r = rp[0] % _N
        if r == 0:
            continue
        s = pow(k, -1, _N) * (z + r * d) % _N
        if s == 0:
            continue
        recid = (rp[1] & 1) | (2 if rp[0] >= _N else 0)
        if low_s and s > _N // 2:
            s, recid = _N - s, recid ^ 1
        return r, s, recid
    raise AssertionError("unreachable")


def _ref_recover(r: int, s: int, recid: int, digest: bytes) -> Aff | None:
    x = r + (recid >> 1) * _N
    if not (0 < r < _N and 0 < s < _N) or x >= _P:
        return None
    alpha = (pow(x, 3, _P) + 7) % _P
    beta = pow(alpha, (_P + 1) // 4, _P)
    if beta * beta % _P != alpha:
        return None
    y = beta if beta & 1 == recid & 1 else _P - beta
    z = int.from_bytes(digest, "big")
    rinv = pow(r, -1, _N)
    q = _jadd(_jmul(s * rinv % _N, (x, y)), _jmul((-z * rinv) % _N, _G))
    return _affine(q)


def _ref_verify(pub: Aff, r: int, s: int, digest: bytes) -> bool:
    if not (0 < r < _N and 0 < s < _N):
        return False
    w = pow(s, -1, _N)
    z = int.from_bytes(digest, "big")
    pt = _affine(_jadd(_jmul(z * w % _N, _G), _jmul(r * w % _N, pub)))
    return pt is not None and pt[0] % _N == r


_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def _ref_b58check(payload: bytes) -> str:
    """Base58check the way Bitcoin Core's EncodeBase58 does it (digit array, not bigint)."""
    data = payload + hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
    digits: list[int] = []  # little-endian base-58 digits
    for byte in data:
        carry = byte
        for i, digit in enumerate(digits):
            carry += digit << 8
            digits[i], carry = carry % 58, carry // 58
        while carry:
            digits.append(carry % 58)
            carry //= 58
    leading = len(data) - len(data.lstrip(b"\x00"))
    return "1" * leading + "".join(_ALPHABET[d] for d in reversed(digits))


def _ref_hash160(data: bytes) -> bytes:
    sha = hashlib.sha256(data).digest()
    try:
        return hashlib.new("ripemd160", sha).digest()
    except ValueError:  # no OpenSSL RIPEMD-160: fall back to the library's (vector-tested) one
        return ripemd160(sha)


def _ref_message_digest(message: str, magic: str = "Florincoin Signed Message:\n") -> bytes:
    def ser(b: bytes) -> bytes:
        n = len(b)
        if n < 253:
            prefix = struct.pack("<B", n)
        elif n <= 0xFFFF:
            prefix = b"\xfd" + struct.pack("<H", n)
        else:
            prefix = b"\xfe" + struct.pack("<I", n)
        return prefix + b

    blob = ser(magic.encode()) + ser(message.encode())
    return hashlib.sha256(hashlib.sha256(blob).digest()).digest()


def _compact(header: int, r: int, s: int) -> str:
    """Base64 of the 65-byte [header, r, s] signature."""
    return base64.b64encode(
        bytes([header]) + r.to_bytes(32, "big") + s.to_bytes(32, "big")
    ).decode()


def _ref_sign_message(d: int, message: str) -> str:
    r, s, recid = _ref_sign(d, _ref_message_digest(message))
    return _compact(31 + recid, r, s)


def _ref_recover_pubkey(message: str, sig_b64: str) -> bytes | None:
    raw = base64.b64decode(sig_b64)
    header = raw[0]
    assert 31 <= header <= 34  # what both implementations emit
    r, s = int.from_bytes(raw[1:33], "big"), int.from_bytes(raw[33:], "big")
    digest = _ref_message_digest(message)
    pt = _ref_recover(r, s, header - 31, digest)
    if pt is None or not _ref_verify(pt, r, s, digest):
        return None
    return bytes([2 + (pt[1] & 1)]) + pt[0].to_bytes(32, "big")


def _ref_address(pubkey: bytes, version: int = 35) -> str:
    return _ref_b58check(bytes([version]) + _ref_hash160(pubkey))


def _key(d: int, network: Network = MAINNET) -> PrivateKey:
    return PrivateKey(d.to_bytes(32, "big"), network)


# ============================================================================================
# Real ETDB data

REAL_LOCATION = "Qmat8i2pn4WnnMiPQcKsKJZahr1scUbuUyXjgSuCPBcsYY"
REAL_ADDRESS = "FTSTq8xx8yWUKJA5E3bgXLzZqqG9V6dvnr"
REAL_TIMESTAMP = 1528156632


@pytest.fixture
def real_record(conformance_dir):
    path = conformance_dir / "oip042" / "etdb_tomogram_rr2014-01-14-5_oipd_record.json"
    return json.loads(path.read_text(encoding="utf-8"))["artifact"]


def test_real_record_signature_verifies(real_record):
    preimage = publish_preimage(
        real_record["storage"]["location"], real_record["floAddress"], real_record["timestamp"]
    )
    assert preimage == f"{REAL_LOCATION}-{REAL_ADDRESS}-{REAL_TIMESTAMP}"
    sig = real_record["signature"]
    assert recover_address(preimage, sig) == REAL_ADDRESS
    assert verify_message(REAL_ADDRESS, preimage, sig)
    # The independent implementation agrees.
    assert _ref_address(_ref_recover_pubkey(preimage, sig)) == REAL_ADDRESS


@pytest.mark.parametrize(
    ("location", "address", "timestamp"),
    [
        (REAL_LOCATION[:-1] + "Z", REAL_ADDRESS, REAL_TIMESTAMP),
        ("", REAL_ADDRESS, REAL_TIMESTAMP),
        (REAL_LOCATION, "FEj2PunT8h5AkLuMn2f1PVU7mGgmRLbXy8", REAL_TIMESTAMP),
        (REAL_LOCATION, REAL_ADDRESS, REAL_TIMESTAMP + 1),
        (REAL_LOCATION, REAL_ADDRESS, REAL_TIMESTAMP - 1),
    ],
    ids=["location", "no-location", "address", "timestamp+1", "timestamp-1"],
)
def test_real_record_tampered_preimage_fails(real_record, location, address, timestamp):
    sig = real_record["signature"]
    preimage = publish_preimage(location, address, timestamp)
    assert not verify_message(REAL_ADDRESS, preimage, sig)
    assert not verify_message(address, preimage, sig)


def test_real_record_any_flipped_signature_byte_fails(real_record):
    preimage = publish_preimage(REAL_LOCATION, REAL_ADDRESS, REAL_TIMESTAMP)
    raw = base64.b64decode(real_record["signature"])
    for i in range(len(raw)):
        for mask in (0x01, 0x80):
            bad = bytearray(raw)
            bad[i] ^= mask
            assert not verify_message(REAL_ADDRESS, preimage, base64.b64encode(bad).decode()), i


def test_real_multipart_part0_verifies(conformance_dir):
    doc = json.loads(
        (conformance_dir / "oip042" / "etdb_multipart_part0_666a12f0.json").read_text()
    )
    head, data = doc["floData"].split("):", 1)  # oipd splits on the first "):"
    assert head.startswith("oip-mp(")
    part, max_index, address, reference, sig = head[len("oip-mp(") :].split(",")
    preimage = multipart_preimage(int(part), int(max_index), address, reference, data)
    assert preimage.startswith("0-1-FEj2PunT8h5AkLuMn2f1PVU7mGgmRLbXy8--json:{")
    assert verify_message("FEj2PunT8h5AkLuMn2f1PVU7mGgmRLbXy8", preimage, sig)
    assert recover_address(preimage, sig) == "FEj2PunT8h5AkLuMn2f1PVU7mGgmRLbXy8"
    assert not verify_message("FEj2PunT8h5AkLuMn2f1PVU7mGgmRLbXy8", preimage + " ", sig)
    # The legacy 64-zero reference is a different preimage (parsers may try it as a fallback).
    legacy = multipart_preimage(0, 1, address, "0" * 64, data)
    assert not verify_message("FEj2PunT8h5AkLuMn2f1PVU7mGgmRLbXy8", legacy, sig)


# bitspill/flosig flosig_test.go: (address, signature, message, network).
BTC_MAINNET = Network("bitcoin", 0, (5,), (128,), "Bitcoin Signed Message:\n")
LTC_MAINNET = Network("litecoin", 48, (50, 5), (176,), "Litecoin Signed Message:\n")
FLOSIG_VECTORS = [
    (
        "FDxa2dUXPw592svsebdHfGRHxB46DKWVUy",
        "IMjnGVBNW4kvoSITwijwYkrguszkyMQ08TBNu9wvRiVZB3f+L8Me1gkkK30LT9EO2xyMj0lFHORkSi/zM3cOTF0=",
        "Flo signed message test",
        MAINNET,
    ),
    (
        "oWPVMaVa5S3WmQfaSzB3sgJ5EZv2im98XK",
        "H4nt3If+Hapgdw+MuaF9v8YOPLuT0fAco+UIIXlsPLJjEMw3+HIGHQUIjMNhuIU5XK3TVBlLMPixl+STbb0mhsw=",
        "Flo signed message test",
        TESTNET,
    ),
    (
        "1PVdqQygncV32a5YMWUmfEz2h3CqdHfXJe",
        "G25OicB3g46g9kZ0dGOI8+d9ZTlGrH8yKbCa5Xcd10UHcXZ0NRncgwCsKKGyXkU2+BLy0aq3013a0dTFfWf6mDQ=",
        "Bitcoin signed message test",
        BTC_MAINNET,
    ),
    (
        "exniEyscjPy354T1PBETuL9MF4bDWbcqmH",
        "JJqHgNaorUWXdkFsz5fyonAJ58Zk5xFqHDGx67dbJIBRH/B04xHWA5NRZRrZ9bFM12FUkR1X3VI0khrGm1As7NQ=",
        "Flo P2WPKH signed message test",
        MAINNET,
    ),
    (
        "ex5vcFARbURRZk1kN8ocd1YiTagjPooiqU",
        "I/gfPFvSemCw8cjSqETRYqEhLqo95s7WUu6Knu7nnwRebejYrZBzHUFSCmVUr5WMmY8qlNZnB8uoNqP3SKAkL3k=",
        "Example message",
        MAINNET,
    ),
    (
        "MFoQRU1KQq365Sy3cXhix3ygycEU4YWB1V",
        "JG0W/aZi+cGgJrx/vhQmxdho9asZ+Q7PFoCs9FM4qHUYaivphYaXbjZDO8vUzIH8Xo1XQB3S/3z17SLYKU8rD/g=",
        "Example message",
        LTC_MAINNET,
    ),
    (
        "3CwYaeWxhpXXiHue3ciQez1DLaTEAXcKa1",
        "JJ4j7fDk5H/x3sJ/Ms14xQ507wGO6Kat81rhfHqbDdlvSLST/X26sD77b0OcY4PJUjs7vF8afRWKavkKsVTpvoA=",
        "This is an example of a signed message.",
        BTC_MAINNET,
    ),
]


@pytest.mark.parametrize(
    ("address", "sig", "message", "network"), FLOSIG_VECTORS, ids=lambda v: getattr(v, "name", None)
)
def test_flosig_vectors(address, sig, message, network):
    flo = network in (MAINNET, TESTNET)
    assert verify_message(address, message, sig, None if flo else network)
    assert verify_message(address, message, sig, network)
    assert recover_address(message, sig, network) == address
    assert not verify_message(address, message + ".", sig, network)


def test_flo_network_inferred_from_address():
    # Without a network, only FLO addresses are accepted, so a Bitcoin vector is rejected...
    address, sig, message, _ = FLOSIG_VECTORS[2]
    assert not verify_message(address, message, sig)
    # ...and the P2SH-P2WPKH header never matches a P2PKH address of the same key (or v.v.).
    p2sh_addr, p2sh_sig, p2sh_msg, _ = FLOSIG_VECTORS[3]
    raw = bytearray(base64.b64decode(p2sh_sig))
    raw[0] -= 4  # same recid, compressed P2PKH header
    p2pkh_sig = base64.b64encode(raw).decode()
    p2pkh_addr = recover_address(p2sh_msg, p2pkh_sig)
    assert p2pkh_addr.startswith("F")
    assert verify_message(p2pkh_addr, p2sh_msg, p2pkh_sig)
    assert not verify_message(p2pkh_addr, p2sh_msg, p2sh_sig)
    assert not verify_message(p2sh_addr, p2sh_msg, p2pkh_sig)


def test_legacy_p2sh_version_accepted():
    address, sig, message, _ = FLOSIG_VECTORS[3]
    legacy = signing.b58check_encode(bytes([8]) + decode_address(address).hash160)
    assert legacy.startswith("4")
    assert decode_address(legacy).kind == "p2sh"
    assert verify_message(legacy, message, sig)


# ============================================================================================
# Determinism, RFC 6979 and the independent implementation

# RFC 6979 / secp256k1 / SHA-256 vectors (bitcointalk topic 285142; used by python-ecdsa,
# bitcoinjs, trezor-crypto): (key, message, k, r, low-s).
RFC6979_VECTORS = [
    (
        1,
        "Satoshi Nakamoto",
        0x8F8A276C19F4149656B280621E358CCE24F5F52542772691EE69063B74F15D15,
        0x934B1EA10A4B3C1757E2B0C017D0B6143CE3C9A7E6A4A49860D7A6AB210EE3D8,
        0x2442CE9D2B916064108014783E923EC36B49743E2FFA1C4496F01A512AAFD9E5,
    ),
    (
        1,
        "All those moments will be lost in time, like tears in rain. Time to die...",
        0x38AA22D72376B4DBC472E06C3BA403EE0A394DA63FC58D88686C611ABA98D6B3,
        0x8600DBD41E348FE5C9465AB92D23E3DB8B98B873BEECD930736488696438CB6B,
        0x547FE64427496DB33BF66019DACBF0039C04199ABB0122918601DB38A72CFC21,
    ),
]


@pytest.mark.parametrize(("d", "message", "k", "r", "s"), RFC6979_VECTORS)
def test_rfc6979_vectors(d, message, k, r, s):
    digest = hashlib.sha256(message.encode()).digest()
    assert next(_rfc6979_nonces(d, digest)) == k
    assert _ref_sign(d, digest)[:2] == (r, s)
    ours = _key(d)._sign_recoverable(digest)  # libsecp256k1 via coincurve
    assert (int.from_bytes(ours[:32], "big"), int.from_bytes(ours[32:64], "big")) == (r, s)


def test_rfc6979_nonce_for_largest_key():
    digest = hashlib.sha256(b"Satoshi Nakamoto").digest()
    k = next(_rfc6979_nonces(_N - 1, digest))
    assert k == 0x33A19B60E25FB6F4435AF53A3D42D493644827367E6453928554F43E49AA6F90


def test_signing_is_deterministic():
    key = PrivateKey.generate()
    assert sign_message(key, "hello") == sign_message(key, "hello")
    assert sign_message(key, "hello") != sign_message(key, "hello!")
    assert sign_message(PrivateKey.from_wif(key.to_wif()), "hello") == sign_message(key, "hello")


_secrets = st.integers(min_value=1, max_value=_N - 1)
_messages = st.text(max_size=300)


@settings(max_examples=30, deadline=None)
@given(_secrets, _messages)
def test_identical_to_independent_implementation(d, message):
    key = _key(d)
    ours = sign_message(key, message)
    theirs = _ref_sign_message(d, message)
    assert ours == theirs
    assert key.public_key == _ref_pubkey(d)
    assert key.address == _ref_address(_ref_pubkey(d))
    assert _ref_recover_pubkey(message, ours) == key.public_key
    assert verify_message(key.address, message, theirs)


@settings(max_examples=20, deadline=None)
@given(_secrets, _messages, _secrets)
def test_random_nonce_high_s_signatures_verify(d, message, nonce):
    # Any valid ECDSA signature counts, not just RFC 6979 / low-S ones (as in Bitcoin Core).
    digest = _ref_message_digest(message)
    r, s, recid = _ref_sign(d, digest, nonces=iter([nonce, *range(1, 10)]), low_s=False)
    sig = _compact(31 + recid, r, s)
    address = _ref_address(_ref_pubkey(d))
    assert verify_message(address, message, sig)
    assert recover_address(message, sig) == address


def test_uncompressed_header_recovers_uncompressed_address():
    d = 0xC0FFEE
    digest = _ref_message_digest("old wallet")
    r, s, recid = _ref_sign(d, digest)
    sig = _compact(27 + recid, r, s)
    pt = _affine(_jmul(d, _G))
    assert pt is not None
    uncompressed = b"\x04" + pt[0].to_bytes(32, "big") + pt[1].to_bytes(32, "big")
    address = _ref_address(uncompressed)
    assert recover_address("old wallet", sig) == address
    assert verify_message(address, "old wallet", sig)
    assert not verify_message(_key(d).address, "old wallet", sig)


@pytest.mark.parametrize("length", [0, 1, 252, 253, 254, 0xFFFF, 0x10000])
def test_message_hash_varint_boundaries(length):
    message = "x" * length
    assert message_hash(message) == _ref_message_digest(message)


def test_message_hash_matches_js_oip_prefix():
    # js-oip writes the magic with its length byte inlined: "\u001bFlorincoin Signed Message:\n".
    prefix = b"\x1bFlorincoin Signed Message:\n"
    msg = "Ünïcödé ✓".encode()
    blob = prefix + bytes([len(msg)]) + msg
    assert message_hash("Ünïcödé ✓") == hashlib.sha256(hashlib.sha256(blob).digest()).digest()
    assert FLO_MESSAGE_MAGIC == "Florincoin Signed Message:\n"


def test_other_chain_magic_litecoin_regtest():
    key = _key(0x1234, LITECOIN_REGTEST)
    assert key.address == _ref_address(_ref_pubkey(0x1234), version=111)
    assert key.to_wif().startswith("c")
    sig = sign_message(key, "regtest")
    digest = _ref_message_digest("regtest", magic="Litecoin Signed Message:\n")
    r, s, recid = _ref_sign(0x1234, digest)
    assert sig == _compact(31 + recid, r, s)
    assert verify_message(key.address, "regtest", sig, LITECOIN_REGTEST)
    assert recover_address("regtest", sig, LITECOIN_REGTEST) == key.address
    assert not verify_message(key.address, "regtest", sig)  # not a FLO address
    assert PrivateKey.from_wif(key.to_wif(), LITECOIN_REGTEST) == key
    # 239 is also FLO testnet's WIF version: without a network, FLO wins.
    assert PrivateKey.from_wif(key.to_wif()).network is TESTNET


# ============================================================================================
# Keys, WIF, addresses


def test_key_one_vectors():
    key = _key(1)
    assert key.public_key == bytes.fromhex(
        "0279BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798"
    )
    # Computed independently for FLO...
    assert key.to_wif() == _ref_b58check(bytes([163]) + (1).to_bytes(32, "big") + b"\x01")
    assert key.address == _ref_b58check(bytes([35]) + _ref_hash160(key.public_key))
    assert key.address.startswith("F")
    assert key.to_wif().startswith("R")
    # ...and the universally known Bitcoin values of the same key.
    btc = key.with_network(BTC_MAINNET)
    assert btc.to_wif() == "KwDiBf89QgGbjEhKnhXJuH7LrciVrZi3qYjgd9M7rFU73sVHnoWn"
    assert btc.address == "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH"


@pytest.mark.parametrize("network", [MAINNET, TESTNET])
def test_wif_round_trip(network):
    key = PrivateKey.generate(network)
    wif = key.to_wif()
    back = PrivateKey.from_wif(wif)
    assert back == key
    assert back.network is network
    assert back.address == key.address
    assert address_network(key.address) is network
    assert PrivateKey.from_wif(f"  {wif}\n") == key  # pasted with whitespace


def test_wif_secret_key2_version_accepted_on_mainnet():
    secret = (0xABCDEF).to_bytes(32, "big")
    wif176 = _ref_b58check(bytes([176]) + secret + b"\x01")
    key = PrivateKey.from_wif(wif176)
    assert key.network is MAINNET
    assert key.secret_bytes() == secret
    assert key.to_wif() == _ref_b58check(bytes([163]) + secret + b"\x01")  # re-emitted as 163


def _wif_error(wif: str) -> str:
    with pytest.raises(SigningError) as info:
        PrivateKey.from_wif(wif)
    message = str(info.value)
    assert wif.strip() not in message  # never echo a (possibly real) secret
    assert isinstance(info.value, RecordError) and isinstance(info.value, ValueError)
    return message


def test_wif_errors_are_clear():
    secret = secrets.token_bytes(31) + b"\x01"
    good = _ref_b58check(bytes([163]) + secret + b"\x01")
    raw = signing.b58decode(good)
    bad_checksum = signing.b58encode(raw[:-1] + bytes([raw[-1] ^ 1]))
    assert "checksum" in _wif_error(bad_checksum)
    assert "version byte 128" in _wif_error(_ref_b58check(bytes([128]) + secret + b"\x01"))
    assert "expected 34" in _wif_error(_ref_b58check(bytes([163]) + secret + b"\x01\x00"))
    assert "expected 34" in _wif_error(_ref_b58check(bytes([163]) + secret[:-2] + b"\x01"))
    assert "expected 34" in _wif_error(_ref_b58check(bytes([163]) + secret + b"\x02"))
    assert "uncompressed" in _wif_error(_ref_b58check(bytes([163]) + secret))
    assert "base58 character at position" in _wif_error(good[:5] + "0" + good[6:])
    assert "out of range" in _wif_error(_ref_b58check(bytes([163]) + bytes(32) + b"\x01"))
    assert "out of range" in _wif_error(
        _ref_b58check(bytes([163]) + _N.to_bytes(32, "big") + b"\x01")
    )
    with pytest.raises(SigningError, match="testnet"):
        PrivateKey.from_wif(good, TESTNET)


def test_repr_and_pickle_never_reveal_secret():
    key = PrivateKey.generate()
    wif, hexsecret = key.to_wif(), key.secret_bytes().hex()
    for text in (repr(key), str(key), f"{key}"):
        assert wif not in text and hexsecret not in text
        assert key.address in text
    with pytest.raises(TypeError):
        pickle.dumps(key)


def test_private_key_validation():
    with pytest.raises(SigningError, match="32 bytes"):
        PrivateKey(b"\x01" * 31)
    with pytest.raises(SigningError, match="out of range"):
        PrivateKey(_N.to_bytes(32, "big"))
    assert PrivateKey((_N - 1).to_bytes(32, "big")).public_key == _ref_pubkey(_N - 1)


def test_addresses():
    assert address_network(REAL_ADDRESS) is MAINNET
    assert address_network("oWPVMaVa5S3WmQfaSzB3sgJ5EZv2im98XK") is TESTNET
    assert address_network("exniEyscjPy354T1PBETuL9MF4bDWbcqmH") is MAINNET
    assert decode_address(REAL_ADDRESS).kind == "p2pkh"
    assert is_valid_address(REAL_ADDRESS)
    for bad, reason in [
        (REAL_ADDRESS[:-1] + ("a" if REAL_ADDRESS[-1] != "a" else "b"), "checksum"),
        (REAL_ADDRESS[:5] + "0" + REAL_ADDRESS[6:], "base58 character"),
        ("1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH", "version byte 0"),
        (_ref_b58check(bytes([35]) + bytes(19)), "expected 21"),
        ("", "too short"),
    ]:
        assert not is_valid_address(bad)
        with pytest.raises(SigningError, match=reason):
            address_network(bad)
    assert not is_valid_address(None)  # type: ignore[arg-type]
    assert address_network("1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH", [BTC_MAINNET]) is BTC_MAINNET


def test_network_registry():
    assert network_by_name("mainnet") is MAINNET
    assert network_by_name("testnet") is TESTNET
    assert network_by_name("litecoin-regtest") is LITECOIN_REGTEST
    with pytest.raises(SigningError, match="unknown network"):
        network_by_name("dogecoin")
    with pytest.raises(ValueError):
        Network("bad", 1, (1,), (2,))


def test_ripemd160_fallback_vectors():
    vectors = {
        b"": "9c1185a5c5e9fc54612808977ee8f548b2258d31",
        b"a": "0bdc9d2d256b3ee9daae347be6f4dc835a467ffe",
        b"abc": "8eb208f7e05d987a9b044a8e98c6b087f15a0bfc",
        b"message digest": "5d0689ef49d2fae572b881b123a85ffa21595f36",
    }
    for data, expected in vectors.items():
        assert ripemd160(data).hex() == expected
    for n in (55, 56, 63, 64, 65, 200):
        data = secrets.token_bytes(n)
        try:
            expected_bytes = hashlib.new("ripemd160", data).digest()
        except ValueError:
            pytest.skip("no OpenSSL RIPEMD-160 to compare against")
        assert ripemd160(data) == expected_bytes


# ============================================================================================
# Errors and garbage


@pytest.mark.parametrize(
    ("sig", "reason"),
    [
        ("not base64!", "not valid base64"),
        (base64.b64encode(b"\x1f" * 64).decode(), "64 bytes, expected 65"),
        (base64.b64encode(b"\x2b" + b"\x01" * 64).decode(), "header byte 43"),
        (base64.b64encode(b"\x1a" + b"\x01" * 64).decode(), "header byte 26"),
        (base64.b64encode(b"\x1f" + b"\x00" * 64).decode(), "no public key"),
        (base64.b64encode(b"\x1f" + b"\xff" * 64).decode(), "no public key"),
    ],
)
def test_recover_address_errors(sig, reason):
    with pytest.raises(SigningError, match=reason):
        recover_address("message", sig)


def test_lone_surrogate_message():
    key = _key(7)
    with pytest.raises(SigningError, match="UTF-8"):
        sign_message(key, "\ud800")
    assert not verify_message(key.address, "\ud800", sign_message(key, "x"))


_sig65 = st.binary(min_size=65, max_size=65).map(lambda b: base64.b64encode(b).decode())
_anything_b64 = st.binary(max_size=100).map(lambda b: base64.b64encode(b).decode())


@given(
    st.one_of(
        st.text(max_size=60), st.just(REAL_ADDRESS), st.just("exniEyscjPy354T1PBETuL9MF4bDWbcqmH")
    ),
    st.text(max_size=200),
    st.one_of(st.text(max_size=120), _anything_b64, _sig65),
)
def test_verify_message_never_raises(address, message, sig):
    assert verify_message(address, message, sig) in (True, False)


@given(st.integers(27, 38), st.binary(min_size=64, max_size=64), st.text(max_size=50))
def test_recover_raises_only_signing_error(header, rs, message):
    sig = base64.b64encode(bytes([header]) + rs).decode()
    try:
        address = recover_address(message, sig)
    except SigningError:
        return
    assert is_valid_address(address)
    assert verify_message(address, message, sig)


def test_non_string_inputs_are_rejected_not_crashing():
    assert not verify_message(REAL_ADDRESS, b"bytes", "sig")  # type: ignore[arg-type]
    assert not verify_message(REAL_ADDRESS, "m", None)  # type: ignore[arg-type]
    with pytest.raises(SigningError):
        recover_address(None, "AAAA")  # type: ignore[arg-type]


# ============================================================================================
# Preimages


def test_preimages():
    assert publish_preimage(REAL_LOCATION, REAL_ADDRESS, REAL_TIMESTAMP) == (
        "Qmat8i2pn4WnnMiPQcKsKJZahr1scUbuUyXjgSuCPBcsYY-FTSTq8xx8yWUKJA5E3bgXLzZqqG9V6dvnr-1528156632"
    )
    assert publish_preimage("", REAL_ADDRESS, 5) == f"-{REAL_ADDRESS}-5"
    assert edit_preimage("ab" * 32, 1530000000) == "ab" * 32 + "-1530000000"
    assert deactivate_preimage("abc123", REAL_ADDRESS, 7) == f"abc123-{REAL_ADDRESS}-7"
    assert (
        multipart_preimage(2, 3, REAL_ADDRESS, "f" * 64, "a-b):c")
        == f"2-3-{REAL_ADDRESS}-{'f' * 64}-a-b):c"
    )
    for bad in (1528156632.0, "1528156632", True):
        with pytest.raises(TypeError):
            publish_preimage(REAL_LOCATION, REAL_ADDRESS, bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        multipart_preimage("0", 1, REAL_ADDRESS, "", "x")  # type: ignore[arg-type]


def test_addresses_without_openssl_ripemd160(monkeypatch):
    expected = _key(1).address

    def no_ripemd(name, *args, **kwargs):
        raise ValueError(f"unsupported hash type {name}")

    monkeypatch.setattr(signing.hashlib, "new", no_ripemd)
    assert _key(1).address == expected
