"""An MRC volume as a multiscale OME-Zarr pyramid (NGFF 0.4 on zarr v2), streamed and atomic.

The format (one place: here and :mod:`etdb.mrc.ngff`): a folder ``<name>.ome.zarr`` holding a
zarr v2 group; level ``"0"`` is the volume as it is (the MRC's voxel type, little-endian: int8,
uint8, int16, uint16 or float32, analysis-ready; float16 is widened to float32, losslessly,
as Neuroglancer has no float16), chunks of ``chunk`` voxels per axis
(an axis shorter than that is one chunk long), nested chunk keys (``dimension_separator`` "/",
so every folder is small), Blosc zstd level 1 with byte shuffle (fast enough to write at
memory speed, decoded by Neuroglancer, zarr, tensorstore and napari), fill value 0 with
all-zero chunks not written. Level ``i + 1`` halves every axis of level ``i`` still longer
than one chunk (2x2x2 mean in float32, a last odd voxel averaged over what exists, rounded to
the nearest integer for integer types, ties to even) until a level fits one chunk. The group's
attributes are :func:`etdb.mrc.ngff.multiscales_attrs`: voxel size from the MRC header (1 Å
when it has none) x the level's factors, and the display contrast window of
:func:`etdb.mrc.display.volume_contrast_limits` (the one contrast rule), so viewers open with
the contrast the slice viewer shows.

Contracts, each enforced here:

* Bounded memory whatever the volume's size: the MRC is read with ``pread`` (page cache, not
  this process's memory: a memory map would make every byte read resident) in blocks of at most
  :data:`BAND_BYTES` (as float32) aligned to level 1's chunks; each block is written as level 0
  and pooled into level 1 at once (the MRC is read once). Levels 2+ are pooled from the level
  before, read back from the zarr in the same chunk-aligned blocks (1/8 of the work each).
* Deterministic: the same MRC (and folder name) gives byte-identical files: fixed block order,
  fixed float32 summation order, Blosc's output does not depend on its thread count.
* Atomic: built in a temporary folder beside ``out`` and renamed into place; on any failure the
  temporary folder is removed and ``out`` is untouched (an older pyramid under the final name
  is replaced only by a complete new one).
"""

from __future__ import annotations

import itertools
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from numcodecs import Blosc  # type: ignore[import-untyped]

from etdb.mrc import ngff
from etdb.mrc.display import volume_contrast_limits
from etdb.mrc.errors import MrcError
from etdb.mrc.header import image_type, read_raw_header
from etdb.mrc.volume import open_volume

__all__ = ["BAND_BYTES", "CHUNK", "MAX_CHUNK", "PyramidInfo", "build_pyramid", "level_shapes"]

CHUNK = 64
#: Larger chunks would make one block (a level-1 chunk row's source) exceed BAND_BYTES.
MAX_CHUNK = 128
#: The most float32 bytes of source one block holds (the build's memory is a few times this).
BAND_BYTES = 64 << 20
#: zstd level 1 + byte shuffle: ~1.4 GB/s per core on float32, better ratios than lz4 on the
#: integer modes; Neuroglancer's zarr v2 decoder reads blosclz, lz4, lz4hc, zlib and zstd.
COMPRESSOR = Blosc(cname="zstd", clevel=1, shuffle=Blosc.SHUFFLE)

Shape = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class PyramidInfo:
    path: Path  # the pyramid folder (``out``)
    shape: Shape  # level 0, (z, y, x)
    dtype: str  # numpy name of the voxel type ("int16", "float32", ...)
    voxel_size: tuple[float, float, float]  # (z, y, x) Å of level 0
    levels: list[Shape]  # every level's shape, level 0 first
    bytes_in: int  # bytes of MRC data read (the volume's voxels)
    bytes_out: int  # total bytes of the pyramid's files
    window: tuple[float, float]  # the omero window's (start, end)


