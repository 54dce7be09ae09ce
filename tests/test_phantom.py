"""The demo's synthetic data: a deterministic phantom cell, a physically sensible tilt series and
reconstruction, valid MRC files, and realistic, clearly synthetic metadata."""

import io
import math
import time

import mrcfile
import numpy as np
import pytest

from etdb.demo import demo_samples, generate_dataset
from etdb.demo.imaging import (
    project,
    reconstruction,
    tilt_angles,
    tilt_series,
    write_tilt_series,
    write_volume,
)
from etdb.demo.phantom import GOLD, CellSpec, PhantomSpec, phantom_volume
from etdb.demo.samples import SPECIES, SYNTHETIC_NOTE
from etdb.publish.dataset import build_artifact, describe_files

SMALL = PhantomSpec(size=(32, 96, 96), cell=CellSpec("rod", 16, 20, ribosomes=60, flagella=1))


def test_phantom_is_deterministic_and_seeded():
    a = phantom_volume(SMALL)
    assert a.dtype == np.float32 and a.shape == (32, 96, 96)
    assert np.array_equal(a, phantom_volume(SMALL))
    other = PhantomSpec(SMALL.size, SMALL.cell, seed=1)
    assert not np.array_equal(a, phantom_volume(other))


def test_gold_beads_are_the_densest_thing_and_sit_at_the_ice_surfaces():
    spec = PhantomSpec((48, 128, 128), CellSpec(ribosomes=50), beads=6, seed=4)
    vol = phantom_volume(spec)
    assert vol.max() > 0.8 * GOLD
    z, _, _ = np.nonzero(vol > GOLD / 2)
    depth = np.abs(z - (vol.shape[0] - 1) / 2)
    assert depth.min() > vol.shape[0] / 2 - 10  # near the top or bottom, never mid-slab
    assert vol[vol < GOLD / 2].max() < GOLD / 2  # nothing else comes close


def test_envelope_has_two_membranes():
    cell = CellSpec("coccus", 30, 0, periplasm=6, ribosomes=0)
    vol = phantom_volume(PhantomSpec((64, 96, 96), cell, beads=0))
    # A line from the centre outwards through the middle plane crosses inner then outer.
    line = (vol[31, 48, 48:] + vol[32, 48, 48:]) / 2
    peaks = [i for i in range(1, len(line) - 1) if line[i] > 0.5 and line[i] >= line[i - 1]
             and line[i] >= line[i + 1]]  # fmt: skip
    assert len(peaks) == 2
    assert peaks[1] - peaks[0] == pytest.approx(6, abs=1)


def test_projection_geometry_and_mass():
    # A smooth blob (sampling a single voxel at 1/cos spacing would alias) at z = 8 - 15.5 =
    # -7.5 and x = 40 - 31.5 = 8.5 from the centre, of unit mass.
    z, y, x = np.ogrid[:32, :16, :64]
    vol = np.exp(-((z - 8) ** 2 + (y - 8) ** 2 + (x - 40) ** 2) / (2 * 2.0**2)).astype(np.float32)
    vol /= vol.sum()
    for angle in (-60.0, -30.0, 0.0, 45.0):
        img = project(vol, [angle])[0]
        s = np.arange(64) - 31.5
        centroid = (img.sum(axis=0) * s).sum() / img.sum()
        rad = math.radians(angle)
        assert centroid == pytest.approx(8.5 * math.cos(rad) - 7.5 * math.sin(rad), abs=0.1)
        assert img.sum() == pytest.approx(1.0, rel=5e-3)  # line integrals keep the mass


def test_tilt_series_counts_fall_with_tilt_and_are_noisy():
    vol = phantom_volume(SMALL)
    angles = tilt_angles(-60, 60, 3)
    assert len(angles) == 41 and angles[0] == -60 and angles[-1] == 60
    ts = tilt_series(vol, angles, dose=120, pixel_size=40, seed=1)
    assert ts.dtype == np.int16 and ts.shape == (41, 96, 96)
    means = ts.reshape(41, -1).mean(axis=1)
    assert means[20] > means[0] and means[20] > means[-1]  # thicker ice at high tilt
    assert ts[20].std() > 0
    assert np.array_equal(ts, tilt_series(vol, angles, dose=120, pixel_size=40, seed=1))


def _wedge_fraction(vol: np.ndarray, tilt_max: float) -> float:
    f = np.abs(np.fft.rfftn(vol.astype(np.float64))) ** 2
    kz = np.abs(np.fft.fftfreq(vol.shape[0]))[:, None, None]
    kx = np.fft.rfftfreq(vol.shape[2])[None, None, :]
    band = (kz**2 + kx**2 > 0.02**2) & (kz**2 + kx**2 < 0.15**2)
    wedge = (kz > kx * math.tan(math.radians(tilt_max + 8))) & band
    seen = (kz < kx * math.tan(math.radians(tilt_max - 8))) & band
    return float(np.broadcast_to(f, f.shape)[np.broadcast_to(wedge, f.shape)].mean()
                 / np.broadcast_to(f, f.shape)[np.broadcast_to(seen, f.shape)].mean())  # fmt: skip


