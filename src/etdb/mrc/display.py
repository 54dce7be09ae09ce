"""Sections as 8-bit grayscale: box-filter downsampling and the one contrast rule.

The contrast rule (slice viewer, key images, key movies): the 0.5 and 99.5 percentiles of the
finite values of a regular, strided sample of at most :data:`MAX_SAMPLES` pixels of what is
shown (for a volume, of up to 32 sections spread over its middle 80 %) are mapped to black and
white; values between are rounded to the nearest of the 256 levels, values beyond are clipped,
NaN is black, and an image with nothing to scale (constant, or nothing finite) is mid grey
(128). Rows are flipped for display, as IMOD shows them (MRC rows run bottom-up).

Two rules once existed. This one is the slice viewer's; the key images' differed in three ways,
each worse: levels truncated (every pixel darkened by half a level on average, and only
exactly the top percentile reached 255), a constant image black (indistinguishable from an
empty or failed rendering, while mid grey says "data, no contrast"), and the percentiles of
every pixel of the slab (the same limits to within sampling noise, at the cost of sorting
millions of values for a 4k image). See tests/mrc/test_display.py.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "HIGH_PERCENTILE",
    "LOW_PERCENTILE",
    "MAX_SAMPLES",
    "contrast_limits",
    "default_slab",
    "downsample",
    "render_section",
    "slab_average",
    "to_gray8",
    "volume_contrast_limits",
]

#: Pixels the contrast percentiles are computed from (a strided sample beyond this).
MAX_SAMPLES = 1 << 18
#: Percentiles mapped to black and white.
LOW_PERCENTILE, HIGH_PERCENTILE = 0.5, 99.5
#: Sections a volume's contrast is sampled from.
VOLUME_SECTIONS = 32

Limits = tuple[float, float]


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


def contrast_limits(image: np.ndarray, max_samples: int = MAX_SAMPLES) -> Limits | None:
    """The display limits of one image, from at most ~``max_samples`` pixels on a regular
    grid; None when there is nothing finite to scale."""
    stride = max(1, math.ceil(math.sqrt(image.size / max_samples)))
    return _percentiles(image[::stride, ::stride].ravel())


def volume_contrast_limits(data: np.ndarray, max_samples: int = MAX_SAMPLES) -> Limits | None:
    """The display limits of a ``(z, y, x)`` volume (one limit for every section of a movie).

    Up to 32 sections (the outer 10 % of z, mostly empty or noisy, skipped when there are
    enough) are read with a stride in y and x; nothing else of the data is touched, so a
    memory-mapped 4 GB volume costs what a 4 MB one does."""
    nz, ny, nx = data.shape
    first, last = (nz // 10, nz - nz // 10) if nz >= 20 else (0, nz)
    zs = np.unique(np.linspace(first, last - 1, min(VOLUME_SECTIONS, last - first)).astype(int))
    per_section = max(1, max_samples // len(zs))
    stride = max(1, math.ceil(math.sqrt(ny * nx / per_section)))
    sample = np.concatenate(
        [np.asarray(data[z, ::stride, ::stride], dtype=np.float32).ravel() for z in zs]
    )
    return _percentiles(sample)


def _percentiles(sample: np.ndarray) -> Limits | None:
    if sample.dtype.kind == "f":
        sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return None
    lo, hi = np.percentile(sample, [LOW_PERCENTILE, HIGH_PERCENTILE])
    return float(lo), float(hi)


def to_gray8(image: np.ndarray, limits: Limits | None) -> np.ndarray:
    """Map ``[lo, hi]`` to 0-255 (nearest level, clipped; NaN black), flipped for display;
    constant (``limits`` None or empty) -> 128."""
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


def default_slab(nz: int) -> int:
    """Key images average ~10 % of the sections (at most 20): less noise, features stay sharp."""
    return max(1, min(20, nz // 10))


def slab_average(data: np.ndarray, center: int | None, thickness: int) -> np.ndarray:
    """The average of ``thickness`` sections of a ``(z, y, x)`` volume around ``center``
    (default: the middle), float32; one section in memory at a time, NaN counted as 0."""
    nz = data.shape[0]
    thickness = max(1, min(thickness, nz))
    mid = nz // 2 if center is None else min(max(center, 0), nz - 1)
    start = min(max(mid - thickness // 2, 0), nz - thickness)
    acc = np.zeros(data.shape[1:], np.float64)
    for z in range(start, start + thickness):
        acc += np.nan_to_num(np.asarray(data[z], dtype=np.float64))
    return (acc / thickness).astype(np.float32)
