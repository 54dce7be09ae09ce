"""Home, featured tomograms, challenges, about, contact, terms and apps: the portal's pages.

The old ETDB-Caltech site's addresses keep working: ``/terms``, ``/thirdpartyapps``, and
``/featured/<section>`` by its old name (a 301 to the category's page).

Every catalog question goes through the portal scope (``scope_of(request).apply``), so a lab's
portal counts and features only its own records. What these pages show changes only when the
indexer commits, so the two answers that cost more than one query (the totals of a scoped
portal, and the examples of all 18 featured categories) are kept per indexed height.

The data files (``featured.toml``, ``site.toml``) are read by :func:`setup` when the app is
built: a mistake stops ``etdb serve`` at once with the file and key named, not on a visit.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from etdb.api.context import AppContext, run_search
from etdb.api.models import summary_json
from etdb.index.query import MAX_LIMIT, AmbiguousId, RecordSummary, SearchQuery
from etdb.web import scope_of
from etdb.web.featured import Category, featured_path, load_featured
from etdb.web.render import page, twin
from etdb.web.scope import PortalScope
from etdb.web.site import Site, load_site, site_path

__all__ = ["Showcase", "router", "setup"]

router = APIRouter()

NEWEST = 4  # cards on the home page
EXAMPLES = 8  # examples on a category page (pinned first)
PREVIEW = 6  # featured categories previewed on the home page
#: A scoped portal adds its totals up over its records; beyond this many it says "at least".
SCAN_LIMIT = 200_000
PAPER = {
    "authors": "Ding HJ, Oikonomou CM, Jensen GJ",
    "title": "ETDB-Caltech: a blockchain-based distributed public database for electron tomography",
    "journal": "PLoS ONE",
    "volume": "14(4)",
    "pages": "e0215531",
    "year": 2019,
    "doi": "10.1371/journal.pone.0215531",
    "url": "https://doi.org/10.1371/journal.pone.0215531",
}
#: The programs that read this portal's data (the old site's "third-party apps" page).
APPS = (
    {"name": "etdb command line",
     "what": "etdb search, etdb download (every block verified, resumable) and etdb mirror "
             "(keep a lab's datasets and serve them again); part of this software."},
    {"name": "etdb Python client",
     "what": "etdb.Client: search, records, and files read or downloaded with every block "
             "checked against its CID."},
    {"name": "ETDB-downloads",
     "what": "The original ETDB-Caltech command-line downloader: its search (/api/v2) and "
             "IPFS (/api/v0) calls are answered here, so it works against this portal."},
    {"name": "Any IPFS client",
     "what": "The gateway at /ipfs/ serves every dataset folder by its CID: kubo (ipfs get), "
             "a browser, curl, or a trustless client verifying blocks itself."},
)  # fmt: skip
_HEX_ID = re.compile(r"[0-9a-fA-F]{6,64}")


@dataclass(frozen=True)
class Showcase:
    """A featured category with the examples this portal has for it."""

    category: Category
    examples: tuple[RecordSummary, ...]
    total: int  # datasets the category's query matches in this portal

    def to_json(self) -> dict[str, Any]:
        return self.category.to_json() | {
            "total": self.total,
            "examples": [summary_json(s) for s in self.examples],
        }


def setup(app: FastAPI) -> None:
    """Read and check the data files once, when the app is built (``etdb.web.install``)."""
    ctx: AppContext = app.state.etdb
    ctx.extra["featured"] = load_featured(featured_path(ctx.settings))
    ctx.extra["site"] = load_site(site_path(ctx.settings))


# -- pages ----------------------------------------------------------------------------------


@twin(router, "/")
def home(request: Request) -> Response:
    ctx, scope = _context(request)
    newest = run_search(ctx, scope.apply(SearchQuery(sort="published", limit=NEWEST))).items
    showcases = _showcases(ctx, scope)
    preview = [s for s in showcases if s.examples][:PREVIEW]
    site = _site(ctx)
    data = {
        "totals": _totals(ctx, scope),
        "newest": [summary_json(s) for s in newest],
        "featured": [
            {
                "slug": s.category.slug,
                "title": s.category.title,
                "url": s.category.href,
                "total": s.total,
                "example": summary_json(s.examples[0]),
            }
            for s in preview
        ],
        "categories": len(showcases),
        "challenges": [
            {"slug": c.slug, "title": c.title, "url": f"/challenges#{c.slug}"}
            for c in site.challenges
        ],
    }
    context = {
        "data": data,
        "newest": newest,
        "preview": preview,
        "site": site,
        "categories": [s.category for s in showcases],
    }
    return page(request, "home.html", context)


@twin(router, "/featured")
def featured(request: Request) -> Response:
    ctx, scope = _context(request)
    showcases = _showcases(ctx, scope)
    data = {"categories": [s.to_json() for s in showcases]}
    return page(
        request, "featured.html", {"data": data, "showcases": showcases, "active": "featured"}
    )


@twin(router, "/featured/{slug}")
def featured_category(request: Request, slug: str) -> Response:
    ctx, scope = _context(request)
    slug = slug.removesuffix(".json")  # "/featured/{slug}" also matches the JSON twin's path
    showcases = _showcases(ctx, scope)
    found = [s for s in showcases if s.category.slug == slug]
    if not found:
        moved = _old_section(slug, showcases)
        if moved is None:
            raise HTTPException(404, f"no featured category {slug!r}")
        suffix = ".json" if request.url.path.endswith(".json") else ""
        return RedirectResponse(f"/featured/{moved}{suffix}", status_code=301)
    showcase = found[0]
    return page(
        request,
        "featured_category.html",
        {"data": showcase.to_json(), "showcase": showcase, "active": "featured"},
    )


def _old_section(slug: str, showcases: list[Showcase]) -> str | None:
    """The category an old ETDB-Caltech link names (``/featured/:id``: a title such as
    ``Gas Vesicles`` or ``gas_vesicles``, or its first word such as ``contractile``)."""
    words = re.sub(r"[^a-z0-9]+", "-", slug.lower()).strip("-")
    if not words:
        return None
    found = [s.category.slug for s in showcases
             if s.category.slug == words or s.category.slug.startswith(words + "-")]  # fmt: skip
    return found[0] if len(found) == 1 else None


@twin(router, "/terms")
def terms(request: Request) -> Response:
    return page(request, "terms.html", {"data": {"terms": "/terms", "paper": PAPER}})


@twin(router, "/thirdpartyapps")
def third_party_apps(request: Request) -> Response:
    return page(request, "apps.html", {"data": {"apps": list(APPS)}})


@twin(router, "/challenges")
def challenges(request: Request) -> Response:
    ctx, scope = _context(request)
    items = []
    for c in _site(ctx).challenges:
        query = scope.apply(SearchQuery(file_type=c.file_types, limit=1))
        items.append(
            {
                "slug": c.slug,
                "title": c.title,
                "summary": c.summary,
                "needs": c.needs,
                "file_types": list(c.file_types),
                "browse_url": c.browse_href,
                "datasets": run_search(ctx, query).total,
            }
        )
    data = {"challenges": items, "paper": PAPER}
    return page(request, "challenges.html", {"data": data, "active": "challenges"})


@twin(router, "/about")
def about(request: Request) -> Response:
    ctx, scope = _context(request)
    data = {
        "paper": PAPER,
        "totals": _totals(ctx, scope),
        "scope": _scope_json(scope),
        "verify_record": "etdb record verify <record.json>",
    }
    return page(request, "about.html", {"data": data, "active": "about"})


@twin(router, "/contact")
def contact(request: Request) -> Response:
    ctx, _ = _context(request)
    contact = _site(ctx).contact
    data = {
        "contact": {
            "name": contact.name,
            "email": contact.email or None,
            "url": contact.url or None,
            "note": contact.note or None,
        }
    }
    return page(request, "contact.html", {"data": data, "contact": contact, "active": "contact"})


# -- what the pages compute -----------------------------------------------------------------


def _context(request: Request) -> tuple[AppContext, PortalScope]:
    return request.app.state.etdb, scope_of(request)


def _site(ctx: AppContext) -> Site:
    site = ctx.extra.get("site")
    if not isinstance(site, Site):
        site = ctx.extra["site"] = load_site(site_path(ctx.settings))
    return site


def _per_height(ctx: AppContext, name: str, build: Any) -> Any:
    """``build()``, reused until the indexer commits (the portal's answers change only then)."""
    height = ctx.indexed_height()
    kept = ctx.extra.get(name)
    if kept is not None and kept[0] == height:
        return kept[1]
    value = build()
    ctx.extra[name] = (height, value)  # one tuple: other threads see the old pair or the new
    return value


def _totals(ctx: AppContext, scope: PortalScope) -> dict[str, Any]:
    if scope.is_everything:
        s = ctx.catalog.summary()  # kept up to date by every catalog write: one small query
        return _totals_json(s.records, len(s.species), len(s.publishers), s.total_bytes, True)
    return _per_height(ctx, "pages.totals", lambda: _scan_totals(ctx, scope))


def _scan_totals(ctx: AppContext, scope: PortalScope) -> dict[str, Any]:
    """A scoped portal's totals: its records added up, page by page (kept per height)."""
    query = scope.apply(SearchQuery(sort="published", limit=MAX_LIMIT))
    species: set[str] = set()
    publishers: set[str] = set()
    size = seen = total = 0
    while True:
        result = run_search(ctx, query)
        total = result.total
        for item in result.items:
            species.update([item.species] if item.species else [])
            publishers.add(item.publisher)
            size += item.total_bytes
        seen += len(result.items)
        if result.next is None or seen >= SCAN_LIMIT:
            break
        query = dataclasses.replace(query, after=result.next)
    return _totals_json(total, len(species), len(publishers), size, seen >= total)


def _totals_json(records: int, species: int, publishers: int, size: int, exact: bool) -> dict:
    return {
        "datasets": records,
        "species": species,
        "publishers": publishers,
        "total_bytes": size,
        "terabytes": round(size / 1e12, 3),
        "exact": exact,
    }


def _showcases(ctx: AppContext, scope: PortalScope) -> list[Showcase]:
    categories: tuple[Category, ...] = ctx.extra.get("featured") or load_featured(
        featured_path(ctx.settings)
    )
    return _per_height(
        ctx, "pages.featured", lambda: [_showcase(ctx, scope, c) for c in categories]
    )


def _showcase(ctx: AppContext, scope: PortalScope, category: Category) -> Showcase:
    """Pinned records first (those this portal shows), then the best matches of the query."""
    examples: list[RecordSummary] = []
    for wanted in category.pinned:
        found = _pinned(ctx, scope, wanted)
        if found is not None and found.id not in {e.id for e in examples}:
            examples.append(found)
    result = run_search(ctx, scope.apply(category.search_query(EXAMPLES + len(examples))))
    pinned = {e.id for e in examples}
    examples += [s for s in result.items if s.id not in pinned][: max(EXAMPLES - len(pinned), 0)]
    extra = len(pinned - {s.id for s in result.items})  # pinned ones the query does not find
    return Showcase(category, tuple(examples), result.total + extra)


def _pinned(ctx: AppContext, scope: PortalScope, wanted: str) -> RecordSummary | None:
    """A pinned record by id (txid or unique prefix) or by sid; None if not in this portal."""
    if _HEX_ID.fullmatch(wanted):
        try:
            detail = ctx.catalog.get(wanted.lower())
        except AmbiguousId:
            detail = None
        if detail is not None:
            ok = scope.allows(detail.artifact, detail.summary.publisher)
            return detail.summary if ok and not detail.summary.deactivated else None
    hits = run_search(ctx, scope.apply(SearchQuery(q=wanted, limit=MAX_LIMIT)))
    return next((s for s in hits.items if s.sid == wanted), None)


def _scope_json(scope: PortalScope) -> dict[str, Any]:
    return {
        "everything": scope.is_everything,
        "publishers": list(scope.publisher),
        "species": list(scope.species),
        "labs": list(scope.lab),
    }
