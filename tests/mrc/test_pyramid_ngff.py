"""The NGFF 0.4 metadata model (etdb.mrc.ngff): what the writer writes reads back, and hostile
``.zattrs`` (from a peer's pyramid) are refused with NgffError, never a crash or a misread."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from etdb.mrc import ngff

FACTORS = [(1, 1, 1), (2, 2, 2), (2, 4, 4)]


def attrs() -> dict[str, Any]:
    window = ngff.Window(start=-1.5, end=2.5, min=-9.0, max=9.0)
    return ngff.multiscales_attrs(
        name="s1", voxel_size=(4.0, 2.0, 2.0), factors=FACTORS, window=window
    )


def test_what_is_written_reads_back() -> None:
    image = ngff.read_multiscales(attrs())
    assert image.name == "s1" and image.axes == ("z", "y", "x")
    assert image.paths == ["0", "1", "2"]
    assert [level.scale for level in image.levels] == [
        (4.0, 2.0, 2.0), (8.0, 4.0, 4.0), (8.0, 8.0, 8.0)]  # fmt: skip
    assert image.levels[2].translation == (2.0, 3.0, 3.0)
    assert image.window == ngff.Window(-1.5, 2.5, -9.0, 9.0)
    assert ngff.loads_multiscales(json.dumps(attrs()).encode()) == image


def test_a_pyramid_without_omero_has_no_window() -> None:
    plain = attrs()
    del plain["omero"]
    assert ngff.read_multiscales(plain).window is None


def mutate(path: str, value: Any) -> dict[str, Any]:
    """attrs() with the item at ``path`` (dotted, list indices as numbers) set to ``value``."""
    doc = copy.deepcopy(attrs())
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node: Any = doc
    for key in parents:
        node = node[key]
    node[last] = value
    return doc


HUGE = [{"path": str(i), "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 1]}]}
        for i in range(ngff.MAX_LEVELS + 1)]  # fmt: skip

HOSTILE = {
    "not an object": [],
    "no multiscales": {"omero": {}},
    "multiscales not a list": {"multiscales": {"version": "0.4"}},
    "too many levels": mutate("multiscales.0.datasets", HUGE),
    "no levels": mutate("multiscales.0.datasets", []),
    "NaN scale": mutate(
        "multiscales.0.datasets.1.coordinateTransformations.0.scale", [float("nan"), 1.0, 1.0]
    ),
    "infinite translation": mutate(
        "multiscales.0.datasets.1.coordinateTransformations.1.translation", [1e400, 0, 0]
    ),
    "zero scale": mutate("multiscales.0.datasets.0.coordinateTransformations.0.scale", [0, 1, 1]),
    "huge int scale": mutate(
        "multiscales.0.datasets.0.coordinateTransformations.0.scale", [10**400, 1, 1]
    ),
    "boolean scale": mutate(
        "multiscales.0.datasets.0.coordinateTransformations.0.scale", [True, 1, 1]
    ),
    "string scale": mutate(
        "multiscales.0.datasets.0.coordinateTransformations.0.scale", ["1", 1, 1]
    ),
    "scale of two axes": mutate(
        "multiscales.0.datasets.0.coordinateTransformations.0.scale", [1.0, 1.0]
    ),
    "translation first": mutate(
        "multiscales.0.datasets.0.coordinateTransformations.0.type", "translation"
    ),
    "path traversal": mutate("multiscales.0.datasets.1.path", "../x"),
    "path with a slash": mutate("multiscales.0.datasets.1.path", "a/b"),
    "dot path": mutate("multiscales.0.datasets.1.path", ".."),
    "absolute path": mutate("multiscales.0.datasets.1.path", "/etc"),
    "path not a string": mutate("multiscales.0.datasets.1.path", 1),
    "duplicate path": mutate("multiscales.0.datasets.1.path", "0"),
    "four axes": mutate("multiscales.0.axes", [{"name": n} for n in "tzyx"]),
    "time axis": mutate("multiscales.0.axes.0.type", "time"),
    "duplicate axis": mutate("multiscales.0.axes.1.name", "z"),
    "axis name not a string": mutate("multiscales.0.axes.1.name", ["y"]),
    "long unit": mutate("multiscales.0.axes.0.unit", "a" * 1000),
    "version 0.5": mutate("multiscales.0.version", "0.5"),
    "global transform": mutate("multiscales.0.coordinateTransformations", []),
    "window NaN": mutate("omero.channels.0.window.start", float("nan")),
    "window missing": mutate("omero.channels.0", {}),
    "channels not a list": mutate("omero.channels", "x"),
}


@pytest.mark.parametrize("hostile", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_attrs_are_refused(hostile) -> None:
    with pytest.raises(ngff.NgffError):
        ngff.read_multiscales(hostile)


@pytest.mark.parametrize(
    "data",
    [b"\xff\xfe", b"{", b"[" * 100_000 + b"]" * 100_000, b" " * (ngff.MAX_ZATTRS_BYTES + 1)],
    ids=["not utf-8", "not JSON", "deep nesting", "too long"],
)
def test_hostile_zattrs_bytes_are_refused(data) -> None:
    with pytest.raises(ngff.NgffError):
        ngff.loads_multiscales(data)
