"""Reads besides search: a record by txid or prefix, publishers, summary, rejections, parts.
``catalog.py`` picks the connection (the thread's transaction, or a pooled one)."""

from __future__ import annotations

import json
import re
from typing import Any

import sqlalchemy as sa

from etdb.index.flatten import bytes_total
from etdb.index.query import (
    AmbiguousId,
    Provenance,
    PublisherInfo,
    RecordDetail,
    Rejection,
    Summary,
)
from etdb.index.reads import SUMMARY_COLUMNS, summary_of
from etdb.index.schema import (
    documents,
    edits,
    facet_counts,
    record_txids,
    records,
    rejections,
)
from etdb.index.store import IndexedCopy, PendingPart, Position

MIN_PREFIX = 6
MAX_AMBIGUOUS = 10
MAX_REJECTIONS = 1000
_HEX = re.compile(r"[0-9a-f]+")


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
            documents.c.original,
            documents.c.artifact,
            records.c.txids,
            records.c.height,
            records.c.block_hash,
            records.c.block_time,
            records.c.signature_valid,
            records.c.deactivated_by,
            records.c.metadata_signed,
            records.c.superseded_by,
        )
        .join_from(records, documents, documents.c.seq == records.c.seq)
        .where(records.c.id == record_id)
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
        metadata_signed=bool(row.metadata_signed),
        superseded_by=row.superseded_by,
    )
    current = json.loads(row.artifact) if row.artifact is not None else original
    return RecordDetail(summary_of(row), current, original, provenance)


def find_identity(conn: sa.Connection, identity: str) -> IndexedCopy | None:
    """The record holding ``identity``: by its publish (superseded copies step aside), else
    by a state one of its edits signed."""
    row = conn.execute(
        sa.select(records.c.id, records.c.metadata_signed, records.c.deactivated).where(
            records.c.identity == identity, records.c.superseded_by.is_(None)
        )
    ).first()
    if row is not None:
        return IndexedCopy(row.id, bool(row.metadata_signed), bool(row.deactivated), False)
    row = conn.execute(
        sa.select(records.c.id, records.c.metadata_signed, records.c.deactivated)
        .join(edits, edits.c.record_id == records.c.id)
        .where(edits.c.identity == identity)
        .limit(1)
    ).first()
    if row is not None:
        return IndexedCopy(row.id, bool(row.metadata_signed), bool(row.deactivated), True)
    return None


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
        total_bytes=bytes_total(by["_bytes"]),
    )


def rejection_count(conn: sa.Connection) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(rejections)).scalar_one())


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
