"""Search on one connection: pages (SQL, or among memory-index candidates) and facets.
``catalog.py`` picks the connection (the thread's transaction, or a pooled one); other reads
are in ``lookups.py``."""

from __future__ import annotations

import functools
from typing import Any

import sqlalchemy as sa

from etdb.index import search as s
from etdb.index.fts import FullText, parse_text
from etdb.index.memindex import NUMERIC_FACETS, Found, MemoryIndex
from etdb.index.query import (
    FacetValue,
    RecordSummary,
    SearchQuery,
    SearchResult,
)
from etdb.index.schema import (
    facet_counts,
    records,
)

SUMMARY_COLUMNS = (
    records.c.id,
    records.c.publisher,
    records.c.title,
    records.c.species,
    records.c.strain,
    records.c.microscopist,
    records.c.lab,
    records.c.institution,
    records.c.scope,
    records.c.date,
    records.c.published,
    records.c.sid,
    records.c.location,
    records.c.thumbnail,
    records.c.file_types,
    records.c.total_bytes,
    records.c.deactivated,
)


def summary_of(row: Any) -> RecordSummary:
    return RecordSummary(
        id=row.id,
        publisher=row.publisher,
        title=row.title,
        species=row.species,
        strain=row.strain,
        microscopist=row.microscopist,
        lab=row.lab,
        institution=row.institution,
        scope=row.scope,
        date=row.date,
        published=row.published,
        sid=row.sid,
        location=row.location,
        thumbnail=row.thumbnail,
        file_types=tuple(row.file_types.split(",")) if row.file_types else (),
        total_bytes=row.total_bytes,
        deactivated=bool(row.deactivated),
    )


# -- search -----------------------------------------------------------------------------------


def search(
    conn: sa.Connection,
    fts: FullText,
    query: SearchQuery,
    key: bytes,
    mem: MemoryIndex | None = None,
) -> SearchResult:
    """Unfiltered: an index-ordered page and the kept facet counts. Filtered: the memory
    index when given (hits, facets, page candidates), else SQL alone."""
    s.validate(query)
    tq = parse_text(query.q)
    if query.sort == "relevance" and tq is None:
        raise ValueError("sort: 'relevance' needs a search text q with at least one word")
    after = s.decode_after(key, query, query.after) if query.after is not None else None
    if mem is not None and not s.unfiltered(query, tq):
        found = mem.search(conn, query, tq, after)
        if found is not None:
            items, last = _page_of(conn, query, found, after)
            token = s.encode_after(key, query, last) if last is not None else None
            return SearchResult(items=items, total=found.total, facets=found.facets, next=token)
    items, last = _page(conn, fts, query, tq, after)
    token = s.encode_after(key, query, last) if last is not None else None
    facets: dict[str, list[FacetValue]] = {}
    if s.unfiltered(query, tq):
        total, facets = _counted_facets(conn, query.facets)
    elif query.facets:
        total, facets = _live_facets(conn, s.filters(query, fts, tq), query.facets)
    else:
        where = s.filters(query, fts, tq)
        count = sa.select(sa.func.count()).select_from(records).where(*where)
        total = conn.execute(count).scalar_one()
    return SearchResult(items=items, total=total, facets=facets, next=token)


def _page(
    conn: sa.Connection,
    fts: FullText,
    query: SearchQuery,
    tq: Any,
    after: s.Keyset | None,
) -> tuple[list[RecordSummary], s.Keyset | None]:
    """One page; NULL sort values come after all others in either direction."""
    n, desc = query.limit, query.order == "desc"
    if query.sort == "relevance":
        src, match, key = fts.ranked(tq)
        where = [*s.filters(query, fts, None), match]
        nullable = False
    else:
        src, key = records, s.SORTS[query.sort]
        where = s.filters(query, fts, tq)
        nullable = True
    ident = records.c.id
    select = sa.select(*SUMMARY_COLUMNS, key.label("sort_value")).select_from(src)
    rows: list[Any] = []
    if after is None or not after.nulls:
        cond = [*where, key.is_not(None)] if nullable else list(where)
        if after is not None:
            pair, last = sa.tuple_(key, ident), sa.tuple_(after.value, after.id)
            cond.append(pair < last if desc else pair > last)
        order = (key.desc(), ident.desc()) if desc else (key.asc(), ident.asc())
        rows = list(conn.execute(select.where(*cond).order_by(*order).limit(n + 1)).all())
    if nullable and len(rows) <= n:
        cond = [*where, key.is_(None)]
        if after is not None and after.nulls:
            cond.append(ident < after.id if desc else ident > after.id)
        order_id = ident.desc() if desc else ident.asc()
        more = select.where(*cond).order_by(order_id).limit(n + 1 - len(rows))
        rows += conn.execute(more).all()
    if len(rows) <= n:
        return [summary_of(r) for r in rows], None
    last = rows[n - 1]
    keyset = s.Keyset(last.sort_value, last.id, last.sort_value is None)
    return [summary_of(r) for r in rows[:n]], keyset


