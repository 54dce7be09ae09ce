"""The one contrast rule (etdb.mrc.display), pinned where the two old rules differed.

The key images (publish/media.py) used to truncate levels and show a constant image black; the
slice viewer rounded to the nearest level and showed it mid grey. Both now use the viewer's
rule: these tests fail against the old key-image code (checked by reasoning on its
``_gray8``: ``np.clip((image - lo) * scale, 0, 255).astype(np.uint8)`` with scale 0 for a
constant image), and the last one pins that a key image and a slice are the same pixels.
"""

from __future__ import annotations

import io
from pathlib import Path

import mrcfile
import numpy as np
import pytest
from PIL import Image

from etdb.mrc import display, png
from etdb.publish import media


def write(path: Path, data: np.ndarray) -> Path:
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data)
    return path


def test_levels_round_to_the_nearest_not_down() -> None:
    image = np.array([[0.4, 0.6, 127.49, 127.51, 254.4, 254.6]], np.float32)
    gray = display.to_gray8(image, (0.0, 255.0))
    assert gray.tolist() == [[0, 1, 127, 128, 254, 255]]  # truncation gave 0, 0, 127, 127, 254


def test_clipped_beyond_the_limits_and_nan_black() -> None:
    image = np.array([[-5.0, 300.0, np.nan, np.inf, -np.inf]], np.float32)
    assert display.to_gray8(image, (0.0, 255.0)).tolist() == [[0, 255, 0, 255, 0]]


@pytest.mark.parametrize("limits", [None, (3.0, 3.0), (4.0, 3.0)])
def test_nothing_to_scale_is_mid_grey(limits) -> None:
    assert (display.to_gray8(np.full((3, 4), 3.0, np.float32), limits) == 128).all()


def test_a_constant_or_all_nan_image_has_no_limits() -> None:
    assert display.contrast_limits(np.full((8, 8), 7.0, np.float32)) == (7.0, 7.0)
    assert display.contrast_limits(np.full((8, 8), np.nan, np.float32)) is None
    assert display.volume_contrast_limits(np.full((4, 8, 8), np.nan, np.float32)) is None


def test_rows_are_flipped_for_display() -> None:
    image = np.array([[0.0, 0.0], [255.0, 255.0]], np.float32)
    assert display.to_gray8(image, (0.0, 255.0)).tolist() == [[255, 255], [0, 0]]


def test_non_finite_values_do_not_break_the_contrast() -> None:
    section = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    section[0, :5] = [np.nan, np.inf, -np.inf, np.nan, np.nan]
    image = display.render_section(section, 1024)
    assert image.dtype == np.uint8 and image[-1, 0] == 0  # NaN black (row 0 is shown last)
    assert image[-1, 1] == 255 and image[-1, 2] == 0  # +inf white, -inf black
    assert image.max() == 255 and image.min() == 0


def test_a_constant_volume_gives_a_mid_grey_key_image(tmp_path) -> None:
    src = write(tmp_path / "c.mrc", np.full((3, 16, 20), 7, np.int16))
    pixels = np.asarray(Image.open(media.key_image(src, tmp_path / "k.jpg")))
    assert abs(int(pixels.mean()) - 128) <= 1  # was black (0) under the old key-image rule


def test_a_key_image_and_a_slice_are_the_same_pixels(tmp_path) -> None:
    rng = np.random.default_rng(3)
    section = rng.normal(0, 40, (30, 50)).astype(np.float32)
    src = write(tmp_path / "one.mrc", section)
    key = np.asarray(media.render_slab(src, thickness=1))
    np.testing.assert_array_equal(key, display.render_section(section, 1024))


def test_png_is_deflated_only_when_that_pays() -> None:
    rng = np.random.default_rng(9)
    noise = rng.integers(0, 256, (300, 500), dtype=np.uint8)
    ramp = np.tile(np.arange(500) % 256, (300, 1)).astype(np.uint8)
    for image in (noise, ramp, np.zeros((1, 1), np.uint8)):
        np.testing.assert_array_equal(
            np.asarray(Image.open(io.BytesIO(png.encode_png(image)))), image
        )
    assert len(png.encode_png(noise)) > noise.size  # stored: deflate would gain nothing
    assert len(png.encode_png(ramp)) < ramp.size / 10
    with pytest.raises(ValueError, match="2-d uint8"):
        png.encode_png(np.zeros((4, 4), np.float32))
