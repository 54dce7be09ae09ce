"""One section of an MRC file, read from any seekable stream, as an 8-bit grayscale image.

The slice viewer shows reconstructions and tilt series that are 1-5 GB each and live in the
blockstore, not on a plain disk: the stream is usually the exporter's ranged reader
(:class:`etdb.content.exporter.UnixFSFileReader`), where a seek is cheap (a few small blocks on
the path to one leaf) and every byte read is a block fetched and re-hashed. So this module reads
the 1024-byte header, at most a bounded part of the extended header (tilt angles), and then
exactly the ``nx * ny * itemsize`` bytes of the one section asked for: never the file.

Format (MRC2014, https://www.ccpem.ac.uk/mrc_format/mrc2014.php), header parsed with
``mrcfile.dtypes.HEADER_DTYPE``:

* byte order from the machine stamp (``DD`` little, ``11`` big; a file whose stamp is wrong
  or missing is read in the order in which its mode is valid, as mrcfile and IMOD do);
* data starts after the header and ``nsymbt`` bytes of extended header; section ``z`` starts
  ``z * nx * ny * itemsize`` bytes later;
* modes 0 (int8), 1 (int16), 2 (float32), 6 (uint16), 12 (float16). Mode 0 is signed since
  MRC2014; files IMOD wrote before it are unsigned unless IMOD's header flag says otherwise,
  and older files from other software are taken as unsigned when their header range says so.

Display (as IMOD and the key images of ``etdb.publish.media`` show sections): rows flipped
(MRC rows run bottom-up), box-filter downsampling to a maximum side, contrast from the 0.5 and
99.5 percentiles of a strided sample of what is shown, constant images mid grey.
"""

from __future__ import annotations

import io
import math
import struct
import zlib
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal

import numpy as np
from mrcfile.dtypes import HEADER_DTYPE, get_ext_header_dtype

from etdb.publish.mrcmeta.serialem import decode_seri, looks_like_serialem

__all__ = [
    "HEADER_BYTES",
    "MAX_PIXELS",
    "MODES",
    "MrcError",
    "MrcLayout",
    "contrast_limits",
    "downsample",
    "encode_png",
    "read_layout",
    "read_section",
    "render_section",
    "to_gray8",
]

HEADER_BYTES = 1024
#: Sections larger than this are refused instead of allocating them (100 M pixels is 400 MB of
#: float32; the largest detectors write 24 M pixel frames).
MAX_PIXELS = 100_000_000
#: Pixels the contrast percentiles are computed from (a strided sample beyond this).
MAX_SAMPLES = 1 << 18
#: Percentiles mapped to black and white.
LOW_PERCENTILE, HIGH_PERCENTILE = 0.5, 99.5
#: Most extended-header bytes read for tilt angles (FEI: 768-1024 bytes per section).
MAX_EXTENDED_HEADER = 16 << 20
#: mode -> numpy type (little-endian here; the file's byte order is applied per file).
MODES: dict[int, str] = {0: "i1", 1: "i2", 2: "f4", 6: "u2", 12: "f2"}
_OTHER_MODES = {3: "complex int16", 4: "complex float32", 16: "RGB", 101: "4-bit"}
_MAP_STAMP = b"MAP"
_IMOD_STAMP = 1146047817  # "IMOD" as a little-endian int32 at byte 152
_IMOD_SIGNED_BYTES = 1  # imodFlags bit: mode 0 data are signed
_MRC2014 = range(20140, 20150)

Kind = Literal["volume", "tilt series", "image"]


