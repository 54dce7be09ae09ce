"""8-bit grayscale images as PNG files, written directly (the slice viewer's answers)."""

from __future__ import annotations

import struct
import zlib

import numpy as np

__all__ = ["encode_png"]


def encode_png(gray: np.ndarray) -> bytes:
    """An 8-bit grayscale PNG (RFC 2083: signature, IHDR, one IDAT, IEND), written directly.

    Micrographs are mostly noise, which deflate shrinks by a few percent for most of the
    encoding time (Pillow: 40 ms stored, 150 ms at level 1 for 1024 x 1024; this: 1 ms
    stored), while masks, phantoms and empty sections shrink many times: a sample of rows
    decides between stored (level 0) and level 1. Rows are written unfiltered (filter 0)."""
    if gray.dtype != np.uint8 or gray.ndim != 2:
        raise ValueError(f"encode_png wants a 2-d uint8 array, not {gray.ndim}-d {gray.dtype}")
    ny, nx = gray.shape
    rows = np.zeros((ny, nx + 1), np.uint8)  # each row starts with its filter type byte: 0
    rows[:, 1:] = gray
    ihdr = struct.pack(">IIBBBBB", nx, ny, 8, 0, 0, 0, 0)  # 8 bits, grayscale, no interlace
    idat = zlib.compress(rows.data, _png_level(gray))
    return _PNG_SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(data, zlib.crc32(kind))
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _png_level(gray: np.ndarray) -> int:
    sample = np.ascontiguousarray(gray[:: max(1, gray.shape[0] // 32)]).tobytes()
    return 1 if len(zlib.compress(sample, 1)) < 0.8 * len(sample) else 0
