"""The write side, inside one transaction: buffered record inserts, edits, deactivations,
rollback, and the incremental facet counts.

Publishes and rejections are buffered and written with one multi-row statement per table
when the transaction commits or before anything reads (``flush``): a ledger block of a
thousand records is a handful of statements instead of thousands. Everything else flushes
first and then writes directly, so statements always run in call order.
"""

from __future__ import annotations

import json
import secrets
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from etdb.index.flatten import COLUMNS, Flat, byte_counts, clean, flatten
from etdb.index.fts import FullText
from etdb.index.query import Rejection
from etdb.index.schema import (
    documents,
    edits,
    facet_counts,
    meta,
    pending_parts,
    record_file_types,
    record_txids,
    records,
    rejections,
    set_meta,
)
from etdb.index.store import AppliedEdit, Deactivation, PublishedRecord
from etdb.record.metasign import check_meta, record_identity

_CHUNK = 500  # ids per IN list when a rollback touches many records


def dumps(obj: Any) -> str:
    # ensure_ascii: a lone surrogate from a hostile record's "\\ud800" stays an escape
    # instead of failing to encode in the driver.
    return json.dumps(obj, separators=(",", ":"))


def counts_of(flat: Flat, publisher: str) -> Iterable[tuple[tuple[str, str], int]]:
    """What one active record adds to ``facet_counts``."""
    yield ("_records", ""), 1
    for value, n in byte_counts(flat.columns["total_bytes"]):  # in parts: never overflows
        yield ("_bytes", value), n
    yield ("publisher", publisher), 1
    for pair in flat.facet_values():
        yield pair, 1