def test_reconstruction_has_a_missing_wedge_and_dense_is_dark():
    vol = phantom_volume(SMALL)
    rec = reconstruction(vol, 60, seed=2)
    assert rec.dtype == np.int16 and rec.shape == vol.shape
    assert _wedge_fraction(rec, 60) < 0.1 * _wedge_fraction(vol, 60)
    dense = vol > 0.8
    assert rec[dense].mean() < rec[vol < 0.01].mean()


def test_one_dataset_worth_of_data_is_fast():
    spec = PhantomSpec(cell=CellSpec("curved", 30, 40, bend=10, flagella=1, pili=3))
    start = time.perf_counter()
    vol = phantom_volume(spec)
    tilt_series(vol, tilt_angles(-60, 60, 2), dose=150, pixel_size=40, seed=1)
    reconstruction(vol, 60, seed=2)
    assert time.perf_counter() - start < 3.0  # ~0.5 s on 2 cores; generous for slow CI


def test_mrc_files_are_valid_with_angles_and_voxel_size(tmp_path):
    vol = phantom_volume(SMALL)
    angles = tilt_angles(-54, 54, 3)
    ts = tilt_series(vol, angles, dose=100, pixel_size=37.5, seed=1)
    path = tmp_path / "rawdata" / "x.mrc"
    path.parent.mkdir()
    write_tilt_series(path, ts, angles, pixel_size=37.5, magnification=27500, defocus=-8,
                      dose=100, label="synthetic")  # fmt: skip
    with mrcfile.open(path) as mrc:
        assert mrc.validate(print_file=io.StringIO())
        assert mrc.is_image_stack() and mrc.header.mode == 1
        assert mrc.voxel_size.x == pytest.approx(37.5)
        assert mrc.header.exttyp == b"FEI1"
        assert list(mrc.indexed_extended_header["Alpha tilt"]) == angles
        assert np.array_equal(mrc.data, ts)
        assert "synthetic" in mrc.get_labels()[0]
    rawtlt = path.with_suffix(".rawtlt").read_text().split()
    assert [float(a) for a in rawtlt] == angles
    rec = tmp_path / "r.rec"
    write_volume(rec, reconstruction(vol, 54, seed=1), voxel_size=37.5, label="synthetic")
    with mrcfile.open(rec) as mrc:
        assert mrc.is_volume() and mrc.data.shape == vol.shape
    assert not list(tmp_path.rglob("*.tmp"))


def test_demo_metadata_is_varied_realistic_and_says_synthetic():
    samples = demo_samples(12)
    assert len({s.sid for s in samples}) == 12
    assert len({s.species.name for s in samples}) == 12
    taxids = {sp.name: sp.taxid for sp in SPECIES}
    assert taxids["Vibrio cholerae"] == 666 and taxids["Borrelia burgdorferi"] == 139
    years = {time.gmtime(s.metadata["date"]).tm_year for s in samples}
    assert min(years) >= 2005 and max(years) <= 2018 and len(years) > 3
    assert len({s.metadata["microscopist"] for s in samples}) > 3
    for s in samples:
        m = s.metadata
        assert SYNTHETIC_NOTE in m["tiltSeriesNotes"]
        assert "synthetic" in m["description"].lower() and "synthetic" in m["tags"]
        assert m["tiltMin"] < 0 < m["tiltMax"] and m["defocus"] < 0
        assert 20 <= s.pixel_size <= 60
        assert s.sid.endswith(f"-{samples.index(s) + 1}")
    assert [s.sid for s in demo_samples(3)] == [s.sid for s in samples[:3]]  # stable


def test_generate_dataset_writes_the_go_etdb_layout_once(tmp_path):
    sample = demo_samples(1)[0]
    folder = generate_dataset(sample, tmp_path)
    assert folder == tmp_path / sample.sid
    sid = sample.sid
    names = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert {f"keyimg_{sid}.jpg", f"keyimg_{sid}_s.jpg", f"keymov_{sid}.mp4"} <= names
    assert f"3dimage_1/{sample.name}_full.rec" in names
    assert any(n.startswith("rawdata/") and n.endswith(".mrc") for n in names)
    assert any(n.endswith(".rawtlt") for n in names)
    assert set(sample.snapshots) <= names
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    # The record the lab path would build from it names everything, with the right software.
    files = describe_files(folder, sid)
    art = build_artifact(sample.metadata, "bafkqaaa", files)
    subtypes = {f.subtype for f in art.files}
    assert {"tiltSeries", "reconstruction", "keymov", "keyimg", "thumbnail", "snapshot"} <= subtypes
    assert art.software_acquisition == sample.metadata["swAcquisition"]
    assert all(f.fNotes for f in art.files_of("snapshot"))
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*")}
    assert generate_dataset(sample, tmp_path) == folder
    assert before == {p: p.stat().st_mtime_ns for p in folder.rglob("*")}
