"""The embedded ledger's SQLite file: connections, creation, write transactions, errors.

Kept apart from the ledger logic (``local.py``) because its rules are about files:

* Creating: nothing is created by opening. Reading a file that does not exist yet gives an
  empty chain; the first write creates the file and its schema.
* Vanishing: once a handle has opened the file, the file disappearing (moved, deleted,
  unmounted) makes every call raise ``LedgerUnavailable``. An open SQLite connection would
  happily go on using the moved file, and reopening the path would silently start a new, empty
  chain; both are wrong for a ledger. The path is stat'ed on each call (about a microsecond).
  A file *replaced* under an open handle (restored from a backup) is unavailable too: the
  handle must be reopened.
* Concurrency: WAL mode, so readers in other processes never block or see half a block; writers
  take the write lock up front (``BEGIN IMMEDIATE``) and wait up to ``BUSY_TIMEOUT``.
* Durability: ``synchronous=FULL``: the WAL is fsynced at every commit, so an acknowledged
  publish survives a process crash and a power cut (NORMAL would survive only the former).
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from etdb.ledger.base import CorruptLedgerError, LedgerError, LedgerUnavailable
from etdb.ledger.local_schema import FORMAT, FORMAT_VERSION, SCHEMA

BUSY_TIMEOUT = 10.0  # seconds a writer waits for another writer before LedgerUnavailable


class LedgerFile:
    """One SQLite ledger file and this handle's connection to it (thread-safe)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # sqlite3 connections are not safe for concurrent use: one lock per handle.
        self.lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._ident: tuple[int, int] | None = None  # (st_dev, st_ino) the connection has open
        self._seen = False  # this handle has had the file open: its vanishing is an error
        self._ready = False  # the open file holds the schema (cached: it never goes away)

    @contextmanager
    def errors(self, doing: str, *, os_errors: bool = True) -> Iterator[None]:
        """SQLite (and OS) errors as LedgerErrors that name the file and say what to do."""
        try:
            yield
        except LedgerError:
            raise
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if "locked" in text or "busy" in text:
                raise LedgerUnavailable(
                    f"ledger file {self.path} stayed locked by another writer for "
                    f"{BUSY_TIMEOUT:g} s while trying to {doing} it; try again"
                ) from exc
            raise LedgerUnavailable(f"cannot {doing} ledger file {self.path}: {text}") from exc
        except sqlite3.DatabaseError as exc:
            raise CorruptLedgerError(
                f"ledger file {self.path} is damaged or not an etdb ledger ({exc}); restore it "
                "from a backup or an export (etdb ledger import)"
            ) from exc
        except OSError as exc:
            if not os_errors:
                raise
            raise LedgerUnavailable(
                f"cannot {doing} ledger file {self.path}: {exc.strerror or exc}"
            ) from exc

    def _connect(self, mode: str) -> sqlite3.Connection:
        # mode=rw never creates a file, so a path that vanished after our stat stays missing.
        uri = "file:" + quote(str(self.path)) + f"?mode={mode}"
        conn = sqlite3.connect(
            uri, uri=True, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA synchronous=FULL")
        except BaseException:
            conn.close()
            raise
        return conn

    def _current(self) -> sqlite3.Connection | None:
        """The connection on the file the path names now; None if it was never created."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            if self._seen:
                raise LedgerUnavailable(
                    f"ledger file {self.path} has gone (moved or deleted) since it was opened; "
                    "put it back, or point the ledger setting at where it is now"
                ) from None
            return None
        ident = (st.st_dev, st.st_ino)
        if self._conn is not None and ident != self._ident:
            raise LedgerUnavailable(
                f"ledger file {self.path} was replaced by another file since it was opened; "
                "open the ledger again (and replace a ledger file only while no process has it "
                "open: SQLite would pair the new file with the old one's write-ahead log)"
            )
        if self._conn is None:
            conn = self._connect("rw")
            try:
                self._check_format(conn)
            except BaseException:
                conn.close()
                raise
            self._conn, self._ident, self._seen, self._ready = conn, ident, True, False
        return self._conn

    def connection(self) -> sqlite3.Connection | None:
        """The connection if the file holds a ledger, None while nothing was created yet.

        Call with ``lock`` held and inside ``errors()``.
        """
        conn = self._current()
        if conn is not None and not self._ready:
            self._ready = _has_schema(conn)
        return conn if self._ready else None

    def create(self) -> sqlite3.Connection:
        """The connection, creating the file and its schema first if needed."""
        conn = self.connection()
        if conn is not None:
            return conn
        conn = self._conn
        if conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = self._connect("rwc")
            st = os.stat(self.path)
            self._conn, self._ident, self._seen = conn, (st.st_dev, st.st_ino), True
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            # Switching to WAL needs the file to itself, and SQLite does not always wait for
            # that (two first publishers racing saw "database is locked" at once): creators
            # take turns under an OS lock, and the switch is retried until the timeout.
            with _creation_lock(self.path):
                _switch_to_wal(conn)
        with self.transaction(conn):
            # Statement by statement: executescript() would commit on its own. IF NOT EXISTS
            # and OR IGNORE make a race between two creating processes harmless.
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            meta = {
                "format": FORMAT,
                "version": str(FORMAT_VERSION),
                "chain_id": secrets.token_hex(32),
                "created": str(int(time.time())),
            }
            conn.executemany("INSERT OR IGNORE INTO meta VALUES (?, ?)", meta.items())
        self._check_format(conn)
        self._ready = True
        return conn

    @staticmethod
    @contextmanager
    def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        """A write transaction holding the write lock from its start; rolled back on error."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    @contextmanager
    def snapshot(self, doing: str) -> Iterator[sqlite3.Connection | None]:
        """A private connection holding one read snapshot, so long reads (verify, export)
        block no other call on this handle; None while nothing was created yet."""
        with self.lock, self.errors(doing):
            exists = self.connection() is not None
            conn = self._connect("rw") if exists else None
        if conn is None:
            yield None
            return
        try:
            with self.errors(doing, os_errors=False):
                conn.execute("BEGIN")
                yield conn
        finally:
            conn.close()

    def query(self, doing: str, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """One statement, i.e. one consistent snapshot; [] while nothing was created yet."""
        with self.lock, self.errors(doing):
            conn = self.connection()
            if conn is None:
                return []
            return conn.execute(sql, args).fetchall()

    def _check_format(self, conn: sqlite3.Connection) -> None:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not names:
            return  # a file just created by another process, schema not yet written
        meta = dict(conn.execute("SELECT key, value FROM meta")) if "meta" in names else {}
        if meta.get("format") != FORMAT:
            raise CorruptLedgerError(f"{self.path} is an SQLite file but not an etdb ledger")
        if meta.get("version") != str(FORMAT_VERSION):
            raise LedgerError(
                f"{self.path} is an etdb ledger of format version {meta.get('version')}; this "
                f"etdb reads version {FORMAT_VERSION}: use a matching etdb version"
            )

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn, self._ident, self._ready = None, None, False

    def close(self) -> None:
        with self.lock:
            self._drop()


def _has_schema(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone() is not None


@contextmanager
def _creation_lock(path: Path) -> Iterator[None]:
    """Serialise ledger creation between processes (a sidecar ``.create-lock`` file)."""
    try:
        import fcntl
    except ImportError:  # Windows: SQLite's own locking and the retry below must do
        yield
        return
    with open(path.with_name(path.name + ".create-lock"), "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _switch_to_wal(conn: sqlite3.Connection) -> None:
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")  # persistent: recorded in the file
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
