"""The publishing journal's SQLite file: its format, creating and checking it, the lock that
keeps a second publisher out, and SQLite errors as :class:`JournalError`.

Tables (``SCHEMA_VERSION`` 2; a later etdb that changes them bumps the version and migrates
older files on open (``MIGRATIONS``, in the same transaction), and an older etdb refuses a
newer file rather than misreading it):

* ``meta``: format, version, and what the journal is bound to (ledger URL without password,
  publisher address).
* ``datasets``: one row per dataset as it stands on the ledger (JSON text for lists and the
  artifact).
* ``operations``: every publish / edit / deactivate, ``pending`` until finished (``done``) or
  given up (``abandoned``); a partial unique index allows one pending operation per dataset.
* ``parts``: each transaction of an operation: its exact text from ``will_send``, its txid
  from ``sent``.
* ``pushes`` (version 2): each dataset DAG pinned on a kubo node (root CID, the node's peer ID),
  so that a re-run does not push it again.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

FORMAT = "etdb-publish-journal"
SCHEMA_VERSION = 2

PUSHES_TABLE = """
CREATE TABLE pushes (
    cid    TEXT NOT NULL,
    node   TEXT NOT NULL,
    api    TEXT NOT NULL,
    blocks INTEGER NOT NULL,
    bytes  INTEGER NOT NULL,
    pushed INTEGER NOT NULL,
    PRIMARY KEY (cid, node)
) WITHOUT ROWID
"""
#: What turns a file of version ``v`` into one of ``v + 1``.
MIGRATIONS: dict[int, tuple[str, ...]] = {1: (PUSHES_TABLE,)}

SCHEMA = (
    """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE datasets (
    sid                 TEXT PRIMARY KEY,
    state               TEXT NOT NULL CHECK (state IN ('published', 'deactivated')),
    record_txid         TEXT NOT NULL,
    txids               TEXT NOT NULL,
    cid                 TEXT,
    content_fingerprint TEXT,
    record_fingerprint  TEXT,
    artifact            TEXT,
    published_at        INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    history             TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE operations (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    sid                 TEXT NOT NULL,
    kind                TEXT NOT NULL CHECK (kind IN ('publish', 'edit', 'deactivate')),
    payload             TEXT NOT NULL,
    timestamp           INTEGER NOT NULL,
    since_height        INTEGER NOT NULL,
    record_txid         TEXT,
    artifact            TEXT,
    cid                 TEXT,
    content_fingerprint TEXT,
    record_fingerprint  TEXT,
    state               TEXT NOT NULL CHECK (state IN ('pending', 'done', 'abandoned')),
    created             INTEGER NOT NULL,
    finished            INTEGER,
    reason              TEXT
);
CREATE UNIQUE INDEX operations_one_pending ON operations (sid) WHERE state = 'pending';
CREATE TABLE parts (
    op_id INTEGER NOT NULL REFERENCES operations (id),
    idx   INTEGER NOT NULL CHECK (idx >= 0),
    text  TEXT NOT NULL,
    txid  TEXT,
    PRIMARY KEY (op_id, idx)
) WITHOUT ROWID;
"""
    + PUSHES_TABLE
)


class JournalError(Exception):
    """The journal cannot be used as asked (corrupt, bound elsewhere, busy, misused); the
    message says what is wrong and what to do."""


def take_lock(path: Path) -> int:
    """An exclusive flock on ``<journal>.lock`` holding our pid; JournalError naming the pid of
    the process that holds it."""
    import fcntl

    lock_path = path.with_name(path.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise JournalError(
            f"another etdb publish is running (pid {holder}) with journal {path}; wait for it "
            "to finish (never run two publishers on one journal)"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    return fd


def release_lock(fd: int) -> None:
    os.close(fd)  # closing the only descriptor releases the flock


@contextmanager
def errors(path: Path, doing: str) -> Iterator[None]:
    try:
        yield
    except sqlite3.OperationalError as exc:
        raise JournalError(f"cannot {doing} journal {path}: {exc}") from exc
    except sqlite3.DatabaseError as exc:
        raise JournalError(
            f"journal {path} is damaged or not an etdb publishing journal ({exc}); move it "
            "aside and check the ledger for what was published (etdb ledger read)"
        ) from exc


def bind(conn: sqlite3.Connection, path: Path, ledger_url: str, publisher: str) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:  # new (or created by a process killed before its first commit)
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            meta = {
                "format": FORMAT,
                "version": str(SCHEMA_VERSION),
                "ledger_url": ledger_url,
                "publisher": publisher,
                "created": str(int(time.time())),
            }
            conn.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
        meta = dict(conn.execute("SELECT key, value FROM meta")) if "meta" in tables else {}
        if tables and meta.get("format") != FORMAT:
            raise JournalError(f"{path} is an SQLite file but not an etdb publishing journal")
        version = int(meta.get("version", SCHEMA_VERSION)) if tables else SCHEMA_VERSION
        if version > SCHEMA_VERSION:
            raise JournalError(
                f"journal {path} has schema version {version}, written by a newer etdb (this "
                f"one knows version {SCHEMA_VERSION}): upgrade etdb to use it"
            )
        if tables and (meta.get("ledger_url"), meta.get("publisher")) != (ledger_url, publisher):
            raise JournalError(
                f"journal {path} belongs to ledger {meta.get('ledger_url')} and publisher "
                f"{meta.get('publisher')}, not {ledger_url} and {publisher}: use the matching "
                "ledger and key, or another journal file for this pair"
            )
        _migrate(conn, version)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _migrate(conn: sqlite3.Connection, version: int) -> None:
    """Bring a file of an older version up to ``SCHEMA_VERSION`` (inside bind's transaction)."""
    if version >= SCHEMA_VERSION:
        return
    for step in range(version, SCHEMA_VERSION):
        for statement in MIGRATIONS[step]:
            conn.execute(statement)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'version'", (str(SCHEMA_VERSION),))
