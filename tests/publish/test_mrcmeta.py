"""Metadata from MRC files and sidecars: every header type written for real with mrcfile (SERI
packed by hand), sidecar precedence, every error path, reconcile, fuzzing, the demo data."""

from __future__ import annotations

import contextlib
import math
import os
import struct
from pathlib import Path

import mrcfile
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mrcfile.dtypes import get_ext_header_dtype

from etdb.demo import demo_sample, generate_dataset
from etdb.mrc.serialem import decode_seri, shorts_to_float
from etdb.mrc.sidecars import parse_angle_list, parse_mdoc
from etdb.publish.mrcmeta import (
    Disagreement,
    MrcError,
    dataset_facts,
    read_mrc_facts,
    reconcile,
    tilt_summary,
)
from etdb.record import Details

ANGLES = [-60.0 + 3 * i for i in range(41)]  # -60 .. 60 every 3


# -- writers ----------------------------------------------------------------------------------


def write_mrc(path: Path, nz: int, *, volume: bool = False, label: str | None = None) -> Path:
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(np.zeros((nz, 4, 6), np.int16))
        mrc.set_volume() if volume else mrc.set_image_stack()
        mrc.voxel_size = 2.5
        if label is not None:
            mrc.header.label[0] = label.encode()
            mrc.header.nlabl = 1
    return path


def write_fei(path: Path, angles, exttyp=b"FEI1", **fields) -> Path:
    ext = np.zeros(len(angles), dtype=get_ext_header_dtype(exttyp))
    ext["Metadata size"] = ext.dtype.itemsize
    ext["Alpha tilt"] = angles
    for name, value in fields.items():
        ext[name.replace("_", " ")] = value
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(np.zeros((len(angles), 4, 6), np.int16))
        mrc.set_image_stack()
        mrc.header.exttyp = exttyp
        mrc.set_extended_header(ext)
    return path


