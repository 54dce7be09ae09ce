"""Read queries on one connection: search, get by id or prefix, publishers, summary,
rejections. ``catalog.py`` picks the connection (the thread's transaction, or a pooled one)."""

from __future__ import annotations

import json
import re
from typing import Any

import sqlalchemy as sa

from etdb.index import search as s
from etdb.index.fts import FullText, parse_text
from etdb.index.query import (
    AmbiguousId,
    FacetValue,
    Provenance,
    PublisherInfo,
    RecordDetail,
    RecordSummary,
    Rejection,
    SearchQuery,
    SearchResult,
    Summary,
)
from etdb.index.schema import edits, facet_counts, record_txids, records, rejections
from etdb.index.store import PendingPart, Position

MIN_PREFIX = 6
MAX_AMBIGUOUS = 10
MAX_REJECTIONS = 1000
_HEX = re.compile(r"[0-9a-f]+")
_NUMERIC_FACETS = ("taxid", "tilt_axis", "year")

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


def search(conn: sa.Connection, fts: FullText, query: SearchQuery, key: bytes) -> SearchResult:
    s.validate(query)
    tq = parse_text(query.q)
    if query.sort == "relevance" and tq is None:
        raise ValueError("sort: 'relevance' needs a search text q with at least one word")
    after = s.decode_after(key, query, query.after) if query.after is not None else None
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
        rows = conn.execute(select.where(*cond).order_by(*order).limit(n + 1)).all()
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


def _facet_order(name: str, fv: FacetValue) -> tuple[int, Any]:
    return (-fv.count, int(fv.value) if name in _NUMERIC_FACETS else fv.value)


def _counted_facets(
    conn: sa.Connection, names: tuple[str, ...]
) -> tuple[int, dict[str, list[FacetValue]]]:
    rows = conn.execute(
        sa.select(facet_counts.c.facet, facet_counts.c.value, facet_counts.c.n).where(
            facet_counts.c.facet.in_(["_records", *names]), facet_counts.c.n > 0
        )
    ).all()
    total = 0
    found: dict[str, list[FacetValue]] = {n: [] for n in names}
    for facet, value, count in rows:
        if facet == "_records":
            total = count
        else:
            found[facet].append(FacetValue(value, count))
    return total, {
        name: sorted(vals, key=lambda fv, name=name: _facet_order(name, fv))[: s.FACET_TOP]
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
        name: sorted(vals, key=lambda fv, name=name: _facet_order(name, fv))
        for name, vals in found.items()
    }


# -- get --------------------------------------------------------------------------------------


def normalise_id(id_or_prefix: str) -> str:
    if not isinstance(id_or_prefix, str):
        raise ValueError("id: must be a string of hex digits")
    text = id_or_prefix.strip().lower().removeprefix("0x")
    if not _HEX.fullmatch(text):
        raise ValueError(f"id: {id_or_prefix[:80]!r} is not a txid or txid prefix (hex digits)")
    if len(text) < MIN_PREFIX:
        raise ValueError(f"id: a txid prefix needs at least {MIN_PREFIX} hex digits")
    return text


def resolve(conn: sa.Connection, id_or_prefix: str) -> str | None:
    """The record id for a full txid (record, part or edit) or a unique prefix of one."""
    text = normalise_id(id_or_prefix)
    for stmt in (
        sa.select(records.c.id).where(records.c.id == text),
        sa.select(records.c.id)
        .join(record_txids, record_txids.c.record_seq == records.c.seq)
        .where(record_txids.c.txid == text),
        sa.select(edits.c.record_id).where(edits.c.txid == text),
    ):
        found = conn.execute(stmt).scalar_one_or_none()
        if found is not None:
            return found
    # Prefix: a B-tree range (index-friendly on both backends, txids are lowercase hex).
    hi = text + "g"
    stmts = (
        sa.select(records.c.id).where(records.c.id >= text, records.c.id < hi),
        sa.select(records.c.id)
        .join(record_txids, record_txids.c.record_seq == records.c.seq)
        .where(record_txids.c.txid >= text, record_txids.c.txid < hi),
        sa.select(edits.c.record_id).where(edits.c.txid >= text, edits.c.txid < hi),
    )
    matches: set[str] = set()
    for stmt in stmts:
        matches.update(conn.execute(stmt.limit(MAX_AMBIGUOUS + 1)).scalars())
    if len(matches) > 1:
        raise AmbiguousId(text, sorted(matches)[:MAX_AMBIGUOUS])
    return next(iter(matches), None)


