"""An artifact, flattened: the catalog columns every filter, sort and facet reads, and the
normalised words the full-text index holds.

Flattening is a pure function of the artifact. The full-text side depends on that: SQLite's
contentless FTS5 table deletes a row by being handed the exact words it indexed (see
``fts.py``), which the store recomputes from the stored artifact with :func:`flatten`. Any
change to what this module produces must therefore bump ``schema.SCHEMA_VERSION`` (a rebuild).

Text is normalised in Python, not by the database, so both backends see identical words:
NFKD, combining marks dropped (``Müller`` -> ``muller``), casefolded, split into runs of
letters and digits (``rr2014-01-14-5`` -> ``rr2014 01 14 5``). SQLite's tokenizer and
PostgreSQL's ``simple`` configuration then only split on the single spaces we join with.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from etdb.index.fields import flat_columns, flat_fields
from etdb.record import Artifact, Details, Info, Storage, ValidationError
from etdb.record.limits import INT64_MAX

#: Words longer than this are not indexed (PostgreSQL drops words over 2047 bytes with a
#: notice; one shared, smaller limit keeps both backends' answers the same).
MAX_WORD = 100

#: Full-text fields, in FTS5 column order (see ``fts.py`` for weights).
TEXT_FIELDS = (
    "title",
    "species",
    "strain",
    "notes",
    "microscopist",
    "lab",
    "institution",
    "tags",
    "files",
    "sid",
)

#: The facet-count values a record's bytes are summed under (facet "_bytes"): the low and the
#: high 32 bits of its ``total_bytes``. A plain sum overflows a 64-bit count at two records
#: of 2^62 bytes (and records got in before limits existed); each part is below 2^32, so
#: either sum stays below 2^63 up to 2^31 records. The low part keeps the value "", which
#: older catalogs summed whole totals under, so their sums still read right.
BYTES_LOW, BYTES_HIGH = "", "high"
_WORD = re.compile(r"[^\W_]+")


def clean(text: str) -> str:
    """``text`` as both databases can store it: no NUL (PostgreSQL text refuses it), no lone
    surrogates (from a JSON ``"\\ud800"``; neither driver can encode them)."""
    if text.isascii():
        return text.replace("\x00", "") if "\x00" in text else text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text.replace("\x00", "")


def words(text: str) -> list[str]:
    """Normalised search words of ``text`` (the same function indexes and queries); words
    longer than :data:`MAX_WORD` are left out."""
    return [w for w in all_words(text) if len(w) <= MAX_WORD]


def all_words(text: str) -> list[str]:
    if text.isascii():
        folded = text.lower()
    else:
        decomposed = unicodedata.normalize("NFKD", clean(text))
        folded = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    return _WORD.findall(folded)


def label(value: Any) -> str | None:
    """A categorical value as filtered and faceted: whitespace collapsed, "" -> None.

    Real records carry ``"Sulfolobus solfataricus "`` (trailing space); facets must not split
    one species in two, and a filter copied from a raw artifact must still match.
    """
    if not isinstance(value, str):
        return None
    collapsed = " ".join(clean(value).split())
    return collapsed or None


@dataclass(frozen=True, slots=True)
class Flat:
    """What the catalog stores about one artifact besides its JSON."""

    columns: dict[str, Any]  # records columns, see COLUMNS
    file_types: tuple[str, ...]  # distinct file subtypes, sorted
    text: dict[str, str]  # TEXT_FIELDS -> normalised words joined by spaces

    def facet_values(self) -> Iterator[tuple[str, str]]:
        """(facet, value) pairs this record counts towards, except ``publisher``."""
        for name in _FACET_COLUMNS:
            value = self.columns[name]
            if value is not None:
                yield name, str(value)
        for subtype in self.file_types:
            yield "file_type", subtype


#: Facets kept in a column of their own (``publisher`` is counted by the writer).
_FACET_COLUMNS = tuple(f.name for f in flat_columns() if f.facet)
#: The flat columns of ``records`` (besides identity and provenance): the registry's (in its
#: order) between the title and what only the record pages and downloads show.
COLUMNS = (
    "title",
    *(f.name for f in flat_columns()),
    "magnification",
    "sid",
    "location",
    "thumbnail",
    "total_bytes",
    "file_types",
)


def flatten(wire: dict[str, Any]) -> Flat:
    """Flatten a wire-form artifact. Never raises for a JSON object: a part that does not
    validate (the indexer may keep records with odd extras) is left out of the columns; the
    stored JSON keeps everything."""
    art = _lenient(wire)
    info = art.info or Info()
    d = art.details or Details()
    files = art.files
    subtypes = sorted({s for f in files if (s := label(f.subtype))})
    thumb = next(iter(art.files_of("thumbnail") or art.files_of("keyimg")), None)
    fields = {name: convert(_at(art, path)) for name, path, convert in _REGISTRY_COLUMNS}
    columns: dict[str, Any] = {
        "title": label(info.title) or "",
        **fields,
        "year": _year(fields["date"]),
        "magnification": _float(d.magnification),
        "sid": label(d.sid),
        "location": clean(art.location) or None,
        "thumbnail": clean(thumb.fname) if thumb and thumb.fname else None,
        "total_bytes": min(sum(max(f.fsize or 0, 0) for f in files), INT64_MAX),
        "file_types": ",".join(subtypes),
    }
    text = {
        "title": info.title,
        "species": d.speciesName,
        "strain": d.strain,
        "notes": d.artNotes,
        "microscopist": d.microscopist,
        "lab": d.lab,
        "institution": d.institution,
        "tags": info.tags,
        "files": " ".join(p for f in files for p in (f.fname, f.dname, f.fNotes) if p),
        "sid": d.sid,
    }
    return Flat(columns, tuple(subtypes), {k: _joined(v) for k, v in text.items()})


def byte_counts(total: int) -> tuple[tuple[str, int], tuple[str, int]]:
    """What one record's ``total_bytes`` (0 to INT64_MAX) adds to each ``_bytes`` count."""
    return (BYTES_LOW, total & 0xFFFF_FFFF), (BYTES_HIGH, total >> 32)


