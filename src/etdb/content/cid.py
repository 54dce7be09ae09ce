"""Content identifiers (CIDv0 and CIDv1), multihash, multibase and varints.

Only what IPFS UnixFS data needs: sha2-256 and identity multihashes; dag-pb, raw and dag-cbor
codecs; base58btc (CIDv0 and ``z`` CIDv1), base32 (``b``, the default for CIDv1) and base16.
Spec: https://github.com/multiformats/cid.
"""

from __future__ import annotations

import base64
import hashlib

DAG_PB = 0x70
RAW = 0x55
DAG_CBOR = 0x71
SHA2_256 = 0x12
IDENTITY = 0x00

CODEC_NAMES = {DAG_PB: "dag-pb", RAW: "raw", DAG_CBOR: "dag-cbor"}
HASH_NAMES = {SHA2_256: "sha2-256", IDENTITY: "identity"}

# An identity digest longer than this is refused: it would be a block smuggled inside an ID.
MAX_IDENTITY_DIGEST = 128


class CIDError(ValueError):
    """A string or byte sequence is not a CID we can use."""


# -- varints (unsigned LEB128, at most 9 bytes as multiformats requires) -----------------------


def encode_varint(n: int) -> bytes:
    if n < 0:
        raise ValueError("varint must be non-negative")
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def decode_varint(buf: bytes | bytearray | memoryview, pos: int = 0) -> tuple[int, int]:
    """Decode the varint at ``buf[pos:]``; return (value, position after it)."""
    result = 0
    shift = 0
    start = pos
    end = len(buf)
    while True:
        if pos >= end:
            raise CIDError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            if b == 0 and pos - start > 1:
                raise CIDError("varint is not minimally encoded")
            return result, pos
        shift += 7
        if pos - start >= 9:
            raise CIDError("varint longer than 9 bytes")


# -- base58btc ----------------------------------------------------------------------------------

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}


def b58encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 58)
        out.append(_B58[r])
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + "".join(reversed(out))


def b58decode(text: str) -> bytes:
    n = 0
    for c in text:
        try:
            n = n * 58 + _B58_INDEX[c]
        except KeyError:
            raise CIDError(f"invalid base58 character {c!r}") from None
    zeros = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * zeros + body