def get(conn: sa.Connection, id_or_prefix: str) -> RecordDetail | None:
    record_id = resolve(conn, id_or_prefix)
    if record_id is None:
        return None
    row = conn.execute(
        sa.select(
            *SUMMARY_COLUMNS,
            records.c.original,
            records.c.artifact,
            records.c.txids,
            records.c.height,
            records.c.block_hash,
            records.c.block_time,
            records.c.signature_valid,
            records.c.deactivated_by,
        ).where(records.c.id == record_id)
    ).one()
    history = conn.execute(
        sa.select(edits.c.txid, edits.c.height, edits.c.time, edits.c.timestamp, edits.c.patch)
        .where(edits.c.record_id == record_id)
        .order_by(edits.c.height, edits.c.idx)
    ).all()
    original = json.loads(row.original)
    provenance = Provenance(
        txids=tuple(json.loads(row.txids)),
        block_height=row.height,
        block_hash=row.block_hash,
        block_time=row.block_time,
        signature_valid=bool(row.signature_valid),
        edits=tuple(
            {
                "txid": e.txid,
                "height": e.height,
                "time": e.time,
                "timestamp": e.timestamp,
                "patch": json.loads(e.patch),
            }
            for e in history
        ),
        deactivated=bool(row.deactivated),
        deactivated_by=row.deactivated_by,
    )
    current = json.loads(row.artifact) if row.artifact is not None else original
    return RecordDetail(summary_of(row), current, original, provenance)


# -- catalog-wide -----------------------------------------------------------------------------


def publishers(conn: sa.Connection) -> list[PublisherInfo]:
    """Publishers of active records, most records first (ties: address)."""
    counts = conn.execute(
        sa.select(facet_counts.c.value, facet_counts.c.n).where(
            facet_counts.c.facet == "publisher", facet_counts.c.n > 0
        )
    ).all()
    out = []
    for address, n in sorted(counts, key=lambda r: (-r.n, r.value)):
        # First/last via the (publisher, published) index: two short range scans.
        base = sa.select(records.c.published).where(
            records.c.publisher == address,
            records.c.deactivated == sa.false(),
            records.c.published.is_not(None),
        )
        first = conn.execute(base.order_by(records.c.published).limit(1)).scalar()
        last = conn.execute(base.order_by(records.c.published.desc()).limit(1)).scalar()
        out.append(PublisherInfo(address, n, first, last))
    return out


def summary(conn: sa.Connection) -> Summary:
    """Active records: count, per species, per publisher, bytes (etdb-react's summary)."""
    rows = conn.execute(
        sa.select(facet_counts.c.facet, facet_counts.c.value, facet_counts.c.n).where(
            facet_counts.c.facet.in_(["_records", "_bytes", "species", "publisher"]),
            facet_counts.c.n > 0,
        )
    ).all()
    by: dict[str, dict[str, int]] = {"_records": {}, "_bytes": {}, "species": {}, "publisher": {}}
    for facet, value, n in sorted(rows, key=lambda r: (-r.n, r.value)):
        by[facet][value] = n
    return Summary(
        records=by["_records"].get("", 0),
        species=by["species"],
        publishers=by["publisher"],
        total_bytes=by["_bytes"].get("", 0),
    )


def rejection_page(conn: sa.Connection, limit: int, after: str | None) -> list[Rejection]:
    """In ledger order. ``after`` is ``"<height>:<index>"`` of the last rejection seen (its
    ``height`` and ``index``); a page never ends between two rejections of one position."""
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_REJECTIONS:
        raise ValueError(f"limit: must be an integer between 1 and {MAX_REJECTIONS}")
    order = (rejections.c.height, rejections.c.idx, rejections.c.seq)
    stmt = sa.select(rejections).order_by(*order)
    if after is not None:
        try:
            height, idx = (int(p) for p in after.split(":"))
        except (ValueError, AttributeError):
            raise ValueError("after: expected '<height>:<index>' of a rejection") from None
        pos = sa.tuple_(rejections.c.height, rejections.c.idx)
        stmt = stmt.where(pos > sa.tuple_(height, idx))
    rows = list(conn.execute(stmt.limit(limit)))
    if len(rows) == limit:
        last = rows[-1]
        rows += conn.execute(
            sa.select(rejections)
            .where(
                rejections.c.height == last.height,
                rejections.c.idx == last.idx,
                rejections.c.seq > last.seq,
            )
            .order_by(*order)
        ).all()
    return [
        Rejection(r.txid, r.height, r.idx, r.time, r.kind, r.reason, r.payload_excerpt)
        for r in rows
    ]


def cursor_height(value: str | None) -> int:
    if value is None:
        return -1
    try:
        height = json.loads(value)["height"]
    except (ValueError, TypeError, KeyError):
        return -1
    return height if isinstance(height, int) and not isinstance(height, bool) else -1


def part_of(row: Any) -> PendingPart:
    return PendingPart(
        key=row.key,
        txid=row.txid,
        part=row.part,
        max_index=row.max_index,
        address=row.address,
        text=json.loads(row.text),
        position=Position(row.height, row.idx, row.block_hash, row.time),
    )
