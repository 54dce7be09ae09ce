"""What ``etdb download`` selects: API filters, file types, and ETDB-downloads filter files.

Three inputs decide what a download fetches:

* **API filters** (``--species``, ``--date-from``...): passed to ``/api/v1/records`` under the
  API's own names, so that the browse page's ``etdb download ...`` command selects exactly the
  records the page shows (:data:`FILTERS` lists them in the API's order).
* **File types** (``--file-type``): which files of each selected record are fetched, by the
  file's ``subtype``: :data:`FILE_TYPES`, case-insensitive (the page writes ``tiltSeries``),
  comma-separated or repeated; ETDB-downloads' names (``TiltSeries``, ``Reconstructions``,
  ``Images``, ``Videos``, ``Others``, ``All``) are accepted too. A subtype outside the named
  ones is ``other``; ``zarr`` (a folder entry, the pyramid) is fetched only when named.
  Unlike the API's ``file_type`` filter (records having *every* listed subtype), a record is
  kept when it has *any* listed type, and only files of those types are fetched; for one type
  both mean the same files.
* **A filter file** (``--filter-file queryStack.json``): ETDB-downloads' ``complex-filter``
  query stack, see :func:`parse_filter`. Conditions that are exactly an API filter are sent to
  the server (fewer records to read); every condition is also checked here on each record's
  JSON, so the result is the filter's whatever the server could narrow.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from etdb.index.fields import Field, filter_fields
from etdb.record.subtypes import PYRAMID_SUBTYPE, SUBTYPES

__all__ = [
    "DEFAULT_FILE_TYPES",
    "FILE_TYPES",
    "FILTERS",
    "FILTER_HELP",
    "Condition",
    "Group",
    "SelectionError",
    "api_params",
    "file_category",
    "load_filter",
    "parse_file_types",
    "parse_filter",
    "record_view",
]


class SelectionError(ValueError):
    """A selection input is invalid; the message names the flag, file or filter entry."""


# -- API filters --------------------------------------------------------------------------------


def _filters() -> tuple[tuple[str, bool, str], ...]:
    """(API name, repeats, help) of every record filter, in the API's order: ``q``, the
    registry's filters (but ``file_type``: ``--file-type`` chooses files, see below), then
    ``include_deactivated``."""
    rows = [("q", False, "Full text (title, species, notes, file names...).")]
    for f in filter_fields():
        if f.column is None:
            continue
        if f.kind == "range":
            rows += [(f"{f.name}_{end}", False, _range_help(f, end)) for end in ("from", "to")]
        elif f.choices:
            rows.append((f.name, False, f"{f.choices_text}."))
        else:
            about = f.help[0].upper() + f.help[1:]
            rows.append((f.name, f.many, about if f.many else f"{about}."))
    rows.append(("include_deactivated", False, "Also records their publisher deactivated."))
    return tuple(rows)


def _range_help(f: Field, end: str) -> str:
    what = f.help[0].upper() + f.help[1:]
    if f.instant:
        return (
            f"{what} on or after (ISO date, unix s)."
            if end == "from"
            else (f"{what} on or before (a bare date: that day).")
        )
    unit = f" ({f.unit})" if f.unit else ""
    return f"{what} {'>=' if end == 'from' else '<='}{unit}."


_FILTER_ROWS = _filters()
#: The API's record filters in its declaration order, and whether each repeats (any-of).
#: Presentation parameters (sort, order, limit, after, facets, format) select nothing.
FILTERS: tuple[tuple[str, bool], ...] = tuple((name, many) for name, many, _ in _FILTER_ROWS)
#: Command-line help of each filter (a repeating one's flag adds "repeat for any-of").
FILTER_HELP: dict[str, str] = {name: about for name, _, about in _FILTER_ROWS}


def api_params(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(name, value)`` pairs for ``/api/v1/records`` from option values by API name.

    None, "" and empty lists are absent; a flag (``include_deactivated``) is ``true`` when set.
    Values go as typed: the server checks them and names the parameter when one is wrong.
    """
    params: list[tuple[str, str]] = []
    for name, repeatable in FILTERS:
        value = values.get(name)
        if value is None or value is False or value == "" or value == []:
            continue
        if value is True:
            params.append((name, "true"))
        elif repeatable and isinstance(value, list | tuple):
            params += [(name, str(v)) for v in value if str(v) != ""]
        else:
            params.append((name, str(value)))
    return params


