"""The embedded ledger: an append-only, hash-linked chain of blocks in one SQLite file.

It needs no node and costs nothing, so it is the default (``local://``): a lab can publish and
index on one machine, then share the chain as a verifiable export, and a test suite can run
the full publish/index cycle in milliseconds. Modules: hashing rules and schema in
``local_schema``, file handling (creation, concurrency, durability) in ``local_file``, the
types a read trusts (a payload that is not text is handed on, not raised) in ``local_rows``,
verify, export and import in ``local_export``.

Publishing appends one block per :meth:`LocalLedger.publish` (mining is instant:
1 confirmation at once) or one block for a whole :meth:`LocalLedger.publish_many` batch.
The ledger is append-only: no method removes or rewrites a block.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from etdb.ledger.base import (
    Block,
    Closing,
    FeeEstimate,
    LedgerConfigError,
    LedgerError,
    PayloadTooLarge,
    Tip,
    TxRef,
    TxStatus,
    UnknownBlock,
    payload_size,
)
from etdb.ledger.local_export import (
    ExportReport,
    ImportReport,
    LedgerImportError,
    VerifyReport,
    export_chain,
    import_chain,
    verify_chain,
)
from etdb.ledger.local_file import LedgerFile
from etdb.ledger.local_rows import check_int, check_text, group_blocks
from etdb.ledger.local_schema import (
    PAYLOAD_INDEX_SQL,
    PAYLOAD_PREFIX_CHARS,
    BuiltBlock,
    build_block,
    is_hash,
)

__all__ = [
    "ExportReport",
    "ImportReport",
    "LedgerImportError",
    "LocalLedger",
    "VerifyReport",
    "open_local",
    "parse_local_url",
]

DEFAULT_FILE = "ledger.sqlite3"
#: Big enough that no OIP record ever needs multipart here; lower it (``?max_payload=1040``)
#: to rehearse FLO's limit.
DEFAULT_MAX_PAYLOAD = 65_536
MAX_MAX_PAYLOAD = 100_000_000  # well under SQLite's 1e9-byte string limit
DEFAULT_CONFIRMATIONS = 1
_CHUNK = 1000  # blocks per query in blocks(): follow() asks for 500, so one query per batch

# The unary ``+`` keeps SQLite from using the (height, idx) key for ``height >=`` and from
# propagating ``payload = ?`` into the indexed expression: either would turn the lookup into a
# scan. Matches are sorted here (there are almost never two).
_FIND_SQL = f"""
SELECT height, idx, txid, sender FROM entries
WHERE substr(payload, 1, {PAYLOAD_PREFIX_CHARS}) = ? AND +payload = ? AND +height >= ?
"""
# Payloads are read as bytes and decoded here (local_rows.payload_text): a TEXT value that is
# not UTF-8 would otherwise fail the whole query, and stop the indexer on one transaction.
_RANGE_SQL = """
SELECT b.height, b.hash, b.parent_hash, b.time, e.txid, e.idx, e.sender,
       CAST(e.payload AS BLOB)
FROM blocks AS b LEFT JOIN entries AS e ON e.height = b.height
WHERE b.height BETWEEN ? AND ?
ORDER BY b.height, e.idx
"""


# -- URL ------------------------------------------------------------------------------------


def _int_option(name: str, text: str, low: int, high: int, url: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise LedgerConfigError(
            f"ledger URL {url!r}: option {name}={text!r} must be an integer from {low} to {high}"
        )
    return value


def parse_local_url(url: str, home: Path | None) -> tuple[Path, int, int]:
    """``(path, max_payload, confirmations)`` from a ``local:`` URL."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "local":
        raise LedgerConfigError(f"not a local ledger URL: {url!r}")
    if parts.netloc:
        raise LedgerConfigError(
            f"ledger URL {url!r} names a host ({parts.netloc!r}); a local ledger is a file: "
            "use local:// (the data folder's ledger.sqlite3), local:///absolute/path.sqlite3 "
            "or local:relative/path.sqlite3 (relative to the data folder)"
        )
    if parts.fragment:
        raise LedgerConfigError(f"ledger URL {url!r}: a '#' fragment means nothing here")
    base = Path(home) if home is not None else _default_home()
    raw_path = unquote(parts.path)
    if raw_path.startswith("//"):  # local:////abs: POSIX gives '//' a meaning we never want
        raw_path = "/" + raw_path.lstrip("/")
    path = base / DEFAULT_FILE if raw_path in ("", "/") else Path(raw_path).expanduser()
    if not path.is_absolute():
        path = base / path
    max_payload, confirmations = DEFAULT_MAX_PAYLOAD, DEFAULT_CONFIRMATIONS
    for name, value in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
        if name == "max_payload":
            max_payload = _int_option(name, value, 1, MAX_MAX_PAYLOAD, url)
        elif name == "confirmations":
            confirmations = _int_option(name, value, 1, 1_000_000, url)
        else:
            raise LedgerConfigError(
                f"ledger URL {url!r}: unknown option {name!r} for a local ledger "
                "(known: max_payload, confirmations)"
            )
    return path, max_payload, confirmations


