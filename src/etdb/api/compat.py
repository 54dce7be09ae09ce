"""``/api/v2``: the oipd endpoints the 2018-2019 ETDB front-end (etdb-react + oip-js) called.

Shapes follow the reference (§5) and oipd's storage library (oipwg/media-protocol
``oip042/oip042.go``, whose GetByType/GetById build these answers): a list is ``{total, count,
pages, results: [{oip042: {artifact: {...}}, txid, publisher}]}``; ``artifact/get?id=``
answers the bare object with ``publisherName`` where known; the summary is ``{total, species,
publishers: {addr: n}}`` with ``species`` a count, as etdb-react's home page displays it.
``POST /search``, ``/publisher/get/all`` and ``/info`` are in ``compat_search.py``.

oipd quirks kept: ``*`` means any and ``-`` means empty for ``t``/``st``/``pub``; ``results=0``
(and ``*``, which oip-js sends for "everything") mean no page size; ``page`` counts from 1;
only active, non-deactivated records; newest first. Unknown parameters are ignored, as oipd
did (v1 refuses them). The catalog indexes Research-Tomogram records only, so ``t``/``st``
other than ``research``/``tomogram`` (or ``*``) match nothing.

``artifact/get?id=`` answers the first match, as oipd did: GetById ran ``a.txid LIKE
'prefix%' AND active AND NOT invalidated`` without ORDER BY and took the first row. SQLite's
LIKE is case-insensitive, so it could not use the txid index and scanned the table in rowid
(insertion, so ledger) order: the oldest active record with that prefix. etdb asks the catalog
for exactly that (``CatalogReader.first_match``: an id-index range, ordered by (height, index
in block)), for any prefix of 4 to 64 hex characters (oipd took any length; below 4 is a
400); never v1's 409 (etdb-react links ``/tomogram/<6 chars>`` and shows nothing on an
error; about 4 pairs of ETDB's ~11,300 records share 6 characters). Oldest-first also means
that a publisher grinding txids to share a prefix cannot take over an older record's short
link, however many records it adds. v1's ``lookup`` keeps its 409.

Differences: "no page size" is bounded by :data:`WINDOW` (oipd's Elasticsearch refused
``from + size > 10000`` the same way, with a 400); a list is joined from per-record fragments
kept between catalog versions and its body kept per version (``compat_list.py``).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from etdb.api import compat_search
from etdb.api.compat_list import (
    WINDOW,
    catalog_version,
    legacy_artifact,
    list_body,
    list_response,
    page_body,
)
from etdb.api.context import (
    AppContext,
    cache_headers,
    cached,
    context,
    etag,
    not_modified,
)
from etdb.api.errors import ApiError, BadParameter
from etdb.api.models import ErrorBody
from etdb.api.params import text
from etdb.index.lookups import FIRST_MATCH_MIN, TXID_HEX
from etdb.index.query import RecordDetail, SearchQuery

router = APIRouter(prefix=compat_search.router.prefix, tags=compat_search.router.tags)

TYPE, SUBTYPE = "research", "tomogram"
_DIGITS = re.compile(r"[0-9]+")  # ASCII only: str.isdigit() accepts "²", which int() refuses
_HEX = re.compile(r"[0-9a-fA-F]+")

Context = Annotated[AppContext, Depends(context)]


class Oip042(BaseModel):
    artifact: dict[str, Any]


class CompatArtifact(BaseModel):
    oip042: Oip042
    txid: str
    publisher: str
    publisherName: str | None = None


class CompatPage(BaseModel):
    total: int
    count: int
    pages: int
    results: list[CompatArtifact]


class CompatSummary(BaseModel):
    total: int
    species: int
    publishers: dict[str, int]


def _matches(value: str, wanted: str) -> bool:
    """oipd's filter values: ``*`` any, ``-`` the empty string, else exact (case-insensitive)."""
    if value == "*":
        return True
    return (value if value != "-" else "").lower() == wanted


def _page_size(results: str) -> int:
    if results in ("*", "0", ""):
        return 0
    if not _DIGITS.fullmatch(results):
        raise BadParameter("results", "must be a number, 0 or * (no page size)")
    return int(results[:9])  # nine digits already exceed WINDOW; no huge-int parsing


