"""Synthetic but realistic demo datasets for ``etdb demo``.

:mod:`~etdb.demo.samples` says what each dataset is (species, people, microscope, tilt scheme:
the record metadata), :mod:`~etdb.demo.phantom` builds the cell, :mod:`~etdb.demo.imaging`
turns it into a tilt series and a reconstruction, and :func:`generate_dataset` writes the
folder in go-etdb's layout, making the key image, thumbnail and key movie with
:mod:`etdb.publish.media` exactly as a lab's pipeline would from a real reconstruction.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from etdb.demo.imaging import (
    reconstruction,
    tilt_angles,
    tilt_series,
    write_tilt_series,
    write_volume,
)
from etdb.demo.phantom import phantom_volume, pole
from etdb.demo.samples import DemoSample, demo_sample, demo_samples
from etdb.publish.media import ensure_media, render_slab

__all__ = ["DemoSample", "demo_sample", "demo_samples", "generate_dataset"]

SNAPSHOT_BOX = 96  # pixels of the reconstruction around the cell pole
SNAPSHOT_ZOOM = 3


def generate_dataset(sample: DemoSample, root: Path) -> Path:
    """Write ``root/<sid>/`` (once: an existing folder is kept as it is) and return it.

    The files are written into a hidden scratch folder that is renamed into place at the end,
    so an interrupted run leaves no half-made dataset for a later run to publish.
    """
    final = root / sample.sid
    if final.is_dir():
        return final
    scratch = root / f".{sample.sid}.partial"
    shutil.rmtree(scratch, ignore_errors=True)
    raw, rec_dir = scratch / "rawdata", scratch / "3dimage_1"
    raw.mkdir(parents=True)
    rec_dir.mkdir()
    meta, seed = sample.metadata, sample.phantom.seed
    label = f"etdb demo {sample.sid}: SYNTHETIC phantom, not real data"

    volume = phantom_volume(sample.phantom)
    angles = tilt_angles(*sample.angles)
    # Dual axis: the grid is turned 90 degrees in its plane for the second series (IMOD a/b).
    axes = [("", volume)]
    if sample.dual:
        axes = [("a", volume), ("b", np.rot90(volume, 1, axes=(1, 2)))]
    for i, (suffix, vol) in enumerate(axes):
        stack = tilt_series(
            np.ascontiguousarray(vol), angles, dose=meta["dosage"] / len(axes),
            pixel_size=sample.pixel_size, seed=seed + 1 + i,
        )  # fmt: skip
        write_tilt_series(
            raw / f"{sample.name}{suffix}.mrc", stack, angles, pixel_size=sample.pixel_size,
            magnification=meta["magnification"], defocus=meta["defocus"],
            dose=meta["dosage"] / len(axes), label=label,
        )  # fmt: skip
    tomogram = rec_dir / f"{sample.name}_full.rec"
    write_volume(
        tomogram,
        reconstruction(volume, sample.angles[1], seed=seed + 7, dual=sample.dual),
        voxel_size=sample.pixel_size,
        label=label,
    )
    ensure_media(scratch, sample.sid, reconstruction=tomogram)
    _snapshots(sample, scratch, tomogram)
    scratch.rename(final)
    return final


def _snapshots(sample: DemoSample, folder: Path, tomogram: Path) -> None:
    """Two AutoCaps-style snapshots: the cell pole (zoomed) and the gold beads near the top."""
    nz, ny, nx = sample.phantom.size
    y, x = pole(sample.phantom)
    row = ny - 1 - y  # images are shown flipped (MRC rows run bottom-up)
    half = SNAPSHOT_BOX // 2
    left = int(min(max(x - half, 0), nx - SNAPSHOT_BOX))
    top = int(min(max(row - half, 0), ny - SNAPSHOT_BOX))
    box = (left, top, left + SNAPSHOT_BOX, top + SNAPSHOT_BOX)
    shot = render_slab(tomogram, thickness=5, box=box)
    size = SNAPSHOT_BOX * SNAPSHOT_ZOOM
    beads = render_slab(tomogram, center=nz - 6, thickness=5)
    pole_name, bead_name = sample.snapshots
    for name, pic in ((pole_name, shot.resize((size, size))), (bead_name, beads)):
        (folder / name).parent.mkdir(exist_ok=True)
        pic.save(folder / name, format="JPEG", quality=88)
