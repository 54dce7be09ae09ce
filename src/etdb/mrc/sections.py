"""Sections of an MRC file read from any seekable stream: the header, then one section's bytes.

The slice viewer shows reconstructions and tilt series that are 1-5 GB each and live in the
blockstore, not on a plain disk: the stream is usually the exporter's ranged reader
(:class:`etdb.content.exporter.UnixFSFileReader`), where a seek is cheap (a few small blocks on
the path to one leaf) and every byte read is a block fetched and re-hashed. So this module reads
the 1024-byte header (:mod:`etdb.mrc.header`: byte order, modes, sizes), at most
:data:`MAX_EXTENDED_HEADER` bytes of the extended header (tilt angles), and then exactly the
``nx * ny * itemsize`` bytes of the one section asked for: never the file. Data start after the
header and ``nsymbt`` bytes of extended header; section ``z`` starts ``z * nx * ny * itemsize``
bytes later. Only grayscale modes (0, 1, 2, 6, 12) have sections to read.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from etdb.mrc.errors import MrcError
from etdb.mrc.extended import is_fei, is_serialem, read_extended, viewer_tilt_angles
from etdb.mrc.header import (
    HEADER_BYTES,
    RawHeader,
    Stream,
    check_size,
    image_type,
    parse_header,
    read_exactly,
    readinto_exactly,
)

__all__ = ["MAX_PIXELS", "MrcLayout", "read_layout", "read_section"]

#: Sections larger than this are refused instead of allocating them (100 M pixels is 400 MB of
#: float32; the largest detectors write 24 M pixel frames).
MAX_PIXELS = 100_000_000
#: Most extended-header bytes read for tilt angles (FEI: 768-1024 bytes per section).
MAX_EXTENDED_HEADER = 16 << 20

Kind = Literal["volume", "tilt series", "image"]


@dataclass(frozen=True, slots=True)
class MrcLayout:
    """Where the sections of one MRC file are and how to read them."""

    nx: int
    ny: int
    nz: int
    mode: int
    dtype: np.dtype[Any]  # with the file's byte order
    data_offset: int  # 1024 + nsymbt
    ispg: int
    exttyp: str | None
    voxel_size: tuple[float, float, float] | None  # Å, when the header sets it
    tilt_angles: tuple[float, ...] | None = None  # degrees per section, when known

    @property
    def section_bytes(self) -> int:
        return self.nx * self.ny * self.dtype.itemsize

    @property
    def kind(self) -> Kind:
        """``ispg`` 0 means images: a stack of them is a tilt series (or movie frames)."""
        if self.tilt_angles is not None or (self.ispg == 0 and self.nz > 1):
            return "tilt series"
        return "image" if self.nz == 1 else "volume"

    @property
    def default_z(self) -> int:
        """The middle of a volume; the least tilted image of a tilt series."""
        angles = self.tilt_angles
        if angles:
            return min(range(len(angles)), key=lambda i: abs(angles[i]))
        return self.nz // 2

    def section_offset(self, z: int) -> int:
        return self.data_offset + z * self.section_bytes

    def info(self) -> dict[str, Any]:
        return {
            "nx": self.nx,
            "ny": self.ny,
            "nz": self.nz,
            "mode": self.mode,
            "voxel_size": list(self.voxel_size) if self.voxel_size else None,
            "kind": self.kind,
            "default_z": self.default_z,
            "tilt_angles": list(self.tilt_angles) if self.tilt_angles else None,
        }

    def with_tilt_angles(self, angles: tuple[float, ...] | None) -> MrcLayout:
        return MrcLayout(
            self.nx, self.ny, self.nz, self.mode, self.dtype, self.data_offset, self.ispg,
            self.exttyp, self.voxel_size, angles,
        )  # fmt: skip


# -- reading ------------------------------------------------------------------------------------


def read_layout(stream: Stream, size: int | None = None, *, name: str = "file") -> MrcLayout:
    """Parse the header of the MRC file in ``stream`` (and FEI/SerialEM tilt angles).

    ``size`` is the file's length (found by seeking to the end when not given): a file too
    short to hold every section it declares is refused here, not when a section comes up short.
    """
    if size is None:
        size = stream.seek(0, io.SEEK_END)
    stream.seek(0)
    raw = parse_header(read_exactly(stream, HEADER_BYTES), name)
    code = image_type(raw, name)
    if raw.nx * raw.ny > MAX_PIXELS:
        raise MrcError(
            name,
            f"sections of {raw.nx} x {raw.ny} pixels are too large to show (limit {MAX_PIXELS:,})",
        )
    check_size(raw, size, name)
    layout = MrcLayout(
        raw.nx, raw.ny, raw.nz, raw.mode, np.dtype(code).newbyteorder(raw.byteorder),
        raw.data_offset, raw.ispg, raw.exttyp, raw.voxel_size,
    )  # fmt: skip
    angles = _tilt_angles(stream, raw)
    return layout.with_tilt_angles(angles) if angles else layout


def read_section(stream: Stream, layout: MrcLayout, z: int, *, name: str = "file") -> np.ndarray:
    """Section ``z`` as a (ny, nx) array in native byte order; reads only its bytes."""
    if not 0 <= z < layout.nz:
        raise MrcError(name, f"z {z} is out of range: the file has sections 0 to {layout.nz - 1}")
    buffer = bytearray(layout.section_bytes)
    stream.seek(layout.section_offset(z))
    got = readinto_exactly(stream, memoryview(buffer))
    if got < len(buffer):
        raise MrcError(name, f"truncated: section {z} ends after {got:,} of {len(buffer):,} bytes")
    section = np.frombuffer(buffer, dtype=layout.dtype).reshape(layout.ny, layout.nx)
    return section.astype(layout.dtype.newbyteorder("="), copy=False)


def _tilt_angles(stream: Stream, raw: RawHeader) -> tuple[float, ...] | None:
    if raw.nsymbt == 0 or raw.nsymbt > MAX_EXTENDED_HEADER or not (is_fei(raw) or is_serialem(raw)):
        return None
    return viewer_tilt_angles(read_extended(stream, raw), raw)