def _page_number(page: str) -> int:
    if not _DIGITS.fullmatch(page) or int(page[:9]) < 1:
        raise BadParameter("page", "must be a page number counting from 1")
    return int(page[:9])


def compat_artifact(detail: RecordDetail, name: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "oip042": {"artifact": legacy_artifact(detail.artifact)},
        "txid": detail.summary.id,
        "publisher": detail.summary.publisher,
    }
    if name:
        out["publisherName"] = name
    return out


@router.get(
    "/artifact/get/type",
    summary="oipd GetByType",
    response_model=CompatPage,
    responses={400: {"model": ErrorBody}},
)
def get_by_type(
    request: Request,
    ctx: Context,
    t: Annotated[str, Query(max_length=100, description="type; * any, - empty")] = "*",
    st: Annotated[str, Query(max_length=100, description="subtype; * any, - empty")] = "*",
    results: Annotated[
        str, Query(max_length=20, description="page size; 0 or * for all (bounded)")
    ] = "0",
    page: Annotated[str, Query(max_length=20, description="page number from 1")] = "1",
    pub: Annotated[str, Query(max_length=200, description="publisher address; * any")] = "*",
) -> Response:
    size, number = _page_size(results), _page_number(page)
    offset = (number - 1) * size
    if offset + (size or 1) > WINDOW:
        raise BadParameter("page", f"page * results must not exceed {WINDOW}")
    publishers = () if pub in ("*", "") else (text("pub", "" if pub == "-" else pub),)
    query = SearchQuery(publisher=publishers, sort="published", order="desc", limit=1)
    wanted = _matches(t, TYPE) and _matches(st, SUBTYPE)

    tag = etag(ctx)
    headers = cache_headers(ctx, tag)
    if not_modified(request, tag):
        return Response(status_code=304, headers=headers)
    if not wanted:
        return Response(page_body(0, [], size), media_type="application/json", headers=headers)

    def build() -> bytes:
        return list_body(ctx, query, offset, size or WINDOW, size)

    # etdb-react asks for the whole list on every page view: one body per catalog version.
    key = (catalog_version(ctx), publishers, offset, size)
    return list_response(request, ctx, key, build, headers)


def first_match(ctx: AppContext, value: str) -> RecordDetail:
    """The record ``value`` (a txid or a prefix of >= 4 hex digits) names; of several sharing
    the prefix, the oldest active one, as oipd answered."""
    wanted = prefix_id("id", value)
    found = ctx.catalog.first_match(wanted)
    detail = ctx.catalog.get(found) if found is not None else None
    if detail is None:
        raise ApiError(404, f"no record with id {wanted!r}", "id")
    if detail.summary.deactivated or detail.provenance.deactivated:
        raise ApiError(404, f"record {detail.summary.id} was deactivated", "id")
    return detail


def prefix_id(name: str, value: str) -> str:
    """A full txid or a prefix of at least 4 hex characters, lower-cased."""
    if not FIRST_MATCH_MIN <= len(value) <= TXID_HEX or not _HEX.fullmatch(value):
        raise BadParameter(
            name, f"must be a txid or a prefix of {FIRST_MATCH_MIN} to {TXID_HEX} hex characters"
        )
    return value.lower()


@router.get(
    "/artifact/get",
    summary="oipd GetById",
    response_model=CompatArtifact,
    responses={400: {"model": ErrorBody}, 404: {"model": ErrorBody}},
)
def get_by_id(
    request: Request,
    ctx: Context,
    id: Annotated[
        str, Query(description="txid or a prefix of >= 4 hex characters; several: the oldest")
    ],
) -> Response:
    def build() -> dict[str, Any]:
        detail = first_match(ctx, id)
        names = {p.address: p.name for p in ctx.catalog.publishers() if p.name}
        return compat_artifact(detail, names.get(detail.summary.publisher))

    return cached(request, ctx, build)


@router.get(
    "/research/tomogram/summary",
    summary="etdb-react home-page counts",
    response_model=CompatSummary,
)
def tomogram_summary(request: Request, ctx: Context) -> Response:
    def build() -> dict[str, Any]:
        s = ctx.catalog.summary()
        return {"total": s.records, "species": len(s.species), "publishers": dict(s.publishers)}

    return cached(request, ctx, build)


# POST /search, /publisher/get/all, /info: same prefix; plain routes (app.py adds HEAD twins)
router.routes.extend(compat_search.router.routes)
