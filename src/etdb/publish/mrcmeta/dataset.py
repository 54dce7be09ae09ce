"""A dataset's facts: every listed file read, and the record values they imply.

The tilt summary follows go-etdb's meaning of the record keys: ``tiltMin``/``tiltMax`` are the
extreme angles of all tilt series, ``tiltStep`` the most common increment between consecutive
sorted angles, ``tiltConstant`` 1 when every increment is that step (a "constant increment"
scheme, whatever the order of acquisition) and ``tiltSingleDual`` 2 for a dual-axis pair,
which IMOD names ``<name>a.<ext>`` and ``<name>b.<ext>``.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from etdb.mrc.errors import MrcError
from etdb.mrc.facts import FileFacts, Source, read_mrc_facts

__all__ = ["DatasetFacts", "dataset_facts", "tilt_summary"]

CONSTANT_TOLERANCE = 0.05  # degrees: increments this close to the step count as equal
DUPLICATE_TOLERANCE = 0.005  # degrees: a re-take at the same angle, not an increment


@dataclass(frozen=True)
class DatasetFacts:
    folder: Path
    #: dataset-relative path -> facts, for every listed file that could be read
    files: dict[str, FileFacts]
    tilt_series: tuple[str, ...]
    reconstructions: tuple[str, ...]
    #: record ``details`` keys derived from the files (tiltMin, ..., scopeName), ready to use
    values: dict[str, Any] = field(default_factory=dict)
    #: record key -> (dataset-relative path, source kind) it was derived from
    sources: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: (dataset-relative path, message) for each listed file that could not be read
    problems: list[tuple[str, str]] = field(default_factory=list)
    voxel_size: tuple[float, float, float] | None = None  # Å, of the first reconstruction
    dimensions: tuple[int, int, int] | None = None  # (nx, ny, nz) of the first reconstruction


def dataset_facts(
    folder: Path | str, *, tilt_series: Sequence[str], reconstructions: Sequence[str]
) -> DatasetFacts:
    """Read every listed file (paths relative to ``folder``); a file that cannot be read is
    a problem in the result, never an exception, so one bad file loses nothing else."""
    folder = Path(folder)
    files: dict[str, FileFacts] = {}
    problems: list[tuple[str, str]] = []
    for rel in dict.fromkeys([*tilt_series, *reconstructions]):
        try:
            files[rel] = read_mrc_facts(folder / rel)
        except MrcError as exc:
            problems.append((rel, str(exc)))
    values, sources = _record_values(folder, files, tuple(tilt_series))
    first = next((files[rel] for rel in reconstructions if rel in files), None)
    return DatasetFacts(
        folder=folder,
        files=files,
        tilt_series=tuple(tilt_series),
        reconstructions=tuple(reconstructions),
        values=values,
        sources=sources,
        problems=problems,
        voxel_size=None if first is None else first.voxel_size,
        dimensions=None if first is None else (first.nx, first.ny, first.nz),
    )


def _record_values(
    folder: Path, files: dict[str, FileFacts], tilt_series: tuple[str, ...]
) -> tuple[dict[str, Any], dict[str, tuple[str, str]]]:
    values: dict[str, Any] = {}
    sources: dict[str, tuple[str, str]] = {}
    series = [(rel, files[rel]) for rel in tilt_series if rel in files]

    def put(key: str, value: Any, rel: str, file_facts: FileFacts, fact: str) -> None:
        if value is None:
            return
        values[key] = value
        source = file_facts.sources.get(fact, Source(file_facts.path, "header"))
        kind = source.kind
        where = rel if source.path == file_facts.path else _relative(source.path, folder)
        sources[key] = (where, kind)

    angled = [(rel, f) for rel, f in series if f.tilt_angles]
    if angled:
        summary = tilt_summary([f.tilt_angles or () for _, f in angled])
        low = min(angled, key=lambda item: min(item[1].tilt_angles or (0,)))
        high = max(angled, key=lambda item: max(item[1].tilt_angles or (0,)))
        put("tiltMin", summary["tiltMin"], *low, "tilt_angles")
        put("tiltMax", summary["tiltMax"], *high, "tilt_angles")
        for key in ("tiltStep", "tiltConstant"):
            put(key, summary.get(key), *angled[0], "tilt_angles")
    if tilt_series:
        values["tiltSingleDual"] = 2 if _dual_axis(tilt_series) else 1
        sources["tiltSingleDual"] = (tilt_series[0], "file names")

    for rel, f in series:
        if "magnification" not in values and f.magnification is not None:
            put("magnification", _tidy(round(f.magnification, 1)), rel, f, "magnification")
        if "defocus" not in values and f.defocus is not None:
            put("defocus", round(f.defocus, 2), rel, f, "defocus")
        if "scopeName" not in values and f.microscope is not None:
            put("scopeName", f.microscope, rel, f, "microscope")
    # The specimen's dose is that of all its tilt series (both axes of a dual-axis pair).
    dosed = [(rel, f) for rel, f in series if f.dose is not None]
    if dosed:
        total = sum(f.dose or 0.0 for _, f in dosed)  # each finite and bounded by _total
        put("dosage", round(total, 2) if math.isfinite(total) else None, *dosed[0], "dose")
    return values, sources


def tilt_summary(series: Iterable[Sequence[float]]) -> dict[str, Any]:
    """``tiltMin``, ``tiltMax``, ``tiltStep``, ``tiltConstant`` of one or more tilt series."""
    all_angles: list[float] = []
    increments: list[float] = []
    for angles in series:
        ordered = sorted(angles)
        all_angles.extend(ordered)
        for a, b in itertools.pairwise(ordered):
            if b - a > DUPLICATE_TOLERANCE:
                increments.append(b - a)
    if not all_angles:
        raise ValueError("no tilt angles")
    out: dict[str, Any] = {
        "tiltMin": round(min(all_angles), 2),
        "tiltMax": round(max(all_angles), 2),
    }
    if increments:
        counts = Counter(round(i, 2) for i in increments)
        # Most common; ties go to the smaller step so the result does not depend on order.
        step = min(counts, key=lambda s: (-counts[s], s))
        out["tiltStep"] = step
        constant = all(abs(i - step) <= CONSTANT_TOLERANCE for i in increments)
        out["tiltConstant"] = 1 if constant else 0
    return out


def _dual_axis(names: Sequence[str]) -> bool:
    stems: dict[tuple[str, str], set[str]] = {}
    for name in names:
        pure = PurePosixPath(name)
        stem = pure.stem
        if len(stem) >= 2 and stem[-1] in "ab":
            stems.setdefault((str(pure.parent / stem[:-1]), pure.suffix), set()).add(stem[-1])
    return any(ends == {"a", "b"} for ends in stems.values())


def _relative(path: Path, folder: Path) -> str:
    try:
        return path.relative_to(folder).as_posix()
    except ValueError:
        return str(path)


def _tidy(value: float) -> int | float:
    """22500.0 -> 22500: records hold whole magnifications as integers."""
    return int(value) if value.is_integer() else value