def float_to_shorts(value: float) -> tuple[int, int]:
    """SerialEM's encoder (EMimageExtra::FloatToShorts), written from its description."""
    if value == 0:
        return 0, 0
    sign = -1 if value < 0 else 1
    value = abs(value)
    exponent = math.floor(math.log2(value)) - 22
    scaled = math.floor(value / 2.0**exponent)
    exp_sign = -1 if exponent < 0 else 1
    return sign * (scaled // 256), exp_sign * (abs(exponent) * 256 + scaled % 256)


def seri_sections(nreal: int, nint: int, rows: list[dict]) -> bytes:
    out = b""
    for row in rows:
        section = b""
        if nreal & 1:
            section += struct.pack("<h", round(row["tilt"] * 100))
        if nreal & 2:
            section += struct.pack("<3h", 1, 2, 3)
        if nreal & 4:
            section += struct.pack("<2h", 250, -125)
        if nreal & 8:
            section += struct.pack("<h", row["mag"] // 100)
        if nreal & 16:
            section += struct.pack("<h", 3000)
        if nreal & 32:
            section += struct.pack("<2h", *float_to_shorts(row["dose"]))
        out += section.ljust(nint, b"\x00")
    return out


def write_seri(path: Path, rows: list[dict], nreal: int, nint: int | None = None, exttyp=b"SERI"):
    nint = nint or len(seri_sections(nreal, 0, rows[:1]))
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(np.zeros((len(rows), 4, 6), np.int16))
        mrc.set_image_stack()
        mrc.header.exttyp = exttyp
        mrc.set_extended_header(np.frombuffer(seri_sections(nreal, nint, rows), "V1"))
    with path.open("r+b") as fh:  # nint, nreal: header bytes 128-131 (mrcfile keeps them 0)
        fh.seek(128)
        fh.write(struct.pack("<2h", nint, nreal))
    return path


def rows_for(angles, mag=33000, dose=2.5):
    return [{"tilt": a, "mag": mag, "dose": dose} for a in angles]


MDOC = """PixelSpacing = 3.42
Voltage = 300
ImageFile = ts.mrc

[T = SerialEM: Digitized on EMBL Krios   11-Jan-18  10:53:02    ]

[T =     Tilt axis angle = 85.3, binning = 2  spot = 9  camera = 0]
"""


def mdoc_text(angles, *, dose=3.0, defocus=-4.87, target=-5.0) -> str:
    text = MDOC
    for z, angle in enumerate(angles):
        text += (
            f"\n[ZValue = {z}]\nTiltAngle = {angle:.2f}\nStagePosition = 1.5 -2.25\n"
            f"Magnification = 42000\nExposureDose = {dose}\nDefocus = {defocus}\n"
            f"TargetDefocus = {target}\nBinning = 2\n"
        )
    return text


# -- header types ---------------------------------------------------------------------------


@pytest.mark.parametrize("exttyp", [b"FEI1", b"FEI2"])
def test_fei_extended_header(tmp_path, exttyp):
    path = write_fei(
        tmp_path / "ts.mrc", ANGLES, exttyp, HT=300e3, Dose=2.5e20, Defocus=-6e-6,
        Pixel_size_X=3.4e-10, Magnification=26000, Microscope_type=b"TITAN52336320",
        Camera_name=b"BM-Falcon", Tilt_axis_angle=-84.5, Binning_Width=2,
    )  # fmt: skip
    f = read_mrc_facts(path)
    assert (f.nx, f.ny, f.nz, f.dtype, f.kind) == (6, 4, 41, "int16", "tilt series")
    assert f.exttyp == exttyp.decode() and f.tilt_source == exttyp.decode()
    assert f.tilt_angles == tuple(ANGLES)
    assert f.dose == pytest.approx(41 * 2.5)  # per-image e/m² summed, in e/Å²
    assert f.defocus == pytest.approx(-6.0)
    assert (f.voltage, f.magnification, f.pixel_size) == (300.0, 26000.0, 3.4)
    assert (f.microscope, f.camera, f.tilt_axis, f.binning) == (
        "TITAN52336320", "BM-Falcon", -84.5, 2,
    )  # fmt: skip
    assert f.sources["dose"].kind == exttyp.decode()


def test_fei_untilted_stack_has_no_angles(tmp_path):
    f = read_mrc_facts(write_fei(tmp_path / "s.mrc", [0.0] * 5, Magnification=5000))
    assert f.tilt_angles is None and f.tilt_source is None and f.magnification == 5000


@pytest.mark.parametrize(
    ("nreal", "nint"), [(1 | 8 | 32, None), (1 | 2 | 4 | 8 | 16, None), (63, 32)]
)
def test_seri_extended_header(tmp_path, nreal, nint):
    rows = rows_for([-51.0, -48.03, 0.0, 12.5, 51.0], mag=33000, dose=2.5)
    f = read_mrc_facts(write_seri(tmp_path / "ts.mrc", rows, nreal, nint))
    assert f.exttyp == "SERI" and f.tilt_source == "SERI"
    assert f.tilt_angles == (-51.0, -48.03, 0.0, 12.5, 51.0)
    assert f.magnification == 33000
    assert f.dose == (pytest.approx(12.5) if nreal & 32 else None)


def test_unlabelled_old_serialem_header(tmp_path):
    rows = rows_for([-2.0, 0.0, 2.0])
    f = read_mrc_facts(write_seri(tmp_path / "old.mrc", rows, 1 | 8, exttyp=b"\0\0\0\0"))
    assert f.exttyp is None and f.tilt_source == "SERI" and f.tilt_angles == (-2.0, 0.0, 2.0)


def test_serialem_float_known_vector():
    # 2.5 = 5242880 x 2^-21: s1 = 5242880 // 256, s2 = -(21 x 256 + 5242880 % 256)
    assert shorts_to_float(20480, -5376) == 2.5
    assert shorts_to_float(-20480, -5376) == -2.5
    assert shorts_to_float(0, 0) == 0.0


@given(st.floats(min_value=1e-6, max_value=1e6) | st.floats(min_value=-1e6, max_value=-1e-6))
def test_serialem_float_round_trip(value):
    assert shorts_to_float(*float_to_shorts(value)) == pytest.approx(value, rel=1e-6)


def test_volume_and_labels(tmp_path):
    label = "Tilt axis angle = 86.2, binning = 2  spot = 8  camera = 0"
    f = read_mrc_facts(write_mrc(tmp_path / "x_full.rec", 7, volume=True, label=label))
    assert f.kind == "volume" and f.voxel_size == (2.5, 2.5, 2.5) and f.exttyp is None
    assert (f.tilt_axis, f.binning, f.tilt_angles) == (86.2, 2, None)
    assert f.labels == (label,) and f.sources["binning"].kind == "label"


# -- sidecars -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ts.mrc.mdoc", "ts.mdoc"])
def test_mdoc_sidecar(tmp_path, name):
    path = write_mrc(tmp_path / "ts.mrc", 3)
    (tmp_path / name).write_text(mdoc_text([-3, 0, 3]))
    f = read_mrc_facts(path)
    assert f.tilt_source == "mdoc" and f.tilt_angles == (-3.0, 0.0, 3.0)
    assert (f.magnification, f.dose, f.defocus) == (42000, 9.0, -5.0)  # target defocus first
    assert (f.voltage, f.pixel_size, f.tilt_axis, f.binning) == (300, 3.42, 85.3, 2)
    assert f.sources["tilt_angles"].path == tmp_path / name


def test_mdoc_full_name_preferred(tmp_path):
    path = write_mrc(tmp_path / "ts.mrc", 2)
    (tmp_path / "ts.mrc.mdoc").write_text(mdoc_text([-1, 1]))
    (tmp_path / "ts.mdoc").write_text(mdoc_text([-7, 7]))
    assert read_mrc_facts(path).tilt_angles == (-1.0, 1.0)


def test_angle_list_precedence(tmp_path):
    path = write_mrc(tmp_path / "ts.mrc", 3)
    (tmp_path / "ts.tlt").write_text("-2.9\n0.1\n3.1\n")
    assert read_mrc_facts(path).tilt_source == "tlt"
    (tmp_path / "ts.rawtlt").write_text("-3\n0\n3\n\n")
    f = read_mrc_facts(path)
    assert (f.tilt_source, f.tilt_angles) == ("rawtlt", (-3.0, 0.0, 3.0))
    (tmp_path / "ts.mrc.mdoc").write_text(mdoc_text([-4, 0, 4]))
    assert read_mrc_facts(path).tilt_source == "mdoc"
    fei = write_fei(tmp_path / "f.mrc", [-1.0, 0.0, 1.0])
    (tmp_path / "f.rawtlt").write_text("-3\n0\n3\n")
    assert read_mrc_facts(fei).tilt_source == "FEI1"


# -- errors ---------------------------------------------------------------------------------


def _error(path: Path) -> str:
    with pytest.raises(MrcError) as info:
        read_mrc_facts(path)
    assert str(path.name) in str(info.value)
    return str(info.value)


def test_not_an_mrc_file(tmp_path):
    (tmp_path / "x.mrc").write_bytes(b"\x89PNG" + bytes(2000))
    assert "not an MRC file" in _error(tmp_path / "x.mrc")
    assert "cannot read" in _error(tmp_path / "missing.mrc")


def test_truncated_header_and_blocks(tmp_path):
    good = write_fei(tmp_path / "g.mrc", ANGLES).read_bytes()
    (tmp_path / "h.mrc").write_bytes(good[:500])
    assert "truncated header: 500 bytes" in _error(tmp_path / "h.mrc")
    (tmp_path / "e.mrc").write_bytes(good[:5000])
    assert "truncated extended header" in _error(tmp_path / "e.mrc")
    (tmp_path / "d.mrc").write_bytes(good[:-10])
    assert "truncated data block" in _error(tmp_path / "d.mrc")


def test_extended_header_too_short(tmp_path):
    seri = write_seri(tmp_path / "s.mrc", rows_for([1.0, 2.0]), 1 | 8)
    with seri.open("r+b") as fh:
        fh.seek(128)
        fh.write(struct.pack("<h", 40))  # nint 40: needs 80 bytes, the header has 8
    assert "extended header too short" in _error(seri)
    small = write_seri(tmp_path / "n.mrc", rows_for([1.0]), 1 | 8 | 32, nint=4)
    assert "need 8 bytes per section but nint is 4" in _error(small)
    fei = write_fei(tmp_path / "f.mrc", [1.0, 2.0])
    with mrcfile.open(fei, "r+") as mrc:  # the same sections, now claiming 4 images
        mrc.set_data(np.zeros((4, 4, 6), np.int16))
    assert "FEI1 needs 4 sections x 768 bytes" in _error(fei)
    with fei.open("r+b") as fh:
        fh.seek(1024)
        fh.write(struct.pack("<i", 700))
    with mrcfile.open(fei, "r+") as mrc:
        mrc.set_data(np.zeros((2, 4, 6), np.int16))
    assert "says 700 bytes per section" in _error(fei)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("ts.rawtlt", "-3\nabc\n3\n", "line 2: 'abc' is not an angle"),
        ("ts.tlt", "-3\n0\n95\n", "line 3: '95' is not a tilt angle"),
        ("ts.rawtlt", "\n\n", "no angles"),
        ("ts.rawtlt", "-3\n3\n", "2 tilt angles for 3 sections"),
        (
            "ts.mrc.mdoc",
            "[ZValue = 0]\nTiltAngle = x1\n",
            "line 2: TiltAngle = 'x1' is not a number",
        ),
        ("ts.mrc.mdoc", "Voltage 300\n", "line 1: expected 'key = value'"),
        ("ts.mrc.mdoc", "[ZValue = 0\n", "line 1: malformed section header"),
        ("ts.mrc.mdoc", "[ZValue = a]\n", "line 1: ZValue 'a' is not a Z index"),
        ("ts.mrc.mdoc", "[ZValue = 0]\n[ZValue = 0]\n", "line 2: ZValue 0 appears twice"),
        ("ts.mrc.mdoc", "[ZValue = 1]\nTiltAngle = 1\n", "not numbered 0, 1, 2"),
    ],
)
def test_sidecar_errors_name_file_and_line(tmp_path, name, text, message):
    path = write_mrc(tmp_path / "ts.mrc", 3)
    (tmp_path / name).write_text(text)
    with pytest.raises(MrcError) as info:
        read_mrc_facts(path)
    assert message in str(info.value) and name in str(info.value)


