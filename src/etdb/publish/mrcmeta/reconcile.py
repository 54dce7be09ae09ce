"""The lab database's metadata, completed and checked against what the files say.

The database is the authority: a value it has is kept even when the files disagree; the
disagreement is returned so the lab can fix whichever side is wrong. A value it lacks
(absent, None or "") is filled from the files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from etdb.publish.mrcmeta.dataset import DatasetFacts

__all__ = ["RECONCILED_KEYS", "TOLERANCES", "Disagreement", "reconcile"]

#: Record ``details`` keys filled from / checked against the files, in record order.
RECONCILED_KEYS = (
    "tiltSingleDual",
    "defocus",
    "dosage",
    "tiltConstant",
    "tiltMin",
    "tiltMax",
    "tiltStep",
    "magnification",
)
#: key -> (tolerance, relative?): beyond it, database and files disagree.
TOLERANCES: dict[str, tuple[float, bool]] = {
    "tiltMin": (0.5, False),
    "tiltMax": (0.5, False),
    "tiltStep": (0.05, False),
    "magnification": (0.01, True),
    "dosage": (0.05, True),
    "defocus": (0.1, False),
    "tiltConstant": (0, False),
    "tiltSingleDual": (0, False),
}
# Filled when the database lacks it, never compared: names differ in form, not in truth
# ("Caltech Polara" in the database, "Polara" or a serial number in the FEI header).
_FILL_ONLY = ("scopeName",)


@dataclass(frozen=True, slots=True)
class Disagreement:
    field: str  # the record key
    database_value: Any
    file_value: Any
    source_path: str  # dataset-relative path of the file the value was read from
    source_kind: str  # "FEI1", "SERI", "mdoc", "rawtlt", "tlt", "file names", ...

    def __str__(self) -> str:
        return (
            f"{self.field}: database says {self.database_value!r}, {self.source_path} "
            f"({self.source_kind}) says {self.file_value!r}"
        )


def reconcile(
    metadata: Mapping[str, Any], facts: DatasetFacts
) -> tuple[dict[str, Any], list[Disagreement]]:
    """A new dict: ``metadata`` with missing keys filled from ``facts``, and the keys where
    both have a value that differ beyond :data:`TOLERANCES` (the database value is kept)."""
    out = dict(metadata)
    disagreements: list[Disagreement] = []
    for key in (*RECONCILED_KEYS, *_FILL_ONLY):
        if key not in facts.values:
            continue
        found = facts.values[key]
        current = metadata.get(key)
        if _missing(current):
            out[key] = found
        elif key not in _FILL_ONLY and not _agrees(key, current, found):
            path, kind = facts.sources.get(key, ("", ""))
            disagreements.append(Disagreement(key, current, found, path, kind))
    return out, disagreements


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _agrees(key: str, database: Any, found: Any) -> bool:
    if isinstance(database, bool) or not isinstance(database, int | float):
        return False  # not a number: it cannot match (and will not pass record validation)
    tolerance, relative = TOLERANCES[key]
    if key == "defocus":
        # Sign conventions differ between labs' databases (some store underfocus positive);
        # the magnitude is what the files can vouch for.
        database, found = abs(database), abs(found)
    allowed = tolerance * abs(database) if relative else tolerance
    # A hair of slack so that float noise (59.9999 vs 60.5) never decides a borderline case.
    return abs(database - found) <= allowed + 1e-9
