"""The browse page's whole state, kept in its URL: the selection, and links that change it.

A browse URL is an API search URL: ``/browse?species=...&date_from=...`` means exactly what
``/api/v1/records?species=...&date_from=...`` means, because it is parsed by the API's own
:func:`etdb.api.params.search_request` (each value coerced by the very type FastAPI uses for
it, so a bad ``limit`` or ``sort`` gets the API's message, naming the parameter). The page adds
two parameters of its own, ``start`` (the rank of the page's first result, for "results 25-48
of N": a keyset token does not know it) and ``more`` (a facet shown in full), and treats an
empty value as absent (an HTML form submits every empty field).

Links keep the user's values as written (``date_from=2014`` stays ``2014``): a shared link
shows what its author typed, and nothing is lost in a round trip through the page.
"""

from __future__ import annotations

import shlex
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from pydantic import TypeAdapter, ValidationError

from etdb.api.errors import BadParameter
from etdb.api.params import SIGNATURE, SearchRequest, search_request
from etdb.index.fields import Field, by_name
from etdb.index.query import FACETS, SearchQuery
from etdb.web.scope import NOTHING, PortalScope

__all__ = [
    "API_PARAMS",
    "PAGE_SIZE",
    "PageState",
    "Selection",
    "download_command",
    "parse",
    "selection_params",
]

PAGE_SIZE = 24
MAX_START = 10**9
#: Page parameters that never reach the catalog.
PAGE_ONLY = ("start", "more")
#: API parameters the page refuses, and why (the message names a way that works).
NOT_ON_PAGE = {
    "format": "the page is HTML or JSON; for CSV or NDJSON use the API link on the page "
    "(/api/v1/records?format=csv)",
    "facets": "the page chooses its facets; ask /api/v1/records for others",
}
#: Parameters that only say how to show a selection, not which records are in it.
PRESENTATION = ("sort", "order", "limit", "after")
FIELDS_BY_NAME = by_name()


def _is_list(hint: Any) -> bool:
    base = typing.get_args(hint)[0] if typing.get_origin(hint) is typing.Annotated else hint
    return any(typing.get_origin(t) is list for t in (base, *typing.get_args(base)))


def _adapters() -> dict[str, tuple[TypeAdapter[Any], bool]]:
    """name -> (validator, repeatable) for every parameter of the API's search, in its order."""
    params = [p for p in SIGNATURE.parameters.values() if p.name != "request"]
    return {p.name: (TypeAdapter(p.annotation), _is_list(p.annotation)) for p in params}


_ADAPTERS = _adapters()
#: The API's search parameters in its declaration order (the canonical order of links).
API_PARAMS: tuple[str, ...] = tuple(_ADAPTERS)
_RANK = {name: i for i, name in enumerate(API_PARAMS)}


@dataclass(frozen=True, slots=True)
class Selection:
    """The URL's parameters (empty values dropped, order kept) and the links that change them.

    Every link that changes the selection goes back to its first page (drops ``after`` and
    ``start``); only :meth:`page_href` keeps them.
    """

    path: str
    params: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_items(cls, path: str, items: Iterable[tuple[str, str]]) -> Selection:
        return cls(path, tuple((k, v) for k, v in items if v != ""))

    def values(self, name: str) -> list[str]:
        return [v for k, v in self.params if k == name]

    def last(self, name: str) -> str:
        """The value that counts for a single-valued parameter (the last, as FastAPI reads)."""
        found = self.values(name)
        return found[-1] if found else ""

    def has(self, name: str, value: str) -> bool:
        return (name, value) in self.params

    @property
    def api_params(self) -> list[tuple[str, str]]:
        return [(k, v) for k, v in self.params if k not in PAGE_ONLY]

    def href(self, params: Iterable[tuple[str, str]]) -> str:
        query = urlencode(list(params))
        return f"{self.path}?{query}" if query else self.path

    def _first_page(self) -> list[tuple[str, str]]:
        return [(k, v) for k, v in self.params if k not in ("after", "start")]

    def adding(self, name: str, value: str) -> str:
        """Link with ``name=value`` added (any-of for repeatable filters)."""
        params = self._first_page()
        if (name, value) not in params:
            params.append((name, value))
        return self.href(params)

    def removing(self, *pairs: tuple[str, str]) -> str:
        return self.href(p for p in self._first_page() if p not in pairs)

    def setting(self, **values: str | None) -> str:
        """Link with single-valued parameters replaced (``None`` removes one)."""
        params = [(k, v) for k, v in self._first_page() if k not in values]
        params += [(k, v) for k, v in values.items() if v is not None]
        return self.href(params)

    def page_href(self, after: str, start: int) -> str:
        return self.href([*self._first_page(), ("after", after), ("start", str(start))])

    @property
    def first_page_href(self) -> str:
        return self.href(self._first_page())