def _page_of(
    conn: sa.Connection, query: SearchQuery, found: Found, after: s.Keyset | None
) -> tuple[list[RecordSummary], s.Keyset | None]:
    """The page among candidate rows (memindex.py), ordered exactly as ``_page`` orders."""
    n, desc = query.limit, query.order == "desc"
    scores = found.scores
    key = records.c.seq if scores is not None else s.SORTS[query.sort]
    rows = conn.execute(
        sa.select(*SUMMARY_COLUMNS, key.label("sort_value")).where(
            records.c.seq.in_(found.candidates.tolist())
        )
    ).all()
    keyed = [(scores[r.sort_value] if scores is not None else r.sort_value, r.id, r) for r in rows]
    valued = [k for k in keyed if k[0] is not None]
    nulls = [k for k in keyed if k[0] is None]
    if after is not None and after.nulls:
        valued = []
        nulls = [k for k in nulls if (k[1] < after.id if desc else k[1] > after.id)]
    elif after is not None:
        last = (after.value, after.id)
        valued = [k for k in valued if (k[:2] < last if desc else k[:2] > last)]
    valued.sort(key=lambda k: k[:2], reverse=desc)
    nulls.sort(key=lambda k: k[1], reverse=desc)
    page = (valued + nulls)[: n + 1]
    if len(page) <= n:
        return [summary_of(k[2]) for k in page], None
    value, last_id, _ = page[n - 1]
    return [summary_of(k[2]) for k in page[:n]], s.Keyset(value, last_id, value is None)


def _facet_order(name: str, fv: FacetValue) -> tuple[int, Any]:
    return (-fv.count, int(fv.value) if name in NUMERIC_FACETS else fv.value)


def _counted_facets(
    conn: sa.Connection, names: tuple[str, ...]
) -> tuple[int, dict[str, list[FacetValue]]]:
    fc = facet_counts.c
    # The database cuts each facet to its top counts (ties at the edge included: RANK),
    # Python orders them exactly (numeric facets by number): ~50 rows a facet, not thousands.
    rank = sa.func.rank().over(partition_by=fc.facet, order_by=fc.n.desc()).label("r")
    ranked = (
        sa.select(fc.facet, fc.value, fc.n, rank)
        .where(fc.facet.in_(["_records", *names]), fc.n > 0)
        .subquery()
    )
    rows = conn.execute(
        sa.select(ranked.c.facet, ranked.c.value, ranked.c.n).where(ranked.c.r <= s.FACET_TOP)
    ).all()
    total = 0
    found: dict[str, list[FacetValue]] = {n: [] for n in names}
    for facet, value, count in rows:
        if facet == "_records":
            total = count
        else:
            found[facet].append(FacetValue(value, count))
    return total, {
        name: sorted(vals, key=functools.partial(_facet_order, name))[: s.FACET_TOP]
        for name, vals in found.items()
    }


def _live_facets(
    conn: sa.Connection, where: list[Any], names: tuple[str, ...]
) -> tuple[int, dict[str, list[FacetValue]]]:
    names = tuple(dict.fromkeys(names))
    total = 0
    found: dict[str, list[FacetValue]] = {n: [] for n in names}
    for facet, value, count in conn.execute(s.facet_statement(where, names)):
        if facet == "":
            total = count
        else:
            found[facet].append(FacetValue(value, count))
    return total, {
        name: sorted(vals, key=functools.partial(_facet_order, name))
        for name, vals in found.items()
    }
