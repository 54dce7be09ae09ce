"""What the catalog answers: search queries, record views and the read-side interface.

The API, the CLI, the portal and the Python client speak these types; every catalog store
(SQLite/FTS5, PostgreSQL) implements :class:`CatalogReader`. Filters are typed values, never
SQL: stores bind them as parameters.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from etdb.index.fields import FIELDS, Field, filter_fields

SortKey = Literal["relevance", "date", "published", "species", "microscopist"]
Order = Literal["asc", "desc"]

#: Categorical fields that have facet counts (API name -> meaning), from the registry.
FACETS: dict[str, str] = {f.name: f.help for f in FIELDS if f.facet}

MAX_LIMIT = 500
DEFAULT_LIMIT = 50


@dataclass(frozen=True, slots=True)
class Range:
    """An inclusive numeric range; either end may be open (None)."""

    lo: float | None = None
    hi: float | None = None

    @property
    def is_open(self) -> bool:
        return self.lo is None and self.hi is None


@dataclass(frozen=True, slots=True)
class _Presentation:
    """What a search asks besides filters: text, deactivated records, order and paging."""

    q: str | None = None  # full text: title, species, strain, notes, microscopist, lab, tags, files
    include_deactivated: bool = False
    sort: SortKey = "published"  # "relevance" needs q
    order: Order = "desc"
    limit: int = DEFAULT_LIMIT
    after: str | None = None  # opaque keyset token from a previous SearchResult.next
    facets: tuple[str, ...] = ()


def filter_type(f: Field) -> tuple[Any, Any]:
    """The ``SearchQuery`` attribute of a filter field: (type, default). Tuples of values
    mean "any of" (``file_type``: all of); a range is a :class:`Range`."""
    if f.kind == "range":
        return Range, Range()
    item = int if f.column == "int" else str
    if f.many:
        return tuple[item, ...], ()  # type: ignore[valid-type]
    return item | None, None


def _search_query() -> type:
    attrs = [(f.name, *filter_type(f)) for f in filter_fields()]
    fields = [(name, kind, dataclasses.field(default=default)) for name, kind, default in attrs]
    cls = dataclasses.make_dataclass(
        "SearchQuery", fields, bases=(_Presentation,), frozen=True, slots=True
    )
    cls.__module__ = __name__
    cls.__doc__ = (
        "A catalog search: the registry's filters (etdb.index.fields) and :class:`_Presentation`."
        " Tuples of values mean any of; different fields combine with AND."
    )
    return cls


if TYPE_CHECKING:

    class SearchQuery(_Presentation):
        """The filters are the registry's (etdb.index.fields): typed at run time only."""

        def __init__(self, **fields: Any) -> None: ...

        def __getattr__(self, name: str) -> Any: ...

else:
    SearchQuery = _search_query()


def _doc(text: str) -> Any:
    """A field's meaning, where the API's schema (``etdb.api.models.RecordOut``) reads it."""
    return field(metadata={"doc": text})


@dataclass(frozen=True, slots=True)
class RecordSummary:
    """One search hit: what a results grid or table shows (and the API's record row)."""

    id: str = _doc("txid of the publish (part 0's for a multipart record)")
    publisher: str = _doc("FLO address that signed the record")
    title: str = _doc("the artifact's title")
    species: str | None = _doc("species name")
    strain: str | None = _doc("strain")
    microscopist: str | None = _doc("microscopist")
    lab: str | None = _doc("lab")
    institution: str | None = _doc("institution")
    scope: str | None = _doc("microscope (scopeName)")
    date: int | None = _doc("acquisition date, unix seconds")
    published: int | None = _doc("artifact timestamp, unix seconds")
    sid: str | None = _doc("the lab's dataset id")
    location: str | None = _doc("storage.location (an IPFS directory CID)")
    thumbnail: str | None = _doc("thumbnail file name, relative to location")
    file_types: tuple[str, ...] = _doc("file subtypes the record lists")
    total_bytes: int = _doc("sum of the listed file sizes")
    deactivated: bool = field(default=False, metadata={"doc": "deactivated by its publisher"})


