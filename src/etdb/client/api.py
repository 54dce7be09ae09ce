"""A small typed client of an etdb server's ``/api/v1`` (docs/api.md): search pages and records.

The client passes parameters through as the API names them (``species``, ``date_from``...):
the server is the one place that parses and checks them, and its 400 names the parameter, which
:class:`ClientError` (``etdb.Client``'s) keeps so a command can point at its own flag. It
returns records as the API sent them (plain JSON), which the download manifest keeps as is.
Searches follow the keyset ``next`` token, so a long selection is read page by page and never
skips or repeats a record.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import httpx

from etdb.client.errors import ClientError

__all__ = ["ApiClient", "ClientError", "Page", "Params"]

#: Query parameters as (name, value) pairs: a name may repeat (``species=A&species=B``).
Params = Sequence[tuple[str, str]]
#: The API's largest page (``limit`` 1-500).
MAX_PAGE = 500


@dataclass(frozen=True, slots=True)
class Page:
    """One page of ``GET /api/v1/records``: summaries as the API returned them."""

    items: list[dict[str, Any]]
    total: int
    next: str | None


class ApiClient:
    """``/api/v1`` of one etdb server (``base_url`` like ``http://127.0.0.1:8780``)."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            transport=transport,
            headers={"Accept": "application/json"},
            follow_redirects=True,
        )

    # -- calls ----------------------------------------------------------------------------

    def page(self, params: Params, *, limit: int = MAX_PAGE, after: str | None = None) -> Page:
        """One page of the search ``params`` describe (``after``: the previous page's next)."""
        query = [*params, ("limit", str(limit))]
        if after is not None:
            query.append(("after", after))
        body = self._get_json("/api/v1/records", query)
        try:
            return Page(list(body["items"]), int(body["total"]), body.get("next"))
        except (KeyError, TypeError, ValueError) as exc:
            raise ClientError(f"{self.base_url}: unexpected search answer ({exc!r})") from None

    def search(self, params: Params, *, limit: int = MAX_PAGE) -> Iterator[dict[str, Any]]:
        """Every record summary of the search, page after page (``limit`` per request)."""
        after: str | None = None
        while True:
            page = self.page(params, limit=limit, after=after)
            yield from page.items
            if not page.next or not page.items:
                return
            after = page.next

    def get(self, id: str) -> dict[str, Any]:
        """One record: ``{summary, artifact, original, provenance, links}`` (txid or prefix)."""
        body = self._get_json(f"/api/v1/records/{id}", [])
        if not isinstance(body.get("artifact"), dict) or not isinstance(body.get("summary"), dict):
            raise ClientError(f"{self.base_url}: record {id}: the answer has no artifact")
        return body

    # -- plumbing -------------------------------------------------------------------------

    def _get_json(self, path: str, params: Params) -> dict[str, Any]:
        try:
            response = self._http.get(path, params=list(params))
        except httpx.HTTPError as exc:
            raise ClientError(f"{self.base_url}: {exc or type(exc).__name__}") from None
        except (httpx.InvalidURL, UnicodeError) as exc:  # a NUL or lone surrogate in a value
            raise ClientError(f"{self.base_url}{path}: cannot ask for it: {exc}") from None
        if response.status_code != 200:
            raise _error(self.base_url, response)
        try:
            body = response.json()
        except ValueError:
            raise ClientError(f"{self.base_url}{path}: the answer is not JSON") from None
        if not isinstance(body, dict):
            raise ClientError(f"{self.base_url}{path}: the answer is not a JSON object")
        return body

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _error(base_url: str, response: httpx.Response) -> ClientError:
    """The server's own message (``{"error": {"parameter", "message"}}``) when it sent one."""
    parameter: str | None = None
    message = f"HTTP {response.status_code}"
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, dict) and error.get("message"):
        parameter = error.get("parameter") if isinstance(error.get("parameter"), str) else None
        message = str(error["message"])
        if parameter:
            message = f"{parameter}: {message}"
    return ClientError(f"{base_url}: {message}", status=response.status_code, parameter=parameter)
