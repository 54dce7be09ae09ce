"""Reads besides search: a record by txid or prefix, publishers, summary, rejections, parts,
and what changed since a catalog version. ``catalog.py`` picks the connection (the thread's
transaction, or a pooled one).

Txid prefixes are B-tree ranges over ``records.id`` (``id >= 'abcd' AND id < 'abcdg'``; txids
are lowercase hex, byte-ordered on both backends: schema.py), so a prefix lookup reads the
records sharing the prefix and never scans the catalog.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from etdb.index.flatten import bytes_total
from etdb.index.memindex import MemoryIndex
from etdb.index.query import (
    AmbiguousId,
    CatalogVersion,
    Changes,
    CurrentArtifact,
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
#: The shortest prefix ``first_match`` takes (oipd took any; 4 hex digits are 65,536 values).
FIRST_MATCH_MIN = 4
TXID_HEX = 64
MAX_AMBIGUOUS = 10
MAX_REJECTIONS = 1000
_HEX = re.compile(r"[0-9a-f]+")
_IN_CHUNK = 500  # ids per IN (...) list: well under both backends' bound-parameter limits


# -- get --------------------------------------------------------------------------------------


def normalise_id(id_or_prefix: str, minimum: int = MIN_PREFIX) -> str:
    if not isinstance(id_or_prefix, str):
        raise ValueError("id: must be a string of hex digits")
    text = id_or_prefix.strip().lower().removeprefix("0x")
    if not _HEX.fullmatch(text) or len(text) > TXID_HEX:
        raise ValueError(f"id: {id_or_prefix[:80]!r} is not a txid or txid prefix (hex digits)")
    if len(text) < minimum:
        raise ValueError(f"id: a txid prefix needs at least {minimum} hex digits")
    return text


def _exact(conn: sa.Connection, txid: str) -> str | None:
    """The record a full txid belongs to: its own, one of its parts', or one of its edits'."""
    for stmt in (
        sa.select(records.c.id).where(records.c.id == txid),
        sa.select(records.c.id)
        .join(record_txids, record_txids.c.record_seq == records.c.seq)
        .where(record_txids.c.txid == txid),
        sa.select(edits.c.record_id).where(edits.c.txid == txid),
    ):
        found: str | None = conn.execute(stmt).scalar_one_or_none()
        if found is not None:
            return found
    return None


def resolve(conn: sa.Connection, id_or_prefix: str) -> str | None:
    """The record id for a full txid (record, part or edit) or a unique prefix of one."""
    text = normalise_id(id_or_prefix)
    found = _exact(conn, text)
    if found is not None:
        return found
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


def first_match(conn: sa.Connection, id_or_prefix: str) -> str | None:
    """The record a txid or a prefix of at least ``FIRST_MATCH_MIN`` hex digits names, as
    oipd's GetById answered: of the records whose id starts with the prefix, the oldest by
    ledger position (height, index in the block), an active one before any deactivated one
    (oipd only looked at active records; a deactivated match is returned only when there is
    no active one, so that the caller can say so). A full txid is looked up exactly (also a
    part's or an edit's).

    Bounded: one range over the id index, then a sort of the records in that range. No
    index serves (deactivated, height, idx), so neither backend can choose to walk the
    catalog in height order instead; the work grows with the records sharing the prefix
    (each one a ledger transaction someone paid for), never with the catalog."""
    text = normalise_id(id_or_prefix, FIRST_MATCH_MIN)
    if len(text) == TXID_HEX:
        return _exact(conn, text)
    return conn.execute(
        sa.select(records.c.id)
        .where(records.c.id >= text, records.c.id < text + "g")
        .order_by(records.c.deactivated, records.c.height, records.c.idx)
        .limit(1)
    ).scalar_one_or_none()


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


# -- what changed -----------------------------------------------------------------------------


def changes(conn: sa.Connection, since: CatalogVersion | None, limit: int) -> Changes:
    """The catalog's version, and the records (id, rev) written after ``since``: for readers
    that keep per-record copies (the /api/v2 list). ``ids`` is None when everything must be
    read again: no ``since``, another epoch (rows were deleted), or more than ``limit``
    changed rows (cheaper to reload than to list).

    The version is read first: on PostgreSQL (READ COMMITTED) the second statement may see a
    newer commit, never an older one, so the list covers at least the changes up to
    ``version`` (at worst a few from the next, which the next call lists again)."""
    version = MemoryIndex.version(conn)
    if since is None or since[1] != version[1]:
        return Changes(version, None)
    if version[0] <= since[0]:
        return Changes(version, ())
    rows = conn.execute(
        sa.select(records.c.id, records.c.rev).where(records.c.rev > since[0]).limit(limit + 1)
    ).all()
    if len(rows) > limit:
        return Changes(version, None)
    return Changes(version, tuple((r.id, r.rev) for r in rows))


def current_artifacts(conn: sa.Connection, ids: Sequence[str]) -> list[CurrentArtifact]:
    """The current artifact of each record in ``ids`` that exists (any order), as stored."""
    out: list[CurrentArtifact] = []
    for i in range(0, len(ids), _IN_CHUNK):
        chunk = list(ids[i : i + _IN_CHUNK])
        rows = conn.execute(
            sa.select(
                records.c.id,
                records.c.rev,
                records.c.publisher,
                records.c.deactivated,
                sa.func.coalesce(documents.c.artifact, documents.c.original).label("artifact"),
            )
            .join_from(records, documents, documents.c.seq == records.c.seq)
            .where(records.c.id.in_(chunk))
        ).all()
        out += [
            CurrentArtifact(r.id, r.rev, r.publisher, bool(r.deactivated), r.artifact) for r in rows
        ]
    return out


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
        where = (
            records.c.publisher == address,
            records.c.deactivated == sa.false(),
            records.c.published.is_not(None),
        )
        first = conn.execute(
            sa.select(records.c.published, records.c.id, records.c.height)
            .where(*where)
            .order_by(records.c.published, records.c.id)
            .limit(1)
        ).first()
        last = conn.execute(
            sa.select(records.c.published)
            .where(*where)
            .order_by(records.c.published.desc())
            .limit(1)
        ).scalar()
        found = {"first_txid": first.id, "first_height": first.height} if first else {}
        out.append(PublisherInfo(address, n, first.published if first else None, last, **found))
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
