"""The publishing journal: what this lab has put on one ledger, and what it is putting there now.

Publishing a dataset is several steps that can each be cut short by a crash (a kill, a power
cut, a lost node): sign, send part 0, send the later parts naming part 0's txid, remember the
result. The journal makes that sequence exactly-once. Every step is one durable SQLite
transaction (WAL, ``synchronous=FULL``) written *before* the irreversible act it announces::

    begin(sid, kind, payload, timestamp, since_height)   the operation, with everything needed
                                                          to re-plan byte-identical part texts
    will_send(op, i, text)    BEFORE ledger.publish(text): "part i may be on the ledger now"
    sent(op, i, txid)         right AFTER it returned
    finish(op)                the operation done and the dataset's row updated, in one go

After a crash, :func:`etdb.publish.outbox.recover` finds the unfinished operations; a part with
an intent but no txid is looked up on the ledger (since ``since_height``) before anything is
sent again. The journal never holds half a step: each of these calls commits or does nothing.

One journal serves one ledger (its URL without password) and one publisher address, and one
process at a time: :meth:`Journal.open` takes an exclusive ``flock`` on ``<journal>.lock``,
which the OS releases when the process ends however it ends, so a killed sender never blocks
the next one, and two senders never run at once.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from etdb.publish.journal_file import JournalError, bind, errors, release_lock, take_lock
from etdb.publish.journal_pushes import PushLog
from etdb.publish.journal_rows import (
    ENTRY_SQL,
    KINDS,
    OPEN_OP_SQL,
    PENDING_SQL,
    JournalEntry,
    Kind,
    Operation,
    PartState,
    check_complete,
    check_open,
    entry_from_row,
    finished_entry,
    load_operation,
    open_parts,
    store_entry,
)

__all__ = [
    "DEFAULT_FILE",
    "Journal",
    "JournalEntry",
    "JournalError",
    "Kind",
    "Operation",
    "PartState",
    "default_path",
]

DEFAULT_FILE = Path("publish") / "journal.sqlite3"
BUSY_TIMEOUT = 10.0  # seconds; only our own process writes, so waiting means a stuck reader


def default_path(home: Path | None = None) -> Path:
    """``<ETDB_HOME>/publish/journal.sqlite3``."""
    if home is None:
        from etdb.config import data_home  # only when no home was given

        home = data_home()
    return Path(home) / DEFAULT_FILE


class Journal(PushLog):
    """The publishing journal on one SQLite file (see the module docstring); pushes to kubo
    are in ``journal_pushes``."""

    def __init__(
        self, path: Path, conn: sqlite3.Connection, lock: int, ledger_url: str, publisher: str
    ) -> None:
        self.path = path
        self.ledger_url = ledger_url
        self.publisher = publisher
        self._conn: sqlite3.Connection | None = conn
        self._lock: int | None = lock

    @classmethod
    def open(cls, path: Path, *, ledger_url: str, publisher: str) -> Journal:
        """Open (creating if missing) the journal at ``path`` bound to this ledger and
        publisher; JournalError if it is bound to others, damaged, newer, or in use."""
        path = Path(path).absolute()
        lock = take_lock(path)
        conn: sqlite3.Connection | None = None
        try:
            with errors(path, "open"):
                conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute("PRAGMA foreign_keys=ON")
                bind(conn, path, ledger_url, publisher)
        except BaseException:
            if conn is not None:
                conn.close()
            release_lock(lock)
            raise
        return cls(path, conn, lock, ledger_url, publisher)

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r}, ledger={self.ledger_url!r})"

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._lock is not None:
            release_lock(self._lock)
            self._lock = None

    # -- reading --------------------------------------------------------------------------------

    def get(self, sid: str) -> JournalEntry | None:
        with self._read() as conn:
            row = conn.execute(f"{ENTRY_SQL} WHERE sid = ?", (sid,)).fetchone()
        return None if row is None else entry_from_row(row)

    def entries(self) -> Iterator[JournalEntry]:
        """Every dataset, ordered by sid (read in one snapshot)."""
        with self._read() as conn:
            rows = conn.execute(f"{ENTRY_SQL} ORDER BY sid").fetchall()
        return iter([entry_from_row(r) for r in rows])

    def pending(self) -> list[Operation]:
        """Unfinished operations, oldest first."""
        with self._read() as conn:
            ids = [r[0] for r in conn.execute(PENDING_SQL)]
            return [load_operation(conn, i) for i in ids]

    def operation(self, op_id: int) -> Operation:
        """One operation as journaled now (any state); JournalError if there is none."""
        with self._read() as conn:
            return load_operation(conn, op_id)

    # -- writing --------------------------------------------------------------------------------

    def begin(
        self,
        sid: str,
        kind: Kind,
        payload: str,
        *,
        timestamp: int,
        since_height: int,
        record_txid: str | None = None,
        artifact: dict[str, Any] | None = None,
        cid: str | None = None,
        content_fingerprint: str | None = None,
        record_fingerprint: str | None = None,
    ) -> Operation:
        """Journal a new operation (durably) before anything of it is sent."""
        if not isinstance(sid, str) or not sid:
            raise JournalError(f"a dataset id (sid) is non-empty text, not {sid!r}")
        if kind not in KINDS:
            raise JournalError(f"operation kind {kind!r} is not one of {', '.join(KINDS)}")
        if not isinstance(payload, str) or not payload:
            raise JournalError(f"dataset {sid}: the {kind} payload is empty")
        artifact_json = None if artifact is None else json.dumps(artifact, sort_keys=True)
        with self._write("begin an operation in") as conn:
            if conn.execute(OPEN_OP_SQL, (sid,)).fetchone() is not None:
                raise JournalError(
                    f"dataset {sid} already has an unfinished operation in {self.path}: "
                    "finish it first (etdb publish --resume) or abandon it"
                )
            row = conn.execute("SELECT state, record_txid FROM datasets WHERE sid = ?", (sid,))
            known = row.fetchone()
            if kind == "publish" and known is not None and known[0] == "published":
                raise JournalError(
                    f"dataset {sid} is already published (record {known[1]}); "
                    "send an edit to change it"
                )
            if kind != "publish":
                record_txid = record_txid or (known[1] if known else None)
                if not record_txid:
                    raise JournalError(
                        f"dataset {sid}: an {kind} needs the record's txid (record_txid), and "
                        "the journal has no publish of it"
                    )
            cursor = conn.execute(
                "INSERT INTO operations (sid, kind, payload, timestamp, since_height, "
                "record_txid, artifact, cid, content_fingerprint, record_fingerprint, state, "
                "created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
                (
                    sid,
                    kind,
                    payload,
                    int(timestamp),
                    int(since_height),
                    record_txid,
                    artifact_json,
                    cid,
                    content_fingerprint,
                    record_fingerprint,
                    int(time.time()),
                ),
            )
            op_id = int(cursor.lastrowid or 0)
            return load_operation(conn, op_id)

    def will_send(self, op_id: int, index: int, text: str) -> None:
        """Record, durably, that part ``index`` (exactly ``text``) is about to be sent.

        Calling it again for a part not yet sent, with the same text, is a no-op (a resumed
        send re-plans the same bytes); a different text, or a part already sent, is an error.
        """
        with self._write("record an intent in") as conn:
            parts = open_parts(conn, op_id)
            if index < len(parts):
                part = parts[index]
                if part.text != text:
                    raise JournalError(
                        f"operation {op_id}, part {index}: re-planned text differs from the "
                        "journaled one (ledger max_payload or key changed?); nothing was sent. "
                        "Restore the settings the operation was begun with"
                    )
                if part.txid is not None:
                    raise JournalError(
                        f"operation {op_id}, part {index} was already sent as {part.txid}"
                    )
                return
            if index != len(parts):
                raise JournalError(
                    f"operation {op_id}: part {index} cannot be sent before part {len(parts)}"
                )
            if parts and parts[-1].txid is None:
                raise JournalError(
                    f"operation {op_id}: part {index} cannot be sent while part "
                    f"{index - 1} has no txid yet"
                )
            conn.execute(
                "INSERT INTO parts (op_id, idx, text) VALUES (?, ?, ?)", (op_id, index, text)
            )

    def sent(self, op_id: int, index: int, txid: str) -> None:
        """Record, durably, the txid of part ``index`` (the same txid again is a no-op)."""
        if not isinstance(txid, str) or not txid:
            raise JournalError(f"operation {op_id}, part {index}: empty txid")
        with self._write("record a txid in") as conn:
            parts = open_parts(conn, op_id)
            if index >= len(parts):
                raise JournalError(
                    f"operation {op_id}, part {index}: sent() without will_send() first"
                )
            known = parts[index].txid
            if known == txid:
                return
            if known is not None:
                raise JournalError(
                    f"operation {op_id}, part {index} is journaled as {known}, not {txid}: "
                    "the same part went out twice; check the ledger"
                )
            conn.execute(
                "UPDATE parts SET txid = ? WHERE op_id = ? AND idx = ?", (txid, op_id, index)
            )

    def finish(self, op_id: int) -> JournalEntry:
        """Mark the operation done and update its dataset, in one transaction. Every part must
        have its txid (all of a multipart's parts). Finishing a finished operation returns
        its dataset as it stands."""
        with self._write("finish an operation in") as conn:
            op = load_operation(conn, op_id)
            if op.state == "done":
                row = conn.execute(f"{ENTRY_SQL} WHERE sid = ?", (op.sid,)).fetchone()
                return entry_from_row(row)
            check_open(op)
            check_complete(op)
            txids = [p.txid for p in op.parts if p.txid is not None]
            row = conn.execute(f"{ENTRY_SQL} WHERE sid = ?", (op.sid,)).fetchone()
            entry = finished_entry(op, None if row is None else entry_from_row(row), tuple(txids))
            store_entry(conn, entry)
            conn.execute(
                "UPDATE operations SET state = 'done', finished = ? WHERE id = ?",
                (int(time.time()), op_id),
            )
            return entry

    def abandon(self, op_id: int, reason: str) -> None:
        """Give an operation up: only when provably nothing of it is on the ledger (the caller
        looked its intended parts up). Refused once any part has a txid."""
        with self._write("abandon an operation in") as conn:
            op = load_operation(conn, op_id)
            check_open(op)
            sent = [p for p in op.parts if p.txid is not None]
            if sent:
                raise JournalError(
                    f"operation {op_id} ({op.kind} of {op.sid}) cannot be abandoned: part "
                    f"{sent[0].index} is on the ledger as {sent[0].txid}; finish it instead"
                )
            conn.execute(
                "UPDATE operations SET state = 'abandoned', finished = ?, reason = ? WHERE id = ?",
                (int(time.time()), reason, op_id),
            )

    def adopt(
        self,
        sid: str,
        *,
        txids: tuple[str, ...],
        timestamp: int,
        artifact: dict[str, Any] | None,
        cid: str | None,
        content_fingerprint: str | None,
        record_fingerprint: str | None,
    ) -> JournalEntry:
        """Journal a record that is already on the ledger (found in the catalog after the
        journal was lost) as this dataset's publish, in ONE transaction: nothing is sent, and
        no crash can leave a half-adopted operation that recovery would send again."""
        if not txids:
            raise JournalError(f"dataset {sid}: adopting a record needs its txids")
        with self._write("adopt a record into") as conn:
            if conn.execute(OPEN_OP_SQL, (sid,)).fetchone() is not None:
                raise JournalError(f"dataset {sid} has an unfinished operation: finish it first")
            row = conn.execute(f"{ENTRY_SQL} WHERE sid = ?", (sid,)).fetchone()
            if row is not None:
                raise JournalError(f"dataset {sid} is already in the journal; nothing to adopt")
            now = int(time.time())
            cursor = conn.execute(
                "INSERT INTO operations (sid, kind, payload, timestamp, since_height, "
                "record_txid, artifact, cid, content_fingerprint, record_fingerprint, state, "
                "created, finished, reason) "
                "VALUES (?, 'publish', '', ?, 0, ?, ?, ?, ?, ?, 'done', ?, ?, 'adopted')",
                (
                    sid,
                    int(timestamp),
                    txids[0],
                    None if artifact is None else json.dumps(artifact, sort_keys=True),
                    cid,
                    content_fingerprint,
                    record_fingerprint,
                    now,
                    now,
                ),
            )
            op = load_operation(conn, int(cursor.lastrowid or 0))
            entry = finished_entry(op, None, tuple(txids))
            store_entry(conn, entry)
            return entry

    def refresh(self, sid: str, *, content_fingerprint: str) -> JournalEntry:
        """Remember a new content fingerprint for a dataset whose bytes were re-read and found
        unchanged (only file times moved), so the next run need not read them again."""
        with self._write("refresh a dataset in") as conn:
            row = conn.execute(f"{ENTRY_SQL} WHERE sid = ?", (sid,)).fetchone()
            if row is None:
                raise JournalError(f"dataset {sid} is not in the journal")
            conn.execute(
                "UPDATE datasets SET content_fingerprint = ? WHERE sid = ?",
                (content_fingerprint, sid),
            )
            return entry_from_row(conn.execute(f"{ENTRY_SQL} WHERE sid = ?", (sid,)).fetchone())

    # -- plumbing -------------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise JournalError(f"journal {self.path} is closed")
        return self._conn

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        conn = self._connection()
        with errors(self.path, "read"):
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")

    @contextmanager
    def _write(self, doing: str) -> Iterator[sqlite3.Connection]:
        conn = self._connection()
        with errors(self.path, doing):
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
