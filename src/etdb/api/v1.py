"""``/api/v1``: search, record lookup, publishers, summary, index status, health, rejections.

Routes are plain ``def``: the catalog is synchronous, so FastAPI runs them in its thread pool
and the event loop stays free. Every data answer goes through :func:`cached` (ETag on the
indexed height, short max-age); ``/status`` is never cached.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import PlainTextResponse, Response

from etdb.api import models
from etdb.api.background import IndexerState
from etdb.api.context import AppContext, cached, context, json_bytes, run_search
from etdb.api.errors import ApiError, BadParameter
from etdb.api.formats import MEDIA_TYPES, export
from etdb.api.models import ErrorBody
from etdb.api.params import SearchRequest, reject_unknown, search_request, text
from etdb.index.query import AmbiguousId, IndexStatus, RecordDetail
from etdb.ledger import LedgerError
from etdb.ledger.urls import redact

router = APIRouter(prefix="/api/v1", tags=["v1"])

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "A parameter is invalid (it is named)."},
}
MIN_PREFIX = 6
MAX_REJECTIONS = 500
_HEX = re.compile(r"[0-9a-fA-F]+")
ID_PATTERN = "^[0-9a-fA-F]{6,64}$"

Context = Annotated[AppContext, Depends(context)]


@router.get(
    "/records",
    summary="Search records",
    response_model=models.RecordPage,
    responses={
        **ERRORS,
        200: {
            "content": {
                mt.split(";")[0]: {"schema": {"type": "string"}} for mt in MEDIA_TYPES.values()
            },
            "description": "A page of records (JSON), or every matching record (CSV/NDJSON).",
        },
    },
)
def search_records(
    request: Request,
    ctx: Context,
    search: Annotated[SearchRequest, Depends(search_request)],
) -> Response:
    """Full text, filters (repeat a parameter for any-of), facet counts, keyset pages.

    Follow ``next`` (or ``links.next``) for the following page; ``format=csv|ndjson`` streams
    every matching record instead (see the X-Total-Count / X-Truncated headers).
    """
    if search.format != "json":
        return export(request, ctx, search)

    def build() -> dict[str, Any]:
        result = run_search(ctx, search.query)
        nxt = str(request.url.include_query_params(after=result.next)) if result.next else None
        return {
            "items": [models.summary_json(s) for s in result.items],
            "total": result.total,
            "facets": models.facets_json(result.facets),
            "next": result.next,
            "links": {"self": str(request.url), "next": nxt},
        }

    return cached(request, ctx, build)


def record_id(name: str, value: str) -> str:
    """A full txid or a prefix of at least 6 hex characters, lower-cased."""
    if len(value) < MIN_PREFIX or len(value) > 64 or not _HEX.fullmatch(value):
        raise BadParameter(name, f"must be a txid or a prefix of {MIN_PREFIX} to 64 hex characters")
    return value.lower()


def lookup(ctx: AppContext, name: str, value: str) -> RecordDetail:
    """The record ``value`` names: 404 unknown, 409 (with the candidates) ambiguous."""
    wanted = record_id(name, value)
    try:
        detail = ctx.catalog.get(wanted)
    except AmbiguousId as exc:
        raise ApiError(
            409,
            f"id prefix {wanted!r} matches {len(exc.matches)} records; give more characters",
            name,
            candidates=list(exc.matches),
        ) from None
    if detail is None:
        raise ApiError(404, f"no record with id {wanted!r}", name)
    return detail


@router.get(
    "/records/{id}",
    summary="One record",
    response_model=models.RecordDetailOut,
    responses={
        **ERRORS,
        404: {"model": ErrorBody, "description": "No such record."},
        409: {"model": ErrorBody, "description": "The prefix matches several records."},
    },
)
def get_record(
    request: Request,
    ctx: Context,
    id: Annotated[
        str,
        Path(
            description="txid, or a unique prefix of >= 6 hex characters",
            # documented, not enforced by FastAPI: record_id() gives the clearer message
            json_schema_extra={"pattern": ID_PATTERN},
        ),
    ],
) -> Response:
    """Summary, current artifact, the original artifact, and its provenance on the ledger."""
    reject_unknown(request, ())

    def build() -> dict[str, Any]:
        detail = lookup(ctx, "id", id)
        location = detail.summary.location
        gateway = location and ctx.extra.get("gateway")
        links = {
            "self": str(request.url_for("get_record", id=detail.summary.id)),
            "files": f"{request.base_url}ipfs/{location}/" if gateway else None,
        }
        return models.detail_json(detail, links)

    return cached(request, ctx, build)


@router.get("/publishers", summary="Publishers", response_model=models.PublisherList)
def list_publishers(request: Request, ctx: Context) -> Response:
    """Every publisher with records in the catalog, with counts and first/last publish time."""
    reject_unknown(request, ())
    return cached(
        request,
        ctx,
        lambda: {"items": [models.publisher_json(p) for p in ctx.catalog.publishers()]},
    )


@router.get("/summary", summary="Catalog totals", response_model=models.SummaryOut)
def catalog_summary(request: Request, ctx: Context) -> Response:
    """Totals: records, per-species and per-publisher counts, total bytes of all files."""
    reject_unknown(request, ())
    return cached(request, ctx, lambda: models.catalog_summary_json(ctx.catalog.summary()))


def index_status(ctx: AppContext) -> IndexStatus:
    """Where the indexer stands against the ledger (the ledger tip is None if unreachable)."""
    tip: int | None = None
    if ctx.ledger is not None:
        try:
            tip = ctx.ledger.tip().height
        except LedgerError:
            tip = None
    url = ctx.ledger.url if ctx.ledger is not None else redact(ctx.settings.ledger)
    height = ctx.catalog.indexed_height()
    return IndexStatus(
        ledger_url=url,
        ledger_tip=tip,
        indexed_height=height,
        lag=max(tip - height, 0) if tip is not None else None,
        records=ctx.catalog.summary().records,
        rejected=_rejection_count(ctx),
        pending_multiparts=ctx.catalog.pending_multiparts(),
    )


def _rejection_count(ctx: AppContext) -> int | None:
    count = getattr(ctx.catalog, "rejection_count", None)  # CatalogReader addition
    return count() if count is not None else None


def indexer_json(state: IndexerState) -> dict[str, Any]:
    retry = state.next_retry
    when = None if retry is None else datetime.fromtimestamp(retry, UTC)
    return {
        "indexer": state.state,
        "indexer_error": state.error,
        "indexer_failures": state.failures,
        "indexer_next_retry": when.isoformat(timespec="seconds") if when else None,
    }


@router.get(
    "/status",
    summary="Index status",
    response_model=models.StatusOut,
    responses={503: {"model": models.StatusOut, "description": "The indexer has failed."}},
)
def status(request: Request, ctx: Context) -> Response:
    """Ledger tip, indexed height and lag, record/rejection/pending-multipart counts, and the
    background indexer's state; 503 (same body) while the indexer is failed and waiting to
    retry (``indexer_error`` says why, ``indexer_next_retry`` when it tries again)."""
    reject_unknown(request, ())
    state = ctx.indexer_state()
    body = models.status_json(index_status(ctx)) | indexer_json(state)
    code = 503 if state.failed else 200
    return Response(json_bytes(body), code, media_type="application/json", headers=_NO_CACHE)


_NO_CACHE = {"Cache-Control": "no-cache"}
#: Indexer states in which the node serves a current catalog (off: serve --no-index, chosen).
HEALTHY_STATES = frozenset({"running", "off"})


@router.head("/health", include_in_schema=False)  # load balancers that probe with HEAD
@router.get(
    "/health",
    summary="Health check",
    response_class=PlainTextResponse,
    responses={
        200: {"description": "ok", "content": {"text/plain": {}}},
        503: {"description": "Why not (indexer or catalog)", "content": {"text/plain": {}}},
    },
)
def health(request: Request, ctx: Context) -> Response:
    """200 ``ok`` when the indexer is running (or off by choice) and the catalog answers;
    503 with the reason otherwise. One small query: cheap enough for load balancers."""
    reject_unknown(request, ())
    state = ctx.indexer_state()
    if state.state not in HEALTHY_STATES:
        why = f": {state.error}" if state.error else ""
        return _health(f"indexer {state.state}{why}", 503)
    try:
        ctx.catalog.indexed_height()
    except Exception as exc:  # whatever the database says, the answer is "not healthy"
        return _health(f"catalog unreadable: {type(exc).__name__}", 503)
    return _health("ok", 200)


def _health(text: str, code: int) -> Response:
    return PlainTextResponse(text + "\n", code, headers=_NO_CACHE)


@router.get(
    "/rejections",
    summary="Rejected ledger entries",
    response_model=models.RejectionPage,
    responses=ERRORS,
)
def rejections(
    request: Request,
    ctx: Context,
    limit: Annotated[int, Query(ge=1, le=MAX_REJECTIONS)] = 100,
    after: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """Ledger entries the indexer refused, with the reason, in ledger order (keyset pages:
    ``after`` is the ``next`` of the previous page, ``<height>:<index>``)."""
    reject_unknown(request, ("limit", "after"))
    token = text("after", after, 200) if after else None

    def build() -> dict[str, Any]:
        try:
            rows = ctx.catalog.rejections(limit=limit, after=token)
        except ValueError as exc:
            raise BadParameter("after", str(exc).removeprefix("after: ")) from None
        # The catalog never ends a page inside one ledger position, so a full page may run
        # over `limit`; a short page is the last.
        last = rows[-1] if len(rows) >= limit else None
        return {
            "items": [models.rejection_json(r) for r in rows],
            "next": f"{last.height}:{last.index}" if last else None,
        }

    return cached(request, ctx, build)