def _default_home() -> Path:
    from etdb.config import data_home  # only when no home was given

    return data_home()


def _display_url(path: Path, max_payload: int, confirmations: int) -> str:
    options = []
    if max_payload != DEFAULT_MAX_PAYLOAD:
        options.append(f"max_payload={max_payload}")
    if confirmations != DEFAULT_CONFIRMATIONS:
        options.append(f"confirmations={confirmations}")
    query = "?" + "&".join(options) if options else ""
    return "local://" + quote(str(path)) + query


def open_local(url: str, home: Path | None = None) -> LocalLedger:
    """The ``local:`` backend factory (registered in ``etdb.ledger.BACKENDS``)."""
    path, max_payload, confirmations = parse_local_url(url, home)
    return LocalLedger(path, max_payload=max_payload, confirmations=confirmations)


# -- the ledger -----------------------------------------------------------------------------


class LocalLedger(Closing):
    """The embedded ledger on one SQLite file (see the module docstring)."""

    def __init__(
        self,
        path: Path | str,
        *,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        confirmations: int = DEFAULT_CONFIRMATIONS,
    ) -> None:
        self.path = Path(path).absolute()
        self.max_payload = max_payload
        self.confirmations = confirmations
        self.url = _display_url(self.path, max_payload, confirmations)
        self._file = LedgerFile(self.path)
        self._payload_index = False  # checked (and created if missing) by find_payload
        with self._file.lock, self._file.errors("open"):
            self._file.connection()  # fail early on a file that is not a ledger

    def __repr__(self) -> str:
        return f"LocalLedger({self.url!r})"

    def close(self) -> None:
        self._file.close()

    # -- reading ------------------------------------------------------------------------

    def tip(self) -> Tip:
        rows = self._file.query(
            "read", "SELECT height, hash FROM blocks ORDER BY height DESC LIMIT 1"
        )
        if not rows:
            return Tip(-1, "")
        height = check_int(rows[0][0], "height", rows[0][0])
        return Tip(height, check_text(height, "hash", rows[0][1]))

    def block_hash(self, height: int) -> str | None:
        if height < 0:
            return None
        rows = self._file.query("read", "SELECT hash FROM blocks WHERE height = ?", (height,))
        return check_text(height, "hash", rows[0][0]) if rows else None

    def block(self, height: int) -> Block:
        for block in self.blocks(height, height):
            return block
        raise UnknownBlock(f"no block at height {height} (the tip is {self.tip().height})")

    def blocks(self, start: int, stop: int) -> Iterator[Block]:
        start = max(start, 0)
        while start <= stop:
            hi = min(stop, start + _CHUNK - 1)
            rows = self._file.query("read", _RANGE_SQL, (start, hi))
            if not rows:
                return
            yield from group_blocks(rows)
            if rows[-1][0] < hi:
                return  # reached the tip
            start = hi + 1

    def transaction(self, txid: str) -> TxStatus | None:
        txid = txid.lower() if isinstance(txid, str) else ""
        if not is_hash(txid):
            return None
        rows = self._file.query(
            "read",
            "SELECT e.height, b.hash, (SELECT max(height) FROM blocks) FROM entries AS e "
            "JOIN blocks AS b ON b.height = e.height WHERE e.txid = ?",
            (txid,),
        )
        if not rows:
            return None
        height, block_hash, tip = rows[0]
        height = check_int(height, "height", height)
        tip = check_int(tip, "height", tip)
        return TxStatus(txid, tip - height + 1, height, check_text(height, "hash", block_hash))

    def find_payload(
        self, payload: str, *, since_height: int = 0, sender: str | None = None
    ) -> TxRef | None:
        """The oldest entry carrying exactly ``payload`` at ``since_height`` or above (one
        indexed lookup; see :func:`etdb.ledger.messages.find_payload`)."""
        with self._file.lock, self._file.errors("search"):
            conn = self._file.connection()
            if conn is None:
                return None
            if not self._payload_index:
                self._ensure_payload_index(conn)
            rows = conn.execute(
                _FIND_SQL, (payload[:PAYLOAD_PREFIX_CHARS], payload, max(since_height, 0))
            ).fetchall()
        for height, _, txid, entry_sender in sorted(rows):
            if sender is None or entry_sender is None or entry_sender == sender:
                return TxRef(txid, height)
        return None

    def _ensure_payload_index(self, conn: sqlite3.Connection) -> None:
        # Ledgers created before the index existed get it here, once (a few seconds for
        # millions of entries). A read-only file cannot take it: the lookup then scans.
        exists = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'entries_payload_prefix'"
        ).fetchone()
        if exists is None:
            try:
                with self._file.transaction(conn):
                    conn.execute(PAYLOAD_INDEX_SQL)
            except sqlite3.OperationalError as exc:
                if "readonly" not in str(exc).replace(" ", "").lower():
                    raise
        self._payload_index = True

    def estimate_fee(self, payload_bytes: int, transactions: int = 1) -> FeeEstimate:
        return FeeEstimate(
            Decimal(0), "none", transactions, payload_bytes, "embedded ledger: no fees"
        )

    def stats(self) -> dict[str, Any]:
        """What ``etdb ledger info`` shows beyond the Ledger protocol."""
        rows = self._file.query(
            "read",
            "SELECT (SELECT count(*) FROM blocks), (SELECT count(*) FROM entries), "
            "(SELECT value FROM meta WHERE key = 'chain_id')",
        )
        blocks, entries, chain_id = rows[0] if rows else (0, 0, None)
        wal = Path(f"{self.path}-wal")
        return {
            "path": str(self.path),
            "exists": self.path.exists(),
            "chain_id": chain_id,
            "blocks": blocks,
            "entries": entries,
            "file_bytes": self.path.stat().st_size if self.path.exists() else 0,
            "wal_bytes": wal.stat().st_size if wal.exists() else 0,
        }

    # -- publishing ---------------------------------------------------------------------

    def publish(self, payload: str) -> TxRef:
        return self.publish_many([payload])[0]

    def publish_many(self, payloads: Iterable[str]) -> list[TxRef]:
        """Append ONE block holding every payload, in order (one transaction, one fsync)."""
        payloads = list(payloads)
        for p in payloads:
            if not isinstance(p, str):
                raise TypeError(f"a payload is text, not {type(p).__name__}")
            size = payload_size(p)
            if size > self.max_payload:
                raise PayloadTooLarge(
                    f"payload of {size} bytes exceeds this ledger's max_payload of "
                    f"{self.max_payload} bytes; publish it as a multipart message"
                )
        if not payloads:
            return []
        with self._file.lock, self._file.errors("publish to"):
            conn = self._file.create()
            with self._file.transaction(conn):
                built = _append(conn, payloads)
        height = built.header.height
        return [TxRef(txid, height) for txid, _, _ in built.entries]

    # -- integrity, export, import ------------------------------------------------------

    def verify(self) -> VerifyReport:
        """Recompute every txid, tx_root, block hash and parent link, in constant memory,
        and report the first broken link. (Cutting blocks off the top leaves a valid shorter
        chain: compare the tip with an export or a published anchor to detect that.)"""
        with self._file.snapshot("verify") as conn:
            if conn is None:
                return VerifyReport(True, 0, 0, Tip(-1, ""))
            return verify_chain(conn)

    def export(self, out: TextIO) -> ExportReport:
        """Write the whole chain as NDJSON (format: ``local_export``), from one snapshot."""
        with self._file.snapshot("export") as conn:
            if conn is None:
                raise LedgerError(f"nothing to export: no ledger at {self.path} yet")
            return export_chain(conn, out)

    def import_(self, lines: Iterable[str | bytes]) -> ImportReport:
        """Append an export's blocks: all of them into an empty ledger, or those beyond this
        ledger's tip when this ledger is a prefix of the export. Every hash is checked; on any
        fault nothing is written and ``LedgerImportError`` names the height."""
        with self._file.lock, self._file.errors("import into", os_errors=False):
            conn = self._file.create()
            with self._file.transaction(conn):
                return import_chain(conn, lines)


def _append(conn: sqlite3.Connection, payloads: list[str]) -> BuiltBlock:
    """Build and insert the next block (inside the caller's write transaction)."""
    row = conn.execute(
        "SELECT height, hash, time FROM blocks ORDER BY height DESC LIMIT 1"
    ).fetchone()
    if row is None:
        (chain_id,) = conn.execute("SELECT value FROM meta WHERE key = 'chain_id'").fetchone()
        height, parent, parent_time = 0, chain_id, 0
    else:
        height, parent, parent_time = row[0] + 1, row[1], row[2]
    # Block times never go backwards, even if the clock does.
    built = build_block(height, parent, max(int(time.time()), parent_time), payloads)
    h = built.header
    conn.execute(
        "INSERT INTO blocks VALUES (?, ?, ?, ?, ?)",
        (h.height, h.hash, h.parent_hash, h.time, h.tx_root),
    )
    conn.executemany(
        "INSERT INTO entries (height, idx, txid, sender, payload) VALUES (?, ?, ?, ?, ?)",
        [(height, i, t, s, p) for i, (t, s, p) in enumerate(built.entries)],
    )
    return built
