"""One MRC file's acquisition facts, from its headers and sidecars, without reading its data.

Tilt series and tomograms are GBs; only the 1024-byte header (:mod:`etdb.mrc.header`) and the
extended header (:mod:`etdb.mrc.extended`) are read, so the cost is the same for a 10 MB and a
10 GB file, and a file whose data block is a hole in a sparse file is read like any other.

Where a value comes from, most trusted first:

* tilt angles: the extended header (``FEI1``/``FEI2``/``SERI``) > ``.mdoc`` > ``.rawtlt`` >
  ``.tlt`` (the last is IMOD's *refined* angles, a step removed from what was acquired);
* magnification, dose, defocus, voltage, pixel size: extended header > ``.mdoc``;
* tilt axis, binning: FEI extended header > MRC labels > ``.mdoc`` title lines.

Units are the ETDB record's: Å, kV, e/Å² (summed over the series), µm for defocus with its
sign as the microscope wrote it. FEI and SerialEM both write negative for underfocus, and so
do ETDB records (rr2014-01-14-5: ``"defocus": -10``), so the sign is kept, not flipped.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from etdb.mrc.errors import MrcError
from etdb.mrc.extended import (
    MAX_TILT,
    fei_table,
    is_fei,
    is_serialem,
    read_extended,
    seri_values,
)
from etdb.mrc.header import RawHeader, read_raw_header
from etdb.mrc.sidecars import (
    Mdoc,
    find_sidecars,
    parse_angle_list,
    parse_mdoc,
    read_sidecar_text,
)

__all__ = ["FileFacts", "Kind", "Source", "TiltSource", "read_mrc_facts"]

Kind = Literal["tilt series", "image", "volume"]
TiltSource = Literal["FEI1", "FEI2", "SERI", "mdoc", "rawtlt", "tlt"]

_TILT_AXIS = re.compile(r"tilt\s*axis\s*angle\s*=\s*([-+]?\d+(?:\.\d*)?)", re.IGNORECASE)
_BINNING = re.compile(r"\bbinning\s*=\s*(\d+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Source:
    """Where one value came from: the file read and what part of it (``"FEI1"``, ``"SERI"``,
    ``"mdoc"``, ``"rawtlt"``, ``"tlt"``, ``"header"``, ``"label"``)."""

    path: Path
    kind: str


@dataclass(frozen=True)
class FileFacts:
    path: Path
    nx: int
    ny: int
    nz: int
    mode: int
    dtype: str  # numpy-style name of the mode ("int16", "float32", ...)
    kind: Kind  # what the header says: ispg 0 = images (a stack when nz > 1), else a volume
    exttyp: str | None
    voxel_size: tuple[float, float, float] | None = None  # Å (cella / mx, ...), when set
    labels: tuple[str, ...] = ()
    tilt_angles: tuple[float, ...] | None = None  # degrees, in section order
    tilt_source: TiltSource | None = None
    magnification: float | None = None
    dose: float | None = None  # e/Å², total over the series
    defocus: float | None = None  # µm, negative = underfocus
    voltage: float | None = None  # kV
    microscope: str | None = None
    camera: str | None = None
    tilt_axis: float | None = None  # degrees
    binning: int | None = None
    pixel_size: float | None = None  # Å, as the extended header or mdoc gives it
    #: fact name (the attribute names above) -> where it came from
    sources: Mapping[str, Source] = field(default_factory=dict, compare=False, hash=False)


def read_mrc_facts(path: Path | str) -> FileFacts:
    """Read ``path``'s header, extended header and sidecars; never its data block.

    Raises MrcError naming the file for: not an MRC file, a truncated header, extended
    header or data block, an extended header shorter than its sections need, and a sidecar
    that cannot be parsed (naming the line).
    """
    path = Path(path)
    raw = read_raw_header(path)
    facts = _Collector(path, raw)
    facts.from_header()
    if is_fei(raw) or is_serialem(raw):
        try:
            with path.open("rb") as fh:
                data = read_extended(fh, raw)
        except OSError as exc:
            raise MrcError(path, f"cannot read: {exc.strerror or exc}") from None
        facts.from_extended_header(data)
    facts.from_sidecars()
    return facts.build()


class _Collector:
    """Gathers values; the first source to give a fact wins (sources are tried in order)."""

    def __init__(self, path: Path, raw: RawHeader) -> None:
        self.path = path
        self.raw = raw
        self.values: dict[str, Any] = {}
        self.sources: dict[str, Source] = {}

    def put(self, name: str, value: Any, kind: str, path: Path | None = None) -> None:
        if value is None or name in self.values:
            return
        self.values[name] = value
        self.sources[name] = Source(path or self.path, kind)

    # -- main header ------------------------------------------------------------------

    def from_header(self) -> None:
        if self.raw.voxel_size is not None:
            self.put("voxel_size", self.raw.voxel_size, "header")
        self.values["labels"] = self.raw.labels
        self.labels_text = "\n".join(self.raw.labels)

    # -- extended header ----------------------------------------------------------------

    def from_extended_header(self, data: bytes) -> None:
        if is_fei(self.raw):
            self._fei(fei_table(data, self.raw, self.path), self.raw.exttyp or "")
        else:
            seri = seri_values(data, self.raw, self.path)
            self._tilts(seri.tilt_angles, "SERI")
            self.put("magnification", _typical(seri.magnifications, positive=True), "SERI")
            self.put("dose", _total(seri.doses), "SERI")

    def _fei(self, ext: Any, exttyp: str) -> None:
        self._tilts(tuple(float(a) for a in ext["Alpha tilt"]), exttyp)
        self.put("magnification", _typical(ext["Magnification"], positive=True), exttyp)
        # FEI writes SI units: dose in e/m² per image, defocus and pixel size in metres.
        self.put("dose", _total(d * 1e-20 for d in ext["Dose"]), exttyp)
        defocus = _typical(ext["Defocus"], nonzero=True)
        self.put("defocus", None if defocus is None else round(defocus * 1e6, 3), exttyp)
        voltage = _typical(ext["HT"], positive=True)
        self.put("voltage", None if voltage is None else voltage / 1000, exttyp)
        pixel = _typical(ext["Pixel size X"], positive=True)
        self.put("pixel_size", None if pixel is None else round(pixel * 1e10, 4), exttyp)
        self.put("microscope", _first_text(ext["Microscope type"]), exttyp)
        self.put("camera", _first_text(ext["Camera name"]), exttyp)
        self.put("tilt_axis", _typical(ext["Tilt axis angle"], nonzero=True), exttyp)
        binning = _typical(ext["Binning Width"], positive=True)
        self.put("binning", None if binning is None else int(binning), exttyp)

    def _tilts(self, angles: tuple[float, ...] | None, kind: str, path: Path | None = None) -> None:
        if not angles or "tilt_angles" in self.values:
            return
        # A stack whose every angle is 0 is not a tilt series (FEI writes 0 when untilted).
        if len(angles) > 1 and all(a == 0 for a in angles):
            return
        where = path or self.path
        if len(angles) != self.raw.nz:
            raise MrcError(
                where, f"{len(angles)} tilt angles for {self.raw.nz} sections of {self.path.name}"
            )
        for index, angle in enumerate(angles):
            if not math.isfinite(angle) or abs(angle) > MAX_TILT:
                raise MrcError(
                    where, f"{kind} tilt angle of section {index} is {angle!r}, not within ±90°"
                )
        self.put("tilt_angles", tuple(round(a, 2) for a in angles), kind, path)
        self.values["tilt_source"] = kind

    # -- labels and sidecars --------------------------------------------------------------

    def from_sidecars(self) -> None:
        self._from_labels(self.labels_text, "label", self.path)
        found = find_sidecars(self.path)
        # Every sidecar present is parsed, used or not: a broken one is reported, not skipped.
        mdoc = None
        if "mdoc" in found:
            mdoc = parse_mdoc(read_sidecar_text(found["mdoc"]), found["mdoc"])
        lists = {
            kind: parse_angle_list(read_sidecar_text(found[kind]), found[kind])
            for kind in ("rawtlt", "tlt")
            if kind in found
        }
        if mdoc is not None:
            self._from_mdoc(mdoc)
        for kind, angles in lists.items():
            self._tilts(angles, kind, found[kind])

    def _from_labels(self, text: str, kind: str, path: Path) -> None:
        axis = _TILT_AXIS.search(text)
        if axis is not None:
            self.put("tilt_axis", _finite(float(axis.group(1))), kind, path)
        binning = _BINNING.search(text)
        if binning is not None and 0 < int(binning.group(1)) < 10_000:
            self.put("binning", int(binning.group(1)), kind, path)

    def _from_mdoc(self, mdoc: Mdoc) -> None:
        where = mdoc.path
        if mdoc.sections:
            expected = list(range(len(mdoc.sections)))
            if list(mdoc.sections) != expected:
                raise MrcError(where, "ZValue sections are not numbered 0, 1, 2, ...")
            tilts = mdoc.column("TiltAngle")
            if all(t is not None for t in tilts):
                self._tilts(tuple(t for t in tilts if t is not None), "mdoc", where)
        put = self.put

        def per_image(key: str) -> list[float | None]:
            return mdoc.column(key) if mdoc.sections else [mdoc.number(None, key)]

        put("magnification", _typical(per_image("Magnification"), positive=True), "mdoc", where)
        doses = [d for d in per_image("ExposureDose") if d is not None]
        put("dose", _total(doses), "mdoc", where)
        target = _typical(per_image("TargetDefocus"), nonzero=True)
        measured = _typical(per_image("Defocus"), nonzero=True)
        defocus = target if target is not None else measured
        put("defocus", None if defocus is None else round(defocus, 3), "mdoc", where)
        for name, key in (("voltage", "Voltage"), ("pixel_size", "PixelSpacing")):
            value = mdoc.number(None, key)
            if value is None:
                value = _typical(per_image(key), positive=True)
            put(name, value if value is None or value > 0 else None, "mdoc", where)
        self._from_labels("\n".join(mdoc.titles), "mdoc", where)
        binning = _typical(per_image("Binning"), positive=True)
        put("binning", None if binning is None else round(binning), "mdoc", where)

    def build(self) -> FileFacts:
        raw = self.raw
        if raw.ispg == 0:
            kind: Kind = "tilt series" if raw.nz > 1 else "image"
        else:
            kind = "volume"
        return FileFacts(
            path=self.path, nx=raw.nx, ny=raw.ny, nz=raw.nz, mode=raw.mode, dtype=raw.dtype,
            kind=kind, exttyp=raw.exttyp, sources=dict(self.sources), **self.values,
        )  # fmt: skip


# -- reducing per-image values ---------------------------------------------------------------


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _clean(values: Iterable[Any], *, positive: bool = False, nonzero: bool = False) -> list[float]:
    out: list[float] = []
    for value in values:
        if value is None:
            continue
        number = float(value)
        if not math.isfinite(number) or (positive and number <= 0) or (nonzero and number == 0):
            continue  # unset (0) or garbage: no information
        out.append(number)
    return out


def _typical(values: Iterable[Any] | None, **kw: bool) -> float | None:
    """The median of the meaningful per-image values: a series has one magnification and one
    target defocus, but autofocus and stray images scatter the recorded values a little."""
    if values is None:
        return None
    clean = _clean(values, **kw)
    return float(statistics.median(clean)) if clean else None


def _total(values: Iterable[Any] | None) -> float | None:
    """Total dose: the sum of the per-image doses (None when no image records one)."""
    if values is None:
        return None
    clean = _clean(values, positive=True)
    try:
        total = math.fsum(clean)
    except OverflowError:  # garbage in a header; no real dose comes near
        return None
    return round(total, 3) if clean and math.isfinite(total) else None


def _first_text(values: Iterable[Any]) -> str | None:
    for value in values:
        text = bytes(value).split(b"\x00", 1)[0].decode("ascii", errors="replace").strip()
        if text:
            return text
    return None
