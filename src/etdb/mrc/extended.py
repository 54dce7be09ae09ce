"""Extended headers: FEI1/FEI2 (Thermo Fisher) tables and SerialEM's SERI, from their bytes.

FEI's layouts are ``mrcfile``'s (``mrcfile.dtypes.get_ext_header_dtype``): one fixed-size
record per section, SI units, the first field (``Metadata size``) the record's size. SERI is
decoded by :mod:`etdb.mrc.serialem`. Both readers are strict (MrcError naming the file for an
extended header that cannot describe the file's sections); the slice viewer, which only labels
sections with angles, uses :func:`viewer_tilt_angles`, which is lenient.
"""

from __future__ import annotations

import math
import os

import numpy as np
from mrcfile.dtypes import get_ext_header_dtype

from etdb.mrc.errors import MrcError
from etdb.mrc.header import HEADER_BYTES, RawHeader, Stream, read_exactly
from etdb.mrc.serialem import SeriValues, decode_seri, looks_like_serialem

__all__ = [
    "FEI_TYPES",
    "MAX_TILT",
    "fei_table",
    "is_fei",
    "is_serialem",
    "read_extended",
    "seri_values",
    "viewer_tilt_angles",
]

FEI_TYPES = ("FEI1", "FEI2")
MAX_TILT = 90.0  # |angle| beyond this is not a tilt angle


def read_extended(stream: Stream, raw: RawHeader, limit: int | None = None) -> bytes:
    """The extended header's bytes (at most ``limit``); ``raw`` is already checked against
    the file's size, so a short read is the stream's fault and shows up as too few bytes."""
    stream.seek(HEADER_BYTES)
    return read_exactly(stream, raw.nsymbt if limit is None else min(raw.nsymbt, limit))


def is_fei(raw: RawHeader) -> bool:
    return raw.exttyp in FEI_TYPES


def is_serialem(raw: RawHeader) -> bool:
    """Labelled SERI, or an old unlabelled SerialEM header (see ``looks_like_serialem``)."""
    if raw.exttyp == "SERI":
        return True
    return raw.exttyp is None and raw.nsymbt > 0 and looks_like_serialem(raw.nint, raw.nreal)


def fei_table(data: bytes, raw: RawHeader, where: str | os.PathLike[str]) -> np.ndarray:
    """The FEI records of the ``nz`` sections (a structured array, mrcfile's field names)."""
    exttyp = raw.exttyp or ""
    dtype = get_ext_header_dtype(exttyp.encode(), raw.byteorder)
    need = raw.nz * dtype.itemsize
    if len(data) < need:
        raise MrcError(
            where,
            f"extended header too short: {exttyp} needs {raw.nz} sections x "
            f"{dtype.itemsize} bytes = {need}, it has {len(data)}",
        )
    table = np.frombuffer(data, dtype=dtype, count=raw.nz)
    declared = int(table["Metadata size"][0])
    if declared != dtype.itemsize:
        raise MrcError(
            where,
            f"{exttyp} extended header says {declared} bytes per section, "
            f"{exttyp} has {dtype.itemsize}",
        )
    return table


def seri_values(data: bytes, raw: RawHeader, where: str | os.PathLike[str]) -> SeriValues:
    try:
        return decode_seri(
            data, sections=raw.nz, nint=raw.nint, nreal=raw.nreal, byteorder=raw.byteorder
        )
    except ValueError as exc:
        raise MrcError(where, str(exc)) from None


def viewer_tilt_angles(data: bytes, raw: RawHeader) -> tuple[float, ...] | None:
    """Per-section tilt angles for a viewer's labels, or None: an extended header that does
    not decode is ignored (the publishing checks, ``etdb.mrc.facts``, refuse such files), and
    a stack whose every angle is 0 is not a tilt series (FEI writes 0 when untilted)."""
    if raw.ispg != 0:
        return None
    try:
        if is_fei(raw):
            angles = tuple(float(a) for a in fei_table(data, raw, "")["Alpha tilt"])
        elif is_serialem(raw):
            angles = seri_values(data, raw, "").tilt_angles or ()
        else:
            return None
    except MrcError:
        return None
    if len(angles) != raw.nz or all(a == 0 for a in angles):
        return None
    if not all(math.isfinite(a) and abs(a) <= MAX_TILT for a in angles):
        return None
    return tuple(round(a, 2) for a in angles)
