"""``/api/v2``: oip-js 1.1.20's other oipd calls, ``POST /search``, ``GET /publisher/get/all``
and ``GET /info``, answered from the catalog in the shapes its clients read.

oipd's 2018 HTTP handlers are not public; the shapes come from the clients and from oipd's
storage library (oipwg/media-protocol):

* ``POST /search``: oip-js ``Network.searchOIPd`` posts ``{"protocol", "search-on",
  "search-for", "search-like"}`` (axios 0.17: ``Content-Type: application/json;charset=utf-8``;
  it fills in protocol ``media``, search-on ``*`` and search-like ``true``) and reads
  ``status == "success"`` and the list ``response``. Media results go through
  ``Artifact.fromJSON`` (``{oip042: {artifact}, txid, publisher}``, as the lists here);
  publisher results are read as ``response[0]["publisher-data"]["alexandria-publisher"]``.
  etdb-react's FeaturedCell (never switched on, "once the OIPd Advanced search is working")
  posts camelCase ``searchOn``/``searchFor`` lists, which win over oip-js's defaults; the
  Alexandria browser (PhoenixAPI) posted the same JSON under jQuery's form content type, so
  the body is read as JSON whatever its Content-Type says.
* ``GET /publisher/get/all``: the Alexandria browsers read ``[i]["publisher-data"]
  ["alexandria-publisher"]`` (address, name) from ``alexandria/v2/publisher/get/all``, the
  entry libraryd documents as ``{"publisher-data": {"alexandria-publisher": {name, address,
  timestamp (ms), emailmd5, bitmessage}, signature}, txid, block}``. etdb indexes no publisher
  registrations: ``txid``/``block``/``timestamp`` are those of the publisher's first record
  (by its timestamp), names come from configuration where known, the rest is empty.
* ``GET /info``: oip-js reads ``avgArtCost`` (its publish-fee estimate); oipd's library
  computed it (``CalcAvgArtCost``: mean price of priced artifacts, 0 without any) next to
  ``GetArtCount``. Research-Tomogram records carry no price: ``{"artCount": n, "avgArtCost":
  0}``.

Search rules (each ``search-on`` field paired with its ``search-for`` value; all must hold):
``*`` is the catalog's full text; ``publisher``/``address``/``floAddress``, ``speciesName``,
``strain``, ``scopeName``, ``lab``, ``institution``, ``microscopist`` and ``NCBItaxID`` are
its exact filters when ``search-like`` is false, and with ``search-like`` (the default) the
value's words found by the full text in that field (case-insensitive substring, checked on the
hit); ``title`` and ``sid`` likewise; ``txid`` is the first match of a prefix (4 or more hex
characters). At most :data:`MAX_RESULTS` results, newest first, found among the first
:data:`MAX_SCANNED` records the catalog's indexes return. Other protocols (retailer, promoter,
autominer...) have nothing in this catalog: an empty ``response``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, Field

from etdb.api.compat_list import WINDOW, compact, fragments_of
from etdb.api.context import AppContext, cached, context, run_search
from etdb.api.errors import ApiError, BadParameter
from etdb.api.models import ErrorBody
from etdb.api.params import MAX_Q, MAX_VALUE, text
from etdb.index.flatten import label
from etdb.index.lookups import FIRST_MATCH_MIN
from etdb.index.query import (
    MAX_LIMIT,
    PublisherInfo,
    RecordSummary,
    SearchQuery,
    SearchResult,
)
from etdb.record.decoding import loads
from etdb.record.errors import WireFormatError

router = APIRouter(prefix="/api/v2", tags=["v2 (oipd compatibility)"])
Context = Annotated[AppContext, Depends(context)]

#: Bytes of a search request body (oip-js sends ~100); larger is a 413 before it is read.
MAX_BODY = 16 * 1024
MAX_FIELDS = 10
MAX_RESULTS = MAX_LIMIT
MAX_SCANNED = 10 * MAX_LIMIT
#: The most entries ``/publisher/get/all`` lists (most records first), as any list.
MAX_PUBLISHERS = WINDOW

#: media search-on name -> (SearchQuery filter for exact values, RecordSummary attribute).
MEDIA_FIELDS: dict[str, tuple[str | None, str]] = {
    "publisher": ("publisher", "publisher"),
    "address": ("publisher", "publisher"),
    "floAddress": ("publisher", "publisher"),
    "speciesName": ("species", "species"),
    "strain": ("strain", "strain"),
    "scopeName": ("scope", "scope"),
    "lab": ("lab", "lab"),
    "institution": ("institution", "institution"),
    "microscopist": ("microscopist", "microscopist"),
    "NCBItaxID": ("taxid", "taxid"),
    "title": (None, "title"),
    "sid": (None, "sid"),
}
ANY, TXID = "*", "txid"
PUBLISHER_FIELDS = ("address", "name", "txid", "emailmd5", "bitmessage")

SEARCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "protocol": {"type": "string", "default": "media"},
                        "search-on": {"type": ["string", "array"], "default": ANY},
                        "search-for": {"type": ["string", "number", "array"]},
                        "search-like": {"type": "boolean", "default": True},
                        "searchOn": {"type": "array", "items": {"type": "string"}},
                        "searchFor": {"type": "array"},
                    },
                },
                "example": {"protocol": "media", "search-on": "*", "search-for": "flagellum"},
            }
        },
    }
}


class SearchAnswer(BaseModel):
    status: str  # "success"
    response: list[dict[str, Any]]  # results as in the lists, or publisher entries


class AlexandriaPublisher(BaseModel):
    name: str
    address: str
    timestamp: int  # milliseconds
    emailmd5: str
    bitmessage: str


class PublisherData(BaseModel):
    alexandria_publisher: AlexandriaPublisher = Field(alias="alexandria-publisher")
    signature: str


class PublisherEntry(BaseModel):
    publisher_data: PublisherData = Field(alias="publisher-data")
    txid: str
    block: int


class OipdInfo(BaseModel):
    artCount: int
    avgArtCost: float


@dataclass(frozen=True)
class Search:
    protocol: str
    terms: tuple[tuple[str, str], ...]  # (field, value), all must match
    like: bool


@router.post(
    "/search",
    summary="oipd search (oip-js searchOIPd)",
    response_model=SearchAnswer,
    responses={400: {"model": ErrorBody}, 413: {"model": ErrorBody}},
    openapi_extra=SEARCH_BODY,
)
async def search(request: Request, ctx: Context) -> Response:
    """``{"status": "success", "response": [...]}``: records, or publishers, matching every
    (``search-on``, ``search-for``) pair; see the module documentation for the rules."""
    wanted = parse_search(await read_body(request, MAX_BODY))
    response = await run_in_threadpool(answer, ctx, wanted)
    body = b'{"status":"success","response":[' + b",".join(response) + b"]}"
    return Response(body, media_type="application/json", headers={"Cache-Control": "no-cache"})


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) past ``limit`` bytes without reading the rest."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared[:12]) > limit:
        raise ApiError(413, f"the request body is larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"the request body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_search(body: bytes) -> Search:
    """The request's options (any Content-Type: the body is JSON); 400 naming what is wrong."""
    try:
        options = loads(body)
    except WireFormatError as exc:
        raise BadParameter("body", f"must be a JSON object: {exc}") from None
    if not isinstance(options, dict):
        raise BadParameter("body", "must be a JSON object")
    protocol = options.get("protocol", "media")
    like = options.get("search-like", True)
    if not isinstance(protocol, str) or len(protocol) > MAX_VALUE:
        raise BadParameter("protocol", f"must be a string of at most {MAX_VALUE} characters")
    if not isinstance(like, bool):
        raise BadParameter("search-like", "must be true or false")
    camel = "searchOn" in options  # etdb-react's FeaturedCell: wins over oip-js's defaults
    on_key, for_key = ("searchOn", "searchFor") if camel else ("search-on", "search-for")
    fields = _listed(on_key, options.get(on_key, ANY))
    values = _listed(for_key, options.get(for_key, ""))
    if len(fields) == 1 and len(values) > 1:
        fields = fields * len(values)  # one field, several values: all of them
    if len(fields) != len(values):
        raise BadParameter(for_key, f"must have one value per {on_key} field")
    pairs = zip(fields, values, strict=True)
    terms = tuple((_field(on_key, f), _value(for_key, v)) for f, v in pairs)
    return Search(protocol, terms, like)


