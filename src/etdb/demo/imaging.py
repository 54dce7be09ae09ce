"""From a phantom to what a microscope and a reconstruction program would have produced.

* :func:`tilt_series` projects the phantom about the y axis by shear-and-sum (every z slice is
  shifted by ``z·tanθ`` and summed, then magnified by ``1/cosθ``: exact for parallel rays with
  linear interpolation, and ~100× faster in numpy than sampling along rays), turns the line
  integrals into electron counts through an ice slab whose path length grows as ``1/cosθ``,
  and adds exposure drift, unaligned-stack jitter and Poisson noise.
* :func:`reconstruction` is the phantom as a tomogram shows it: noise, the missing wedge (or
  pyramid, dual axis) applied in Fourier space, resolution loss, dense = dark. (A weighted
  back-projection would be slower and no more useful for a demo.)
* :func:`write_tilt_series` / :func:`write_volume` write MRC2014 files with ``mrcfile``; tilt
  angles go in an FEI1 extended header and an IMOD ``.rawtlt`` sidecar.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import mrcfile
import numpy as np
from mrcfile.dtypes import get_ext_header_dtype

Array = np.ndarray


# -- tilt series --------------------------------------------------------------------------------


def tilt_angles(tilt_min: float, tilt_max: float, step: float) -> list[float]:
    n = math.floor((tilt_max - tilt_min) / step + 1e-6) + 1
    return [round(tilt_min + i * step, 3) for i in range(n)]


def project(vol: Array, angles: Sequence[float], shifts: Array | None = None) -> Array:
    """Line integrals through ``vol`` rotated about the y axis: ``(n, ny, nx)`` float32.

    ``shifts`` (n, 2) moves each image by (dy, dx) detector pixels (an unaligned stack).
    """
    nz, ny, nx = vol.shape
    zc = np.arange(nz) - (nz - 1) / 2
    worst = max(abs(a) for a in angles)
    cmin, tmax = math.cos(math.radians(worst)), math.tan(math.radians(worst))
    pad = math.ceil((nx / 2) / cmin - nx / 2 + abs(zc).max() * tmax) + 4
    width = nx + 2 * pad
    out = np.empty((len(angles), ny, nx), np.float32)
    q = np.empty((ny, width), np.float32)
    s = np.arange(nx) - (nx - 1) / 2
    for i, angle in enumerate(angles):
        c, t = math.cos(math.radians(angle)), math.tan(math.radians(angle))
        q.fill(0.0)
        for k in range(nz):  # shear: slice k lands at u = x + z·tanθ
            shift = zc[k] * t
            whole = math.floor(shift)
            frac = np.float32(shift - whole)
            a = pad + whole
            q[:, a : a + nx] += (1 - frac) * vol[k]
            q[:, a + 1 : a + 1 + nx] += frac * vol[k]
        dy, dx = (0.0, 0.0) if shifts is None else shifts[i]
        pos = pad + (nx - 1) / 2 + (s - dx) / c  # magnify by 1/cosθ, then sample
        j = np.clip(np.floor(pos).astype(int), 0, width - 2)
        f = (pos - j).astype(np.float32)
        img = (q[:, j] * (1 - f) + q[:, j + 1] * f) / c
        out[i] = np.roll(img, round(dy), axis=0) if dy else img
    return out


def tilt_series(
    vol: Array,
    angles: Sequence[float],
    *,
    dose: float,
    pixel_size: float,
    seed: int,
    contrast: float = 0.012,
    ice: float = 0.35,
) -> Array:
    """Electron counts (int16) of the tilt series acquired from ``angles`` (in order).

    ``dose`` is the total exposure (e/Å²) spread over the images; counts per pixel follow
    from the pixel size. Thicker ice at high tilt (``1/cosθ``) darkens the images, exposure
    drifts down slightly over the acquisition, each image is shifted by a few pixels (tracking
    errors: the raw stack is unaligned), and the noise is Poisson.
    """
    rng = np.random.default_rng(seed)
    n = len(angles)
    shifts = np.cumsum(rng.normal(0.0, 0.8, (n, 2)), axis=0)
    shifts -= shifts[n // 2]
    line = project(vol, angles, shifts)
    electrons = dose / n * pixel_size**2
    drift = 1.0 - 0.12 * np.arange(n) / max(n - 1, 1)
    cos = np.cos(np.radians(np.asarray(angles, np.float64)))
    mean = (electrons * drift * np.exp(-ice / cos))[:, None, None]
    counts = rng.poisson(mean * np.exp(-contrast * line))
    return np.clip(counts, 0, 32767).astype(np.int16)


# -- reconstruction ------------------------------------------------------------------------------


def reconstruction(
    vol: Array, tilt_max: float, *, seed: int, dual: bool = False, noise: float = 0.35
) -> Array:
    """What a tomogram of ``vol`` looks like (int16, dense = dark), without back-projecting.

    Noise and phantom are filtered together: Fourier components inside the missing wedge
    (``|kz| > |kx|·tan(tilt_max)``; a pyramid with ``dual``) are removed, with a soft edge to
    avoid ringing, and a Gaussian low-pass stands in for alignment and CTF losses. That gives
    the familiar elongation along z and the faint top and bottom membranes.
    """
    rng = np.random.default_rng(seed)
    nz, ny, nx = vol.shape
    noisy = vol + rng.normal(0.0, noise, vol.shape).astype(np.float32)
    spectrum = np.fft.rfftn(noisy)
    kz = np.fft.fftfreq(nz)[:, None, None]
    ky = np.fft.fftfreq(ny)[None, :, None]
    kx = np.fft.rfftfreq(nx)[None, None, :]
    tan = math.tan(math.radians(tilt_max))

    def seen(k: Array) -> Array:
        # 1 inside the sampled region, 0 in the wedge, a ~4° ramp in between.
        return np.clip((np.abs(k) * tan - np.abs(kz)) / (np.abs(k) * 0.12 + 1e-3) + 0.5, 0, 1)

    mask = seen(kx) if not dual else np.maximum(seen(kx), seen(ky))
    mask = mask * np.exp(-(kx * kx + ky * ky + kz * kz) / (2 * 0.18**2))
    mask[0, 0, 0] = 1.0
    out = np.fft.irfftn(spectrum * mask, s=vol.shape, axes=(0, 1, 2)).astype(np.float32)
    out -= out.mean()
    scale = 900.0 / max(float(out.std()), 1e-6)
    return np.clip(-out * scale, -32767, 32767).astype(np.int16)


# -- files -------------------------------------------------------------------------------------


def _replace_into(tmp: Path, path: Path) -> None:
    os.replace(tmp, path)


def _label(mrc: mrcfile.mrcfile.MrcFile, text: str) -> None:
    # Replaces mrcfile's "Created by mrcfile.py <time>": a timestamp would make every run's
    # files, and so their CIDs, differ.
    mrc.header.label[0] = text[:80].encode("ascii", "replace")
    mrc.header.nlabl = 1


def write_tilt_series(
    path: Path,
    stack: Array,
    angles: Sequence[float],
    *,
    pixel_size: float,
    magnification: float,
    defocus: float,
    dose: float,
    label: str,
) -> None:
    """An MRC image stack (mode 1) with an FEI1 extended header per image (tilt angle, pixel
    size, dose, defocus, magnification) and ``<name>.rawtlt`` next to it (IMOD convention)."""
    ext = np.zeros(len(angles), dtype=get_ext_header_dtype(b"FEI1"))
    ext["Metadata size"] = ext.dtype.itemsize
    ext["Metadata version"] = 0
    ext["Alpha tilt"] = angles
    ext["Pixel size X"] = ext["Pixel size Y"] = pixel_size * 1e-10  # metres
    ext["Dose"] = dose / len(angles) * 1e20  # e/m², FEI's unit
    ext["Defocus"] = defocus * 1e-6
    ext["Magnification"] = magnification
    ext["HT"] = 300e3
    tmp = path.with_name(path.name + ".tmp")
    with mrcfile.new(tmp, overwrite=True) as mrc:
        mrc.set_data(stack)
        mrc.set_image_stack()
        mrc.voxel_size = pixel_size
        mrc.header.exttyp = b"FEI1"
        mrc.set_extended_header(ext)
        _label(mrc, label)
    _replace_into(tmp, path)
    sidecar = path.with_suffix(".rawtlt")
    sidecar.write_text("".join(f"{a:.2f}\n" for a in angles), encoding="ascii")


def write_volume(path: Path, volume: Array, *, voxel_size: float, label: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with mrcfile.new(tmp, overwrite=True) as mrc:
        mrc.set_data(volume)
        mrc.set_volume()
        mrc.voxel_size = voxel_size
        _label(mrc, label)
    _replace_into(tmp, path)
