"""The OME-NGFF 0.4 multiscale metadata of a pyramid, in one place: written and read back.

A pyramid (:mod:`etdb.mrc.pyramid`) is a folder ``<name>.ome.zarr`` holding a zarr v2 group
whose ``.zattrs`` is :func:`multiscales_attrs`: one ``multiscales`` entry (NGFF 0.4, axes
``z, y, x`` of type ``space`` in ``angstrom``; datasets ``"0"``, ``"1"``, ... each with a
``scale`` = voxel size x its downsampling factor per axis, then a ``translation`` that puts the
centre of a mean-pooled voxel at the centre of the voxels it averages) and an ``omero`` entry
whose one channel window is the display contrast range, so viewers open with sensible contrast
(Neuroglancer and napari read it).

:func:`read_multiscales` parses such attributes from a HOSTILE source (a peer's pyramid, read
through a gateway): everything is checked and bounded (at most :data:`MAX_LEVELS` levels and
:data:`MAX_AXES` axes, finite positive scales, finite translations, level paths that are simple
names, short strings), and any deviation is an :class:`NgffError` saying what and where. Only
what the writer produces is understood; anything else (a multiscale-wide transform, axes of
another type, another NGFF version) is refused rather than misread.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_AXES",
    "MAX_LEVELS",
    "MAX_ZATTRS_BYTES",
    "NGFF_VERSION",
    "PYRAMID_SUFFIX",
    "Level",
    "Multiscales",
    "NgffError",
    "Window",
    "loads_multiscales",
    "multiscales_attrs",
    "read_multiscales",
]

#: The folder name ending of a pyramid.
PYRAMID_SUFFIX = ".ome.zarr"
NGFF_VERSION = "0.4"
#: Bounds on what a reader accepts (a 2^32-voxel axis needs 26 levels of 64-voxel chunks).
MAX_LEVELS = 32
MAX_AXES = 3
MAX_ZATTRS_BYTES = 64 * 1024
_MAX_STRING = 256
_MAX_SCALE = 1e12  # Å; a finite bound keeps products and sums finite
_PATH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")  # no "/", no leading "."
_AXIS_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,15}")
AXES = ("z", "y", "x")
UNIT = "angstrom"

Triple = tuple[float, float, float]


class NgffError(ValueError):
    """``.zattrs`` that are not a pyramid this package can read; the message says where."""


@dataclass(frozen=True, slots=True)
class Window:
    """The omero channel window: ``start``/``end`` are shown black/white; ``min``/``max`` are
    the range of the data (what a viewer's contrast slider spans)."""

    start: float
    end: float
    min: float
    max: float


@dataclass(frozen=True, slots=True)
class Level:
    path: str  # the level's array, a simple name inside the group ("0", "1", ...)
    scale: tuple[float, ...]  # voxel size of this level per axis (axes' units)
    translation: tuple[float, ...]  # where its first voxel's centre lies (axes' units)


@dataclass(frozen=True, slots=True)
class Multiscales:
    name: str
    axes: tuple[str, ...]  # ("z", "y", "x")
    units: tuple[str | None, ...]
    levels: tuple[Level, ...]  # finest first
    window: Window | None  # None: no omero window given

    @property
    def paths(self) -> list[str]:
        return [level.path for level in self.levels]


# -- writing -------------------------------------------------------------------------------------


def multiscales_attrs(
    *, name: str, voxel_size: Triple, factors: Sequence[tuple[int, int, int]], window: Window
) -> dict[str, Any]:
    """The group's ``.zattrs``: level ``i`` (path ``str(i)``) is downsampled by ``factors[i]``
    (z, y, x; ``factors[0]`` is all ones) from voxels of ``voxel_size`` Å."""
    datasets = []
    for index, factor in enumerate(factors):
        scale = [size * f for size, f in zip(voxel_size, factor, strict=True)]
        shift = [size * (f - 1) / 2 for size, f in zip(voxel_size, factor, strict=True)]
        datasets.append(
            {
                "path": str(index),
                "coordinateTransformations": [
                    {"type": "scale", "scale": scale},
                    {"type": "translation", "translation": shift},
                ],
            }
        )
    axes = [{"name": axis, "type": "space", "unit": UNIT} for axis in AXES]
    channel = {
        "active": True,
        "coefficient": 1.0,
        "color": "FFFFFF",
        "family": "linear",
        "inverted": False,
        "label": name,
        "window": {"start": window.start, "end": window.end, "min": window.min, "max": window.max},
    }
    return {
        "multiscales": [
            {
                "version": NGFF_VERSION,
                "name": name,
                "axes": axes,
                "datasets": datasets,
                "type": "mean",
                "metadata": {"method": "2x2x2 mean of the axes longer than one chunk"},
            }
        ],
        "omero": {
            "version": NGFF_VERSION,
            "name": name,
            "channels": [channel],
            "rdefs": {"model": "greyscale"},
        },
    }


# -- reading -------------------------------------------------------------------------------------


def loads_multiscales(data: bytes) -> Multiscales:
    """:func:`read_multiscales` of a ``.zattrs`` file's bytes (at most MAX_ZATTRS_BYTES)."""
    if len(data) > MAX_ZATTRS_BYTES:
        raise NgffError(f".zattrs: {len(data)} bytes, at most {MAX_ZATTRS_BYTES} are read")
    try:
        attrs = json.loads(data)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise NgffError(f".zattrs: not JSON ({exc.__class__.__name__})") from None
    return read_multiscales(attrs)


def read_multiscales(attrs: Any) -> Multiscales:
    """The first multiscale image described by a group's attributes; NgffError if they are not
    one this package can read (see the module docstring for what is checked)."""
    if not isinstance(attrs, Mapping):
        raise NgffError(f".zattrs: an object expected, got {_kind(attrs)}")
    entries = attrs.get("multiscales")
    if not isinstance(entries, list) or not 1 <= len(entries) <= 8:
        raise NgffError("multiscales: a list of 1 to 8 entries expected")
    entry = _object(entries[0], "multiscales[0]")
    version = entry.get("version")
    if version != NGFF_VERSION:
        raise NgffError(f"multiscales[0].version: {NGFF_VERSION!r} expected, got {version!r}")
    if "coordinateTransformations" in entry:
        raise NgffError("multiscales[0].coordinateTransformations: not supported")
    name = _string(entry.get("name", ""), "multiscales[0].name")
    axes, units = _axes(entry.get("axes"))
    levels = _levels(entry.get("datasets"), len(axes))
    return Multiscales(name, axes, units, levels, _window(attrs.get("omero")))


def _axes(value: Any) -> tuple[tuple[str, ...], tuple[str | None, ...]]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_AXES:
        raise NgffError(f"multiscales[0].axes: a list of 1 to {MAX_AXES} axes expected")
    names: list[str] = []
    units: list[str | None] = []
    for i, axis in enumerate(value):
        where = f"multiscales[0].axes[{i}]"
        axis = _object(axis, where)
        name = axis.get("name")
        if not isinstance(name, str) or not _AXIS_NAME.fullmatch(name) or name in names:
            raise NgffError(f"{where}.name: a new short name expected, got {name!r:.40}")
        if axis.get("type", "space") != "space":
            raise NgffError(f"{where}.type: only 'space' axes are read")
        unit = axis.get("unit")
        names.append(name)
        units.append(None if unit is None else _string(unit, f"{where}.unit"))
    return tuple(names), tuple(units)


def _levels(value: Any, naxes: int) -> tuple[Level, ...]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_LEVELS:
        raise NgffError(f"multiscales[0].datasets: a list of 1 to {MAX_LEVELS} levels expected")
    levels: list[Level] = []
    for i, dataset in enumerate(value):
        where = f"multiscales[0].datasets[{i}]"
        dataset = _object(dataset, where)
        path = dataset.get("path")
        if not isinstance(path, str) or not _PATH.fullmatch(path):
            raise NgffError(f"{where}.path: a simple name expected, got {path!r:.40}")
        if any(level.path == path for level in levels):
            raise NgffError(f"{where}.path: {path!r} appears twice")
        scale, translation = _transforms(dataset.get("coordinateTransformations"), naxes, where)
        levels.append(Level(path, scale, translation))
    return tuple(levels)


def _transforms(value: Any, naxes: int, where: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    where = f"{where}.coordinateTransformations"
    if not isinstance(value, list) or not 1 <= len(value) <= 2:
        raise NgffError(f"{where}: a scale, optionally then a translation, expected")
    first = _object(value[0], f"{where}[0]")
    if first.get("type") != "scale":
        raise NgffError(f"{where}[0]: a scale expected first")
    scale = _numbers(first.get("scale"), naxes, f"{where}[0].scale")
    if not all(s > 0 for s in scale):
        raise NgffError(f"{where}[0].scale: positive values expected")
    translation = (0.0,) * naxes
    if len(value) == 2:
        second = _object(value[1], f"{where}[1]")
        if second.get("type") != "translation":
            raise NgffError(f"{where}[1]: a translation expected")
        translation = _numbers(second.get("translation"), naxes, f"{where}[1].translation")
    return scale, translation


def _window(value: Any) -> Window | None:
    if value is None:
        return None
    omero = _object(value, "omero")
    channels = omero.get("channels")
    if not isinstance(channels, list) or not 1 <= len(channels) <= 16:
        raise NgffError("omero.channels: a list of 1 to 16 channels expected")
    window = _object(_object(channels[0], "omero.channels[0]").get("window"), "omero...window")
    start, end = (_number(window.get(k), f"omero.channels[0].window.{k}") for k in ("start", "end"))
    low = _number(window.get("min", min(start, end)), "omero.channels[0].window.min")
    high = _number(window.get("max", max(start, end)), "omero.channels[0].window.max")
    return Window(start, end, low, high)


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise NgffError(f"{where}: an object expected, got {_kind(value)}")
    return value


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str) or len(value) > _MAX_STRING:
        raise NgffError(f"{where}: a string of at most {_MAX_STRING} characters expected")
    return value


def _numbers(value: Any, count: int, where: str) -> tuple[float, ...]:
    if not isinstance(value, list) or len(value) != count:
        raise NgffError(f"{where}: a list of {count} numbers expected (one per axis)")
    return tuple(_number(v, f"{where}[{i}]") for i, v in enumerate(value))


def _number(value: Any, where: str) -> float:
    # bool is an int in Python, not a number in JSON's sense
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise NgffError(f"{where}: a number expected, got {_kind(value)}")
    number = float(value) if abs(value) <= _MAX_SCALE else math.inf  # no OverflowError
    if not math.isfinite(number):
        raise NgffError(f"{where}: a finite number of magnitude <= {_MAX_SCALE:g} expected")
    return number


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__