def _listed(name: str, value: Any) -> list[Any]:
    items = value if isinstance(value, list) else [value]
    if not 1 <= len(items) <= MAX_FIELDS:
        raise BadParameter(name, f"must list 1 to {MAX_FIELDS} values")
    return items


def _field(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise BadParameter(name, "fields must be strings")
    return text(name, value)


def _value(name: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise BadParameter(name, "values must be strings or integers")
    return text(name, str(value) if isinstance(value, int) else value, MAX_Q)


def answer(ctx: AppContext, wanted: Search) -> list[bytes]:
    """The results, rendered (runs in the thread pool: the catalog is synchronous)."""
    if wanted.protocol == "publisher":
        return [compact(p) for p in _publishers(ctx, wanted)]
    if wanted.protocol != "media":
        return []
    ids = _media_ids(ctx, wanted)
    return fragments_of(ctx).results(ctx.catalog, ids)


def _media_ids(ctx: AppContext, wanted: Search) -> list[str]:
    if any(field == TXID for field, _ in wanted.terms):
        return _by_txid(ctx, wanted)
    filters: dict[str, list[Any]] = {}
    words: list[str] = []
    checks: list[Callable[[RecordSummary], bool]] = []
    for field, value in wanted.terms:
        if field == ANY:
            words.append(value)
            continue
        if field not in MEDIA_FIELDS:
            raise BadParameter("search-on", f"unknown media field {field!r}")
        name, attr = MEDIA_FIELDS[field]
        if name == "taxid":
            if not value.isascii() or not value.isdigit() or len(value) > 18:
                raise BadParameter("search-for", f"{field} must be a number")
            filters.setdefault(name, []).append(int(value))
        elif wanted.like:
            words.append(value)  # candidates by the full text, then the field is checked
            checks.append(_contains(attr, value))
        elif name is not None:
            filters.setdefault(name, []).append(value)
        else:
            words.append(value)
            checks.append(_equals(attr, value))
    query = SearchQuery(
        q=" ".join(words) or None,
        **{name: tuple(values) for name, values in filters.items()},
        sort="published",
        order="desc",
        limit=MAX_LIMIT,
    )
    return _checked(ctx, query, checks)


def _contains(attr: str, value: str) -> Callable[[RecordSummary], bool]:
    wanted = value.casefold()
    return lambda s: wanted in (getattr(s, attr) or "").casefold()


def _equals(attr: str, value: str) -> Callable[[RecordSummary], bool]:
    wanted = label(value)  # as the catalog's exact filters compare
    return lambda s: label(getattr(s, attr)) == wanted


def _checked(
    ctx: AppContext, query: SearchQuery, checks: Sequence[Callable[[RecordSummary], bool]]
) -> list[str]:
    """Hits of ``query`` (newest first) that pass every check, among the first MAX_SCANNED."""
    out: list[str] = []
    page = _search(ctx, query)
    scanned = 0
    while True:
        scanned += len(page.items)
        out += [s.id for s in page.items if all(check(s) for check in checks)]
        if page.next is None or scanned >= MAX_SCANNED or len(out) >= MAX_RESULTS:
            return out[:MAX_RESULTS]
        page = _search(ctx, replace(query, after=page.next))


def _search(ctx: AppContext, query: SearchQuery) -> SearchResult:
    try:
        return run_search(ctx, query)
    except BadParameter as exc:  # the catalog names its own field ("q: too many words")
        raise BadParameter("search-for", exc.message) from None


def _by_txid(ctx: AppContext, wanted: Search) -> list[str]:
    """``txid`` terms alone: the first match of each prefix (oldest active; see compat.py)."""
    if any(field != TXID for field, _ in wanted.terms):
        raise BadParameter("search-on", "txid names records by itself: search on it alone")
    out = []
    for _, value in wanted.terms:
        try:
            found = ctx.catalog.first_match(value)
        except ValueError:
            raise BadParameter(
                "search-for", f"a txid must be {FIRST_MATCH_MIN} to 64 hex characters"
            ) from None
        detail = ctx.catalog.get(found) if found is not None else None
        if detail is not None and not detail.summary.deactivated:
            out.append(detail.summary.id)
    return list(dict.fromkeys(out))


# -- publishers -------------------------------------------------------------------------------


def publisher_entry(p: PublisherInfo) -> dict[str, Any]:
    """libraryd's ``publisher-data`` entry for a publisher etdb knows from its records."""
    timestamp = p.first_published * 1000 if p.first_published is not None else 0
    return {
        "publisher-data": {
            "alexandria-publisher": {
                "name": p.name or "",
                "address": p.address,
                "timestamp": timestamp,
                "emailmd5": "",
                "bitmessage": "",
            },
            "signature": "",
        },
        "txid": p.first_txid or "",
        "block": p.first_height if p.first_height is not None else 0,
    }


def _publishers(ctx: AppContext, wanted: Search) -> list[dict[str, Any]]:
    unknown = [f for f, _ in wanted.terms if f != ANY and f not in PUBLISHER_FIELDS]
    if unknown:
        raise BadParameter("search-on", f"unknown publisher field {unknown[0]!r}")
    entries = [publisher_entry(p) for p in ctx.catalog.publishers()[:MAX_PUBLISHERS]]
    return [e for e in entries if all(_has(e, f, v, wanted.like) for f, v in wanted.terms)]


def _has(entry: dict[str, Any], field: str, value: str, like: bool) -> bool:
    """``like``: a case-insensitive substring; else equal (addresses are case-sensitive)."""
    inner = entry["publisher-data"]["alexandria-publisher"]
    fields = PUBLISHER_FIELDS if field == ANY else (field,)
    have = [str(entry[f] if f == TXID else inner[f]) for f in fields]
    if like:
        return any(value.casefold() in h.casefold() for h in have)
    return value in have


@router.get(
    "/publisher/get/all",
    summary="oipd publisher list (oip-js getPublishersFromOIPd)",
    response_model=list[PublisherEntry],
)
def publishers_all(request: Request, ctx: Context) -> Response:
    """``[{"publisher-data": {"alexandria-publisher": {...}, "signature"}, "txid", "block"}]``,
    most records first."""
    return cached(
        request,
        ctx,
        lambda: [publisher_entry(p) for p in ctx.catalog.publishers()[:MAX_PUBLISHERS]],
    )


@router.get(
    "/info", summary="oipd index summary (oip-js getLatestOIPdInfo)", response_model=OipdInfo
)
def info(request: Request, ctx: Context) -> Response:
    """``{"artCount": active records, "avgArtCost": 0}`` (no record here has a price)."""
    return cached(
        request, ctx, lambda: {"artCount": ctx.catalog.summary().records, "avgArtCost": 0}
    )


def _count(ctx: AppContext) -> int:
    return ctx.catalog.summary().records
