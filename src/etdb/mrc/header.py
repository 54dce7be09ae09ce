"""The 1024-byte MRC header: the one mode table, the one byte-order rule, sizes checked.

Format: MRC2014 (https://www.ccpem.ac.uk/mrc_format/mrc2014.php), fields by
``mrcfile.dtypes.HEADER_DTYPE``. ``mrcfile`` in permissive mode turns most problems into
warnings and reads on (and would try to allocate whatever extended-header size a corrupt header
claims), and the slice viewer reads headers from streams, not files; so every reader here
parses the header with :func:`parse_header` and checks it against the file's length with
:func:`check_size` before anything else is read. Refused, with a message naming the file: a
header shorter than 1024 bytes, a mode valid in neither byte order (old IMOD files lack the
``MAP`` stamp, so its absence alone is not enough), dimensions below 1, a negative extended
header size, and extended header or data blocks that run past the end.

Byte order: the machine stamp's (``DD``/``DA`` little, ``11`` big; unknown: little, as
mrcfile does), unless the mode is valid only in the other order (a stamp for the wrong byte
order is seen in the wild), as mrcfile and IMOD read such files.
"""

from __future__ import annotations

import contextlib
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from mrcfile.constants import MAP_ID
from mrcfile.dtypes import HEADER_DTYPE
from mrcfile.utils import byte_order_from_machine_stamp

from etdb.mrc.errors import MrcError

__all__ = [
    "HEADER_BYTES",
    "MODES",
    "Mode",
    "RawHeader",
    "check_size",
    "image_type",
    "parse_header",
    "read_exactly",
    "read_raw_header",
    "readinto_exactly",
]

HEADER_BYTES = 1024
ByteOrder = Literal["<", ">"]


class Stream(Protocol):
    """What the readers need of a file: a binary file, or the exporter's ranged reader."""

    def seek(self, offset: int, whence: int = ..., /) -> int: ...

    def readinto(self, buffer: memoryview, /) -> int | None: ...


@dataclass(frozen=True, slots=True)
class Mode:
    name: str  # numpy-style name of the voxel type ("int16", "complex64", ...)
    voxel_bytes: float  # 101 packs two 4-bit voxels per byte
    image: str | None  # numpy type code when a section is a grayscale image; else None


#: mode -> what its voxels are. Modes 0, 1, 2, 6, 12 are grayscale images; 3, 4 (complex),
#: 16 (RGB) and 101 (4-bit) are read for their headers only.
MODES: dict[int, Mode] = {
    0: Mode("int8", 1, "i1"),  # signed since MRC2014; see RawHeader.unsigned_bytes
    1: Mode("int16", 2, "i2"),
    2: Mode("float32", 4, "f4"),
    3: Mode("complex int16", 4, None),
    4: Mode("complex64", 8, None),
    6: Mode("uint16", 2, "u2"),
    12: Mode("float16", 2, "f2"),
    16: Mode("rgb8", 3, None),
    101: Mode("uint4", 0.5, None),
}
_IMOD_STAMP = 1146047817  # "IMOD" as a little-endian int32 at byte 152
_IMOD_SIGNED_BYTES = 1  # imodFlags bit: mode 0 data are signed
_MRC2014 = range(20140, 20150)


@dataclass(frozen=True, slots=True)
class RawHeader:
    nx: int
    ny: int
    nz: int
    mode: int
    dtype: str  # MODES[mode].name
    ispg: int
    nsymbt: int  # extended header bytes
    exttyp: str | None
    nint: int  # SerialEM: bytes per section (header bytes 128-129)
    nreal: int  # SerialEM: flags (header bytes 130-131)
    byteorder: ByteOrder
    voxel_size: tuple[float, float, float] | None = None  # Å (cella / mx, ...), when set
    labels: tuple[str, ...] = ()  # the non-empty ones of the first nlabl (at most 10)
    #: mode 0 data are unsigned: IMOD's files without its signed flag, and pre-MRC2014 files
    #: whose header range says so (before MRC2014 most software read mode 0 as unsigned)
    unsigned_bytes: bool = False

    @property
    def data_offset(self) -> int:
        return HEADER_BYTES + self.nsymbt

    @property
    def data_bytes(self) -> int:
        # Mode 101 rows start on a byte boundary: an odd row ends with half a byte of padding.
        row = (
            (self.nx + 1) // 2 if self.mode == 101 else self.nx * int(MODES[self.mode].voxel_bytes)
        )
        return row * self.ny * self.nz


def read_raw_header(path: Path) -> RawHeader:
    """The header of the file at ``path``, checked against its length (MrcError otherwise)."""
    try:
        with path.open("rb") as fh:
            data = fh.read(HEADER_BYTES)
            size = os.fstat(fh.fileno()).st_size
    except OSError as exc:
        raise MrcError(path, f"cannot read: {exc.strerror or exc}") from None
    raw = parse_header(data, path)
    check_size(raw, size, path)
    return raw


