"""SearchQuery -> SQL: validation, filters, sort with keyset pages, facet counts.

Every value reaches SQL as a bound parameter; column names come from fixed tables here.

Sorting puts NULLs last in both directions on both backends without ``NULLS LAST`` (which
SQLite cannot serve from an index): a page walks the non-NULL part of the sort column first
(``(col, id) > (:v, :id)``, a row-value range over the ``(col, id)`` index), then the NULL
part ordered by id. The keyset token says which part it stopped in.

Facets are "standard": each is counted under all of the query's filters, so the counts
describe the result set and all facets come from one pass over one set of hits. (Disjunctive
counts, each facet ignoring its own filter, would cost a pass per filtered facet; a portal that
wants them for one multi-select facet asks the same query without that filter.) NULL is not a
facet value. Without any filter the counts come from ``facet_counts``, which every write keeps
current; with filters from the memory index (memindex.py) or, on SQL alone, from one statement
that materialises the hits once and groups them per facet (``facet_statement``).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import json
import math
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from etdb.index.fields import Field, column_fields, filter_fields
from etdb.index.flatten import label
from etdb.index.fts import FullText, TextQuery
from etdb.index.query import FACETS, MAX_LIMIT, Range, SearchQuery
from etdb.index.schema import record_file_types, records
from etdb.record.limits import INT64_MAX

#: Values returned per facet (most frequent first).
FACET_TOP = 50
#: Values per any-of filter (a URL can carry many; each is a bound parameter).
MAX_VALUES = 100

SORTS = {
    "published": records.c.published,
    "date": records.c.date,
    "species": records.c.species,
    "microscopist": records.c.microscopist,
}
#: facet -> column (file_type is a join)
FACET_COLUMNS = {f.name: records.c[f.name] for f in column_fields() if f.facet}


def validate(query: SearchQuery) -> None:
    """Raise ValueError naming the offending field."""
    if not isinstance(query.limit, int) or isinstance(query.limit, bool):
        raise ValueError("limit: must be an integer")
    if not 1 <= query.limit <= MAX_LIMIT:
        raise ValueError(f"limit: must be between 1 and {MAX_LIMIT}, got {query.limit}")
    if query.sort not in (*SORTS, "relevance"):
        raise ValueError(f"sort: unknown sort {query.sort!r} (use relevance, {', '.join(SORTS)})")
    if query.order not in ("asc", "desc"):
        raise ValueError(f"order: must be 'asc' or 'desc', got {query.order!r}")
    unknown = [f for f in query.facets if f not in FACETS]
    if unknown:
        raise ValueError(f"facets: unknown facet(s) {', '.join(map(repr, unknown))}")
    for f in filter_fields():
        _validate_field(f, getattr(query, f.name))


def _validate_field(f: Field, value: Any) -> None:
    if f.kind == "range":
        for end in (value.lo, value.hi):
            if end is not None and (
                isinstance(end, bool)
                or not isinstance(end, int | float)
                or (isinstance(end, float) and not math.isfinite(end))
            ):
                raise ValueError(f"{f.name}: range ends must be finite numbers, got {end!r}")
    elif f.many:
        if f.column == "int":
            if not isinstance(value, tuple | list) or not all(_is_int(v) for v in value):
                raise ValueError(f"{f.name}: values must be integers")
        elif not isinstance(value, tuple | list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{f.name}: must be a list of strings")
        if len(value) > MAX_VALUES:
            raise ValueError(f"{f.name}: at most {MAX_VALUES} values")
    elif value is None:
        return
    elif f.choices:
        if value not in f.choices.values() or not _is_int(value):
            raise ValueError(f"{f.name}: must be {f.choices_text}, got {value!r}")
    elif not isinstance(value, int if f.column == "int" else str) or isinstance(value, bool):
        raise ValueError(f"{f.name}: must be {'an integer' if f.column == 'int' else 'a string'}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def wanted(f: Field, query: SearchQuery) -> list[Any] | None:
    """The values an equality filter (text or exact) accepts, as stored; None: no filter.

    An empty list matches nothing (every value given was one no record can hold)."""
    value = getattr(query, f.name)
    if _is_open(value):
        return None
    values = value if f.many else (value,)
    if f.column == "int":
        # Larger than 64 bits: cannot be stored, so cannot match (and must not reach SQL).
        return sorted({v for v in values if abs(v) <= INT64_MAX})
    return sorted({v for v in map(label, values) if v is not None})


def filters(query: SearchQuery, fts: FullText, tq: TextQuery | None) -> list[Any]:
    """WHERE terms for everything but the keyset (the text match is included)."""
    where: list[Any] = []
    if not query.include_deactivated:
        where.append(records.c.deactivated == sa.false())
    if tq is not None:
        where.append(fts.match(tq))
    for f in filter_fields():
        if f.kind == "range":
            rng: Range = getattr(query, f.name)
            if rng.lo is not None:
                where.append(records.c[f.name] >= bindable(rng.lo))
            if rng.hi is not None:
                where.append(records.c[f.name] <= bindable(rng.hi))
        elif f.column is None:
            where += _file_types(getattr(query, f.name))
        elif (values := wanted(f, query)) is not None:
            where.append(records.c[f.name].in_(values) if values else sa.false())
    return where


def _file_types(values: tuple[str, ...]) -> list[Any]:
    """Every listed subtype present (``record_file_types``)."""
    terms = []
    for subtype in sorted({label(v) or "" for v in values}):
        has = sa.select(record_file_types.c.record_seq).where(
            record_file_types.c.record_seq == records.c.seq,
            record_file_types.c.subtype == subtype,
        )
        terms.append(sa.exists(has))
    return terms


def bindable(end: float) -> float:
    # A Python int beyond 64 bits overflows both drivers; as a float it compares the same.
    if isinstance(end, int) and abs(end) > INT64_MAX:
        return math.copysign(1e308, end)  # beyond every stored value, still finite
    return end


def unfiltered(query: SearchQuery, tq: TextQuery | None) -> bool:
    """True when ``facet_counts`` answers: active records, no text, no filter."""
    if tq is not None or query.include_deactivated:
        return False
    return all(_is_open(getattr(query, f.name)) for f in filter_fields())


def _is_open(value: Any) -> bool:
    if isinstance(value, Range):
        return value.is_open
    return value is None or (isinstance(value, tuple | list) and not value)


# -- keyset tokens ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Keyset:
    """Where a page ended: the last row's sort value and id; ``nulls`` = in the NULL part."""

    value: Any
    id: str
    nulls: bool


