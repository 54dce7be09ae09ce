"""CAR (Content Addressable aRchive) files: streaming writer, verifying reader, import/export.

CARv1 (https://ipld.io/specs/transport/car/carv1/): ``varint(len(header))``, a DAG-CBOR header
``{"roots": [CID], "version": 1}``, then sections ``varint(len(cid) + len(block)) cid block``.
CARv2 (read only): an 11-byte pragma, a 40-byte little-endian header locating an inner CARv1
payload, then an optional index, which we ignore (we stream, we don't seek).

The reader treats its input as hostile: header and section sizes are capped before anything is
allocated, every block is checked against its CID, and every problem is a ``CARError`` naming
the byte offset (and the CID when known). Block order on export: see ``traversal``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from etdb.content.blockstore import MAX_BLOCK_SIZE, BlockGetter, Blockstore
from etdb.content.cid import CID, CIDError, encode_varint
from etdb.content.errors import CARError
from etdb.content.exporter import parse_path
from etdb.content.traversal import SCOPES, Scope, car_blocks, entity_range

MAX_HEADER_SIZE = 1 << 20  # a million bytes of roots is already absurd
MAX_SECTION_SIZE = MAX_BLOCK_SIZE + 256  # one block plus its CID
CARV2_PRAGMA = bytes.fromhex("0aa16776657273696f6e02")  # varint 10, {"version": 2}
_CARV2_HEADER = struct.Struct("<16sQQQ")  # characteristics, data offset/size, index offset
_MAX_CBOR_DEPTH = 16

# -- DAG-CBOR, just enough for CAR headers --------------------------------------------------


def _cbor_head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes((major << 5 | n,))
    for extra, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * size):
            return bytes((major << 5 | extra,)) + n.to_bytes(size, "big")
    raise ValueError("CBOR length too large")


def encode_header(roots: Iterable[CID], version: int = 1) -> bytes:
    """Canonical DAG-CBOR ``{"roots": [...], "version": 1}`` ("roots" sorts first: shorter)."""
    roots = list(roots)
    out = bytearray(b"\xa2\x65roots" + _cbor_head(4, len(roots)))
    for cid in roots:
        raw = b"\x00" + bytes(cid)  # tag 42 holds a byte string: 0x00 (identity multibase), CID
        out += b"\xd8\x2a" + _cbor_head(2, len(raw)) + raw
    out += b"\x67version" + _cbor_head(0, version)
    return bytes(out)


class _CBORDecoder:
    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def _take(self, n: int) -> bytes:
        if n > len(self.buf) - self.pos:
            raise CARError("CAR header: CBOR item runs past the end of the header")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def _head(self) -> tuple[int, int]:
        first = self._take(1)[0]
        major, info = first >> 5, first & 31
        if info < 24:
            return major, info
        if info <= 27:
            size = 1 << (info - 24)
            return major, int.from_bytes(self._take(size), "big")
        raise CARError("CAR header: indefinite-length or reserved CBOR item (not DAG-CBOR)")

    def item(self, depth: int = 0) -> object:
        if depth > _MAX_CBOR_DEPTH:
            raise CARError("CAR header: CBOR nested too deeply")
        major, n = self._head()
        if major == 0:
            return n
        if major == 1:
            return -1 - n
        if major == 2:
            return self._take(n)
        if major == 3:
            try:
                return self._take(n).decode("utf-8")
            except UnicodeDecodeError:
                raise CARError("CAR header: invalid UTF-8 string") from None
        if major in (4, 5):
            if n > len(self.buf) - self.pos:  # every item takes at least one byte
                raise CARError("CAR header: CBOR container longer than the header")
            if major == 4:
                return [self.item(depth + 1) for _ in range(n)]
            out: dict[object, object] = {}
            for _ in range(n):
                key = self.item(depth + 1)
                if not isinstance(key, str):
                    raise CARError("CAR header: map key is not a string")
                out[key] = self.item(depth + 1)
            return out
        if major == 6:
            if n != 42:
                raise CARError(f"CAR header: unsupported CBOR tag {n}")
            raw = self.item(depth + 1)
            if not isinstance(raw, bytes) or raw[:1] != b"\x00":
                raise CARError("CAR header: tag 42 must hold 0x00 + binary CID")
            try:
                return CID.from_bytes(raw[1:])
            except CIDError as exc:
                raise CARError(f"CAR header: bad root CID: {exc}") from None
        # major 7: simple values and floats
        if n in (20, 21, 22):
            return {20: False, 21: True, 22: None}[n]
        raise CARError("CAR header: unsupported CBOR simple value or float")


def decode_header(buf: bytes) -> dict[object, object]:
    dec = _CBORDecoder(buf)
    header = dec.item()
    if dec.pos != len(buf):
        raise CARError("CAR header: trailing bytes after the CBOR map")
    if not isinstance(header, dict):
        raise CARError("CAR header is not a CBOR map")
    return header


# -- writing --------------------------------------------------------------------------------


def car_chunks(roots: list[CID], blocks: Iterable[tuple[CID, bytes]]) -> Iterator[bytes]:
    """A CARv1 as a stream of byte strings (the header, then each section's length and CID,
    then its block), for a sink that pulls, such as a streamed HTTP request body."""
    header = encode_header(roots)
    yield encode_varint(len(header)) + header
    for cid, block in blocks:
        raw = bytes(cid)
        yield encode_varint(len(raw) + len(block)) + raw
        yield block


def write_car(out: BinaryIO, roots: list[CID], blocks: Iterable[tuple[CID, bytes]]) -> int:
    """Stream a CARv1 to ``out``; return the number of bytes written."""
    return sum(out.write(chunk) or 0 for chunk in car_chunks(roots, blocks))


def export_car(
    store: BlockGetter,
    root: str | CID,
    out: BinaryIO,
    *,
    scope: Scope = "all",
    entity_bytes: tuple[int, int | None] | None = None,
    dups: bool = False,
) -> int:
    """Write a CARv1 of ``CID[/path]`` (roots = the path's root CID); return bytes written."""
    blocks = car_blocks(store, root, scope=scope, entity_bytes=entity_bytes, dups=dups)
    return write_car(out, [parse_path(root)[0]], blocks)


# -- reading --------------------------------------------------------------------------------


class _Input:
    """A byte stream with an offset, exact reads and an optional end (a CARv2 payload)."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.offset = 0
        self.end: int | None = None

    def read(self, n: int) -> bytes:
        if self.end is not None:
            n = min(n, self.end - self.offset)
        parts = []
        want = n
        while want > 0:
            chunk = self.raw.read(want)
            if not chunk:
                break
            parts.append(chunk)
            want -= len(chunk)
        data = b"".join(parts)
        self.offset += len(data)
        return data

    def exact(self, n: int, what: str) -> bytes:
        at = self.offset
        data = self.read(n)
        if len(data) != n:
            raise CARError(f"truncated CAR: {what} at offset {at} needs {n} bytes, got {len(data)}")
        return data

    def varint(self, what: str) -> int | None:
        """Read an unsigned varint; None at a clean end of stream (or of the payload)."""
        at = self.offset
        value = shift = 0
        for i in range(9):
            b = self.read(1)
            if not b:
                if i == 0:
                    return None
                raise CARError(f"truncated CAR: {what} varint at offset {at}")
            value |= (b[0] & 0x7F) << shift
            if not b[0] & 0x80:
                if b[0] == 0 and i > 0:
                    raise CARError(f"bad CAR: {what} varint at offset {at} is not minimal")
                return value
            shift += 7
        raise CARError(f"bad CAR: {what} varint at offset {at} is longer than 9 bytes")

    def skip(self, n: int, what: str) -> None:
        while n > 0:
            step = min(n, 1 << 16)
            self.exact(step, what)
            n -= step


class CarReader:
    """Iterate a CARv1 or CARv2 stream as verified (cid, block) pairs; ``roots`` is read at
    construction. Limits: ``max_header`` bytes of header, ``max_section`` bytes per block."""

    def __init__(
        self,
        stream: BinaryIO,
        *,
        max_header: int = MAX_HEADER_SIZE,
        max_section: int = MAX_SECTION_SIZE,
    ) -> None:
        self._in = _Input(stream)
        self._max_header = max_header
        self._max_section = max_section
        self.blocks = 0
        header = self._header()
        self.version = 1
        if header.get("version") == 2 and type(header.get("version")) is int:
            self._enter_v2()
            self.version = 2
            header = self._header()
        version = header.get("version")
        if type(version) is not int or version != 1:  # (True == 1 in Python)
            raise CARError(f"unsupported CAR version {version!r}")
        roots = header.get("roots")
        if not isinstance(roots, list) or not all(isinstance(r, CID) for r in roots):
            raise CARError("CAR header: roots must be a list of CIDs")
        self.roots: list[CID] = roots

    def _header(self) -> dict[object, object]:
        length = self._in.varint("header length")
        if length is None or length == 0:
            raise CARError("not a CAR: empty stream or empty header")
        if length > self._max_header:
            raise CARError(f"CAR header of {length} bytes exceeds the {self._max_header} limit")
        return decode_header(self._in.exact(length, "header"))

    def _enter_v2(self) -> None:
        if self._in.offset != len(CARV2_PRAGMA):
            raise CARError("CAR header says version 2 but is not the CARv2 pragma")
        raw = self._in.exact(_CARV2_HEADER.size, "CARv2 header")
        _chars, data_offset, data_size, _index = _CARV2_HEADER.unpack(raw)
        here = self._in.offset
        if data_offset < here:
            raise CARError(f"CARv2 data offset {data_offset} points into its own header")
        self._in.skip(data_offset - here, "CARv2 padding")
        self._in.end = data_offset + data_size

    def __iter__(self) -> Iterator[tuple[CID, bytes]]:
        inp = self._in
        while True:
            at = inp.offset
            length = inp.varint("section length")
            if length is None:
                if inp.end is not None and inp.offset < inp.end:
                    raise CARError(f"truncated CARv2: payload ends at {inp.offset}, not {inp.end}")
                return
            if length == 0 or length > self._max_section:
                raise CARError(f"bad CAR section length {length} at offset {at}")
            section = inp.exact(length, "section")
            try:
                cid, pos = CID.read(section)
            except CIDError as exc:
                raise CARError(f"bad CID in CAR section at offset {at}: {exc}") from None
            if pos > length:  # CID.read checks the digest fits, but not against our slice
                raise CARError(f"CID overruns its CAR section at offset {at}")
            block = section[pos:]
            if len(block) > MAX_BLOCK_SIZE:
                raise CARError(f"block {cid} at offset {at} is over {MAX_BLOCK_SIZE} bytes")
            if not cid.verify(block):
                raise CARError(f"block {cid} at offset {at} does not match its CID")
            self.blocks += 1
            yield cid, block


def read_car(stream: BinaryIO, **limits: int) -> CarReader:
    """Open a CAR stream: header parsed and checked now, blocks verified as they are read."""
    return CarReader(stream, **limits)


def import_car(store: Blockstore, stream: BinaryIO) -> list[CID]:
    """Verify and store every block of a CAR; return its roots.

    A bad CAR raises ``CARError`` at the first bad section. The blocks before it are stored and
    synced: each was verified, and content addressing makes a valid block harmless even when
    the DAG it belongs to is incomplete (nothing refers to it until a complete import does).
    """
    reader = read_car(stream)
    try:
        for cid, block in reader:
            store.put(cid, block, verify=False)  # the reader just verified it
    except CARError as exc:
        raise CARError(f"{exc} (after {reader.blocks} valid blocks)") from None
    finally:
        store.sync()
    return reader.roots


__all__ = [
    "SCOPES",
    "CarReader",
    "Scope",
    "car_blocks",
    "car_chunks",
    "decode_header",
    "encode_header",
    "entity_range",
    "export_car",
    "import_car",
    "read_car",
    "write_car",
]