def test_unused_broken_sidecar_is_still_reported(tmp_path):
    fei = write_fei(tmp_path / "f.mrc", [-1.0, 0.0, 1.0])
    (tmp_path / "f.tlt").write_text("oops\n")
    with pytest.raises(MrcError, match=r"f\.tlt: line 1: 'oops' is not an angle"):
        read_mrc_facts(fei)


# -- big files: only the header is read -------------------------------------------------------


def test_sparse_multi_gb_looking_file(tmp_path):
    nz, n = 25, 2048  # 25 x 2048 x 2048 int16 = 200 MB of data, all of it a hole
    path = write_fei(tmp_path / "big.mrc", [-60.0 + 5 * i for i in range(nz)], Magnification=1e4)
    ext = 768 * nz
    with path.open("r+b") as fh:
        fh.seek(0)
        fh.write(struct.pack("<2i", n, n))
        fh.truncate(1024 + ext + n * n * nz * 2)
    assert path.stat().st_blocks * 512 < 10 * 1024 * 1024  # really sparse: data not on disk
    io = Path("/proc/self/io")
    before = _rchar(io)
    f = read_mrc_facts(path)
    assert (f.nx, f.ny, f.nz, f.magnification) == (n, n, nz, 1e4)
    assert f.tilt_angles[0] == -60.0 and f.tilt_angles[-1] == 60.0
    if before is not None:  # Linux: bytes read by this process, not a timing or memory figure
        assert _rchar(io) - before < 1024 * 1024


