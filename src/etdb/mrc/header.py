"""The 1024-byte MRC header, checked before ``mrcfile`` is trusted with the file.

``mrcfile`` in permissive mode turns most problems into warnings and reads on (and would try
to allocate whatever extended-header size a corrupt header claims). These checks refuse, with
a message naming the file, what cannot be a readable MRC file: a header shorter than 1024
bytes, no ``MAP`` stamp *and* no sensible mode/dimensions (old IMOD files lack the stamp, so
its absence alone is not enough), and extended header or data blocks that run past the end.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mrcfile.constants import MAP_ID
from mrcfile.dtypes import HEADER_DTYPE
from mrcfile.utils import byte_order_from_machine_stamp

from etdb.publish.mrcmeta.errors import MrcMetaError

__all__ = ["HEADER_BYTES", "MODES", "RawHeader", "read_raw_header"]

HEADER_BYTES = 1024

#: mode -> (name, bytes per voxel); 101 packs two 4-bit voxels per byte.
MODES: dict[int, tuple[str, float]] = {
    0: ("int8", 1),
    1: ("int16", 2),
    2: ("float32", 4),
    3: ("complex int16", 4),
    4: ("complex64", 8),
    6: ("uint16", 2),
    12: ("float16", 2),
    16: ("rgb8", 3),
    101: ("uint4", 0.5),
}


@dataclass(frozen=True, slots=True)
class RawHeader:
    nx: int
    ny: int
    nz: int
    mode: int
    dtype: str
    ispg: int
    nsymbt: int  # extended header bytes
    exttyp: str | None
    nint: int  # SerialEM: bytes per section (header bytes 128-129)
    nreal: int  # SerialEM: flags (header bytes 130-131)
    byteorder: str  # "<" or ">"


def read_raw_header(path: Path) -> RawHeader:
    try:
        with path.open("rb") as fh:
            data = fh.read(HEADER_BYTES)
            size = os.fstat(fh.fileno()).st_size
    except OSError as exc:
        raise MrcMetaError(path, f"cannot read: {exc.strerror or exc}") from None
    if len(data) < HEADER_BYTES:
        raise MrcMetaError(
            path, f"truncated header: {len(data)} bytes, an MRC header has {HEADER_BYTES}"
        )
    header = np.frombuffer(data, dtype=HEADER_DTYPE)[0]
    stamped = bytes(header["map"])[:3] == MAP_ID[:3]
    try:
        order = byte_order_from_machine_stamp(header["machst"])
    except ValueError:
        order = "<"  # unknown stamp: try little-endian first, as mrcfile does
    fields = _fields(data, order)
    if fields["mode"] not in MODES:
        # Some files in the wild have a machine stamp for the wrong byte order.
        other = ">" if order == "<" else "<"
        if _fields(data, other)["mode"] in MODES:
            order, fields = other, _fields(data, other)
    nx, ny, nz, mode = fields["nx"], fields["ny"], fields["nz"], fields["mode"]
    if mode not in MODES or min(nx, ny, nz) < 1:
        why = "no 'MAP' stamp at byte 208" if not stamped else "the 'MAP' stamp is there"
        raise MrcMetaError(
            path,
            f"not an MRC file ({why}; mode {mode}, dimensions {nx} x {ny} x {nz})",
        )
    nsymbt = fields["nsymbt"]
    if nsymbt < 0:
        raise MrcMetaError(path, f"extended header size is negative ({nsymbt})")
    if HEADER_BYTES + nsymbt > size:
        raise MrcMetaError(
            path,
            f"truncated extended header: the header says {nsymbt} bytes, "
            f"the file has {size - HEADER_BYTES} after the main header",
        )
    name, per_voxel = MODES[mode]
    # Mode 101 rows start on a byte boundary: an odd row ends with half a byte of padding.
    row = (nx + 1) // 2 if mode == 101 else nx * int(per_voxel)
    data_bytes = row * ny * nz
    if HEADER_BYTES + nsymbt + data_bytes > size:
        raise MrcMetaError(
            path,
            f"truncated data block: {nx} x {ny} x {nz} {name} needs {data_bytes} bytes, "
            f"the file has {size - HEADER_BYTES - nsymbt}",
        )
    exttyp = bytes(header["exttyp"]).replace(b"\x00", b" ").strip().decode("ascii", "replace")
    nint, nreal = np.frombuffer(data, dtype=f"{order}i2", count=2, offset=128).tolist()
    return RawHeader(
        nx=nx, ny=ny, nz=nz, mode=mode, dtype=name, ispg=fields["ispg"], nsymbt=nsymbt,
        exttyp=exttyp or None, nint=nint, nreal=nreal, byteorder=order,
    )  # fmt: skip


def _fields(data: bytes, order: str) -> dict[str, int]:
    ints = np.frombuffer(data, dtype=f"{order}i4", count=24).tolist()
    names = {"nx": 0, "ny": 1, "nz": 2, "mode": 3, "ispg": 22, "nsymbt": 23}
    return {name: ints[word] for name, word in names.items()}
