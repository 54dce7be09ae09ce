"""dag-pb nodes and the UnixFS ``Data`` message, encoded canonically as kubo does.

dag-pb spec: https://ipld.io/specs/codecs/dag-pb/spec/ — ``PBNode{Links=2; Data=1}`` is written
Links first, then Data (Google protobuf writes field order, which is why it cannot be used).
``PBLink{Hash=1; Name=2; Tsize=3}``. Kubo writes ``Name=""`` even on file-chunk links, and that
byte pair is part of the CID, so ``name`` is kept as given (``None`` means "absent").

UnixFS spec: https://specs.ipfs.tech/unixfs/ — proto2, so ``filesize=0`` is written.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Literal

from etdb.content.cid import CID, CIDError, decode_varint, encode_varint


class DagPBError(ValueError):
    """A block is not a well-formed dag-pb node or UnixFS message."""


class UnixFSType(IntEnum):
    RAW = 0
    DIRECTORY = 1
    FILE = 2
    METADATA = 3
    SYMLINK = 4
    HAMT_SHARD = 5


@dataclass(frozen=True, slots=True)
class PBLink:
    cid: CID
    name: str | None = ""
    tsize: int | None = None


@dataclass(frozen=True, slots=True)
class PBNode:
    links: tuple[PBLink, ...] = ()
    data: bytes | None = None


@dataclass(frozen=True, slots=True)
class UnixFSData:
    type: UnixFSType
    data: bytes | None = None
    filesize: int | None = None
    blocksizes: tuple[int, ...] = ()
    hash_type: int | None = None
    fanout: int | None = None
    mode: int | None = None
    mtime: tuple[int, int | None] | None = None  # (seconds, fractional nanoseconds)
    unknown: tuple[tuple[int, bytes], ...] = field(default=(), repr=False)


# -- protobuf primitives ------------------------------------------------------------------------


def _key(field_no: int, wire_type: int) -> bytes:
    return encode_varint((field_no << 3) | wire_type)


def _len_delimited(field_no: int, payload: bytes) -> bytes:
    return _key(field_no, 2) + encode_varint(len(payload)) + payload


# One protobuf field: (number, wire type, value); the value is a memoryview for wire type 2
# (length-delimited), an int for the others. Typed so a decoder matching on the wire type
# gets the value's type with it.
_Field = tuple[int, Literal[0, 1, 5], int] | tuple[int, Literal[2], memoryview]


def _iter_fields(buf: bytes | memoryview) -> Iterator[_Field]:
    """Yield each field of ``buf`` as a ``_Field``."""
    mv = memoryview(buf)
    pos = 0
    end = len(mv)
    while pos < end:
        try:
            key, pos = decode_varint(mv, pos)
        except CIDError as exc:
            raise DagPBError(f"bad field key: {exc}") from None
        field_no, wire_type = key >> 3, key & 7
        if field_no == 0:
            raise DagPBError("field number 0")
        if wire_type == 0:
            try:
                value, pos = decode_varint(mv, pos)
            except CIDError as exc:
                raise DagPBError(f"bad varint in field {field_no}: {exc}") from None
            yield field_no, 0, value
        elif wire_type == 2:
            try:
                length, pos = decode_varint(mv, pos)
            except CIDError as exc:
                raise DagPBError(f"bad length in field {field_no}: {exc}") from None
            if pos + length > end:
                raise DagPBError(f"field {field_no} runs past the end of the block")
            yield field_no, 2, mv[pos : pos + length]
            pos += length
        elif wire_type == 5:
            if pos + 4 > end:
                raise DagPBError(f"field {field_no} runs past the end of the block")
            yield field_no, 5, int.from_bytes(mv[pos : pos + 4], "little")
            pos += 4
        elif wire_type == 1:
            if pos + 8 > end:
                raise DagPBError(f"field {field_no} runs past the end of the block")
            yield field_no, 1, int.from_bytes(mv[pos : pos + 8], "little")
            pos += 8
        else:
            raise DagPBError(f"unsupported wire type {wire_type} in field {field_no}")


# -- dag-pb ---------------------------------------------------------------------------------


def encode_link(link: PBLink) -> bytes:
    out = _len_delimited(1, bytes(link.cid))
    if link.name is not None:
        out += _len_delimited(2, link.name.encode("utf-8"))
    if link.tsize is not None:
        out += _key(3, 0) + encode_varint(link.tsize)
    return out


def encode_node(node: PBNode) -> bytes:
    parts = [_len_delimited(2, encode_link(link)) for link in node.links]
    if node.data is not None:
        parts.append(_len_delimited(1, node.data))
    return b"".join(parts)


def _decode_link(buf: memoryview) -> PBLink:
    cid = name = tsize = None
    last = 0
    for pb_field in _iter_fields(buf):
        field_no = pb_field[0]
        if field_no <= last:
            raise DagPBError("PBLink fields out of order or repeated")
        last = field_no
        match pb_field:
            case (1, 2, value):
                try:
                    cid = CID.from_bytes(bytes(value))
                except CIDError as exc:
                    raise DagPBError(f"bad link hash: {exc}") from None
            case (2, 2, value):
                try:
                    name = bytes(value).decode("utf-8")
                except UnicodeDecodeError:
                    raise DagPBError("link name is not UTF-8") from None
            case (3, 0, value):
                tsize = value
            case _:
                raise DagPBError(f"unexpected PBLink field {field_no}")
    if cid is None:
        raise DagPBError("PBLink without Hash")
    return PBLink(cid, name, tsize)


def decode_node(block: bytes | memoryview) -> PBNode:
    """Decode a dag-pb block strictly (links before data, no unknown fields)."""
    links: list[PBLink] = []
    data: bytes | None = None
    for pb_field in _iter_fields(block):
        match pb_field:
            case (2, 2, value):
                if data is not None:
                    raise DagPBError("PBNode Links after Data")
                links.append(_decode_link(value))
            case (1, 2, value):
                if data is not None:
                    raise DagPBError("PBNode has two Data fields")
                data = bytes(value)
            case _:
                raise DagPBError(f"unexpected PBNode field {pb_field[0]}")
    return PBNode(tuple(links), data)


# -- UnixFS Data ------------------------------------------------------------------------------


def encode_unixfs(msg: UnixFSData) -> bytes:
    out = bytearray(_key(1, 0) + encode_varint(int(msg.type)))
    if msg.data is not None:
        out += _len_delimited(2, msg.data)
    if msg.filesize is not None:
        out += _key(3, 0) + encode_varint(msg.filesize)
    for size in msg.blocksizes:  # proto2 repeated scalars are unpacked
        out += _key(4, 0) + encode_varint(size)
    if msg.hash_type is not None:
        out += _key(5, 0) + encode_varint(msg.hash_type)
    if msg.fanout is not None:
        out += _key(6, 0) + encode_varint(msg.fanout)
    if msg.mode is not None:
        out += _key(7, 0) + encode_varint(msg.mode)
    if msg.mtime is not None:
        seconds, nanos = msg.mtime
        inner = _key(1, 0) + encode_varint(seconds & 0xFFFFFFFFFFFFFFFF)
        if nanos is not None:
            inner += _key(2, 5) + nanos.to_bytes(4, "little")
        out += _len_delimited(8, inner)
    return bytes(out)


def _decode_mtime(buf: memoryview) -> tuple[int, int | None]:
    """UnixTime {Seconds (int64 as a varint), FractionalNanoseconds (fixed32)}."""
    seconds, nanos = 0, None
    for pb_field in _iter_fields(buf):
        match pb_field:
            case (1, 0, value):
                seconds = value - (1 << 64) if value >= 1 << 63 else value
            case (2, 5, value):
                nanos = value
    return seconds, nanos


def decode_unixfs(buf: bytes | memoryview) -> UnixFSData:
    fields: dict[str, object] = {}
    blocksizes: list[int] = []
    for pb_field in _iter_fields(buf):
        match pb_field:
            case (1, 0, value):
                try:
                    fields["type"] = UnixFSType(value)
                except ValueError:
                    raise DagPBError(f"unknown UnixFS type {value}") from None
            case (2, 2, value):
                fields["data"] = bytes(value)
            case (3, 0, value):
                fields["filesize"] = value
            case (4, 0, value):
                blocksizes.append(value)
            case (4, 2, value):  # tolerate packed encoding from other writers
                pos = 0
                while pos < len(value):
                    size, pos = decode_varint(value, pos)
                    blocksizes.append(size)
            case (5, 0, value):
                fields["hash_type"] = value
            case (6, 0, value):
                fields["fanout"] = value
            case (7, 0, value):
                fields["mode"] = value
            case (8, 2, value):
                fields["mtime"] = _decode_mtime(value)
            case _:
                raise DagPBError(f"unexpected UnixFS field {pb_field[0]}")
    if "type" not in fields:
        raise DagPBError("UnixFS Data without Type")
    return UnixFSData(blocksizes=tuple(blocksizes), **fields)  # type: ignore[arg-type]


def file_leaf_frame(chunk_len: int) -> tuple[bytes, bytes]:
    """The bytes before and after a chunk in a CIDv0 (dag-pb) file leaf.

    ``prefix + chunk + suffix`` is exactly ``encode_node(PBNode(data=encode_unixfs(
    UnixFSData(FILE, chunk, filesize=len(chunk)))))``; hashing the three pieces separately lets
    the importer avoid copying each 256 KiB chunk.
    """
    n = encode_varint(chunk_len)
    inner_head = b"\x08\x02" + (b"\x12" + n if chunk_len else b"")
    inner_tail = b"\x18" + n
    inner_len = len(inner_head) + (chunk_len if chunk_len else 0) + len(inner_tail)
    return b"\x0a" + encode_varint(inner_len) + inner_head, inner_tail