def _rchar(io: Path) -> int | None:
    if not io.exists():
        return None
    for line in io.read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    return None


# -- dataset and reconcile -----------------------------------------------------------------------


def test_tilt_summary_schemes():
    assert tilt_summary([ANGLES]) == {
        "tiltMin": -60.0,
        "tiltMax": 60.0,
        "tiltStep": 3.0,
        "tiltConstant": 1,
    }
    dose_symmetric = [0, 3, -3, -6, 6, 9, -9, -12, 12]
    assert tilt_summary([dose_symmetric])["tiltConstant"] == 1
    saxton = [-60, -58.5, -56, -52, -46, -38, -30, -22, -14, -6, 0, 6, 14]
    summary = tilt_summary([saxton])
    assert (summary["tiltStep"], summary["tiltConstant"]) == (8.0, 0)
    assert tilt_summary([[-2.0, 0.0, 0.0, 2.0]])["tiltConstant"] == 1  # re-take at 0°


def test_dataset_facts_dual_axis_and_problems(tmp_path):
    (tmp_path / "raw").mkdir()
    write_seri(tmp_path / "raw/tsa.mrc", rows_for([-3.0, 0.0, 3.0], dose=10.0), 1 | 8 | 32)
    write_fei(tmp_path / "raw/tsb.mrc", [-4.0, -2.0, 0.0, 2.0], Dose=5e20, Microscope_type=b"Krios")
    write_mrc(tmp_path / "rec.rec", 9, volume=True)
    (tmp_path / "bad.rec").write_text("not a volume\n" * 200)
    facts = dataset_facts(
        tmp_path, tilt_series=["raw/tsa.mrc", "raw/tsb.mrc", "raw/gone.mrc"],
        reconstructions=["bad.rec", "rec.rec"],
    )  # fmt: skip
    assert [p for p, _ in facts.problems] == ["raw/gone.mrc", "bad.rec"]
    assert "not an MRC file" in facts.problems[1][1]
    assert facts.values == {
        "tiltMin": -4.0, "tiltMax": 3.0, "tiltStep": 2.0, "tiltConstant": 0,
        "tiltSingleDual": 2, "magnification": 33000, "dosage": 50.0, "scopeName": "Krios",
    }  # fmt: skip
    assert facts.sources["tiltMin"] == ("raw/tsb.mrc", "FEI1")
    assert facts.sources["dosage"] == ("raw/tsa.mrc", "SERI")
    assert (facts.voxel_size, facts.dimensions) == ((2.5, 2.5, 2.5), (6, 4, 9))
    single = dataset_facts(tmp_path, tilt_series=["raw/tsa.mrc"], reconstructions=[])
    assert single.values["tiltSingleDual"] == 1 and single.voxel_size is None


