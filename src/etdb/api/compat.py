"""``/api/v2``: the oipd endpoints the 2018-2019 ETDB front-end (etdb-react + oip-js) called.

Shapes follow the reference (§5): a list is ``{total, count, pages, results: [{oip042:
{artifact: {...}}, txid, publisher}]}``; ``artifact/get?id=`` answers the bare object with
``publisherName`` where known; the summary is ``{total, species, publishers: {addr: n}}`` with
``species`` a count, as etdb-react's home page displays it.

oipd quirks kept: ``*`` means any and ``-`` means empty for ``t``/``st``/``pub``; ``results=0``
(and ``*``, which oip-js sends for "everything") mean no page size; ``page`` counts from 1;
only active, non-deactivated records; newest first. Unknown parameters are ignored, as oipd
did (v1 refuses them). The catalog indexes Research-Tomogram records only, so ``t``/``st``
other than ``research``/``tomogram`` (or ``*``) match nothing.

``artifact/get?id=`` answers the first match, as oipd's ``LIKE 'prefix%'`` did: a prefix
shared by several records gives the oldest by ledger position (block height; within one block
the catalog exposes no transaction index, so the lower txid), never v1's 409 (etdb-react sends
6 characters and shows nothing on an error). Oldest-first also means a publisher grinding txids
to share a prefix cannot take over an older record's short link. Prefixes need 6 to 64 hex
characters (the catalog's minimum; shorter is a 400, not yet oipd's 4); if ``MAX_AMBIGUOUS``
or more records share a prefix, the catalog's list may be cut short, the oldest cannot be known
and the answer is a 404 asking for more characters. v1's ``lookup`` keeps its 409.

Differences: "no page size" is bounded by :data:`WINDOW` (oipd's Elasticsearch refused
``from + size > 10000`` the same way, with a 400); a list is built once per catalog state and
kept (``memo.py``), since etdb-react loads all ~11,000 ETDB records on every page view (about
6 s of catalog reads each time otherwise).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from etdb.api.context import (
    AppContext,
    cache_headers,
    cached,
    context,
    etag,
    not_modified,
    run_search,
)
from etdb.api.errors import ApiError, BadParameter
from etdb.api.memo import BodyCache
from etdb.api.models import ErrorBody
from etdb.api.params import text
from etdb.api.v1 import record_id as valid_id
from etdb.index.lookups import MAX_AMBIGUOUS
from etdb.index.query import MAX_LIMIT, AmbiguousId, RecordDetail, SearchQuery

router = APIRouter(prefix="/api/v2", tags=["v2 (oipd compatibility)"])

#: The most rows ``page`` and ``results`` may reach together (the whole ETDB is ~11,300).
WINDOW = 20_000
TYPE, SUBTYPE = "research", "tomogram"
_COMPACT = (",", ":")
_DIGITS = re.compile(r"[0-9]+")  # ASCII only: str.isdigit() accepts "²", which int() refuses

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
        "oip042": {"artifact": detail.artifact},
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

    def build() -> bytes:
        total = run_search(ctx, query).total if wanted else 0
        window = (size or WINDOW) if wanted else 0
        count = max(0, min(total - offset, window))
        pages = 1 if size == 0 else math.ceil(total / size)
        head = {"total": total, "count": count, "pages": pages}
        return "".join(_body(ctx, query, head, offset, count)).encode("utf-8")

    # etdb-react asks for the whole list on every page view: build it once per catalog state.
    key = (tag, wanted, publishers, offset, size)
    body = ctx.extra.setdefault("compat_bodies", BodyCache()).get(key, build)
    return Response(body, media_type="application/json", headers=headers)


def _body(
    ctx: AppContext, query: SearchQuery, head: dict[str, int], skip: int, count: int
) -> Iterator[str]:
    yield json.dumps(head, separators=_COMPACT)[:-1] + ',"results":['
    first = True
    for record_id in _ids(ctx, query, skip, count):
        detail = ctx.catalog.get(record_id)
        if detail is None:  # rolled back by a reorg since the page was read: leave it out
            continue
        item = json.dumps(compat_artifact(detail), ensure_ascii=False, separators=_COMPACT)
        yield ("" if first else ",") + item
        first = False
    yield "]}"


def _ids(ctx: AppContext, query: SearchQuery, skip: int, count: int) -> Iterator[str]:
    """Ids of the ``count`` records after the first ``skip``, walking keyset pages."""
    after: str | None = None
    while count > 0:
        page = ctx.catalog.search(replace(query, after=after, limit=min(MAX_LIMIT, skip + count)))
        items = page.items[skip:]
        skip = max(0, skip - len(page.items))
        for summary in items[:count]:
            yield summary.id
        count -= min(len(items), count)
        if page.next is None:
            return
        after = page.next


def first_match(ctx: AppContext, value: str) -> RecordDetail:
    """The active record ``value`` names; of several sharing the prefix, the oldest (oipd)."""
    wanted = valid_id("id", value)
    try:
        found = ctx.catalog.get(wanted)
        candidates = [found] if found is not None else []
    except AmbiguousId as exc:
        if len(exc.matches) >= MAX_AMBIGUOUS:  # maybe cut short: the oldest may be missing
            raise ApiError(
                404, f"too many records share the id prefix {wanted!r}; give more characters", "id"
            ) from None
        candidates = [d for d in map(ctx.catalog.get, exc.matches) if d is not None]
    active = [d for d in candidates if not (d.summary.deactivated or d.provenance.deactivated)]
    if not active:
        if candidates:
            raise ApiError(404, f"record {candidates[0].summary.id} was deactivated", "id")
        raise ApiError(404, f"no record with id {wanted!r}", "id")
    return min(active, key=lambda d: (d.provenance.block_height, d.summary.id))


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
        str, Query(description="txid or a prefix of >= 6 hex characters; several: the oldest")
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
