"""Orthogonal planes for the slice viewer: XY, XZ and YZ from an MRC file or an OME-Zarr pyramid.

An axis names the coordinate held fixed: ``z`` (an XY section, what the viewer always showed),
``y`` (an XZ plane: one row of every section), ``x`` (a YZ plane: one column of every section).
A plane is returned with rows running along the slower axis (y for XY, z for XZ/YZ) and the
spacing of its rows relative to its columns (``aspect``, from the voxel size), so the picture
can be shown with the voxels' true proportions.

From the MRC (:mod:`etdb.mrc.sections`), reads are bounded:

- XY: the one section (read ahead as one range, as before);
- XZ: one row per section, ``nz * nx * itemsize`` bytes plus the leaf each row lies in;
- YZ: a column touches every section, so the whole data is read (one section in memory at a
  time), and only for files of at most :data:`MRC_YZ_LIMIT` bytes; past it the request is
  refused with :class:`PlaneRefused` (HTTP 409): the dataset's pyramid is needed.

From a pyramid (``<sid>.ome.zarr``: NGFF 0.4, zarr v2, levels ``0, 1, ...``), the level is the
finest whose plane fits the requested size (so a 1024-pixel view of a 4k volume reads level 2),
and zarr reads only the chunks the plane crosses, through :class:`UnixFSZarrStore` over the
gateway's store (every block verified as the gateway verifies it). Every number in the
pyramid's metadata is hostile: plane and chunk sizes are bounded before anything is read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import zarr

from etdb.content import exporter
from etdb.content.blockstore import BlockGetter
from etdb.content.readthrough import read_ahead
from etdb.content.zarr_store import UnixFSZarrStore
from etdb.mrc.display import contrast_limits, downsample, to_gray8
from etdb.mrc.errors import MrcError
from etdb.mrc.ngff import PYRAMID_SUFFIX, NgffError, read_multiscales
from etdb.mrc.sections import MAX_PIXELS, MrcLayout, read_section

__all__ = [
    "AXES",
    "MRC_YZ_LIMIT",
    "PYRAMID_SUFFIX",
    "Plane",
    "PlaneRefused",
    "Pyramid",
    "axis_length",
    "mrc_plane",
    "open_pyramid",
    "parse_axis",
    "render_plane",
]

#: The axis held fixed -> the plane's name.
AXES = {"z": "XY", "y": "XZ", "x": "YZ"}
_ALIASES = {"z": "z", "xy": "z", "y": "y", "xz": "y", "x": "x", "yz": "x"}
#: Largest MRC a YZ plane is read from (it reads every byte of the data).
MRC_YZ_LIMIT = 512 << 20
#: Most bytes of one decoded chunk accepted from a pyramid's metadata.
MAX_CHUNK_BYTES = 64 << 20
#: Row/column spacing ratios outside this range are shown unstretched (and said so).
MAX_ASPECT = 8.0


class PlaneRefused(MrcError):
    """A plane this source will not produce (HTTP 409: another source is needed)."""


@dataclass(frozen=True, slots=True)
class Plane:
    pixels: np.ndarray  # (rows, columns), native byte order
    aspect: float  # row spacing / column spacing


def parse_axis(text: str | None) -> str | None:
    """``z``/``y``/``x`` (or ``xy``/``xz``/``yz``) as the fixed axis; None for anything else."""
    return _ALIASES.get((text or "z").strip().lower())


def axis_length(shape: Sequence[int], axis: str) -> int:
    """Planes along ``axis`` of a ``(z, y, x)`` volume."""
    return int(shape["zyx".index(axis)])


# -- MRC ----------------------------------------------------------------------------------------


def mrc_plane(
    store: BlockGetter, reader: exporter.UnixFSFileReader, layout: MrcLayout, axis: str, index: int,
    name: str,
) -> Plane:  # fmt: skip
    """The plane at ``index`` along ``axis`` of the MRC file ``reader`` reads."""
    if axis == "z":
        return Plane(_section(store, reader, layout, index, name), 1.0)
    cross = layout.nx if axis == "y" else layout.ny
    if layout.nz * cross > MAX_PIXELS:
        raise MrcError(name, f"an {AXES[axis]} plane of {layout.nz} x {cross} is too large")
    aspect = _mrc_aspect(layout, axis)
    if axis == "y":
        return Plane(_rows(reader, layout, index, name), aspect)
    data_bytes = layout.nz * layout.section_bytes
    if data_bytes > MRC_YZ_LIMIT:
        raise PlaneRefused(
            name,
            f"a YZ plane reads the whole file ({data_bytes:,} bytes, more than "
            f"{MRC_YZ_LIMIT:,}): it is shown from the dataset's OME-Zarr pyramid only",
        )
    out = np.empty((layout.nz, layout.ny), dtype=layout.dtype.newbyteorder("="))
    for z in range(layout.nz):
        out[z] = _section(store, reader, layout, z, name)[:, index]
    return Plane(out, aspect)


def _section(
    store: BlockGetter, reader: exporter.UnixFSFileReader, layout: MrcLayout, z: int, name: str
) -> np.ndarray:
    """Section ``z``, its bytes read ahead as one range (over the network: one stream)."""
    start = layout.section_offset(z)
    with (
        read_ahead(store, reader.node, start, start + layout.section_bytes) as ahead,
        exporter.UnixFSFileReader(ahead, reader.node) as section_reader,
    ):
        return read_section(section_reader, layout, z, name=name)


def _rows(reader: exporter.UnixFSFileReader, layout: MrcLayout, y: int, name: str) -> np.ndarray:
    """Row ``y`` of every section: an (nz, nx) XZ plane."""
    row_bytes = layout.nx * layout.dtype.itemsize
    buffer = bytearray(layout.nz * row_bytes)
    view = memoryview(buffer)
    for z in range(layout.nz):
        reader.seek(layout.section_offset(z) + y * row_bytes)
        got = reader.readinto(view[z * row_bytes : (z + 1) * row_bytes])
        if got != row_bytes:
            raise MrcError(name, f"truncated: row {y} of section {z} is short")
    rows = np.frombuffer(buffer, dtype=layout.dtype).reshape(layout.nz, layout.nx)
    return rows.astype(layout.dtype.newbyteorder("="), copy=False)


def _mrc_aspect(layout: MrcLayout, axis: str) -> float:
    if not layout.voxel_size:
        return 1.0
    vx, vy, vz = layout.voxel_size
    across = vx if axis == "y" else vy
    return vz / across if vz > 0 and across > 0 else 1.0


# -- pyramid ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pyramid:
    """A pyramid's levels (zarr arrays, finest first) and their voxel sizes (z, y, x)."""

    levels: tuple[Any, ...]
    scales: tuple[tuple[float, float, float], ...]

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.levels[0].shape)  # type: ignore[return-value]

    def info(self) -> dict[str, Any]:
        nz, ny, nx = self.shape
        z, y, x = self.scales[0]
        return {
            "nx": nx, "ny": ny, "nz": nz, "mode": None, "voxel_size": [x, y, z],
            "kind": "volume", "default_z": nz // 2, "tilt_angles": None, "source": "pyramid",
            "levels": [list(level.shape) for level in self.levels],
        }  # fmt: skip

    def plane(self, axis: str, index: int, size: int, name: str) -> Plane:
        """The plane at level-0 ``index`` along ``axis``, from the finest level that fits."""
        level = self._level_for(axis, size)
        array = self.levels[level]
        a = "zyx".index(axis)
        at = min(index * int(array.shape[a]) // self.shape[a], int(array.shape[a]) - 1)
        rows, cols = [n for i, n in enumerate(array.shape) if i != a]
        if rows * cols > MAX_PIXELS:
            raise MrcError(name, f"level {level}'s planes of {rows} x {cols} are too large")
        selection: list[Any] = [slice(None)] * 3
        selection[a] = at
        try:
            pixels = np.asarray(array[tuple(selection)])
        except (ValueError, TypeError, KeyError, RuntimeError) as exc:
            raise MrcError(name, f"level {level} cannot be read: {exc}") from None
        scale = [s for i, s in enumerate(self.scales[level]) if i != a]
        aspect = scale[0] / scale[1] if scale[0] > 0 and scale[1] > 0 else 1.0
        return Plane(pixels.astype(pixels.dtype.newbyteorder("="), copy=False), aspect)

    def _level_for(self, axis: str, size: int) -> int:
        a = "zyx".index(axis)
        for level, array in enumerate(self.levels):
            if max(n for i, n in enumerate(array.shape) if i != a) <= size:
                return level
        return len(self.levels) - 1


def open_pyramid(getter: BlockGetter, root: str, name: str) -> Pyramid:
    """The pyramid in folder ``root``: its ``.zattrs`` parsed, its levels' metadata read and
    checked (3-D, numeric, chunks of at most ``MAX_CHUNK_BYTES``); MrcError if unusable."""
    store = UnixFSZarrStore(getter, root)
    try:
        group = zarr.open_group(store, mode="r", zarr_format=2)
        paths, scales = _multiscales(group.attrs.asdict(), name)
        levels = tuple(group[path] for path in paths)
    except MrcError:
        raise
    except (ValueError, TypeError, KeyError, RuntimeError, zarr.errors.BaseZarrError) as exc:
        raise MrcError(name, f"not a readable OME-Zarr pyramid: {exc}") from None
    for path, array in zip(paths, levels, strict=True):
        if not isinstance(array, zarr.Array) or array.ndim != 3 or array.dtype.kind not in "iuf":
            raise MrcError(name, f"level {path!r} is not a 3-D numeric array")
        if math.prod(array.chunks) * array.dtype.itemsize > MAX_CHUNK_BYTES:
            raise MrcError(name, f"level {path!r} has chunks {array.chunks}: too large")
        if min(array.shape) < 1:
            raise MrcError(name, f"level {path!r} is empty")
    return Pyramid(levels, scales)


def _multiscales(
    attrs: Mapping[str, Any], name: str
) -> tuple[list[str], tuple[tuple[float, float, float], ...]]:
    """Level paths and (z, y, x) scales of the first multiscale image of NGFF metadata."""
    try:
        image = read_multiscales(attrs)
    except NgffError as exc:
        raise MrcError(name, f"not NGFF multiscales metadata: {exc}") from None
    if len(image.axes) != 3:
        raise MrcError(name, f"a 3-D pyramid expected, its axes are {', '.join(image.axes)}")
    scales = tuple((lv.scale[0], lv.scale[1], lv.scale[2]) for lv in image.levels)
    return image.paths, scales


# -- rendering ----------------------------------------------------------------------------------


def render_plane(plane: Plane, side: int) -> tuple[np.ndarray, bool]:
    """A plane as shown (uint8, the one contrast rule of :mod:`etdb.mrc.display`), rows
    stretched to the voxels' proportions; and whether they were (a ratio beyond
    ``MAX_ASPECT`` is shown unstretched)."""
    shown = downsample(plane.pixels, side)
    stretched = abs(plane.aspect - 1.0) > 0.01 and 1 / MAX_ASPECT <= plane.aspect <= MAX_ASPECT
    if stretched:
        rows = max(1, round(shown.shape[0] * plane.aspect))
        pick = np.minimum((np.arange(rows) + 0.5) / plane.aspect, shown.shape[0] - 1)
        shown = shown[pick.astype(np.intp)]
        shown = _fit(shown, side)
    return to_gray8(shown, contrast_limits(shown)), stretched


def _fit(image: np.ndarray, side: int) -> np.ndarray:
    """``image`` with its long side at most ``side`` (nearest pixels: it is already smooth)."""
    long = max(image.shape)
    if long <= side:
        return image
    ny, nx = (max(1, n * side // long) for n in image.shape)
    ys = (np.arange(ny) * image.shape[0] // ny).astype(np.intp)
    xs = (np.arange(nx) * image.shape[1] // nx).astype(np.intp)
    return image[ys][:, xs]