def parse_header(data: bytes, where: str | os.PathLike[str]) -> RawHeader:
    """The header in the first 1024 bytes of ``data``; MrcError naming ``where`` if it cannot
    be one. Sizes against the file are :func:`check_size`'s."""
    if len(data) < HEADER_BYTES:
        raise MrcError(
            where, f"truncated header: {len(data)} bytes, an MRC header has {HEADER_BYTES}"
        )
    order = byte_order(data)
    header = np.frombuffer(data, dtype=HEADER_DTYPE.newbyteorder(order), count=1)[0]
    fields = _fields(data, order)
    nx, ny, nz, mode = fields["nx"], fields["ny"], fields["nz"], fields["mode"]
    if mode not in MODES or min(nx, ny, nz) < 1:
        stamped = bytes(header["map"])[:3] == MAP_ID[:3]
        why = "no 'MAP' stamp at byte 208" if not stamped else "the 'MAP' stamp is there"
        raise MrcError(
            where, f"not an MRC file ({why}; mode {mode}, dimensions {nx} x {ny} x {nz})"
        )
    nsymbt = fields["nsymbt"]
    if nsymbt < 0:
        raise MrcError(where, f"extended header size is negative ({nsymbt})")
    exttyp = bytes(header["exttyp"]).replace(b"\x00", b" ").strip().decode("ascii", "replace")
    nint, nreal = struct.unpack_from(order + "hh", data, 128)
    return RawHeader(
        nx=nx, ny=ny, nz=nz, mode=mode, dtype=MODES[mode].name, ispg=fields["ispg"],
        nsymbt=nsymbt, exttyp=exttyp or None, nint=nint, nreal=nreal, byteorder=order,
        voxel_size=_voxel_size(header), labels=_labels(header),
        unsigned_bytes=_unsigned_bytes(data, header, order),
    )  # fmt: skip


def check_size(raw: RawHeader, size: int, where: str | os.PathLike[str]) -> None:
    """MrcError unless a file of ``size`` bytes holds the blocks ``raw`` declares."""
    if raw.data_offset > size:
        raise MrcError(
            where,
            f"truncated extended header: the header says {raw.nsymbt} bytes, "
            f"the file has {size - HEADER_BYTES} after the main header",
        )
    if raw.data_offset + raw.data_bytes > size:
        raise MrcError(
            where,
            f"truncated data block: {raw.nx} x {raw.ny} x {raw.nz} {raw.dtype} needs "
            f"{raw.data_bytes:,} bytes, the file has {size - raw.data_offset:,}",
        )


def image_type(raw: RawHeader, where: str | os.PathLike[str]) -> str:
    """The numpy type code of one voxel of a grayscale image (the file's byte order applied by
    the caller); MrcError naming the file for a mode that holds no grayscale image."""
    code = MODES[raw.mode].image
    if code is None:
        raise MrcError(where, f"mode {raw.mode} ({raw.dtype}) cannot be shown as a grayscale image")
    return "u1" if raw.unsigned_bytes else code


def byte_order(data: bytes) -> ByteOrder:
    """``"<"`` or ``">"``: the machine stamp's, unless the mode is valid only the other way."""
    order: ByteOrder = "<"  # unknown stamp: little-endian first, as mrcfile does
    with contextlib.suppress(ValueError):
        order = (
            ">"
            if byte_order_from_machine_stamp(np.frombuffer(data, np.uint8, 4, 212)) == ">"
            else "<"
        )
    other: ByteOrder = ">" if order == "<" else "<"
    if _fields(data, order)["mode"] not in MODES and _fields(data, other)["mode"] in MODES:
        return other
    return order


def read_exactly(stream: Stream, n: int) -> bytes:
    buffer = bytearray(n)
    return bytes(buffer[: readinto_exactly(stream, memoryview(buffer))])


def readinto_exactly(stream: Stream, view: memoryview) -> int:
    """Fill ``view`` (a raw stream may return less than asked); the count read."""
    done = 0
    while done < len(view):
        n = stream.readinto(view[done:])
        if not n:
            break
        done += n
    return done


def _fields(data: bytes, order: ByteOrder) -> dict[str, int]:
    ints = struct.unpack_from(f"{order}24i", data, 0)
    names = {"nx": 0, "ny": 1, "nz": 2, "mode": 3, "ispg": 22, "nsymbt": 23}
    return {name: ints[word] for name, word in names.items()}


def _voxel_size(header: Any) -> tuple[float, float, float] | None:
    sizes = []
    for cell, samples in (("x", "mx"), ("y", "my"), ("z", "mz")):
        length, count = float(header["cella"][cell]), int(header[samples])
        if count <= 0 or not math.isfinite(length) or length <= 0:
            return None
        # float32 in the file: 33.33 reads as 33.3299980; 4 decimals of an Å is plenty.
        sizes.append(round(length / count, 4))
    return sizes[0], sizes[1], sizes[2]


def _labels(header: Any) -> tuple[str, ...]:
    count = min(max(int(header["nlabl"]), 0), 10)
    labels = (
        bytes(label).decode("ascii", errors="replace").replace("\x00", "").strip()
        for label in header["label"][:count]
    )
    return tuple(label for label in labels if label)


def _unsigned_bytes(data: bytes, header: Any, order: str) -> bool:
    if int(header["mode"]) != 0:
        return False
    stamp, flags = struct.unpack_from(order + "ii", data, 152)
    if stamp == _IMOD_STAMP:
        return not flags & _IMOD_SIGNED_BYTES
    if int(header["nversion"]) in _MRC2014:
        return False
    return float(header["dmin"]) >= 0 and float(header["dmax"]) > 127