@dataclass(frozen=True, slots=True)
class Provenance:
    txids: tuple[str, ...]  # every transaction that carried the publish (multipart: all parts)
    block_height: int
    block_hash: str
    block_time: int
    signature_valid: bool  # re-checked when indexed
    edits: tuple[dict[str, Any], ...] = ()  # {txid, height, time, timestamp, patch}
    deactivated: bool = False
    deactivated_by: str | None = None  # txid of the deactivation
    # A valid metaSignature covers the current artifact; else only location, address and
    # time are signed (record/metasign.py).
    metadata_signed: bool = False
    # The metadata-signed copy of the same identity that replaced this one (then also
    # deactivated_by).
    superseded_by: str | None = None


@dataclass(frozen=True, slots=True)
class RecordDetail:
    summary: RecordSummary
    artifact: dict[str, Any]  # the current artifact (after edits), wire form
    original: dict[str, Any]  # the artifact as first published
    provenance: Provenance


@dataclass(frozen=True, slots=True)
class FacetValue:
    value: str
    count: int


@dataclass(frozen=True, slots=True)
class SearchResult:
    items: list[RecordSummary]
    total: int
    facets: dict[str, list[FacetValue]] = field(default_factory=dict)
    next: str | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    txid: str
    height: int
    index: int
    time: int
    kind: str  # publish | edit | deactivate | multipart | unknown
    reason: str
    payload_excerpt: str


@dataclass(frozen=True, slots=True)
class PublisherInfo:
    address: str
    records: int
    first_published: int | None
    last_published: int | None
    name: str | None = None  # from configuration, where known
    first_txid: str | None = None  # the record first_published belongs to (ties: lower id)
    first_height: int | None = None  # ... and its block height


@dataclass(frozen=True, slots=True)
class Summary:
    records: int
    species: dict[str, int]
    publishers: dict[str, int]
    total_bytes: int


@dataclass(frozen=True, slots=True)
class IndexStatus:
    ledger_url: str
    ledger_tip: int | None
    indexed_height: int
    lag: int | None
    records: int
    rejected: int | None  # None if the catalog cannot count them
    pending_multiparts: int


#: A catalog's committed state (schema.STORE_META): "rev", the number of the last write
#: transaction that changed records, and "epoch", which changes when records are deleted.
CatalogVersion = tuple[int, str | None]


@dataclass(frozen=True, slots=True)
class Changes:
    """What a catalog wrote since a version a reader saw (``CatalogReader.changes``)."""

    version: CatalogVersion  # now
    ids: tuple[tuple[str, int], ...] | None  # (record id, rev) written since; None: all may


@dataclass(frozen=True, slots=True)
class CurrentArtifact:
    """A record's current artifact as the catalog stores it: compact JSON text in ASCII (other
    characters as escapes), for answers that embed it without parsing it again."""

    id: str
    rev: int  # of the write that last changed the record
    publisher: str
    deactivated: bool
    artifact_json: str


class AmbiguousId(LookupError):
    """A txid prefix matches more than one record."""

    def __init__(self, prefix: str, matches: list[str]) -> None:
        super().__init__(f"id prefix {prefix!r} matches {len(matches)} records")
        self.prefix = prefix
        self.matches = matches


class CatalogReader(Protocol):
    """Read side of a catalog store, shared by the API, the portal and the CLI."""

    def search(self, query: SearchQuery) -> SearchResult: ...

    def get(self, id_or_prefix: str) -> RecordDetail | None:
        """By full txid (any of the record's txids) or a unique prefix of >= 6 hex chars;
        raises AmbiguousId for a prefix matching several records."""
        ...

    def first_match(self, id_or_prefix: str) -> str | None:
        """The id of the record a full txid or a prefix of >= 4 hex chars names; of several
        sharing the prefix, the oldest by ledger position, active before deactivated (oipd's
        GetById). ValueError for a malformed id."""
        ...

    def changes(self, since: CatalogVersion | None, limit: int) -> Changes:
        """The current version and the records written after ``since`` (None: reload all)."""
        ...

    def current_artifacts(self, ids: Sequence[str]) -> list[CurrentArtifact]:
        """The stored current artifact of each existing record in ``ids``, in any order."""
        ...

    def publishers(self) -> list[PublisherInfo]: ...

    def summary(self) -> Summary: ...

    def rejections(self, limit: int = 100, after: str | None = None) -> list[Rejection]: ...

    def rejection_count(self) -> int:
        """How many rejections the catalog holds (one COUNT: /api/v1/status asks often, and a
        public ledger can carry millions of non-OIP payloads)."""
        ...

    def indexed_height(self) -> int: ...

    def pending_multiparts(self) -> int: ...
