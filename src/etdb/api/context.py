"""What every route needs (the catalog, settings, ledger, limits) and HTTP caching.

Caching: a response depends only on the catalog's content, which changes only when the
indexer commits a block, so the indexed height is a cheap validator. Every data response
carries ``ETag: W/"<height>"`` and a short ``max-age`` (edits change a record's current view,
so even a per-txid answer is not immutable); ``If-None-Match`` with the current tag gets 304.
The height is re-read at most every :data:`HEIGHT_TTL` seconds (a query per request was ~10%
of a lookup's cost): a body may then be newer than its tag, never older, so a client at worst
revalidates once more.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from etdb.api.background import OFF, IndexerState
from etdb.api.errors import BadParameter
from etdb.config import Settings
from etdb.index.query import CatalogReader, SearchQuery, SearchResult
from etdb.ledger import Ledger

DEFAULT_MAX_AGE = 30
DEFAULT_EXPORT_ROWS = 100_000
HEIGHT_TTL = 1.0


@dataclass
class AppContext:
    """Shared by every part of the app; found at ``request.app.state.etdb``."""

    catalog: CatalogReader
    settings: Settings
    ledger: Ledger | None = None
    #: Seconds clients and proxies may reuse a data response without revalidating.
    max_age: int = DEFAULT_MAX_AGE
    #: Most rows one csv/ndjson export streams.
    export_rows: int = DEFAULT_EXPORT_ROWS
    #: What the background indexer is doing (state, last error, next retry), for /status and
    #: /health; "off" when nothing indexes (serve --no-index, an app built by a test).
    indexer_state: Callable[[], IndexerState] = field(default=lambda: OFF)
    extra: dict[str, Any] = field(default_factory=dict)  # for later parts (portal, gateway)
    height_ttl: float = HEIGHT_TTL
    _height: tuple[float, int] = (float("-inf"), -1)  # (monotonic time read, height)

    def indexed_height(self) -> int:
        """The catalog's indexed height, cached for ``height_ttl`` seconds."""
        read_at, height = self._height
        now = time.monotonic()
        if now - read_at >= self.height_ttl:
            height = self.catalog.indexed_height()
            self._height = (now, height)  # one tuple: readers in other threads see both or none
        return height


async def context(request: Request) -> AppContext:
    # async on purpose: FastAPI runs a sync dependency in its thread pool, one more hop
    return request.app.state.etdb


def run_search(ctx: AppContext, query: SearchQuery) -> SearchResult:
    """``catalog.search``; its ValueError ("after: not a page token...") becomes a 400.

    The catalog validates the query again and names the field first in its messages; our
    parameters are checked before, so what reaches here is mostly a stale or forged token.
    """
    try:
        return ctx.catalog.search(query)
    except ValueError as exc:
        name, sep, message = str(exc).partition(": ")
        if not sep or " " in name:
            name, message = "q", str(exc)
        raise BadParameter(name, message) from None


def etag(ctx: AppContext) -> str:
    return f'W/"{ctx.indexed_height()}"'


def cache_headers(ctx: AppContext, tag: str) -> dict[str, str]:
    return {"ETag": tag, "Cache-Control": f"public, max-age={ctx.max_age}"}


def not_modified(request: Request, tag: str) -> bool:
    header = request.headers.get("if-none-match")
    if not header:
        return False
    # Weak comparison (RFC 9110 §13.1.2): W/"x" matches "x" and W/"x"; "*" matches anything.
    wanted = {t.strip().removeprefix("W/") for t in header.split(",")}
    return "*" in wanted or tag.removeprefix("W/") in wanted


def json_bytes(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class CachedJSON(Response):
    media_type = "application/json"


def cached(request: Request, ctx: AppContext, build: Any) -> Response:
    """Answer 304 if the client's copy is current, else ``build()`` as JSON with validators.

    The tag is taken before the body is built: if the indexer commits in between, the client
    gets newer data under an older tag and simply revalidates once more next time.
    """
    tag = etag(ctx)
    headers = cache_headers(ctx, tag)
    if not_modified(request, tag):
        return Response(status_code=304, headers=headers)
    return CachedJSON(json_bytes(build()), headers=headers)