def _b32encode(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def _b32decode(text: str) -> bytes:
    pad = "=" * (-len(text) % 8)
    try:
        return base64.b32decode(text.upper() + pad)
    except (ValueError, TypeError) as exc:
        raise CIDError(f"invalid base32: {exc}") from None


class CID:
    """An immutable content identifier. Compare, hash and print it; ``bytes(cid)`` is binary."""

    __slots__ = ("_bytes", "_str", "codec", "digest", "hash_code", "version")

    version: int
    codec: int
    hash_code: int
    digest: bytes
    _bytes: bytes | None  # binary form, made on first use
    _str: str | None  # text form, made on first use

    def __init__(self, version: int, codec: int, hash_code: int, digest: bytes) -> None:
        if version == 0 and (codec != DAG_PB or hash_code != SHA2_256 or len(digest) != 32):
            raise CIDError("CIDv0 is only dag-pb with a 32-byte sha2-256 digest")
        if version not in (0, 1):
            raise CIDError(f"unsupported CID version {version}")
        if hash_code == SHA2_256 and len(digest) != 32:
            raise CIDError("sha2-256 digest must be 32 bytes")
        if hash_code == IDENTITY and len(digest) > MAX_IDENTITY_DIGEST:
            raise CIDError(f"identity digest longer than {MAX_IDENTITY_DIGEST} bytes")
        object.__setattr__(self, "version", version)
        object.__setattr__(self, "codec", codec)
        object.__setattr__(self, "hash_code", hash_code)
        object.__setattr__(self, "digest", bytes(digest))
        object.__setattr__(self, "_bytes", None)
        object.__setattr__(self, "_str", None)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("CID is immutable")

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def v0(cls, digest: bytes) -> CID:
        return cls(0, DAG_PB, SHA2_256, digest)

    @classmethod
    def v1(cls, codec: int, digest: bytes, hash_code: int = SHA2_256) -> CID:
        return cls(1, codec, hash_code, digest)

    @classmethod
    def hash(cls, data: bytes, codec: int = RAW, version: int = 1) -> CID:
        """The sha2-256 CID of a block."""
        digest = hashlib.sha256(data).digest()
        return cls.v0(digest) if version == 0 else cls.v1(codec, digest)

    @classmethod
    def decode(cls, text: str) -> CID:
        """Parse a CID string (CIDv0 ``Qm…`` or multibase CIDv1), or raise CIDError."""
        if not isinstance(text, str) or not text:
            raise CIDError("empty CID")
        if len(text) == 46 and text.startswith("Qm"):
            raw = b58decode(text)
            if len(raw) != 34 or raw[0] != SHA2_256 or raw[1] != 32:
                raise CIDError(f"not a CIDv0: {text}")
            return cls.v0(raw[2:])
        prefix, body = text[0], text[1:]
        if prefix == "b" or prefix == "B":
            raw = _b32decode(body)
        elif prefix == "z":
            raw = b58decode(body)
        elif prefix in "fF":
            try:
                raw = bytes.fromhex(body)
            except ValueError:
                raise CIDError(f"invalid base16 CID: {text}") from None
        else:
            raise CIDError(f"unsupported or invalid CID {text!r}")
        cid, end = cls.read(raw)
        if end != len(raw):
            raise CIDError(f"trailing bytes after CID {text!r}")
        return cid

    @classmethod
    def from_bytes(cls, raw: bytes) -> CID:
        cid, end = cls.read(raw)
        if end != len(raw):
            raise CIDError("trailing bytes after binary CID")
        return cid

    @classmethod
    def read(cls, buf: bytes | bytearray | memoryview, pos: int = 0) -> tuple[CID, int]:
        """Read a binary CID at ``buf[pos:]`` (as in CAR sections and dag-pb links)."""
        if len(buf) - pos >= 2 and buf[pos] == SHA2_256 and buf[pos + 1] == 32:
            end = pos + 34
            if len(buf) < end:
                raise CIDError("truncated CIDv0")
            return cls.v0(bytes(buf[pos + 2 : end])), end
        version, pos = decode_varint(buf, pos)
        if version != 1:
            raise CIDError(f"unsupported CID version {version}")
        codec, pos = decode_varint(buf, pos)
        hash_code, pos = decode_varint(buf, pos)
        length, pos = decode_varint(buf, pos)
        end = pos + length
        if len(buf) < end:
            raise CIDError("truncated multihash digest")
        if hash_code not in HASH_NAMES:
            raise CIDError(f"unsupported multihash 0x{hash_code:x}")
        return cls(1, codec, hash_code, bytes(buf[pos:end])), end

    # -- views ----------------------------------------------------------------------------------

    @property
    def multihash(self) -> bytes:
        return encode_varint(self.hash_code) + encode_varint(len(self.digest)) + self.digest

    def __bytes__(self) -> bytes:
        b = self._bytes
        if b is None:
            if self.version == 0:
                b = self.multihash
            else:
                b = b"\x01" + encode_varint(self.codec) + self.multihash
            object.__setattr__(self, "_bytes", b)
        return b

    def __str__(self) -> str:
        s = self._str
        if s is None:
            s = b58encode(self.multihash) if self.version == 0 else "b" + _b32encode(bytes(self))
            object.__setattr__(self, "_str", s)
        return s

    def encode(self, base: str = "base32") -> str:
        if self.version == 0:
            return str(self)
        if base == "base32":
            return str(self)
        if base == "base58btc":
            return "z" + b58encode(bytes(self))
        if base == "base16":
            return "f" + bytes(self).hex()
        raise CIDError(f"unsupported multibase {base!r}")

    def to_v1(self) -> CID:
        return self if self.version == 1 else CID.v1(self.codec, self.digest, self.hash_code)

    @property
    def codec_name(self) -> str:
        return CODEC_NAMES.get(self.codec, f"0x{self.codec:x}")

    @property
    def is_identity(self) -> bool:
        return self.hash_code == IDENTITY

    def verify(self, block: bytes | memoryview) -> bool:
        """True if ``block`` is the data this CID names."""
        if self.hash_code == IDENTITY:
            return bytes(block) == self.digest
        return hashlib.sha256(block).digest() == self.digest

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CID):
            return NotImplemented
        return bytes(self) == bytes(other)

    def __hash__(self) -> int:
        return hash(bytes(self))

    def __repr__(self) -> str:
        return f"CID({self})"
