"""The journal's rows as typed values: datasets (:class:`JournalEntry`), operations
(:class:`Operation`) and their parts (:class:`PartState`), with the rules that turn a finished
operation into a dataset's new state.
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass, replace
from typing import Any, Literal, get_args

from etdb.publish.journal_file import JournalError

Kind = Literal["publish", "edit", "deactivate"]
KINDS: tuple[str, ...] = get_args(Kind)
_MULTIPART_HEADER = re.compile(r"oip-mp\(0,([0-9]{1,3}),")


@dataclass(frozen=True, slots=True)
class PartState:
    """One transaction of an operation: its exact text and, once sent, its txid."""

    index: int
    text: str
    txid: str | None = None


@dataclass(frozen=True)
class Operation:
    """One journaled publish, edit or deactivate of a dataset, finished or not."""

    id: int
    sid: str
    kind: Kind
    payload: str
    timestamp: int
    since_height: int
    record_txid: str | None
    artifact: dict[str, Any] | None
    cid: str | None
    content_fingerprint: str | None
    record_fingerprint: str | None
    parts: tuple[PartState, ...]
    state: Literal["pending", "done", "abandoned"] = "pending"


@dataclass(frozen=True)
class JournalEntry:
    """A dataset as this publisher has it on the ledger."""

    sid: str
    state: Literal["published", "deactivated"]
    record_txid: str
    txids: tuple[str, ...]  # every transaction of the publish, part 0 first
    cid: str | None
    content_fingerprint: str | None
    record_fingerprint: str | None
    artifact: dict[str, Any] | None  # the record as it now stands on the ledger (wire form)
    published_at: int
    updated_at: int
    history: tuple[tuple[str, str, int], ...]  # (kind, txid, timestamp), oldest first


ENTRY_SQL = (
    "SELECT sid, state, record_txid, txids, cid, content_fingerprint, record_fingerprint, "
    "artifact, published_at, updated_at, history FROM datasets"
)
PENDING_SQL = "SELECT id FROM operations WHERE state = 'pending' ORDER BY id"
OPEN_OP_SQL = "SELECT id FROM operations WHERE sid = ? AND state = 'pending'"
OP_SQL = (
    "SELECT id, sid, kind, payload, timestamp, since_height, record_txid, artifact, cid, "
    "content_fingerprint, record_fingerprint, state FROM operations WHERE id = ?"
)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def entry_from_row(row: tuple) -> JournalEntry:
    sid, state, record_txid, txids, cid, cfp, rfp, artifact, published, updated, history = row
    return JournalEntry(
        sid,
        state,
        record_txid,
        tuple(json.loads(txids)),
        cid,
        cfp,
        rfp,
        _loads(artifact),
        published,
        updated,
        tuple((k, t, ts) for k, t, ts in json.loads(history)),
    )


def store_entry(conn: sqlite3.Connection, e: JournalEntry) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO datasets VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            e.sid,
            e.state,
            e.record_txid,
            json.dumps(list(e.txids)),
            e.cid,
            e.content_fingerprint,
            e.record_fingerprint,
            None if e.artifact is None else json.dumps(e.artifact, sort_keys=True),
            e.published_at,
            e.updated_at,
            json.dumps([list(h) for h in e.history]),
        ),
    )


def load_operation(conn: sqlite3.Connection, op_id: int) -> Operation:
    row = conn.execute(OP_SQL, (op_id,)).fetchone()
    if row is None:
        raise JournalError(f"no operation {op_id} in the journal")
    parts = tuple(
        PartState(i, text, txid)
        for i, text, txid in conn.execute(
            "SELECT idx, text, txid FROM parts WHERE op_id = ? ORDER BY idx", (op_id,)
        )
    )
    op_id, sid, kind, payload, ts, since, record_txid, artifact, cid, cfp, rfp, state = row
    return Operation(
        id=op_id,
        sid=sid,
        kind=kind,
        payload=payload,
        timestamp=ts,
        since_height=since,
        record_txid=record_txid,
        artifact=_loads(artifact),
        cid=cid,
        content_fingerprint=cfp,
        record_fingerprint=rfp,
        parts=parts,
        state=state,
    )


def open_parts(conn: sqlite3.Connection, op_id: int) -> tuple[PartState, ...]:
    op = load_operation(conn, op_id)
    check_open(op)
    return op.parts


def check_open(op: Operation) -> None:
    if op.state != "pending":
        raise JournalError(f"operation {op.id} ({op.kind} of {op.sid}) is already {op.state}")


def check_complete(op: Operation) -> None:
    """Every part sent, and for a multipart all ``max + 1`` of them (read from part 0)."""
    if not op.parts:
        raise JournalError(f"operation {op.id} ({op.kind} of {op.sid}): nothing was sent yet")
    unsent = [p.index for p in op.parts if p.txid is None]
    if unsent:
        raise JournalError(
            f"operation {op.id} ({op.kind} of {op.sid}): part {unsent[0]} has no txid yet; "
            "resume sending before finishing"
        )
    header = _MULTIPART_HEADER.match(op.parts[0].text)
    expected = int(header.group(1)) + 1 if header else 1
    if len(op.parts) != expected:
        raise JournalError(
            f"operation {op.id} ({op.kind} of {op.sid}): {len(op.parts)} of {expected} parts "
            "sent; resume sending before finishing"
        )


def finished_entry(
    op: Operation, before: JournalEntry | None, txids: tuple[str, ...]
) -> JournalEntry:
    """The dataset's entry once ``op`` is on the ledger."""
    history = (*(before.history if before else ()), (op.kind, txids[0], op.timestamp))
    if op.kind == "publish":
        return JournalEntry(
            sid=op.sid,
            state="published",
            record_txid=txids[0],
            txids=txids,
            cid=op.cid,
            content_fingerprint=op.content_fingerprint,
            record_fingerprint=op.record_fingerprint,
            artifact=op.artifact,
            published_at=op.timestamp,
            updated_at=op.timestamp,
            history=history,
        )
    if before is None:  # an edit or deactivation of a record published without this journal
        record_txid = op.record_txid or txids[0]
        before = JournalEntry(
            sid=op.sid,
            state="published",
            record_txid=record_txid,
            txids=(record_txid,),
            cid=None,
            content_fingerprint=None,
            record_fingerprint=None,
            artifact=None,
            published_at=op.timestamp,
            updated_at=op.timestamp,
            history=(),
        )
    if op.kind == "deactivate":
        return replace(before, state="deactivated", updated_at=op.timestamp, history=history)
    return replace(
        before,
        cid=op.cid or before.cid,
        content_fingerprint=op.content_fingerprint or before.content_fingerprint,
        record_fingerprint=op.record_fingerprint or before.record_fingerprint,
        artifact=op.artifact if op.artifact is not None else before.artifact,
        updated_at=op.timestamp,
        history=history,
    )