# -- file types ---------------------------------------------------------------------------------

#: The file types, lower-cased record subtypes; a ``preview`` (a movie of the acquisition
#: software's) is ``other``, as in ETDB-downloads, which had no such type.
FILE_TYPES = tuple(s.lower() for s in SUBTYPES if s != "preview")
#: What no ``--file-type`` fetches: every type but ``zarr``, the OME-Zarr pyramid derived from
#: the reconstruction at publish time (a folder of chunk files, up to the reconstruction's size
#: again), fetched when named (``--file-type zarr``, or ``all``).
DEFAULT_FILE_TYPES = tuple(t for t in FILE_TYPES if t != PYRAMID_SUBTYPE)
#: ETDB-downloads' --fileType choices (lower-cased) -> ours.
_LEGACY_TYPES: dict[str, tuple[str, ...]] = {
    "reconstructions": ("reconstruction",),
    "subvolumes": ("subvolume",),
    "images": ("keyimg", "snapshot"),
    "videos": ("keymov",),
    "others": ("other",),
    "all": FILE_TYPES,
}


def parse_file_types(values: Iterable[str] | None) -> frozenset[str]:
    """The file types of ``--file-type`` values (comma-separated, repeatable); none =
    :data:`DEFAULT_FILE_TYPES`."""
    chosen: set[str] = set()
    for value in values or ():
        for word in value.split(","):
            name = word.strip().lower()
            if not name:
                continue
            if name in FILE_TYPES:
                chosen.add(name)
            elif name in _LEGACY_TYPES:
                chosen.update(_LEGACY_TYPES[name])
            else:
                raise SelectionError(
                    f"--file-type: unknown type {word.strip()!r}; choose from "
                    + ", ".join(FILE_TYPES)
                )
    return frozenset(chosen) if chosen else frozenset(DEFAULT_FILE_TYPES)


def file_category(subtype: str | None) -> str:
    """The file type of a record file's ``subtype`` (``tiltSeries`` -> ``tiltseries``)."""
    name = (subtype or "").strip().lower()
    return name if name in FILE_TYPES else "other"


# -- the ETDB-downloads filter file (complex-filter query stacks) -------------------------------

StringTest = Literal["contains", "exact", "startsWith", "endsWith", "regex"]
NumberTest = Literal["exactValue", "lessThan", "greaterThan", "between"]
_STRING_TESTS = ("contains", "exact", "startsWith", "endsWith", "regex")
_NUMBER_TESTS = ("exactValue", "lessThan", "greaterThan", "between")


@dataclass(frozen=True, slots=True)
class Condition:
    """One ``{"type": "filter"}`` entry: ``path`` (``searchOn`` split on dots), the test."""

    path: tuple[str, ...]
    test: str
    value: Any
    negate: bool = False
    where: str = ""  # "filter[2].args[0]", for messages

    def holds(self, view: Mapping[str, Any]) -> bool:
        return _test(self, _lookup(view, self.path)) != self.negate


@dataclass(frozen=True, slots=True)
class Group:
    """``AND`` (the stack itself), ``OR``, or ``NOT`` (true unless every term holds) over
    conditions and groups."""

    op: Literal["AND", "OR", "NOT"]
    terms: tuple[Condition | Group, ...] = field(default_factory=tuple)
    negate: bool = False

    def holds(self, view: Mapping[str, Any]) -> bool:
        if self.op == "OR":
            result = any(t.holds(view) for t in self.terms)
        else:
            result = all(t.holds(view) for t in self.terms)
            if self.op == "NOT":
                result = not result
        return result != self.negate

    def paths(self) -> Iterable[tuple[str, ...]]:
        for t in self.terms:
            yield from (t.paths() if isinstance(t, Group) else (t.path,))


