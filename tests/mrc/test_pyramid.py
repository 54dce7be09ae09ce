"""OME-Zarr pyramids (etdb.mrc.pyramid): levels, values, types, determinism, atomicity, readers.

Volumes are small and chunks 16 voxels so that several levels, odd edges and many blocks are
exercised in milliseconds; the reference readers (ome-zarr's Reader, ome-zarr-models' v0.4
Image) must accept every pyramid and read the same data.
"""

from __future__ import annotations

import json
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import zarr

from etdb.mrc import MrcError, display, pyramid
from etdb.mrc.ngff import PYRAMID_SUFFIX, read_multiscales

CHUNK = 16


def write_mrc(path: Path, data: np.ndarray, voxel_size=(1.5, 2.0, 2.5)) -> Path:
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = voxel_size  # (x, y, z)
    return path


def volume(shape=(37, 50, 45), dtype=np.int16, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape, dtype=np.float32)
    values = 40 * np.sin(x / 5) + 30 * np.cos(y / 7) + z + rng.normal(0, 8, shape)
    if np.dtype(dtype).kind == "u":
        values += 200
    return values.astype(dtype)


def reference_pool(data: np.ndarray, factor) -> np.ndarray:
    """Mean over ``factor`` boxes, a cut box averaging what it holds (float64, by padding)."""
    padded_shape = [-(-n // f) * f for n, f in zip(data.shape, factor, strict=True)]
    sums = np.zeros(padded_shape)
    counts = np.zeros(padded_shape)
    region = tuple(slice(0, n) for n in data.shape)
    sums[region], counts[region] = data, 1
    boxes = []
    for n, f in zip(padded_shape, factor, strict=True):
        boxes += [n // f, f]
    sums = sums.reshape(boxes).sum(axis=(1, 3, 5))
    return sums / counts.reshape(boxes).sum(axis=(1, 3, 5))


def build(tmp_path: Path, data: np.ndarray, name="vol", **kw) -> pyramid.PyramidInfo:
    src = write_mrc(tmp_path / f"{name}.mrc", data, **kw)
    return pyramid.build_pyramid(src, tmp_path / f"{name}{PYRAMID_SUFFIX}", chunk=CHUNK)


def open_levels(info: pyramid.PyramidInfo) -> list[np.ndarray]:
    group = zarr.open_group(str(info.path), mode="r")
    return [group[str(i)][:] for i in range(len(info.levels))]


def test_levels_halve_the_long_axes_until_one_chunk(tmp_path) -> None:
    info = build(tmp_path, volume((37, 50, 45)))
    assert info.levels == [(37, 50, 45), (19, 25, 23), (10, 13, 12)]
    assert info.shape == (37, 50, 45) and info.dtype == "int16"
    assert info.bytes_in == 37 * 50 * 45 * 2 and info.bytes_out > 0
    group = zarr.open_group(str(info.path), mode="r")
    for i, shape in enumerate(info.levels):
        array = group[str(i)]
        assert array.shape == shape and array.chunks == (16, 16, 16)
        meta = json.loads((info.path / str(i) / ".zarray").read_text())
        assert meta["dimension_separator"] == "/" and meta["zarr_format"] == 2
        assert meta["compressor"]["id"] == "blosc" and meta["compressor"]["cname"] == "zstd"
    assert (info.path / "0" / "1" / "2" / "2").is_file()  # nested chunk keys z/y/x


def test_an_axis_within_one_chunk_is_not_halved() -> None:
    levels = pyramid.level_shapes((10, 100, 40), (10, 16, 16))
    assert [shape for shape, _ in levels] == [(10, 100, 40), (10, 50, 20), (10, 25, 10),
                                              (10, 13, 10)]  # fmt: skip
    assert [factor for _, factor in levels] == [(1, 1, 1), (1, 2, 2), (1, 2, 2), (1, 2, 1)]


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.uint16, np.float32, np.float16])
def test_levels_are_means_of_the_level_before_in_the_same_type(tmp_path, dtype) -> None:
    data = volume((37, 50, 45), dtype)
    info = build(tmp_path, data)
    levels = open_levels(info)
    stored = np.float32 if dtype == np.float16 else dtype  # Neuroglancer has no float16
    assert info.dtype == np.dtype(stored).name
    assert all(level.dtype == np.dtype(stored).newbyteorder("<") for level in levels)
    np.testing.assert_array_equal(levels[0], data.astype(stored))  # the volume as it is
    factors = [f for _, f in pyramid.level_shapes(data.shape, (16, 16, 16))]
    for i in range(1, len(levels)):
        expected = reference_pool(levels[i - 1].astype(np.float64), factors[i])
        if np.dtype(dtype).kind in "iu":  # exact: sums of integers, divided by powers of two
            np.testing.assert_array_equal(levels[i], np.rint(expected).astype(dtype))
        else:
            np.testing.assert_allclose(levels[i], expected, rtol=1e-5, atol=1e-4)


def test_a_few_voxels_by_hand(tmp_path) -> None:
    data = np.arange(3 * 34 * 33, dtype=np.float32).reshape(3, 34, 33)
    level1 = open_levels(build(tmp_path, data))[1]
    assert level1.shape == (3, 17, 17)  # z (3 <= 16) is kept; y, x halved (33 -> 17)
    assert level1[1, 0, 0] == data[1, 0:2, 0:2].mean()
    assert level1[2, 16, 15] == data[2, 32:34, 30:32].mean()
    assert level1[0, 5, 16] == data[0, 10:12, 32].mean()  # the odd last x column: 2 voxels


def test_big_endian_mrc_reads_as_its_values(tmp_path) -> None:
    data = volume((20, 40, 18), np.int16)
    info = build(tmp_path, data.astype(">i2"))
    assert mrcfile.open(tmp_path / "vol.mrc").header.mode.dtype.byteorder == ">"
    np.testing.assert_array_equal(open_levels(info)[0], data)
    assert json.loads((info.path / "0" / ".zarray").read_text())["dtype"] == "<i2"


def test_voxel_size_scales_and_window(tmp_path) -> None:
    data = volume((37, 50, 45), np.float32)
    info = build(tmp_path, data, voxel_size=(1.5, 2.0, 2.5))
    assert info.voxel_size == (2.5, 2.0, 1.5)  # (z, y, x)
    attrs = json.loads((info.path / ".zattrs").read_text())
    image = read_multiscales(attrs)
    assert image.axes == ("z", "y", "x") and image.units == ("angstrom",) * 3
    assert image.paths == ["0", "1", "2"]
    assert [level.scale for level in image.levels] == [
        (2.5, 2.0, 1.5), (5.0, 4.0, 3.0), (10.0, 8.0, 6.0)]  # fmt: skip
    assert image.levels[1].translation == (1.25, 1.0, 0.75)  # half a level-0 voxel on
    lo, hi = display.volume_contrast_limits(data)
    assert image.window is not None
    assert (image.window.start, image.window.end) == (lo, hi) == info.window
    assert image.window.min == float(data.min()) and image.window.max == float(data.max())


def test_no_voxel_size_is_one_angstrom_and_a_constant_volume_is_mid_grey(tmp_path) -> None:
    info = build(tmp_path, np.full((4, 20, 20), 7, np.int16), voxel_size=0)
    assert info.voxel_size == (1.0, 1.0, 1.0)
    assert info.window == (6.5, 7.5)  # 7 shown mid grey, as the contrast rule shows it
    info = build(tmp_path, np.zeros((4, 20, 20), np.int16), name="zeros")
    assert not (info.path / "0" / "0").exists()  # all-zero chunks are not written...
    assert (open_levels(info)[0] == 0).all()  # ...and read as the fill value


def test_a_single_image_keeps_its_one_section(tmp_path) -> None:
    data = volume((1, 60, 40), np.float32)
    info = build(tmp_path, data[0])
    assert info.levels == [(1, 60, 40), (1, 30, 20), (1, 15, 10)]
    assert zarr.open_group(str(info.path), mode="r")["0"].chunks == (1, 16, 16)
    image = read_multiscales(json.loads((info.path / ".zattrs").read_text()))
    scales = [level.scale for level in image.levels]
    assert [s[0] for s in scales] == [2.5, 2.5, 2.5]  # z never pooled
    np.testing.assert_allclose(open_levels(info)[1], reference_pool(data, (1, 2, 2)), rtol=1e-5)


def test_deterministic_and_independent_of_the_block_size(tmp_path, monkeypatch) -> None:
    data = volume((40, 66, 90), np.float32, seed=5)
    src = write_mrc(tmp_path / "v.mrc", data)
    outs = []
    for i, band in enumerate([pyramid.BAND_BYTES, pyramid.BAND_BYTES, 40_000]):
        monkeypatch.setattr(pyramid, "BAND_BYTES", band)  # 40 kB: x is cut into tiles
        (tmp_path / str(i)).mkdir()
        outs.append(pyramid.build_pyramid(src, tmp_path / str(i) / "v.ome.zarr", chunk=CHUNK).path)
    trees = [{p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
             for out in outs]  # fmt: skip
    assert len(trees[0]) > 30
    assert trees[0] == trees[1] == trees[2]


def test_a_truncated_mrc_leaves_nothing(tmp_path) -> None:
    src = write_mrc(tmp_path / "v.mrc", volume((8, 20, 20)))
    with src.open("r+b") as fh:
        fh.truncate(1024 + 8 * 20 * 20)
    with pytest.raises(MrcError, match="truncated"):
        pyramid.build_pyramid(src, tmp_path / "v.ome.zarr", chunk=CHUNK)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mrc"]


def test_a_failure_mid_build_leaves_no_temp_folder_and_the_old_pyramid(tmp_path, monkeypatch):
    src = write_mrc(tmp_path / "v.mrc", volume((40, 50, 45)))
    out = tmp_path / "v.ome.zarr"
    old = pyramid.build_pyramid(src, out, chunk=CHUNK)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    calls = []

    def failing_pool(*args):
        calls.append(1)
        if len(calls) == 5:  # some chunks of levels 0 and 1 are written by now
            raise OSError("disk full")
        return real_pool(*args)

    real_pool = pyramid._pool
    monkeypatch.setattr(pyramid, "_pool", failing_pool)
    with pytest.raises(OSError, match="disk full"):
        pyramid.build_pyramid(src, out, chunk=CHUNK)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mrc", "v.ome.zarr"]
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    monkeypatch.undo()
    new = pyramid.build_pyramid(src, out, chunk=CHUNK)  # replaces the old one whole
    assert new.levels == old.levels
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mrc", "v.ome.zarr"]


def test_the_reference_readers_accept_it_and_read_the_same_data(tmp_path) -> None:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader
    from ome_zarr_models.v04.image import Image

    data = volume((37, 50, 45), np.uint16)
    info = build(tmp_path, data)
    levels = open_levels(info)
    location = parse_url(str(info.path))
    assert location is not None
    node = next(iter(Reader(location)()))
    assert [tuple(d.shape) for d in node.data] == info.levels
    for dask_array, level in zip(node.data, levels, strict=True):
        np.testing.assert_array_equal(np.asarray(dask_array), level)
    assert node.metadata["contrast_limits"] == [list(info.window)]
    image = Image.from_zarr(zarr.open_group(str(info.path), mode="r"))
    assert [d.path for d in image.attributes.multiscales[0].datasets] == ["0", "1", "2"]


def test_unsigned_mode_0_bytes_stay_unsigned(tmp_path) -> None:
    data = volume((20, 40, 18), np.uint8)
    src = write_mrc(tmp_path / "u.mrc", data.view(np.int8))
    with src.open("r+b") as fh:  # IMOD's stamp without its "signed bytes" flag: unsigned
        fh.seek(152)
        fh.write(np.array([1146047817, 0], "<i4").tobytes())
    info = pyramid.build_pyramid(src, tmp_path / "u.ome.zarr", chunk=CHUNK)
    assert info.dtype == "uint8"
    np.testing.assert_array_equal(open_levels(info)[0], data)
    expected = reference_pool(data.astype(np.float64), (2, 2, 2))
    np.testing.assert_array_equal(open_levels(info)[1], np.rint(expected).astype(np.uint8))


@pytest.mark.parametrize("chunk", [0, pyramid.MAX_CHUNK + 1])
def test_a_chunk_size_beyond_the_bounds_is_refused(tmp_path, chunk) -> None:
    src = write_mrc(tmp_path / "v.mrc", volume((4, 8, 8)))
    with pytest.raises(ValueError, match="chunk"):
        pyramid.build_pyramid(src, tmp_path / "v.ome.zarr", chunk=chunk)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mrc"]
