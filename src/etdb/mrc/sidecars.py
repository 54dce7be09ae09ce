"""Text files that travel next to a tilt series: SerialEM's ``.mdoc`` and IMOD's angle lists.

* ``.mdoc`` is an IMOD *autodoc*: ``key = value`` lines, global ones first, then sections
  opened by ``[type = name]``. SerialEM writes one ``[ZValue = n]`` section per image
  (n from 0) holding ``TiltAngle``, ``Magnification``, ``ExposureDose`` (e/Å²),
  ``Defocus``/``TargetDefocus`` (µm, negative = underfocus), ``PixelSpacing`` (Å), ... and
  ``[T = ...]`` title sections that repeat the MRC labels ("Tilt axis angle = 86.2, ...").
  Lines starting with ``#`` are comments.
* ``.rawtlt`` (the angles as acquired) and ``.tlt`` (as refined by IMOD's alignment) hold one
  angle in degrees per line.

Parsers take the text and the file's path (for messages) and raise MrcError naming the
line for anything else; they never raise anything else, whatever the bytes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from etdb.mrc.errors import MrcError
from etdb.mrc.extended import MAX_TILT

__all__ = [
    "MAX_SIDECAR_BYTES",
    "Mdoc",
    "find_sidecars",
    "parse_angle_list",
    "parse_mdoc",
    "read_sidecar_text",
]

#: A sidecar is a few hundred lines; anything this big is not one (and is not read whole).
MAX_SIDECAR_BYTES = 16 * 1024 * 1024

_SECTION = re.compile(r"^\[\s*([^=\]]+?)\s*=\s*(.*?)\s*\]$")
_KEY_VALUE = re.compile(r"^([A-Za-z_][\w.\-]*)\s*=\s*(.*)$")


@dataclass(frozen=True, slots=True)
class Mdoc:
    """A parsed ``.mdoc``: global keys, per-image sections by Z value, and title lines."""

    path: Path
    globals: Mapping[str, str]
    sections: Mapping[int, Mapping[str, str]]  # ZValue -> its keys, in Z order
    titles: tuple[str, ...] = field(default=())
    # (z, key) -> line number, so that a bad value found later can still be pinned to a line.
    lines: Mapping[tuple[int | None, str], int] = field(default_factory=dict)

    def number(self, z: int | None, key: str) -> float | None:
        """``key`` of section ``z`` (None: the global one) as a float, or None if absent.

        Only the first of several space-separated numbers is read (``ImageShift = 0.1 0.2``).
        """
        keys = self.globals if z is None else self.sections.get(z, {})
        text = keys.get(key)
        if text is None or not text.strip():
            return None
        try:
            value = float(text.split()[0])
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            line = self.lines.get((z, key), 0)
            raise MrcError(self.path, f"line {line}: {key} = {text!r} is not a number")
        return value

    def column(self, key: str) -> list[float | None]:
        """``key`` of every section, in Z order (None where a section lacks it)."""
        return [self.number(z, key) for z in self.sections]


def read_sidecar_text(path: Path) -> str:
    """The sidecar's text; undecodable bytes become U+FFFD (and then fail to parse)."""
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_SIDECAR_BYTES + 1)
    except OSError as exc:
        raise MrcError(path, f"cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_SIDECAR_BYTES:
        raise MrcError(path, f"larger than {MAX_SIDECAR_BYTES} bytes: not a sidecar file")
    return data.decode("utf-8", errors="replace")


def parse_mdoc(text: str, path: Path) -> Mdoc:
    globals_: dict[str, str] = {}
    sections: dict[int, dict[str, str]] = {}
    titles: list[str] = []
    lines: dict[tuple[int | None, str], int] = {}
    current: dict[str, str] | None = globals_
    current_z: int | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            match = _SECTION.match(line)
            if match is None:
                raise MrcError(path, f"line {number}: malformed section header {line[:60]!r}")
            kind, name = match.groups()
            if kind == "ZValue":
                try:
                    z = int(name)
                except ValueError:
                    z = -1
                if z < 0:
                    raise MrcError(path, f"line {number}: ZValue {name[:20]!r} is not a Z index")
                if z in sections:
                    raise MrcError(path, f"line {number}: ZValue {z} appears twice")
                current, current_z = {}, z
                sections[z] = current
            else:
                if kind == "T":
                    titles.append(name)
                current, current_z = None, None  # other sections' keys are not per-image data
            continue
        match = _KEY_VALUE.match(line)
        if match is None:
            raise MrcError(path, f"line {number}: expected 'key = value', got {line[:60]!r}")
        if current is not None:
            key, value = match.groups()
            current[key] = value.strip()
            lines[(current_z, key)] = number
    ordered = {z: sections[z] for z in sorted(sections)}
    return Mdoc(path, globals_, ordered, tuple(titles), lines)


def parse_angle_list(text: str, path: Path) -> tuple[float, ...]:
    """A ``.rawtlt``/``.tlt`` file: one angle (degrees) per line; blank lines are skipped."""
    angles: list[float] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        try:
            angle = float(line)
        except ValueError:
            raise MrcError(path, f"line {number}: {line[:40]!r} is not an angle") from None
        if not math.isfinite(angle) or abs(angle) > MAX_TILT:
            raise MrcError(path, f"line {number}: {line[:40]!r} is not a tilt angle (±90°)")
        angles.append(angle)
    if not angles:
        raise MrcError(path, "no angles in the file")
    return tuple(angles)


def find_sidecars(mrc_path: Path) -> dict[str, Path]:
    """Sidecars present next to ``mrc_path``, by kind (``mdoc``, ``rawtlt``, ``tlt``).

    SerialEM names the mdoc after the whole file name (``x.mrc.mdoc``); some pipelines after
    the stem (``x.mdoc``); the first is preferred when both exist.
    """
    found: dict[str, Path] = {}
    candidates = {
        "mdoc": (mrc_path.with_name(mrc_path.name + ".mdoc"), mrc_path.with_suffix(".mdoc")),
        "rawtlt": (mrc_path.with_suffix(".rawtlt"),),
        "tlt": (mrc_path.with_suffix(".tlt"),),
    }
    for kind, paths in candidates.items():
        for candidate in paths:
            if candidate.is_file():
                found[kind] = candidate
                break
    return found