def load_filter(path: Path) -> Group:
    """A filter file, parsed; :class:`SelectionError` names the file and the bad entry."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SelectionError(f"--filter-file {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SelectionError(f"--filter-file {path}: not JSON ({exc})") from None
    try:
        return parse_filter(data)
    except SelectionError as exc:
        raise SelectionError(f"--filter-file {path}: {exc}") from None


def parse_filter(data: Any, where: str = "filter") -> Group:
    """A complex-filter query stack: a list of entries, all of which must hold (AND).

    An entry is ``{"type": "filter", "searchOn": "artifact.details.speciesName", "searchType":
    ..., "searchFor": ..., "not": false}`` or ``{"type": "AND"|"OR"|"NOT", "args": [entries],
    "not": false}``. String tests: ``contains`` (a plain substring, case-sensitive), ``exact``
    (whitespace runs collapsed on both sides, as the API's filters compare), ``startsWith``,
    ``endsWith``, ``regex`` (Python syntax); number tests: ``exactValue``, ``lessThan``,
    ``greaterThan``, ``between`` (``"lo;hi"``, both exclusive). A field a record lacks fails its
    test. ``searchOn`` is a dotted path into the record as ``/api/v1/records/{id}`` returns it
    plus ``txid`` and ``publisher`` (``artifact.details.microscopist``, ``txid``...).
    """
    if not isinstance(data, list):
        raise SelectionError(f"{where}: must be a JSON list of filter entries")
    return Group("AND", tuple(_entry(e, f"{where}[{i}]") for i, e in enumerate(data)))


def _entry(entry: Any, where: str) -> Condition | Group:
    if not isinstance(entry, dict):
        raise SelectionError(f"{where}: must be an object")
    kind = entry.get("type")
    negate = entry.get("not", False)
    if not isinstance(negate, bool):
        raise SelectionError(f"{where}.not: must be true or false")
    if kind in ("AND", "OR", "NOT"):
        args = entry.get("args")
        if not isinstance(args, list) or not args:
            raise SelectionError(f"{where}.args: a {kind} entry needs a non-empty list")
        terms = tuple(_entry(e, f"{where}.args[{i}]") for i, e in enumerate(args))
        return Group(kind, terms, negate)
    if kind not in ("filter", "simple"):
        raise SelectionError(f"{where}.type: must be filter, AND, OR or NOT (got {kind!r})")
    on, test, value = entry.get("searchOn"), entry.get("searchType"), entry.get("searchFor")
    if not isinstance(on, str) or not on.strip() or any(not p for p in on.split(".")):
        raise SelectionError(f"{where}.searchOn: must be a dotted field path")
    if test in _STRING_TESTS:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise SelectionError(f"{where}.searchFor: {test} needs a string")
        value = str(value)
        if test == "regex":
            try:
                value = re.compile(value)
            except re.error as exc:
                raise SelectionError(f"{where}.searchFor: bad regex ({exc})") from None
    elif test in _NUMBER_TESTS:
        value = _number_operand(test, value, where)
    else:
        tests = ", ".join((*_STRING_TESTS, *_NUMBER_TESTS))
        raise SelectionError(f"{where}.searchType: must be one of {tests} (got {test!r})")
    return Condition(tuple(on.split(".")), test, value, negate, where)


def _number_operand(test: str, value: Any, where: str) -> Any:
    try:
        if test == "between":
            lo, hi = (float(v) for v in str(value).split(";"))
            return (lo, hi)
        if isinstance(value, bool):
            raise ValueError
        return float(value)
    except ValueError:
        form = '"low;high"' if test == "between" else "a number"
        raise SelectionError(f"{where}.searchFor: {test} needs {form}") from None


def _lookup(view: Mapping[str, Any], path: Sequence[str]) -> Any:
    value: Any = view
    for name in path:
        if isinstance(value, Mapping):
            value = value.get(name)
        elif isinstance(value, list) and name.isdigit() and int(name) < len(value):
            value = value[int(name)]
        else:
            return None
    return value


def _collapse(value: str) -> str:
    return " ".join(value.split())


def _test(cond: Condition, found: Any) -> bool:
    if found is None or isinstance(found, dict | list):
        return False
    if cond.test in _NUMBER_TESTS:
        try:
            number = float(found)
        except (TypeError, ValueError):
            return False
        if cond.test == "exactValue":
            return number == cond.value
        if cond.test == "lessThan":
            return number < cond.value
        if cond.test == "greaterThan":
            return number > cond.value
        lo, hi = cond.value
        return lo < number < hi
    text = found if isinstance(found, str) else json.dumps(found)
    match cond.test:
        case "contains":
            return cond.value in text
        case "exact":
            return _collapse(text) == _collapse(cond.value)
        case "startsWith":
            return text.startswith(cond.value)
        case "endsWith":
            return text.endswith(cond.value)
        case _:
            return cond.value.search(text) is not None


# -- which conditions the server can apply ------------------------------------------------------

#: A filter-file field -> the API filter that tests it for equality (the registry's text and
#: plain exact fields, at their record paths; the publisher also as the signer).
_API_EQUALS = {
    **{
        ("artifact", *f.path): f.name
        for f in filter_fields()
        if f.kind in ("text", "exact") and f.path and not f.choices
    },
    ("artifact", "floAddress"): "publisher",
    ("publisher",): "publisher",
}


_INTEGERS = frozenset(f.name for f in filter_fields() if f.column == "int")


def server_params(group: Group, taken: Iterable[str]) -> list[tuple[str, str]]:
    """API filters equivalent to top-level conditions of ``group`` (plain ``exact`` or
    ``exactValue`` tests, not negated). A parameter already ``taken`` by a command-line flag, or
    tested twice, is left to the client: repeating it would mean any-of, not AND."""
    found: dict[str, list[str]] = {}
    for term in group.terms:
        if not isinstance(term, Condition) or term.negate:
            continue
        name = _API_EQUALS.get(term.path)
        if name is None or term.test not in ("exact", "exactValue"):
            continue
        value = term.value
        if name in _INTEGERS:
            if isinstance(value, str):
                value = value.strip()
            try:
                value = str(int(float(value)))
            except ValueError:
                continue
        elif not isinstance(value, str):
            continue
        found.setdefault(name, []).append(str(value))
    taken = set(taken)
    return [(n, vs[0]) for n, vs in found.items() if n not in taken and len(vs) == 1]


#: Summary field -> where the same value sits in the record (so a filter on these paths is
#: decided from a search page, without reading each record).
_SUMMARY_PATHS: dict[tuple[str, ...], str] = {
    ("artifact", "details", "speciesName"): "species",
    ("artifact", "details", "strain"): "strain",
    ("artifact", "details", "scopeName"): "scope",
    ("artifact", "details", "lab"): "lab",
    ("artifact", "details", "institution"): "institution",
    ("artifact", "details", "microscopist"): "microscopist",
    ("artifact", "details", "sid"): "sid",
    ("artifact", "details", "date"): "date",
    ("artifact", "info", "title"): "title",
    ("artifact", "floAddress"): "publisher",
    ("artifact", "timestamp"): "published",
    ("artifact", "storage", "location"): "location",
    ("publisher",): "publisher",
    ("txid",): "id",
}


def needs_record(group: Group) -> bool:
    """Whether ``group`` tests fields a search summary lacks (then each record is read)."""
    return any(p not in _SUMMARY_PATHS for p in group.paths())


def record_view(record: Mapping[str, Any]) -> dict[str, Any]:
    """What a filter's ``searchOn`` paths read: a full record (``/records/{id}``) with
    ``txid`` and ``publisher`` added, or a search summary laid out the same way."""
    if "artifact" in record:
        summary = record.get("summary") or {}
        return {**record, "txid": summary.get("id"), "publisher": summary.get("publisher")}
    view: dict[str, Any] = {}
    for path, name in _SUMMARY_PATHS.items():
        node = view
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = record.get(name)
    return view
