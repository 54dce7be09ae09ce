"""SerialEM's ``SERI`` extended header, decoded by hand (``mrcfile`` does not know it).

Layout (IMOD ``mrc_format.txt``): header bytes 128-131 hold two int16, ``nint`` = bytes per
section and ``nreal`` = bit flags saying which values each section holds. The values follow
one another in bit order, all in the file's byte order:

=====  =======  ==========================================================
 bit    bytes    value
=====  =======  ==========================================================
   1       2     tilt angle × 100 (int16)
   2       6     montage piece coordinates x, y, z (3 × int16)
   4       4     stage x, y × 25 (2 × int16)
   8       2     magnification / 100 (int16)
  16       2     intensity × 25000 (int16)
  32       4     exposure dose, e/Å², a float packed in two int16 (see below)
=====  =======  ==========================================================

Higher bits are other values stored *after* these, so the first six can be read without
knowing their sizes; ``nint`` says where the next section starts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["SeriValues", "decode_seri", "looks_like_serialem", "shorts_to_float"]

# (flag, bytes) of the values that precede any others, in storage order.
_LAYOUT = ((1, 2), (2, 6), (4, 4), (8, 2), (16, 2), (32, 4))
_KNOWN_FLAGS = 0x3F


@dataclass(frozen=True, slots=True)
class SeriValues:
    """Per-section values of a SERI extended header (None: the flag is not set)."""

    tilt_angles: tuple[float, ...] | None
    magnifications: tuple[float, ...] | None
    doses: tuple[float, ...] | None  # e/Å² per section


def shorts_to_float(s1: int, s2: int) -> float:
    """SerialEM's float-in-two-shorts: ``s1`` holds the sign and the high bits of a 23-bit
    mantissa, ``s2`` the low 8 bits plus 256 × the power-of-two exponent, with the exponent's
    sign as its own. (Not IEEE: the format predates SerialEM writing floats.)"""
    mantissa = abs(s1) * 256 + abs(s2) % 256
    exponent = abs(s2) // 256
    if s2 < 0:
        exponent = -exponent
    value = math.ldexp(float(mantissa), exponent)
    return -value if s1 < 0 else value


def looks_like_serialem(nint: int, nreal: int) -> bool:
    """Old SerialEM files (before MRC2014's ``exttyp``) carry the same layout unlabelled; IMOD
    recognises them by ``nreal`` holding only known flags whose values fit in ``nint`` bytes.
    (The other old layout, Agard's, counts ints and floats: its sizes rarely fit this test.)"""
    if nint <= 0 or nreal <= 0 or nreal & ~_KNOWN_FLAGS:
        return False
    return _bytes_for(nreal) <= nint


def _bytes_for(flags: int) -> int:
    return sum(size for flag, size in _LAYOUT if flags & flag)


def decode_seri(
    data: bytes, *, sections: int, nint: int, nreal: int, byteorder: Literal["<", ">"]
) -> SeriValues:
    """Decode ``sections`` sections of ``nint`` bytes each from ``data``.

    Raises ValueError (the caller names the file) when the header fields cannot describe the
    data: ``nint`` too small for the flags, or fewer than ``sections × nint`` bytes.
    """
    if nint <= 0:
        raise ValueError(f"SERI extended header has {nint} bytes per section (nint)")
    if nreal < 0:
        raise ValueError(f"SERI extended header has negative flags (nreal = {nreal})")
    needed = _bytes_for(nreal)
    if needed > nint:
        raise ValueError(f"SERI flags {nreal} need {needed} bytes per section but nint is {nint}")
    if sections * nint > len(data):
        raise ValueError(
            f"extended header too short: {sections} sections x {nint} bytes (nint) = "
            f"{sections * nint} bytes, but it has {len(data)}"
        )
    if sections == 0:
        return SeriValues(None, None, None)
    raw = np.frombuffer(data, dtype=np.uint8, count=sections * nint).reshape(sections, nint)
    short = np.dtype(np.int16).newbyteorder(byteorder)

    def shorts_at(offset: int, count: int) -> np.ndarray:
        # A contiguous copy of the columns, reinterpreted as int16 in the file's byte order.
        columns = np.ascontiguousarray(raw[:, offset : offset + 2 * count])
        return columns.view(short).astype(np.int64).reshape(sections, count)

    offsets: dict[int, int] = {}
    offset = 0
    for flag, size in _LAYOUT:
        if nreal & flag:
            offsets[flag] = offset
            offset += size

    tilts = mags = doses = None
    if 1 in offsets:
        tilts = tuple(round(int(v) / 100, 2) for v in shorts_at(offsets[1], 1)[:, 0])
    if 8 in offsets:
        mags = tuple(float(int(v) * 100) for v in shorts_at(offsets[8], 1)[:, 0])
    if 32 in offsets:
        pairs = shorts_at(offsets[32], 2)
        doses = tuple(shorts_to_float(int(a), int(b)) for a, b in pairs)
    return SeriValues(tilts, mags, doses)