def level_shapes(shape: Shape, chunks: Shape) -> list[tuple[Shape, Shape]]:
    """(shape, factor from the level before) of every level: each halves (rounding up) the
    axes still longer than one chunk, until one fits one chunk."""
    levels: list[tuple[Shape, Shape]] = [(shape, (1, 1, 1))]
    while any(n > c for n, c in zip(shape, chunks, strict=True)):
        (z, y, x), (cz, cy, cx) = shape, chunks
        factor = (2 if z > cz else 1, 2 if y > cy else 1, 2 if x > cx else 1)
        shape = (-(-z // factor[0]), -(-y // factor[1]), -(-x // factor[2]))
        levels.append((shape, factor))
    return levels


def build_pyramid(mrc: Path, out: Path, *, chunk: int = CHUNK) -> PyramidInfo:
    """Write the pyramid of the MRC volume at ``mrc`` as the folder ``out`` (see the module
    docstring); MrcError naming the file if it cannot be read, OSError if ``out`` cannot be
    written. ``out`` appears complete or not at all."""
    mrc, out = Path(mrc), Path(out)
    if not 1 <= chunk <= MAX_CHUNK:
        raise ValueError(f"chunk must be 1..{MAX_CHUNK} voxels, got {chunk}")
    source = _Source.open(mrc)
    try:
        window = _window(source)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
        try:
            os.chmod(tmp, 0o755)  # mkdtemp's 0700 would hide the pyramid from a served folder
            levels = _write(source, tmp, chunk, window, _name(out))
            bytes_out = sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file())
            _replace(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    finally:
        source.close()
    return PyramidInfo(
        path=out, shape=source.shape, dtype=source.dtype.name, voxel_size=source.voxel_size,
        levels=levels, bytes_in=source.nbytes, bytes_out=bytes_out,
        window=(window.start, window.end),
    )  # fmt: skip


# -- the source ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Source:
    """The MRC's first volume, read by ``pread`` as blocks in its own byte order."""

    path: Path
    fd: int
    offset: int  # of the data block
    shape: Shape
    file_dtype: np.dtype[Any]  # with the file's byte order
    voxel_size: tuple[float, float, float]

    @classmethod
    def open(cls, path: Path) -> _Source:
        raw = read_raw_header(path)  # sizes checked against the file
        file_dtype = np.dtype(image_type(raw, path)).newbyteorder(raw.byteorder)
        with open_volume(path) as data:  # its checks, and a stack's first volume
            nz, ny, nx = data.shape
        if (ny, nx) != (raw.ny, raw.nx) or nz > raw.nz:
            raise MrcError(path, f"unexpected data shape {data.shape} for the header")
        x, y, z = raw.voxel_size or (1.0, 1.0, 1.0)
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise MrcError(path, f"cannot read: {exc.strerror or exc}") from None
        return cls(path, fd, raw.data_offset, (nz, ny, nx), file_dtype, (z, y, x))

    @property
    def dtype(self) -> np.dtype[Any]:
        """The voxel type written: the file's, little-endian; float16 as float32."""
        if self.file_dtype.kind == "f":
            return np.dtype("<f4")
        return self.file_dtype.newbyteorder("<")

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.file_dtype.itemsize

    def read(self, zs: slice, ys: slice, xs: slice) -> np.ndarray:
        """The block ``[zs, ys, xs]`` (slices with start and stop inside the volume)."""
        _, ny, nx = self.shape
        item = self.file_dtype.itemsize
        shape = (zs.stop - zs.start, ys.stop - ys.start, xs.stop - xs.start)
        block = np.empty(shape, self.file_dtype)  # the file's bytes, read as they are
        whole_rows = xs.start == 0 and xs.stop == nx
        for i, z in enumerate(range(zs.start, zs.stop)):
            if whole_rows:  # one contiguous run per section
                at = self.offset + (z * ny + ys.start) * nx * item
                self._pread(memoryview(block[i]).cast("B"), at)
                continue
            for j, y in enumerate(range(ys.start, ys.stop)):
                at = self.offset + ((z * ny + y) * nx + xs.start) * item
                self._pread(memoryview(block[i, j]).cast("B"), at)
        return block.astype(self.dtype, copy=False)  # a copy only to swap bytes or widen

    def _pread(self, view: memoryview, at: int) -> None:
        while view:
            n = os.preadv(self.fd, [view], at)
            if n <= 0:
                raise MrcError(self.path, "the file ended before its data did (truncated?)")
            view, at = view[n:], at + n

    def close(self) -> None:
        os.close(self.fd)


def _window(source: _Source) -> ngff.Window:
    """The display contrast range, sampled through a memory map (unmapped when this returns:
    the sample touches at most 32 sections' strided rows)."""
    data = np.memmap(
        source.path, source.file_dtype, mode="r", offset=source.offset, shape=source.shape
    )
    limits = volume_contrast_limits(data)
    del data
    lo, hi = limits if limits is not None else (0.0, 0.0)
    if not hi > lo:  # nothing to scale: a window that shows the value mid grey, as the rule does
        lo, hi = lo - 0.5, hi + 0.5
    return ngff.Window(start=lo, end=hi, min=lo, max=hi)


# -- writing -------------------------------------------------------------------------------------


def _write(source: _Source, root: Path, chunk: int, window: ngff.Window, name: str) -> list[Shape]:
    chunks: Shape = tuple(min(chunk, n) for n in source.shape)  # type: ignore[assignment]
    levels = level_shapes(source.shape, chunks)
    group = zarr.open_group(zarr.storage.LocalStore(root), mode="w", zarr_format=2)
    arrays = [
        _create_level(group, str(i), shape, chunks, source.dtype)
        for i, (shape, _) in enumerate(levels)
    ]
    low, high = _write_first_levels(source, arrays, levels, chunks)
    for i in range(2, len(arrays)):
        _pool_level(arrays[i - 1], arrays[i], levels[i][1], chunks)
    factors, total = [], (1, 1, 1)
    for _, factor in levels:
        total = tuple(t * f for t, f in zip(total, factor, strict=True))  # type: ignore[assignment]
        factors.append(total)
    if low <= high:  # the data's finite range widens the slider, never the shown window
        window = ngff.Window(window.start, window.end, min(low, window.min), max(high, window.max))
    group.attrs.update(
        ngff.multiscales_attrs(
            name=name, voxel_size=source.voxel_size, factors=factors, window=window
        )
    )
    return [shape for shape, _ in levels]


def _create_level(group: Any, name: str, shape: Shape, chunks: Shape, dtype: np.dtype[Any]) -> Any:
    return group.create_array(
        name=name,
        shape=shape,
        chunks=chunks,
        dtype=dtype,
        compressors=COMPRESSOR,
        filters=None,
        fill_value=0,
        order="C",
        chunk_key_encoding={"name": "v2", "separator": "/"},
        config={"write_empty_chunks": False},
    )


def _write_first_levels(
    source: _Source, arrays: list[Any], levels: list[tuple[Shape, Shape]], chunks: Shape
) -> tuple[float, float]:
    """Level 0 from the MRC and level 1 pooled from the same blocks; the finite data range."""
    factor = levels[1][1] if len(levels) > 1 else (1, 1, 1)
    low, high = math.inf, -math.inf
    for dest in _blocks(levels[1][0] if len(levels) > 1 else source.shape, chunks, factor):
        src = tuple(
            slice(s.start * f, min(s.stop * f, n))
            for s, f, n in zip(dest, factor, source.shape, strict=True)
        )
        block = source.read(*src)
        arrays[0][src] = block
        low, high = _range(block, low, high)
        if len(arrays) > 1:
            arrays[1][dest] = _pool(block, factor, source.dtype)
    return low, high


def _pool_level(prev: Any, dest_array: Any, factor: Shape, chunks: Shape) -> None:
    for dest in _blocks(dest_array.shape, chunks, factor):
        src = tuple(
            slice(s.start * f, min(s.stop * f, n))
            for s, f, n in zip(dest, factor, prev.shape, strict=True)
        )
        dest_array[dest] = _pool(prev[src], factor, dest_array.dtype)


def _blocks(shape: Shape, chunks: Shape, factor: Shape) -> Iterator[tuple[slice, ...]]:
    """Chunk-aligned blocks of an array of ``shape`` (z-bands of one chunk, then y-rows of one
    chunk, then x-tiles of whole chunks) whose source (``factor`` times larger per axis) holds
    at most BAND_BYTES of float32."""
    cz, cy, cx = chunks
    per_x = cz * cy * factor[0] * factor[1] * factor[2] * 4  # source bytes per dest x voxel
    tile = max(cx, BAND_BYTES // per_x // cx * cx)
    nz, ny, nx = shape
    for z, y, x in itertools.product(range(0, nz, cz), range(0, ny, cy), range(0, nx, tile)):
        yield slice(z, min(z + cz, nz)), slice(y, min(y + cy, ny)), slice(x, min(x + tile, nx))


def _pool(block: np.ndarray, factor: Shape, dtype: np.dtype[Any]) -> np.ndarray:
    """The mean of each ``factor`` box of ``block`` (float32 sums; a box cut by the block's
    end averages what it holds), in ``dtype`` (integers rounded to the nearest)."""
    sums = np.asarray(block, dtype=np.float32)
    counts = []
    for axis, f in enumerate(factor):
        n = sums.shape[axis]
        count = np.ones(-(-n // f), np.float32)
        if f == 2:
            evens = [slice(None)] * 3
            odds = [slice(None)] * 3
            evens[axis], odds[axis] = slice(0, None, 2), slice(1, None, 2)
            pairs = sums[tuple(evens)].copy()  # ceil(n/2) along axis
            head = [slice(None)] * 3
            head[axis] = slice(0, n // 2)
            pairs[tuple(head)] += sums[tuple(odds)]
            sums = pairs
            count[: n // 2] = 2
        counts.append(count)
    divisor = counts[0][:, None, None] * counts[1][None, :, None] * counts[2][None, None, :]
    sums /= divisor
    if dtype.kind in "iu":
        np.rint(sums, out=sums)
    return sums.astype(dtype)


def _range(block: np.ndarray, low: float, high: float) -> tuple[float, float]:
    lo, hi = block.min(), block.max()
    if block.dtype.kind == "f" and not (np.isfinite(lo) and np.isfinite(hi)):
        finite = block[np.isfinite(block)]
        if finite.size == 0:
            return low, high
        lo, hi = finite.min(), finite.max()
    return min(low, float(lo)), max(high, float(hi))


# -- atomic placement ----------------------------------------------------------------------------


def _name(out: Path) -> str:
    name = out.name
    return name[: -len(ngff.PYRAMID_SUFFIX)] if name.endswith(ngff.PYRAMID_SUFFIX) else name


def _replace(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` to ``out``; an existing ``out`` is moved aside first and removed after,
    so the final name always holds a complete pyramid (or none while the two renames run)."""
    try:
        os.rename(tmp, out)
        return
    except OSError:
        if not out.exists():
            raise
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    os.rename(out, old / "pyramid")
    os.rename(tmp, out)
    shutil.rmtree(old, ignore_errors=True)