def _facts(tmp_path: Path):
    write_fei(
        tmp_path / "ts.mrc", ANGLES, Magnification=22500, Dose=4e20, Defocus=-10e-6,
        Microscope_type=b"Polara",
    )  # fmt: skip
    return dataset_facts(tmp_path, tilt_series=["ts.mrc"], reconstructions=[])


def test_reconcile_fills_missing(tmp_path):
    metadata = {"title": "x", "tiltMin": None, "dosage": "", "sid": "ab1"}
    out, disagreements = reconcile(metadata, _facts(tmp_path))
    assert disagreements == [] and metadata["tiltMin"] is None  # a new dict
    assert out == {
        "title": "x", "sid": "ab1", "tiltMin": -60.0, "tiltMax": 60.0, "tiltStep": 3.0,
        "tiltConstant": 1, "tiltSingleDual": 1, "magnification": 22500, "dosage": 164.0,
        "defocus": -10.0, "scopeName": "Polara",
    }  # fmt: skip
    assert isinstance(out["tiltConstant"], int) and isinstance(out["tiltSingleDual"], int)
    Details.model_validate({k: v for k, v in out.items() if k != "title"})


def test_reconcile_keeps_database_and_reports(tmp_path):
    database = {
        "tiltMin": -60.4, "tiltMax": 59.4, "tiltStep": 3.04, "tiltConstant": 1,
        "tiltSingleDual": 2, "magnification": 22700, "dosage": 160, "defocus": 10.05,
        "scopeName": "Caltech Polara",
    }  # fmt: skip
    out, disagreements = reconcile(database, _facts(tmp_path))
    assert out == database
    assert disagreements == [
        Disagreement("tiltSingleDual", 2, 1, "ts.mrc", "file names"),
        Disagreement("tiltMax", 59.4, 60.0, "ts.mrc", "FEI1"),
    ]  # within tolerance: min 0.4°, step 0.04°, mag 0.9 %, dose 2.4 %, |defocus| 0.05 µm
    database.update(magnification=23000, dosage=150, defocus=-9.8, tiltStep=2, tiltMin="-60")
    fields = {d.field for d in reconcile(database, _facts(tmp_path))[1]}
    assert fields == {"tiltSingleDual", "tiltMax", "magnification", "dosage", "defocus",
                      "tiltStep", "tiltMin"}  # fmt: skip
    mag = next(d for d in reconcile(database, _facts(tmp_path))[1] if d.field == "magnification")
    assert str(mag) == "magnification: database says 23000, ts.mrc (FEI1) says 22500"