def _fingerprint(query: SearchQuery) -> str:
    """What a token is bound to: the query minus paging and facets."""
    fields = {
        n: getattr(query, n)
        for n in (f.name for f in dataclasses.fields(SearchQuery))
        if n not in ("limit", "after", "facets")
    }
    text = json.dumps(fields, sort_keys=True, default=lambda r: [r.lo, r.hi])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def encode_after(key: bytes, query: SearchQuery, ks: Keyset) -> str:
    body = json.dumps(
        {
            "s": query.sort,
            "o": query.order,
            "q": _fingerprint(query),
            "k": [ks.value, ks.id],
            "n": int(ks.nulls),
        },
        separators=(",", ":"),
    ).encode()
    mac = hmac.new(key, body, hashlib.sha256).digest()[:12]
    return _b64(body) + "." + _b64(mac)


def decode_after(key: bytes, query: SearchQuery, token: str) -> Keyset:
    """Check and decode ``after``; ValueError naming ``after`` for anything not ours."""
    if not isinstance(token, str) or len(token) > 2000 or token.count(".") != 1:
        raise ValueError("after: not a page token from this catalog")
    body_s, mac_s = token.split(".")
    try:
        body, mac = _unb64(body_s), _unb64(mac_s)
    except (binascii.Error, ValueError):
        raise ValueError("after: not a page token from this catalog") from None
    if not hmac.compare_digest(mac, hmac.new(key, body, hashlib.sha256).digest()[:12]):
        raise ValueError("after: page token was altered, or is from another catalog")
    data = json.loads(body)
    if data["s"] != query.sort or data["o"] != query.order:
        raise ValueError(
            f"after: page token is for sort={data['s']} {data['o']}, "
            f"not sort={query.sort} {query.order}"
        )
    if data["q"] != _fingerprint(query):
        raise ValueError("after: page token belongs to a different query (filters or q changed)")
    value, last_id = data["k"]
    return Keyset(value, last_id, bool(data["n"]))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# -- facets -----------------------------------------------------------------------------------


def facet_statement(where: list[Any], names: tuple[str, ...]) -> sa.Select[Any]:
    """Total and facet counts in one statement: ``hits`` is materialised once (both SQLite
    >= 3.35 and PostgreSQL >= 12 honour MATERIALIZED), then grouped once per facet.

    Rows: (facet, value, count); the facet ``""`` row carries the total.
    """
    cols = [records.c.seq, *(FACET_COLUMNS[n] for n in names if n in FACET_COLUMNS)]
    hits = sa.select(*cols).where(*where).cte("hits").prefix_with("MATERIALIZED")
    parts: list[sa.Select[Any, Any, Any]] = [
        sa.select(sa.literal(""), sa.literal(None, sa.Text), sa.func.count()).select_from(hits)
    ]
    value: sa.ColumnElement[Any]
    src: sa.FromClause
    for name in names:
        if name == "file_type":
            value = record_file_types.c.subtype
            src = hits.join(record_file_types, record_file_types.c.record_seq == hits.c.seq)
        else:
            value, src = hits.c[name], hits
        n = sa.func.count()
        group = (
            sa.select(sa.literal(name), sa.cast(value, sa.Text), n)
            .select_from(src)
            .where(value.is_not(None))
            .group_by(value)
            .order_by(n.desc(), value)
            .limit(FACET_TOP)
        )
        parts.append(sa.select(group.subquery()))
    return sa.union_all(*parts)  # type: ignore[return-value]
