"""`etdb search`'s work: one query to a node's ``/api/v1/records``, paged up to a limit.

The query goes as the API names it (``q``, filters by :data:`etdb.client.selection.FILTERS`,
``sort``/``order`` from the catalog's own :data:`etdb.index.query.SortKey` and ``Order``), so
the server checks every value and its 400 names the parameter. A server is a peer: whatever it
answers, at most ``limit`` rows are kept and each row's cells are plain, bounded text.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, get_args

from etdb.client.api import MAX_PAGE, ApiClient
from etdb.client.selection import api_params
from etdb.index.query import DEFAULT_LIMIT, Order, SortKey
from etdb.units import human_bytes

__all__ = ["COLUMNS", "ORDERS", "SORT_KEYS", "SearchRequest", "SearchResult", "row", "search"]

SORT_KEYS: tuple[str, ...] = get_args(SortKey)
ORDERS: tuple[str, ...] = get_args(Order)
#: The columns of a result table, in order (see :func:`row`).
COLUMNS = ("title", "species", "date", "sid", "id", "size")
#: A cell longer than this is cut (a title is free text any publisher wrote).
MAX_CELL = 200
ID_PREFIX = 12


@dataclass(frozen=True)
class SearchRequest:
    """``text``: the full-text query; ``filters``: option values by API name; ``limit``: the
    most rows wanted (read in pages of at most the API's largest page)."""

    server: str
    text: str | None = None
    filters: Mapping[str, Any] = field(default_factory=dict)
    sort: str | None = None
    order: str | None = None
    limit: int = DEFAULT_LIMIT

    def params(self) -> list[tuple[str, str]]:
        params = api_params({**self.filters, "q": self.text})
        params += [(name, value) for name, value in (("sort", self.sort), ("order", self.order))
                   if value]  # fmt: skip
        return params


@dataclass(frozen=True)
class SearchResult:
    """The rows read (summaries as the API sent them) and how many records match in all."""

    items: list[dict[str, Any]]
    total: int

    def as_json(self, server: str) -> dict[str, Any]:
        return {"server": server, "total": self.total, "count": len(self.items),
                "items": self.items}  # fmt: skip


def search(request: SearchRequest) -> SearchResult:
    """Read pages until ``request.limit`` rows or the last page. Raises ``ClientError``."""
    params = request.params()
    items: list[dict[str, Any]] = []
    total, after = 0, None
    with ApiClient(request.server) as api:
        while len(items) < request.limit:
            size = min(MAX_PAGE, request.limit - len(items))
            page = api.page(params, limit=size, after=after)
            total = max(total, page.total)
            items += [item for item in page.items[:size] if isinstance(item, dict)]
            if not page.next or not page.items:
                break
            after = page.next
    return SearchResult(items[: request.limit], total)


def row(item: Mapping[str, Any]) -> tuple[str, ...]:
    """The cells of :data:`COLUMNS` for one summary: text, never longer than ``MAX_CELL``,
    whatever types the server sent (a missing or odd value is an empty cell)."""
    size = item.get("total_bytes")
    cells = (
        _text(item.get("title")),
        _text(item.get("species")),
        _date(item.get("date")),
        _text(item.get("sid")),
        _text(item.get("id"))[:ID_PREFIX],
        human_bytes(size) if isinstance(size, int) and not isinstance(size, bool) else "",
    )
    return tuple(cell[:MAX_CELL] for cell in cells)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        return ""
    return " ".join(value[: MAX_CELL * 2].split())  # no newlines or tabs break a row


def _date(value: Any) -> str:
    if not isinstance(value, int) or isinstance(value, bool):
        return ""
    try:
        return dt.datetime.fromtimestamp(value, dt.UTC).date().isoformat()
    except (OverflowError, OSError, ValueError):
        return ""