def bytes_total(counts: Mapping[str, int]) -> int:
    """The catalog's bytes from its ``_bytes`` counts by value (exact, whatever the size)."""
    return counts.get(BYTES_LOW, 0) + (counts.get(BYTES_HIGH, 0) << 32)


def _int64(value: Any) -> int | None:
    """Both databases store 64-bit integers; a larger one (valid JSON) is left out, and so is
    anything not an integer (a registry field may read an extra key of any JSON type)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if -INT64_MAX <= value <= INT64_MAX else None


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any double
        return None
    # The ledger's JSON has no NaN or infinities (record.decoding); kept out all the same, as
    # PostgreSQL orders NaN above every number and a range would match it.
    return number if math.isfinite(number) else None


#: Catalog column type (fields.ColumnType) -> the stored value of an artifact's value.
_CONVERT: dict[str, Callable[[Any], Any]] = {"key": label, "int": _int64, "float": _float}


#: (column, path, converter) of each registry column read from the artifact.
_REGISTRY_COLUMNS = tuple((f.name, f.path, _CONVERT[f.column]) for f in flat_fields() if f.column)


def _at(art: Artifact, path: tuple[str, ...]) -> Any:
    """The value at ``path`` (attribute names, extras included), None where a step is absent."""
    value: Any = art
    for name in path:
        value = getattr(value, name, None)
        if value is None:
            return None
    return value


def _joined(text: str | None) -> str:
    return " ".join(words(text)) if text else ""


def _year(seconds: int | None) -> int | None:
    if seconds is None:
        return None
    try:
        return datetime.fromtimestamp(seconds, UTC).year
    except (OverflowError, OSError, ValueError):
        return None


def _lenient(wire: Any) -> Artifact:
    if not isinstance(wire, dict):
        return Artifact()
    try:
        return Artifact.from_wire(wire)
    except ValidationError:
        pass
    # Keep the parts that validate on their own; drop the rest (and odd top-level scalars).
    parts: dict[str, Any] = {}
    for key, model in (("info", Info), ("details", Details), ("storage", Storage)):
        try:
            parts[key] = model.from_wire(wire.get(key))
        except ValidationError:
            continue
    for key in ("timestamp", "floAddress"):
        try:
            Artifact.from_wire({key: wire.get(key)})
            parts[key] = wire.get(key)
        except ValidationError:
            continue
    return Artifact.model_construct(**parts)