class Writer:
    """Writes of one transaction on ``conn``."""

    def __init__(self, conn: sa.Connection, fts: FullText) -> None:
        self.conn = conn
        self.fts = fts
        self._records: list[tuple[PublishedRecord, Flat]] = []
        self._rejections: list[dict[str, Any]] = []
        self._counts: Counter[tuple[str, str]] = Counter()
        self._rev: int | None = None
        self._new_epoch = False
        self._added = 0

    @property
    def rev(self) -> int:
        """This transaction's change number, stamped on every records row it writes."""
        if self._rev is None:
            stmt = sa.select(meta.c.value).where(meta.c.key == "rev")
            if self.conn.dialect.name == "postgresql":
                stmt = stmt.with_for_update()  # writers take numbers in commit order
            self._rev = int(self.conn.execute(stmt).scalar_one()) + 1
        return self._rev

    def commit(self) -> None:
        """Last writes of the transaction: buffers, change number, statistics."""
        self.flush()
        if self._rev is not None:
            set_meta(self.conn, "rev", str(self._rev))
        if self._new_epoch:
            set_meta(self.conn, "epoch", secrets.token_hex(8))
        if self._added:
            self._maybe_analyze()

    def new_epoch(self) -> None:
        """Records were deleted: copies held by readers (memindex.py) must be rebuilt."""
        self._new_epoch = True

    def _maybe_analyze(self) -> None:
        # The planner must know that "publisher = X" matches most rows while a word matches
        # few (without statistics SQLite drives "q + publisher" from the publisher index: 5x
        # slower). Re-analyse whenever the catalog has doubled; SQLite samples
        # (analysis_limit, catalog.py), PostgreSQL samples 30,000 rows: tens of ms.
        count = self.conn.execute(sa.select(sa.func.max(records.c.seq))).scalar() or 0
        last = self.conn.execute(
            sa.select(meta.c.value).where(meta.c.key == "analyzed")
        ).scalar_one_or_none()
        if count >= 1000 and count >= 2 * int(last or 0):
            self.conn.exec_driver_sql("ANALYZE")
            set_meta(self.conn, "analyzed", str(count))

    # -- buffered ---------------------------------------------------------------------------

    def add_record(self, record: PublishedRecord) -> None:
        flat = flatten(record.artifact)
        self._records.append((record, flat))
        self._added += 1
        self._count(flat, record.publisher, +1)

    def add_rejection(self, r: Rejection) -> None:
        self._rejections.append(
            {
                "txid": r.txid,
                "height": r.height,
                "idx": r.index,
                "time": r.time,
                "kind": r.kind,
                "reason": clean(r.reason),
                "payload_excerpt": clean(r.payload_excerpt),
            }
        )

    def flush(self) -> None:
        if self._records:
            self._insert_records(self._records)
            self._records = []
        if self._rejections:
            self.conn.execute(sa.insert(rejections), self._rejections)
            self._rejections = []
        if self._counts:
            self._write_counts()

    def _count(self, flat: Flat, publisher: str, sign: int) -> None:
        for key, n in counts_of(flat, publisher):
            self._counts[key] += sign * n

    def _insert_records(self, batch: list[tuple[PublishedRecord, Flat]]) -> None:
        rows = []
        for rec, flat in batch:
            pos = rec.position
            rows.append(
                {
                    "id": rec.id,
                    "publisher": rec.publisher,
                    **flat.columns,
                    "signature": clean(rec.signature),
                    "signature_valid": rec.signature_valid,
                    "identity": rec.identity or record_identity(rec.artifact),
                    "metadata_signed": rec.metadata_signed,
                    "superseded_by": None,
                    "txids": dumps(list(rec.txids) or [rec.id]),
                    "height": pos.height,
                    "idx": pos.index,
                    "block_hash": pos.block_hash,
                    "block_time": pos.time,
                    "updated_height": None,
                    "deactivated": False,
                    "deactivated_by": None,
                    "deactivated_height": None,
                    "rev": self.rev,
                }
            )
        stmt = sa.insert(records).returning(records.c.seq, sort_by_parameter_order=True)
        seqs = list(self.conn.execute(stmt, rows).scalars())
        self.conn.execute(
            sa.insert(documents),
            [
                {"seq": seq, "original": dumps(rec.artifact), "artifact": None}
                for seq, (rec, _) in zip(seqs, batch, strict=True)
            ],
        )
        indexed = [(seq, flat) for seq, (_, flat) in zip(seqs, batch, strict=True)]
        self._insert_children(indexed)
        extra = [
            {"txid": txid, "record_seq": seq}
            for seq, (rec, _) in zip(seqs, batch, strict=True)
            for txid in dict.fromkeys(rec.txids)
            if txid != rec.id
        ]
        if extra:
            self.conn.execute(sa.insert(record_txids), extra)

    def _insert_children(self, indexed: list[tuple[int, Flat]]) -> None:
        types = [{"record_seq": s, "subtype": t} for s, f in indexed for t in f.file_types]
        if types:
            self.conn.execute(sa.insert(record_file_types), types)
        self.fts.index(self.conn, indexed)

    def _write_counts(self) -> None:
        rows = [{"facet": f, "value": v, "n": n} for (f, v), n in self._counts.items() if n]
        self._counts.clear()
        if not rows:
            return
        insert = (postgresql if self.conn.dialect.name == "postgresql" else sqlite).insert
        stmt = insert(facet_counts)
        stmt = stmt.on_conflict_do_update(
            index_elements=[facet_counts.c.facet, facet_counts.c.value],
            set_={"n": facet_counts.c.n + stmt.excluded.n},
        )
        self.conn.execute(stmt, rows)

    # -- direct -----------------------------------------------------------------------------

    def apply_edit(self, edit: AppliedEdit) -> None:
        self.flush()
        row = self._row(records.c.id == edit.record_id)
        if row is None:
            raise LookupError(f"apply_edit: no record {edit.record_id}")
        pos = edit.position
        self.conn.execute(
            sa.insert(edits).values(
                txid=edit.txid,
                record_id=edit.record_id,
                height=pos.height,
                idx=pos.index,
                block_hash=pos.block_hash,
                time=pos.time,
                timestamp=edit.timestamp,
                patch=dumps(edit.patch),
                artifact_after=dumps(edit.artifact_after),
                identity=record_identity(edit.artifact_after),
            )
        )
        self._refresh(row, dumps(edit.artifact_after), pos.height, edit.metadata_signed)

    def deactivate(self, d: Deactivation, *, superseded: bool = False) -> None:
        """Deactivate a record; ``superseded``: because ``d.txid`` is a metadata-signed copy
        of it (``superseded_by``, which also takes it out of the identity's unique index)."""
        self.flush()
        row = self._row(records.c.id == d.record_id)
        if row is None:
            raise LookupError(f"deactivate: no record {d.record_id}")
        if not row.deactivated:
            self._count(flatten(current_artifact(row)), row.publisher, -1)
        self.conn.execute(
            sa.update(records)
            .where(records.c.seq == row.seq)
            .values(
                deactivated=True,
                deactivated_by=d.txid,
                deactivated_height=d.position.height,
                superseded_by=d.txid if superseded else None,
                rev=self.rev,
            )
        )

    def rollback(self, height: int) -> None:
        self.flush()
        conn = self.conn
        gone = self._rows(records.c.height >= height)
        if gone:  # most reorganisations carry no record: then rev-stamped updates suffice
            self.new_epoch()
        for chunk in _chunks(gone):
            seqs = [r.seq for r in chunk]
            flats = [(r.seq, flatten(current_artifact(r))) for r in chunk]
            self.fts.unindex(conn, flats)
            for r, (_, flat) in zip(chunk, flats, strict=True):
                if not r.deactivated:
                    self._count(flat, r.publisher, -1)
            conn.execute(
                sa.delete(record_file_types).where(record_file_types.c.record_seq.in_(seqs))
            )
            conn.execute(sa.delete(record_txids).where(record_txids.c.record_seq.in_(seqs)))
            conn.execute(sa.delete(edits).where(edits.c.record_id.in_([r.id for r in chunk])))
            conn.execute(sa.delete(documents).where(documents.c.seq.in_(seqs)))
            conn.execute(sa.delete(records).where(records.c.seq.in_(seqs)))
        # Edits above the fork: back to the newest remaining edit, or the original.
        edited = (
            conn.execute(sa.select(edits.c.record_id).where(edits.c.height >= height).distinct())
            .scalars()
            .all()
        )
        conn.execute(sa.delete(edits).where(edits.c.height >= height))
        for record_id in edited:
            row = self._row(records.c.id == record_id)
            if row is None:
                continue
            last = conn.execute(
                sa.select(edits.c.artifact_after, edits.c.height)
                .where(edits.c.record_id == record_id)
                .order_by(edits.c.height.desc(), edits.c.idx.desc())
                .limit(1)
            ).first()
            artifact = last.artifact_after if last else None
            document = json.loads(artifact if artifact is not None else row.original)
            signed = check_meta(document, row.publisher).signed  # as when it was indexed
            self._refresh(row, artifact, last.height if last else None, signed)
        for row in self._rows(records.c.deactivated_height >= height):
            self._count(flatten(current_artifact(row)), row.publisher, +1)
        conn.execute(
            sa.update(records)
            .where(records.c.deactivated_height >= height)
            .values(
                deactivated=False,
                deactivated_by=None,
                deactivated_height=None,
                superseded_by=None,
                rev=self.rev,
            )
        )
        conn.execute(sa.delete(rejections).where(rejections.c.height >= height))
        conn.execute(sa.delete(pending_parts).where(pending_parts.c.height >= height))

    # -- helpers ----------------------------------------------------------------------------

    def _row(self, where: Any) -> Any:
        return self.conn.execute(state_query().where(where)).first()

    def _rows(self, where: Any) -> Sequence[Any]:
        return self.conn.execute(state_query().where(where).order_by(records.c.seq)).all()

    def _refresh(
        self, row: Any, artifact: str | None, updated_height: int | None, metadata_signed: bool
    ) -> None:
        """Make ``artifact`` (JSON; None = the original) current and re-flatten the record."""
        old = flatten(current_artifact(row))
        new = flatten(json.loads(artifact if artifact is not None else row.original))
        if not row.deactivated:
            self._count(old, row.publisher, -1)
            self._count(new, row.publisher, +1)
        self.fts.unindex(self.conn, [(row.seq, old)])
        self.conn.execute(
            sa.update(records)
            .where(records.c.seq == row.seq)
            .values(
                **new.columns,
                updated_height=updated_height,
                metadata_signed=metadata_signed,
                rev=self.rev,
            )
        )
        self.conn.execute(
            sa.update(documents).where(documents.c.seq == row.seq).values(artifact=artifact)
        )
        self.conn.execute(
            sa.delete(record_file_types).where(record_file_types.c.record_seq == row.seq)
        )
        self._insert_children([(row.seq, new)])


def state_query() -> sa.Select[Any]:
    """A record's identity, state and artifacts (for ``current_artifact``)."""
    return sa.select(
        records.c.seq,
        records.c.id,
        records.c.publisher,
        records.c.deactivated,
        records.c.height,
        documents.c.original,
        documents.c.artifact,
    ).join_from(records, documents, documents.c.seq == records.c.seq)


assert set(COLUMNS) <= set(records.c.keys())


def current_artifact(row: Any) -> dict[str, Any]:
    artifact: dict[str, Any] = json.loads(
        row.artifact if row.artifact is not None else row.original
    )
    return artifact


def _chunks(rows: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for i in range(0, len(rows), _CHUNK):
        yield rows[i : i + _CHUNK]