@pytest.mark.parametrize("index", [0, 2])  # 2 is a dual-axis sample
def test_demo_datasets(tmp_path, index):
    sample = demo_sample(index)
    folder = generate_dataset(sample, tmp_path)
    series = sorted(p.relative_to(folder).as_posix() for p in folder.glob("rawdata/*.mrc"))
    recs = sorted(p.relative_to(folder).as_posix() for p in folder.glob("3dimage_1/*.rec"))
    facts = dataset_facts(folder, tilt_series=series, reconstructions=recs)
    assert facts.problems == []
    tmin, tmax, step = sample.angles
    assert (facts.values["tiltMin"], facts.values["tiltMax"]) == (tmin, tmax)
    assert facts.values["tiltStep"] == step and facts.values["tiltConstant"] == 1
    assert facts.values["tiltSingleDual"] == (2 if sample.dual else 1) == len(series)
    assert facts.voxel_size == pytest.approx((sample.pixel_size,) * 3)
    out, disagreements = reconcile(sample.metadata, facts)
    assert disagreements == [] and out == sample.metadata


# -- fuzzing: garbage gives MrcError, never anything else ----------------------------------


def read_or_refuse(path: Path) -> None:
    """Read ``path``: a refusal must be an MrcError naming a file; a result must be sane."""
    try:
        f = read_mrc_facts(path)
    except MrcError as exc:
        assert exc.path.name in str(exc)
        return
    assert f.tilt_angles is None or (
        len(f.tilt_angles) == f.nz and all(abs(a) <= 90 for a in f.tilt_angles)
    )
    for value in (f.dose, f.magnification, f.voltage, f.pixel_size):
        assert value is None or (math.isfinite(value) and value > 0)


FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(data=st.binary(max_size=400), nint=st.integers(-40, 40), nreal=st.integers(-70, 70),
       sections=st.integers(0, 12))  # fmt: skip
def test_fuzz_seri_decoder(data, nint, nreal, sections):
    try:
        values = decode_seri(data, sections=sections, nint=nint, nreal=nreal, byteorder="<")
    except ValueError:
        return
    for column in (values.tilt_angles, values.magnifications, values.doses):
        assert column is None or len(column) == sections


@FUZZ
@given(ext=st.binary(min_size=0, max_size=300), nint=st.integers(-5, 60), nreal=st.integers(-5, 70),
       exttyp=st.sampled_from([b"SERI", b"\0\0\0\0", b"FEI1", b"FEI2", b"AGAR"]))  # fmt: skip
def test_fuzz_extended_headers_via_files(tmp_path, ext, nint, nreal, exttyp):
    path = tmp_path / "f.mrc"
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(np.zeros((3, 2, 2), np.int8))
        mrc.header.exttyp = exttyp
        mrc.set_extended_header(np.frombuffer(ext, "V1"))
    with path.open("r+b") as fh:
        fh.seek(128)
        fh.write(struct.pack("<2h", nint, nreal))
    read_or_refuse(path)


@FUZZ
@given(head=st.binary(min_size=0, max_size=1200))
def test_fuzz_whole_headers(tmp_path, head):
    path = tmp_path / "g.mrc"
    path.write_bytes(head)
    read_or_refuse(path)


_MDOC_LINES = st.sampled_from(
    ["[ZValue = 0]", "[ZValue = 1]", "[ZValue = -1]", "[T = x = 1]", "TiltAngle = 3",
     "TiltAngle = nan", "ExposureDose = 1e400", "Magnification = 1 2", "Defocus =", "#c",
     "[", "Binning = 2", "key", "=", "PixelSpacing = -1", ""]
) | st.text(max_size=30)  # fmt: skip


@FUZZ
@given(lines=st.lists(_MDOC_LINES, max_size=12), raw=st.text(max_size=200))
def test_fuzz_sidecar_parsers(lines, raw):
    where = Path("x.mrc.mdoc")
    for text in ("\n".join(lines), raw):
        try:
            mdoc = parse_mdoc(text, where)
            for key in ("TiltAngle", "ExposureDose", "Magnification", "Defocus", "Binning"):
                mdoc.column(key)
                mdoc.number(None, key)
        except MrcError:
            pass
        with contextlib.suppress(MrcError):
            angles = parse_angle_list(text, Path("x.tlt"))
            assert angles and all(abs(a) <= 90 for a in angles)


@FUZZ
@given(lines=st.lists(_MDOC_LINES, max_size=8), nz=st.integers(1, 3))
def test_fuzz_mdoc_through_reader(tmp_path, lines, nz):
    path = write_mrc(tmp_path / "m.mrc", nz)
    (tmp_path / "m.mrc.mdoc").write_text("\n".join(lines), errors="replace")
    try:
        read_or_refuse(path)
    finally:
        os.unlink(tmp_path / "m.mrc.mdoc")