class MrcError(ValueError):
    """The stream is not an MRC file this viewer can show; the message names the file."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"{name}: {reason}")


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


def read_layout(stream: BinaryIO, size: int | None = None, *, name: str = "file") -> MrcLayout:
    """Parse the header of the MRC file in ``stream`` (and FEI/SerialEM tilt angles).

    ``size`` is the file's length (found by seeking to the end when not given): a file too
    short to hold every section it declares is refused here, not when a section comes up short.
    """
    if size is None:
        size = stream.seek(0, io.SEEK_END)
    stream.seek(0)
    data = _read_exactly(stream, HEADER_BYTES)
    if len(data) < HEADER_BYTES:
        raise MrcError(name, f"not an MRC file: {len(data)} bytes, an MRC header alone is 1024")
    order = _byte_order(data, name)
    header = np.frombuffer(data, dtype=HEADER_DTYPE.newbyteorder(order))[0]
    nx, ny, nz = int(header["nx"]), int(header["ny"]), int(header["nz"])
    mode, nsymbt, ispg = int(header["mode"]), int(header["nsymbt"]), int(header["ispg"])
    if min(nx, ny, nz) < 1:
        raise MrcError(name, f"not an MRC file: dimensions {nx} x {ny} x {nz}")
    if nx * ny > MAX_PIXELS:
        raise MrcError(
            name, f"sections of {nx} x {ny} pixels are too large to show (limit {MAX_PIXELS:,})"
        )
    if nsymbt < 0:
        raise MrcError(name, f"negative extended header size (nsymbt {nsymbt})")
    dtype = np.dtype(_type_code(data, header, mode, order, name)).newbyteorder(order)
    exttyp = bytes(header["exttyp"]).decode("ascii", "replace").strip("\x00 ") or None
    layout = MrcLayout(
        nx, ny, nz, mode, dtype, HEADER_BYTES + nsymbt, ispg, exttyp, _voxel_size(header)
    )
    need = layout.section_offset(nz)
    if size < need:
        raise MrcError(
            name,
            f"truncated: {nz} sections of {nx} x {ny} mode {mode} need {need:,} bytes, "
            f"the file has {size:,}",
        )
    angles = _tilt_angles(stream, data, layout, order)
    return layout.with_tilt_angles(angles) if angles else layout


def read_section(stream: BinaryIO, layout: MrcLayout, z: int, *, name: str = "file") -> np.ndarray:
    """Section ``z`` as a (ny, nx) array in native byte order; reads only its bytes."""
    if not 0 <= z < layout.nz:
        raise MrcError(name, f"z {z} is out of range: the file has sections 0 to {layout.nz - 1}")
    buffer = bytearray(layout.section_bytes)
    stream.seek(layout.section_offset(z))
    got = _readinto_exactly(stream, memoryview(buffer))
    if got < len(buffer):
        raise MrcError(name, f"truncated: section {z} ends after {got:,} of {len(buffer):,} bytes")
    section = np.frombuffer(buffer, dtype=layout.dtype).reshape(layout.ny, layout.nx)
    return section.astype(layout.dtype.newbyteorder("="), copy=False)


def _read_exactly(stream: BinaryIO, n: int) -> bytes:
    buffer = bytearray(n)
    return bytes(buffer[: _readinto_exactly(stream, memoryview(buffer))])


def _readinto_exactly(stream: BinaryIO, view: memoryview) -> int:
    """Fill ``view`` (a raw stream may return less than asked); the count read."""
    done = 0
    while done < len(view):
        n = stream.readinto(view[done:])  # type: ignore[attr-defined]
        if not n:
            break
        done += n
    return done


def _byte_order(data: bytes, name: str) -> str:
    stamp = data[212:214]
    order = {b"\x44\x44": "<", b"\x44\x41": "<", b"\x11\x11": ">"}.get(stamp, "<")
    if _mode_at(data, order) in MODES or _mode_at(data, order) in _OTHER_MODES:
        return order
    other = ">" if order == "<" else "<"
    mode = _mode_at(data, other)
    if mode in MODES or mode in _OTHER_MODES:
        return other  # a stamp for the wrong byte order, seen in the wild
    stamped = data[208:211] == _MAP_STAMP
    what = "an MRC file with an unknown" if stamped else "not an MRC file (no MAP stamp),"
    raise MrcError(name, f"{what} mode {_mode_at(data, order)}")


def _mode_at(data: bytes, order: str) -> int:
    return int(struct.unpack_from(order + "i", data, 12)[0])


def _type_code(data: bytes, header: Any, mode: int, order: str, name: str) -> str:
    if mode not in MODES:
        what = _OTHER_MODES.get(mode, "unknown")
        raise MrcError(name, f"mode {mode} ({what}) cannot be shown as a grayscale image")
    if mode != 0:
        return MODES[mode]
    stamp, flags = struct.unpack_from(order + "ii", data, 152)
    if stamp == _IMOD_STAMP:
        return "i1" if flags & _IMOD_SIGNED_BYTES else "u1"
    if int(header["nversion"]) in _MRC2014:
        return "i1"
    # Before MRC2014 mode 0 was read as unsigned by most software: trust the header's range.
    return "u1" if float(header["dmin"]) >= 0 and float(header["dmax"]) > 127 else "i1"


def _voxel_size(header: Any) -> tuple[float, float, float] | None:
    sizes = []
    for cell, samples in (("x", "mx"), ("y", "my"), ("z", "mz")):
        length, count = float(header["cella"][cell]), int(header[samples])
        if count <= 0 or not math.isfinite(length) or length <= 0:
            return None
        sizes.append(round(length / count, 4))
    return sizes[0], sizes[1], sizes[2]


def _tilt_angles(
    stream: BinaryIO, data: bytes, layout: MrcLayout, order: str
) -> tuple[float, ...] | None:
    """Per-section tilt angles from an FEI1/FEI2 or SerialEM extended header, else None.

    Only a label for the viewer: an extended header that does not decode is ignored (the
    publishing checks, ``etdb.publish.mrcmeta``, are where such files are refused)."""
    nsymbt = layout.data_offset - HEADER_BYTES
    if nsymbt == 0 or layout.ispg != 0 or nsymbt > MAX_EXTENDED_HEADER:
        return None
    nint, nreal = struct.unpack_from(order + "hh", data, 128)
    fei = layout.exttyp in ("FEI1", "FEI2")
    seri = layout.exttyp == "SERI" or (layout.exttyp is None and looks_like_serialem(nint, nreal))
    if not (fei or seri):
        return None
    stream.seek(HEADER_BYTES)
    ext = _read_exactly(stream, nsymbt)
    try:
        if fei:
            dtype = get_ext_header_dtype(layout.exttyp.encode(), order)  # type: ignore[union-attr]
            if len(ext) < layout.nz * dtype.itemsize:
                return None
            angles = tuple(float(a) for a in np.frombuffer(ext, dtype, layout.nz)["Alpha tilt"])
        else:
            values = decode_seri(ext, sections=layout.nz, nint=nint, nreal=nreal, byteorder=order)
            angles = values.tilt_angles or ()
    except (ValueError, KeyError, TypeError):
        return None
    if len(angles) != layout.nz or all(a == 0 for a in angles):
        return None  # FEI writes 0 for every untilted image: a stack, not a tilt series
    if not all(math.isfinite(a) and abs(a) <= 90 for a in angles):
        return None
    return tuple(round(a, 2) for a in angles)


# -- rendering ----------------------------------------------------------------------------------


def downsample(image: np.ndarray, max_size: int) -> np.ndarray:
    """Box-filter (area average) ``image`` by the smallest integer factor that brings its long
    side to at most ``max_size``; edge boxes average the pixels they have. Float32 out.

    Boxes are summed as ``factor`` strided slices per axis (each a vectorised pass over
    contiguous memory): several times faster than a reshape-mean or ``np.add.reduceat``."""
    factor = math.ceil(max(image.shape) / max_size)
    pixels = image.astype(np.float32, copy=False)
    if factor <= 1:
        return pixels
    ny, nx = pixels.shape
    out_y, out_x = -(-ny // factor), -(-nx // factor)
    if ny % factor or nx % factor:  # zeros add nothing to the sums; counts fix the means
        pixels = np.pad(pixels, ((0, out_y * factor - ny), (0, out_x * factor - nx)))
    rows = pixels[0::factor].copy()
    for i in range(1, factor):
        rows += pixels[i::factor]
    sums = rows[:, 0::factor].copy()
    for i in range(1, factor):
        sums += rows[:, i::factor]
    count_y = np.minimum(factor, ny - np.arange(out_y) * factor).astype(np.float32)
    count_x = np.minimum(factor, nx - np.arange(out_x) * factor).astype(np.float32)
    if ny % factor or nx % factor:
        sums /= count_y[:, None] * count_x[None, :]
    else:
        sums *= np.float32(1 / (factor * factor))
    return sums


def contrast_limits(image: np.ndarray) -> tuple[float, float] | None:
    """The 0.5 and 99.5 percentiles of at most ~``MAX_SAMPLES`` pixels on a regular grid;
    None when there is nothing finite to scale."""
    stride = max(1, math.ceil(math.sqrt(image.size / MAX_SAMPLES)))
    sample = image[::stride, ::stride].ravel()
    if sample.dtype.kind == "f":
        sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return None
    lo, hi = np.percentile(sample, [LOW_PERCENTILE, HIGH_PERCENTILE])
    return float(lo), float(hi)


def to_gray8(image: np.ndarray, limits: tuple[float, float] | None) -> np.ndarray:
    """Map ``[lo, hi]`` to 0-255 (clipped; NaN black), flipped for display; constant -> 128."""
    if limits is None or not limits[1] > limits[0]:
        return np.full(image.shape, 128, dtype=np.uint8)
    lo, hi = limits
    scaled = (image.astype(np.float32, copy=False) - np.float32(lo)) * np.float32(255 / (hi - lo))
    scaled += np.float32(0.5)  # to the nearest level (astype truncates)
    np.clip(scaled, 0, 255, out=scaled)
    np.nan_to_num(scaled, copy=False, nan=0.0)
    return np.ascontiguousarray(scaled[::-1].astype(np.uint8))


def render_section(section: np.ndarray, max_size: int) -> np.ndarray:
    """A section as shown: downsampled, contrast-scaled from what is shown, flipped; uint8."""
    shown = downsample(section, max_size)
    return to_gray8(shown, contrast_limits(shown))


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
