"""The searchable fields of a record, in one registry: :data:`FIELDS`.

Everything that names a filter, a range or a facet derives from it: the catalog columns
(``schema.py``), flattening (``flatten.py``), the search query (``query.SearchQuery``), SQL and
memory-index filters and facets (``search.py``, ``memindex.py``), the API's parameters
(``api/params.py``), the portal's filters, facets and scope (``web/``) and the download flags
(``client/selection.py``). Adding a filter is one entry here (and its tests); a new column is a
catalog schema change (``schema.SCHEMA_VERSION``).

Kinds, and what each means everywhere:

* ``text``: any-of exact values (whitespace collapsed, ``flatten.label``); a text column, a
  facet, a repeatable API parameter, a filter a portal scope may fix.
* ``exact``: a value compared for equality: any-of integers (``repeatable``), one of
  ``choices`` (a name or its number), or one text value.
* ``range``: an inclusive numeric range, API ``<name>_from`` / ``<name>_to``; ``instant``
  ranges are unix seconds given as ISO dates.
* ``facet``: counted, not filtered on by value (``year``), or ``file_type``: subtypes kept in
  their own table (``record_file_types``), every listed one must be present.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

Kind = Literal["text", "exact", "range", "facet"]
#: Catalog column types: compared text (byte order on both backends), 64-bit integer, double.
ColumnType = Literal["key", "int", "float"]


@dataclass(frozen=True, slots=True)
class Field:
    """One searchable field. ``name`` is its catalog column, ``SearchQuery`` attribute, facet
    and API parameter (a range's parameters are ``<name>_from`` and ``<name>_to``)."""

    name: str
    kind: Kind
    label: str  # a heading for people (portal facets and chips)
    help: str  # what it is, in lower case (the API's facet list, command-line help)
    #: Where the value is in a wire-form artifact; () when it is not read from one
    #: (``publisher``: the signing address; ``year``: from ``date``).
    path: tuple[str, ...] = ()
    column: ColumnType | None = "key"  # None: not a column of ``records``
    unit: str = ""
    facet: bool = False  # has facet counts
    repeatable: bool = False  # exact: any of several values
    choices: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    instant: bool = False  # range: unix seconds, written as dates
    indexed: bool = False  # a B-tree index serves its filter
    api_help: str = ""  # the API parameter's description, where the kind's is not enough
    form: bool = True  # range: an input pair in the portal's filter form

    @property
    def filters(self) -> bool:
        """Whether a search can filter on it (it is a ``SearchQuery`` attribute)."""
        return self.kind != "facet" or self.column is None

    @property
    def params(self) -> tuple[str, ...]:
        """Its API parameters."""
        if not self.filters:
            return ()
        return (f"{self.name}_from", f"{self.name}_to") if self.kind == "range" else (self.name,)

    @property
    def many(self) -> bool:
        """Whether the API parameter repeats (any-of; all-of for ``file_type``)."""
        return self.kind == "text" or self.repeatable or self.column is None

    @property
    def numeric(self) -> bool:
        return self.column in ("int", "float")

    def choice_name(self, number: int) -> str:
        """The name of a choice (``2`` -> ``dual``); the number itself if it has none."""
        names = [n for n, v in self.choices.items() if v == number and not n.isdigit()]
        return names[0] if names else str(number)

    @property
    def choices_text(self) -> str:
        """``1 (single) or 2 (dual)``: the choices' numbers and names, for messages."""
        numbers = sorted(set(self.choices.values()))
        return " or ".join(f"{n} ({self.choice_name(n)})" for n in numbers)


_AXIS = MappingProxyType({"single": 1, "dual": 2, "1": 1, "2": 2})  # the API lists them so


def _text(name: str, label: str, help: str, *path: str, indexed: bool = True) -> Field:
    return Field(name, "text", label, help, path, facet=True, indexed=indexed)


def _range(name: str, label: str, help: str, *path: str, unit: str = "") -> Field:
    return Field(name, "range", label, help, path, "float", unit=unit, indexed=True)


#: Every searchable field, in the API's order (parameters, facets, links, flags follow it).
FIELDS: tuple[Field, ...] = (
    _text("publisher", "Publisher", "publisher address (floAddress)", indexed=False),
    _text("species", "Species", "species name", "details", "speciesName", indexed=False),
    Field(
        "taxid",
        "exact",
        "NCBI taxon",
        "NCBI taxonomy id",
        ("details", "NCBItaxID"),
        "int",
        facet=True,
        repeatable=True,
        indexed=True,
        api_help="NCBI taxonomy id; repeatable (any of).",
    ),
    _text("strain", "Strain", "strain", "details", "strain"),
    _text("scope", "Microscope", "microscope (scopeName)", "details", "scopeName"),
    _text("lab", "Lab", "lab", "details", "lab"),
    _text("institution", "Institution", "institution", "details", "institution"),
    _text("microscopist", "Microscopist", "microscopist", "details", "microscopist", indexed=False),
    Field(
        "tilt_axis",
        "exact",
        "Tilt axis",
        "1 single axis, 2 dual axis",
        ("details", "tiltSingleDual"),
        "int",
        facet=True,
        choices=_AXIS,
        api_help="single (1) or dual (2)",
    ),
    Field(
        "date",
        "range",
        "Date taken",
        "acquired",
        ("details", "date"),
        "int",
        instant=True,
        indexed=False,
    ),
    Field("year", "facet", "Year taken", "year the data was taken", (), "int", facet=True),
    Field(
        "published",
        "range",
        "Publication time",
        "published",
        ("timestamp",),
        "int",
        instant=True,
        indexed=False,
        form=False,  # the page sorts by it instead
    ),
    _range("tilt_min", "Lowest tilt angle", "minimum tilt", "details", "tiltMin", unit="°"),
    _range("tilt_max", "Highest tilt angle", "maximum tilt", "details", "tiltMax", unit="°"),
    _range("tilt_step", "Tilt step", "tilt step", "details", "tiltStep", unit="°"),
    _range("defocus", "Defocus", "defocus", "details", "defocus", unit="µm"),
    _range("dosage", "Dose", "dosage", "details", "dosage", unit="e⁻/Å²"),
    Field("emdb", "exact", "EMDB", "EMDB id", ("details", "emdb"), indexed=True),
    Field(
        "file_type",
        "facet",
        "Files available",
        "file subtypes present (tiltSeries, reconstruction, keymov, ...)",
        ("files",),
        None,
        facet=True,
        api_help="File subtypes that must all be present (tiltSeries, keymov...).",
    ),
)


def by_name() -> dict[str, Field]:
    return {f.name: f for f in FIELDS}


def of_kind(*kinds: Kind) -> tuple[Field, ...]:
    return tuple(f for f in FIELDS if f.kind in kinds)


def names(fields: tuple[Field, ...]) -> tuple[str, ...]:
    return tuple(f.name for f in fields)


def text_names() -> tuple[str, ...]:
    """Any-of text filters (``publisher``, ``species``...)."""
    return names(of_kind("text"))


def range_names() -> tuple[str, ...]:
    return names(of_kind("range"))


def facet_names() -> tuple[str, ...]:
    return names(tuple(f for f in FIELDS if f.facet))


def column_fields() -> tuple[Field, ...]:
    """Fields stored as a column of ``records``."""
    return tuple(f for f in FIELDS if f.column is not None)


def filter_fields() -> tuple[Field, ...]:
    """Fields a search filters on (``SearchQuery`` attributes), in the API's order."""
    return tuple(f for f in FIELDS if f.filters)


def flat_columns() -> tuple[Field, ...]:
    """Columns of ``records`` that ``flatten`` fills: all the registry's but ``publisher``
    (the signer's address, a provenance column written from the ledger)."""
    return tuple(f for f in column_fields() if f.name != "publisher")


def flat_fields() -> tuple[Field, ...]:
    """Columns ``flatten`` fills from the artifact (``publisher`` is the signer's address,
    written from the ledger; ``year`` is derived from ``date``)."""
    return tuple(f for f in column_fields() if f.path)