@dataclass(frozen=True, slots=True)
class PageState:
    """A parsed browse URL: the API's search plus the page's own parameters."""

    search: SearchRequest
    start: int = 1
    more: tuple[str, ...] = ()


async def parse(request: Request, selection: Selection, page_size: int = PAGE_SIZE) -> PageState:
    """The selection parsed as the API parses it; :class:`BadParameter` names what is wrong."""
    start, more = _page_params(selection)
    given: dict[str, list[str]] = {}
    for name, value in selection.api_params:
        if name in NOT_ON_PAGE:
            raise BadParameter(name, NOT_ON_PAGE[name])
        given.setdefault(name, []).append(value)
    kwargs: dict[str, Any] = {"limit": page_size}
    for name, raw in given.items():
        if name not in _ADAPTERS:
            continue  # search_request names it ("unknown parameter")
        adapter, repeatable = _ADAPTERS[name]
        try:
            kwargs[name] = adapter.validate_python(raw if repeatable else raw[-1])
        except ValidationError as exc:
            raise BadParameter(name, _message(exc)) from None
    # The API's parser reads the query string itself (unknown names, an explicit limit): give
    # it the page's URL without the page's own parameters.
    scope = dict(request.scope, query_string=urlencode(selection.api_params).encode())
    search = await search_request(Request(scope), **kwargs)
    return PageState(search, start, more)


def _page_params(selection: Selection) -> tuple[int, tuple[str, ...]]:
    start = 1
    if raw := selection.last("start"):
        if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_START:
            raise BadParameter("start", f"must be a whole number from 1 to {MAX_START}")
        start = int(raw)
    more: list[str] = []
    for name in selection.values("more"):
        if name not in FACETS:
            raise BadParameter("more", f"unknown facet {name[:50]!r}")
        if name not in more:
            more.append(name)
    return start, tuple(more)


def _message(exc: ValidationError) -> str:
    errors = exc.errors()
    message = str(errors[0].get("msg", "invalid value")).removeprefix("Value error, ")
    return message + (f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else "")


# -- the same selection elsewhere: the API, the command line ---------------------------------


def selection_params(
    selection: Selection, query: SearchQuery, scope: PortalScope
) -> list[tuple[str, str]] | None:
    """The selection's API parameters as the portal answered them, in canonical order.

    Under a portal scope, the filters it fixes are replaced by their effective values (the
    scope's, or their intersection with the user's), so the API link and the download command
    select exactly the records the page shows. None: the scope leaves nothing to select.
    """
    params = [(k, v) for k, v in selection.api_params if k != "after"]
    if not scope.is_everything:
        fixed = scope.filters()
        params = [(k, v) for k, v in params if k not in fixed]
        for name in fixed:
            field = FIELDS_BY_NAME[name]
            params += [(name, _param(field, v)) for v in _values(getattr(query, name))]
        if any(v == NOTHING for _, v in params):
            return None
    return sorted(params, key=lambda kv: _RANK.get(kv[0], len(_RANK)))


def _values(value: Any) -> tuple[Any, ...]:
    if value is None:
        return ()
    return value if isinstance(value, tuple) else (value,)


def _param(field: Field, value: Any) -> str:
    """A scoped value as the API writes it (``tilt_axis`` 2 is ``dual``)."""
    return field.choice_name(value) if field.choices else str(value)


def download_command(params: Sequence[tuple[str, str]], query: SearchQuery, server: str) -> str:
    """``etdb download --server <this site>`` with one flag per API parameter (``date_from`` ->
    ``--date-from``), every value quoted for POSIX shells; sort, order and paging do not change
    what is fetched. ``--server`` makes the command select from this site wherever it is run."""
    words = ["etdb", "download", "--server", shlex.quote(server)]
    for name, value in params:
        if name in PRESENTATION:
            continue
        flag = "--" + name.replace("_", "-")
        if name == "include_deactivated":
            if query.include_deactivated and flag not in words:
                words.append(flag)
            continue
        words += [flag, shlex.quote(value)]
    return " ".join(words)
