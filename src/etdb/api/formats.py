"""Search results as CSV or NDJSON, streamed page by page from the catalog.

Without ``limit`` an export streams every matching record, following the catalog's keyset
pages, up to :attr:`AppContext.export_rows` rows; with ``limit`` it answers that one page (and a
``Link: rel="next"`` header), so a client can also walk a large result with ``after``.

Headers tell the size up front: ``X-Total-Count`` (records matching the query) and
``X-Row-Limit``; when the cap cuts a full export short, ``X-Truncated: true`` says so up front
(for a query without ``after``) and a trailer always does: a last NDJSON line
``{"truncated": true, "rows": ..., "total": ..., "next": token, "links": {"next": url}}``
(records never have a ``truncated`` key), and a last CSV line starting with ``# truncated``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from etdb.api.context import AppContext, cache_headers, etag, not_modified, run_search
from etdb.api.models import summary_json
from etdb.api.params import SearchRequest
from etdb.index.query import MAX_LIMIT, RecordSummary, SearchQuery, SearchResult

CSV_COLUMNS = (
    "id",
    "publisher",
    "title",
    "species",
    "strain",
    "microscopist",
    "lab",
    "institution",
    "scope",
    "date",
    "published",
    "sid",
    "location",
    "thumbnail",
    "file_types",
    "total_bytes",
    "deactivated",
)
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "ndjson": "application/x-ndjson"}


def _csv_line(values: list[Any]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow(values)
    return buf.getvalue()


def csv_row(s: RecordSummary) -> list[Any]:
    row = summary_json(s)
    row["file_types"] = ";".join(s.file_types)
    row["deactivated"] = "true" if s.deactivated else "false"
    return ["" if row[c] is None else row[c] for c in CSV_COLUMNS]


def _pages(
    ctx: AppContext, query: SearchQuery, first: SearchResult, budget: int
) -> Iterator[tuple[list[RecordSummary], str | None]]:
    """The first page, then the following ones, until the rows run out or ``budget`` is spent."""
    page = first
    budget -= len(page.items)
    yield page.items, page.next
    while page.next is not None and budget > 0:
        page = run_search(ctx, replace(query, after=page.next, limit=min(MAX_LIMIT, budget)))
        budget -= len(page.items)
        yield page.items, page.next


def export(request: Request, ctx: AppContext, search: SearchRequest) -> Response:
    query = replace(search.query, facets=())  # an export has no room for facet counts
    cap = search.query.limit if search.explicit_limit else ctx.export_rows
    tag = etag(ctx)
    headers = cache_headers(ctx, tag)
    if not_modified(request, tag):
        return Response(status_code=304, headers=headers)
    # The first page is read before answering, so a bad `after` token is still a clean 400.
    first = run_search(ctx, replace(query, limit=min(MAX_LIMIT, cap)))
    headers |= {"X-Total-Count": str(first.total), "X-Row-Limit": str(cap)}
    if search.explicit_limit:
        if first.next:
            headers["Link"] = f'<{_next_url(request, first.next)}>; rel="next"'
    elif query.after is None and first.total > cap:
        headers["X-Truncated"] = "true"
    if search.format == "csv":
        headers["Content-Disposition"] = 'attachment; filename="etdb-records.csv"'
    body = _stream(request, ctx, search, query, first, cap)
    return StreamingResponse(body, media_type=MEDIA_TYPES[search.format], headers=headers)


def _stream(
    request: Request,
    ctx: AppContext,
    search: SearchRequest,
    query: SearchQuery,
    first: SearchResult,
    cap: int,
) -> Iterator[str]:
    as_csv = search.format == "csv"
    if as_csv:
        yield _csv_line(list(CSV_COLUMNS))
    rows, last_next = 0, None
    for items, token in _pages(ctx, query, first, cap):
        rows += len(items)
        last_next = token
        if as_csv:
            yield "".join(_csv_line(csv_row(s)) for s in items)
        else:
            yield "".join(_ndjson(summary_json(s)) for s in items)
    if search.explicit_limit or last_next is None:
        return
    url = _next_url(request, last_next)
    if as_csv:
        yield f"# truncated: {rows} of {first.total} rows; continue with {url}\r\n"
    else:
        trailer = {
            "truncated": True,
            "rows": rows,
            "total": first.total,
            "next": last_next,
            "links": {"next": url},
        }
        yield _ndjson(trailer)


def _ndjson(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"


def _next_url(request: Request, token: str) -> str:
    return str(request.url.include_query_params(after=token))
