"""Query parameters of ``GET /api/v1/records`` -> a typed :class:`SearchQuery`.

FastAPI checks the types it can see (integers, enums); everything else is checked here, and
every failure names its parameter (:class:`BadParameter` -> 400). Values reach the catalog
only as typed Python values (str/int/float tuples and ranges), which it binds as SQL
parameters. Sizes are bounded so that no request can ask for unbounded work: the length of
``q`` and of every filter value, the number of values per filter, ``limit``.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Annotated, Any, Literal

from fastapi import Query, Request

from etdb.api.errors import BadParameter
from etdb.index.fields import Field, filter_fields
from etdb.index.fts import parse_text
from etdb.index.query import DEFAULT_LIMIT, FACETS, MAX_LIMIT, Order, Range, SearchQuery, SortKey

MAX_Q = 500  # characters of full-text query
MAX_VALUE = 200  # characters of one filter value
MAX_VALUES = 50  # values of one repeatable filter
MAX_TOKEN = 1000  # characters of an `after` token
MAX_INT = 2**63 - 1  # what a SQL BIGINT holds; larger integers are refused, not overflowed
MAX_UNIX = 253_402_300_799  # 9999-12-31T23:59:59Z

Format = Literal["json", "csv", "ndjson"]

_INTEGER = re.compile(r"-?[0-9]+")  # ASCII digits: unix seconds
# Sorting by a name reads best A..Z; by a date or by relevance, newest/best first.
_DEFAULT_ORDER: dict[str, Order] = {"species": "asc", "microscopist": "asc"}


@dataclass(frozen=True, slots=True)
class SearchRequest:
    """A parsed search: the catalog query plus how to answer it."""

    query: SearchQuery
    format: Format
    #: True when the client chose ``limit``: an export then answers that one page only.
    explicit_limit: bool


# -- small parsers ---------------------------------------------------------------------------


def text(name: str, value: str, limit: int = MAX_VALUE) -> str:
    if len(value) > limit:
        raise BadParameter(name, f"is longer than {limit} characters")
    if "\x00" in value:
        raise BadParameter(name, "must not contain NUL characters")
    return value


def texts(name: str, values: Sequence[str] | None) -> tuple[str, ...]:
    out = tuple(text(name, v) for v in values or () if v != "")
    if len(out) > MAX_VALUES:
        raise BadParameter(name, f"has more than {MAX_VALUES} values")
    return out


def integers(name: str, values: Sequence[int] | None) -> tuple[int, ...]:
    out = tuple(values or ())
    if len(out) > MAX_VALUES:
        raise BadParameter(name, f"has more than {MAX_VALUES} values")
    for v in out:
        if not 0 <= v <= MAX_INT:
            raise BadParameter(name, f"must be an integer between 0 and {MAX_INT}, not {v}")
    return out


def number(name: str, value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise BadParameter(name, f"must be a finite number, not {value}")
    return value


def instant(name: str, value: str | None, *, end_of_day: bool) -> int | None:
    """An ISO date (``2014-01-14``), ISO date-time, or unix seconds -> unix seconds (UTC).

    A bare date at the upper end of a range means the whole day: ``date_to=2014-01-14``
    includes everything taken that day.
    """
    if value is None or value == "":
        return None
    value = text(name, value.strip(), 40)
    try:
        if _INTEGER.fullmatch(value):
            seconds = int(value)
        elif len(value) == 10:
            day = date.fromisoformat(value)
            moment = datetime.combine(day, time.max if end_of_day else time.min, UTC)
            seconds = int(moment.timestamp())
        else:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            seconds = int(moment.timestamp())
    except (ValueError, OverflowError):
        raise BadParameter(
            name, f"must be an ISO date (2014-01-14), date-time or unix seconds, not {value!r}"
        ) from None
    if abs(seconds) > MAX_UNIX:
        raise BadParameter(name, f"is out of range: {value!r}")
    return seconds


def span(lo_name: str, lo: float | None, hi_name: str, hi: float | None) -> Range:
    lo, hi = number(lo_name, lo), number(hi_name, hi)
    if lo is not None and hi is not None and lo > hi:
        raise BadParameter(lo_name, f"{lo_name}={lo:g} is greater than {hi_name}={hi:g}")
    return Range(lo, hi)


def facet_names(values: Iterable[str] | None) -> tuple[str, ...]:
    names: list[str] = []
    for value in values or ():
        for name in text("facets", value, 500).split(","):
            name = name.strip()
            if not name:
                continue
            if name not in FACETS:
                known = ", ".join(FACETS)
                raise BadParameter("facets", f"unknown facet {name!r} (known: {known})")
            if name not in names:
                names.append(name)
    return tuple(names)


def reject_unknown(request: Request, known: Iterable[str]) -> None:
    """A misspelt filter (``specie=``) would silently match everything: refuse it.

    Names starting with ``_`` are left alone (cache busters such as jQuery's ``_=``).
    """
    allowed = set(known)
    for name in request.query_params:
        if name not in allowed and not name.startswith("_"):
            raise BadParameter(name, "unknown parameter")


# -- the records search dependency -----------------------------------------------------------

Texts = Annotated[list[str] | None, Query(description="Repeatable: any of the values.")]
Number = Annotated[float | None, Query()]
Instant = Annotated[
    str | None,
    Query(description="ISO date (2014-01-14), ISO date-time or unix seconds (UTC)."),
]


async def _own(
    request: Request,
    q: Annotated[
        str | None,
        Query(
            max_length=MAX_Q,
            description="Full text: title, species, strain, notes, microscopist, lab, tags, "
            "file names.",
        ),
    ] = None,
    include_deactivated: bool = False,
    facets: Annotated[
        list[str] | None,
        Query(description="Comma-separated facet names: " + ", ".join(FACETS)),
    ] = None,
    sort: Annotated[
        SortKey | None,
        Query(description="Default: relevance when q is given, else published."),
    ] = None,
    order: Annotated[
        Order | None,
        Query(description="Default: asc for species and microscopist, else desc."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    after: Annotated[
        str | None, Query(max_length=MAX_TOKEN, description="The `next` token of a page.")
    ] = None,
    format: Annotated[
        Format, Query(description="csv and ndjson stream every matching row (bounded).")
    ] = "json",
) -> None:
    """The search's own parameters (not filters): a declaration, read for its signature."""


def _annotation(f: Field) -> Any:
    """The API type of a registry field's parameter(s), with its description."""
    if f.kind == "range":
        return Instant if f.instant else Number
    if f.kind == "text":
        return Texts
    about = f.api_help or None
    if f.choices:
        return Annotated[Literal[tuple(f.choices)] | None, Query(description=about)]
    item = int if f.column == "int" else str
    if f.many:
        return Annotated[list[item] | None, Query(description=about)]  # type: ignore[valid-type]
    return Annotated[item | None, Query(max_length=MAX_VALUE, description=about)]


def _signature() -> inspect.Signature:
    """``request`` and ``q``, the registry's filters in its order, then the rest."""
    own = list(inspect.signature(_own, eval_str=True).parameters.values())
    keyword = inspect.Parameter.POSITIONAL_OR_KEYWORD
    filters = [
        inspect.Parameter(name, keyword, default=None, annotation=_annotation(f))
        for f in filter_fields()
        for name in f.params
    ]
    return inspect.Signature([*own[:2], *filters, *own[2:]])


SIGNATURE = _signature()


async def search_request(request: Request, **given: Any) -> SearchRequest:
    """The ``GET /api/v1/records`` parameters (FastAPI reads :data:`SIGNATURE`) as a search."""
    # async: pure parsing, no I/O; a sync dependency would cost a thread-pool hop
    bound = SIGNATURE.bind(request, **given)
    bound.apply_defaults()
    args = bound.arguments
    reject_unknown(request, args.keys() - {"request"})
    q = text("q", args["q"], MAX_Q).strip() if args["q"] else None
    has_words = _has_words(q)
    sort, order = args["sort"], args["order"]
    if sort == "relevance" and not has_words:
        raise BadParameter("sort", "sort=relevance needs a full-text query (q) with a word")
    key: SortKey = sort or ("relevance" if has_words else "published")
    after = args["after"]
    query = SearchQuery(
        q=q or None,
        include_deactivated=args["include_deactivated"],
        sort=key,
        order=order or _DEFAULT_ORDER.get(key, "desc"),
        limit=args["limit"],
        after=text("after", after, MAX_TOKEN) if after else None,
        facets=facet_names(args["facets"]),
        **{f.name: _filter(f, args) for f in filter_fields()},
    )
    return SearchRequest(query, args["format"], "limit" in request.query_params)


search_request.__signature__ = SIGNATURE  # type: ignore[attr-defined]


def _filter(f: Field, args: dict[str, Any]) -> Any:
    """A registry field's typed value from its parameter(s)."""
    name = f.name
    if f.kind == "range":
        lo, hi = args[f"{name}_from"], args[f"{name}_to"]
        return (
            _instant_range(name, lo, hi)
            if f.instant
            else span(f"{name}_from", lo, f"{name}_to", hi)
        )
    value = args[name]
    if f.kind == "text" or (f.many and f.column != "int"):
        return texts(name, value)
    if f.many:
        return integers(name, value)
    if f.choices:
        return f.choices[value] if value else None
    return (text(name, value).strip() or None) if value else None


def _has_words(q: str | None) -> bool:
    """Whether ``q`` has searchable words (``q=--`` has none: nothing to rank by)."""
    try:
        return parse_text(q) is not None
    except ValueError as exc:  # too many words
        raise BadParameter("q", str(exc).removeprefix("q: ")) from None


def _instant_range(name: str, lo: str | None, hi: str | None) -> Range:
    start = instant(f"{name}_from", lo, end_of_day=False)
    end = instant(f"{name}_to", hi, end_of_day=True)
    if start is not None and end is not None and start > end:
        raise BadParameter(f"{name}_from", f"{name}_from is after {name}_to")
    return Range(start, end)
