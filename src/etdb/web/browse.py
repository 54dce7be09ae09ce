"""``/browse``: search the catalog with facets, ranges, sort and keyset pages, all in the URL.

One catalog search per page, facets included; cards come from the search's
:class:`~etdb.index.query.RecordSummary` rows alone (no lookup per card). The URL is parsed by
the API's own parser (``selection.py``), so ``/browse?...`` and ``/api/v1/records?...`` select
the same records, and the page links to both the API and the ``etdb download`` command for it.
A bad parameter re-renders the page (status 400) with the message naming it and the form
still holding what was typed.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from etdb._version import __version__
from etdb.api import models
from etdb.api.context import AppContext, not_modified, run_search
from etdb.api.errors import BadParameter
from etdb.index.fields import by_name, of_kind
from etdb.index.query import FacetValue, SearchQuery, SearchResult
from etdb.web import scope_of
from etdb.web.dataset_view import subtype_words
from etdb.web.render import page, site_url, twin, wants_json
from etdb.web.scope import PortalScope
from etdb.web.selection import (
    PageState,
    Selection,
    download_command,
    parse,
    selection_params,
)

__all__ = ["FACETS_SHOWN", "PAGE_FACETS", "router"]

router = APIRouter()
FIELDS_BY_NAME = by_name()

#: Facets of the page, in the order shown, with their headings (the registry's labels).
PAGE_FACETS: dict[str, str] = {
    name: FIELDS_BY_NAME[name].label
    for name in ("species", "scope", "lab", "publisher", "tilt_axis", "year", "file_type")
}
#: Values a facet shows before its "more" link (the catalog returns up to 50).
FACETS_SHOWN = 8
SORTS = (
    ("", "Best match, else newest"),
    ("relevance", "Relevance"),
    ("date", "Date taken"),
    ("published", "Publication time"),
    ("species", "Species"),
    ("microscopist", "Microscopist"),
)
ORDERS = (("", "Default"), ("desc", "Descending"), ("asc", "Ascending"))
#: The range section of the form: (parameter stem, label, unit), the registry's ranges.
RANGES = tuple((f.name, f.label, f.unit) for f in of_kind("range") if f.form)
AXES = {"1": "single axis", "2": "dual axis"}
_AXIS_PARAM = {"1": "single", "2": "dual", "single": "1", "dual": "2"}
#: Chip labels of the URL's filters (others show their parameter name).
LABELS = {
    "q": "Text",
    **{f.name: f.label for f in of_kind("text", "exact")},
    "file_type": "Has",
    "include_deactivated": "Deactivated included",
    **{f"{f.name}_{end}": f"{f.label} {end}" for f in of_kind("range") for end in ("from", "to")},
}
_FORM_FIELDS = {"q", "sort", "order"} | {f"{s}_{e}" for s, _, _ in RANGES for e in ("from", "to")}
_NOT_FILTERS = ("sort", "order", "limit", "after", "start", "more")
_ORDER_WORDS = {"asc": "ascending", "desc": "descending"}
_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@twin(router, "/browse")
async def browse(request: Request) -> Response:
    items = request.query_params.multi_items()
    if not wants_json(request) and any(v == "" for _, v in items):
        # An HTML form sends every empty field; the page answers the clean, shareable URL.
        clean = Selection.from_items(request.url.path, items)
        return RedirectResponse(clean.href(clean.params), status_code=303)
    selection = Selection.from_items(request.url.path, items)
    ctx: AppContext = request.app.state.etdb
    scope = scope_of(request)
    try:
        state = await parse(request, selection)
    except BadParameter as exc:
        return _refused(request, selection, scope, exc)
    # Depends on the catalog (its indexed height), the URL and the page code (the version).
    tag = f'W/"{ctx.indexed_height()}-{__version__}"'
    headers = {"ETag": tag, "Cache-Control": f"public, max-age={ctx.max_age}", "Vary": "Accept"}
    if not_modified(request, tag):
        return Response(status_code=304, headers=headers)
    query = dataclasses.replace(scope.apply(state.search.query), facets=tuple(PAGE_FACETS))
    return await run_in_threadpool(_answer, request, ctx, selection, scope, state, query, headers)


def _answer(
    request: Request,
    ctx: AppContext,
    selection: Selection,
    scope: PortalScope,
    state: PageState,
    query: SearchQuery,
    headers: dict[str, str],
) -> Response:
    try:
        result = run_search(ctx, query)
    except BadParameter as exc:  # a stale or forged `after` token
        return _refused(request, selection, scope, exc)
    context = _context(selection, scope, state, query, result, site_url(request))
    return page(request, "browse.html", context, headers=headers)


def _refused(
    request: Request, selection: Selection, scope: PortalScope, exc: BadParameter
) -> Response:
    error = {"parameter": exc.parameter, "message": exc.message}
    context = _base_context(selection, scope, query=None)
    bad = [(k, v) for k, v in selection.params if k == exc.parameter]
    context |= {
        "error": error,
        "drop_href": selection.removing(*bad) if bad else None,
        "data": {"error": error, "query": _query_json(selection, None)},
    }
    return page(request, "browse.html", context, status=400, headers={"Cache-Control": "no-cache"})


def _base_context(
    selection: Selection, scope: PortalScope, query: SearchQuery | None
) -> dict[str, Any]:
    """What the form needs, with or without results."""
    return {
        "active": "browse",
        "selection": selection,
        "q": selection.last("q"),
        # The selects show the URL's choice; "" (the default) lets q decide (relevance or not).
        "sort": selection.last("sort"),
        "order": selection.last("order"),
        # A value the select does not offer (a typo in a shared URL) stays selectable, so the
        # form resubmits what the URL said rather than silently something else.
        "sorts": _with_given(SORTS, selection.last("sort")),
        "orders": _with_given(ORDERS, selection.last("order")),
        "ranges": _range_inputs(selection),
        "ranges_open": any(
            selection.last(f"{s}_{e}") for s, _, _ in RANGES for e in ("from", "to")
        ),
        "hidden": [
            (k, v) for k, v in selection.params if k not in _FORM_FIELDS | {"after", "start"}
        ],
        "chips": _chips(selection),
        "clear_href": selection.path,
        "scope_note": _scope_note(scope),
        "error": None,
        "drop_href": None,
        "result": None,
        "facets": [],
    }


def _context(
    selection: Selection,
    scope: PortalScope,
    state: PageState,
    query: SearchQuery,
    result: SearchResult,
    site: str,
) -> dict[str, Any]:
    context = _base_context(selection, scope, query)
    first = state.start if result.items else 0
    last = state.start + len(result.items) - 1 if result.items else 0
    params = selection_params(selection, query, scope)
    if params is not None:  # the whole selection: an explicit limit would cut the CSV
        params = [(k, v) for k, v in params if k != "limit"]
    api = _api_href("/api/v1/records", params)
    links = {
        "next": selection.page_href(result.next, last + 1) if result.next else None,
        "first": selection.first_page_href if selection.last("after") else None,
        "api": api,
        "csv": _api_href("/api/v1/records", [*(params or []), ("format", "csv")])
        if params is not None
        else None,
    }
    command = download_command(params, query, site) if params is not None else None
    facets = [_facet(name, result.facets.get(name, []), selection, state) for name in PAGE_FACETS]
    items = [models.summary_json(s) for s in result.items]
    context |= {
        "result": result,
        "items": result.items,
        "total": result.total,
        "first": first,
        "last": last,
        "links": links,
        "command": command,
        "facets": facets,
        "sorted_by": f"{dict(SORTS)[query.sort].lower()}, {_ORDER_WORDS[query.order]}",
        "data": {
            "total": result.total,
            "items": items,
            "facets": models.facets_json(result.facets),
            "next": result.next,
            "query": _query_json(selection, query),
            "links": links,
            "download_command": command,
            "range": {"first": first, "last": last},
        },
    }
    return context


def _with_given(options: tuple[tuple[str, str], ...], given: str) -> tuple[tuple[str, str], ...]:
    return options if given in dict(options) else (*options, (given, given))


def _api_href(path: str, params: list[tuple[str, str]] | None) -> str | None:
    if params is None:
        return None
    return Selection(path).href(params)


def _query_json(selection: Selection, query: SearchQuery | None) -> dict[str, Any]:
    given: dict[str, list[str]] = {}
    for name, value in selection.params:
        given.setdefault(name, []).append(value)
    out: dict[str, Any] = {"params": given}
    if query is not None:
        out |= {"sort": query.sort, "order": query.order, "limit": query.limit}
    return out


# -- facets, chips, form ---------------------------------------------------------------------


def _facet(
    name: str, values: list[FacetValue], selection: Selection, state: PageState
) -> dict[str, Any]:
    entries = [_facet_value(name, fv, selection) for fv in values]
    expanded = name in state.more
    shown = entries if expanded else entries[:FACETS_SHOWN]
    more = [("more", m) for m in state.more if m != name]
    keep = [(k, v) for k, v in selection.params if k != "more"]
    return {
        "name": name,
        "title": PAGE_FACETS[name],
        "entries": shown,
        "hidden": len(entries) - len(shown),
        "more_href": selection.href([*keep, *more, ("more", name)]),
        "fewer_href": selection.href([*keep, *more]) if expanded else None,
    }


def _facet_value(name: str, fv: FacetValue, selection: Selection) -> dict[str, Any]:
    """A facet value: its label, count, whether the URL already selects it, and the link that
    selects it (or, when selected, removes it)."""
    value = fv.value
    if name == "tilt_axis":
        wanted = selection.last("tilt_axis")
        selected = wanted in (value, _AXIS_PARAM.get(value))
        href = selection.setting(tilt_axis=None if selected else _AXIS_PARAM.get(value, value))
        label = AXES.get(value, value)
    elif name == "year":
        span = (f"{value}-01-01", f"{value}-12-31")
        selected = (selection.last("date_from"), selection.last("date_to")) == span
        chosen = (None, None) if selected else span
        href = selection.setting(date_from=chosen[0], date_to=chosen[1])
        label = value
    else:
        selected = selection.has(name, value)
        href = selection.removing((name, value)) if selected else selection.adding(name, value)
        label = subtype_words(value).lower() if name == "file_type" else value
    return {"value": value, "label": label, "count": fv.count, "href": href, "selected": selected}


def _chips(selection: Selection) -> list[dict[str, str]]:
    """One removable chip per filter in the URL; a year (both ends of one calendar year) is
    one chip."""
    chips: list[dict[str, str]] = []
    year = _year_of(selection)
    for name, value in selection.params:
        if name in _NOT_FILTERS:
            continue
        if year and name in ("date_from", "date_to"):
            if name == "date_from":
                pairs = [("date_from", v) for v in selection.values("date_from")]
                pairs += [("date_to", v) for v in selection.values("date_to")]
                chips.append({"label": "Year taken", "value": year,
                              "href": selection.removing(*pairs)})  # fmt: skip
            continue
        shown = value
        if name == "tilt_axis":
            shown = AXES.get(_AXIS_PARAM.get(value, value), value)
        elif name == "file_type":
            shown = subtype_words(value).lower()
        chips.append({"label": LABELS.get(name, name), "value": shown,
                      "href": selection.removing((name, value))})  # fmt: skip
    return chips


def _year_of(selection: Selection) -> str | None:
    """The year when the date range is exactly one calendar year (as its facet sets it)."""
    start, end = selection.last("date_from"), selection.last("date_to")
    if _ISO_DAY.fullmatch(start) and start.endswith("-01-01") and end == f"{start[:4]}-12-31":
        return start[:4]
    return None


def _range_inputs(selection: Selection) -> list[dict[str, Any]]:
    """The range fields, each holding the URL's value. A value an ``<input type=date|number>``
    cannot show (unix seconds, a typo) gets a text input, so resubmitting never drops it."""
    groups = []
    for stem, label, unit in RANGES:
        fields = []
        for end in ("from", "to"):
            name = f"{stem}_{end}"
            value = selection.last(name)
            kind = "date" if stem == "date" else "number"
            if value and not (_ISO_DAY.fullmatch(value) if kind == "date" else _is_number(value)):
                kind = "text"
            fields.append({"name": name, "end": end, "value": value, "type": kind})
        groups.append({"stem": stem, "label": label, "unit": unit, "fields": fields})
    return groups


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return value.strip().lower() not in ("nan", "inf", "-inf", "+inf", "infinity")


def _scope_note(scope: PortalScope) -> list[tuple[str, str]]:
    """What the portal's scope fixes, for a line above the results."""
    note: list[tuple[str, str]] = []
    for name in scope.filters():
        value = getattr(scope, name)
        if name == "tilt_axis":
            note.append(("tilt axis", AXES.get(str(value), str(value))))
        else:
            note.append((LABELS.get(name, name).lower(), ", ".join(map(str, value))))
    return note
