"""Whole-chain operations on the embedded ledger: verify, export, import (``local_schema``
has the rules they check).

Export format: NDJSON, UTF-8, one JSON object per line.

* Line 1, the header: ``{"format": "etdb-local-ledger", "version": 1, "chain_id": …,
  "height": <tip height>, "hash": <tip hash>, "blocks": N, "entries": M}``.
* Then one line per block, heights 0..tip in order: ``{"height", "hash", "parent_hash",
  "time", "tx_root", "entries": [{"txid", "sender", "payload"}, …]}`` (entry index = position).

Everything in it can be recomputed from the payloads, the times and the chain id, so a reader
needs nothing but this file to check it. The header's tip makes a truncated file detectable.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from etdb.ledger.base import LedgerError, Tip
from etdb.ledger.local_schema import (
    FORMAT,
    FORMAT_VERSION,
    ChainBreak,
    ChainChecker,
    StoredBlock,
    is_hash,
)

# Blocks joined to their entries in chain order. SQLite walks blocks by rowid and entries by
# their (height, idx) primary key, so rows stream without a sort: constant memory.
_CHAIN_SQL = """
SELECT b.height, b.hash, b.parent_hash, b.time, b.tx_root, e.idx, e.txid, e.sender, e.payload
FROM blocks AS b LEFT JOIN entries AS e ON e.height = b.height
ORDER BY b.height, e.idx
"""


class LedgerImportError(LedgerError):
    """An export could not be imported; nothing was written. ``height`` is where, if known."""

    def __init__(self, message: str, height: int | None = None) -> None:
        super().__init__(message)
        self.height = height


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """Result of a full check: counts checked, and the first broken link if any."""

    ok: bool
    blocks: int
    entries: int
    tip: Tip
    broken_height: int | None = None
    problem: str | None = None

    def __str__(self) -> str:
        if self.ok:
            return (
                f"OK: {self.blocks} blocks, {self.entries} entries hash-link "
                f"(tip {self.tip.height} {self.tip.hash or '-'})"
            )
        return (
            f"BROKEN at height {self.broken_height}: {self.problem} "
            f"({self.blocks} blocks below it are intact)"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "blocks": self.blocks,
            "entries": self.entries,
            "tip": {"height": self.tip.height, "hash": self.tip.hash},
            "broken_height": self.broken_height,
            "problem": self.problem,
        }


@dataclass(frozen=True, slots=True)
class ExportReport:
    chain_id: str
    blocks: int
    entries: int
    tip: Tip


@dataclass(frozen=True, slots=True)
class ImportReport:
    """``matched`` blocks were already here (same hashes); ``blocks``/``entries`` were added."""

    chain_id: str
    matched: int
    blocks: int
    entries: int
    tip: Tip


def _stored_chain(
    conn: sqlite3.Connection,
) -> Iterator[tuple[StoredBlock, list[tuple[int, str, str | None, str]]]]:
    """Each stored block with its entries (idx, txid, sender, payload), streamed."""
    current: StoredBlock | None = None
    entries: list[tuple[int, str, str | None, str]] = []
    for height, bhash, parent, btime, root, idx, txid, sender, payload in conn.execute(_CHAIN_SQL):
        if current is None or current.height != height:
            if current is not None:
                yield current, entries
            current, entries = StoredBlock(height, bhash, parent, btime, root), []
        if txid is not None:
            entries.append((idx, txid, sender, payload))
    if current is not None:
        yield current, entries


def _tip(block: StoredBlock | None) -> Tip:
    return Tip(block.height, block.hash) if block is not None else Tip(-1, "")


def verify_chain(conn: sqlite3.Connection) -> VerifyReport:
    """Recompute every txid, tx_root, block hash and parent link of the stored chain."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'chain_id'").fetchone()
    checker = ChainChecker(row[0] if row else "")
    try:
        check_stored_chain(conn, checker)
    except ChainBreak as exc:
        return VerifyReport(
            False, checker.blocks, checker.entries, _tip(checker.prev), exc.height, exc.problem
        )
    return VerifyReport(True, checker.blocks, checker.entries, _tip(checker.prev))


def check_stored_chain(conn: sqlite3.Connection, checker: ChainChecker) -> None:
    """Feed every stored block to ``checker``; ChainBreak at the first fault.

    Entries are checked one at a time as rows arrive (memory bounded by one row); only the
    block header is held.
    """
    current: StoredBlock | None = None
    for height, bhash, parent, btime, root, idx, txid, sender, payload in conn.execute(_CHAIN_SQL):
        if current is None or current.height != height:
            if current is not None:
                checker.end()
            current = StoredBlock(height, bhash, parent, btime, root)
            checker.begin(current)
        if txid is not None:
            checker.entry(idx, txid, sender, payload)
    if current is not None:
        checker.end()
    tip = checker.prev.height if checker.prev is not None else -1
    stray = conn.execute(
        "SELECT height, idx FROM entries WHERE height > ? ORDER BY height, idx LIMIT 1", (tip,)
    ).fetchone()
    if stray is not None:
        raise ChainBreak(
            stray[0],
            f"entry {stray[1]} at height {stray[0]} has no block (the chain ends at {tip})",
        )


def _dumps(doc: Any) -> str:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def export_chain(conn: sqlite3.Connection, out: TextIO) -> ExportReport:
    """Write the header, then every block; ``conn`` must hold one read snapshot."""
    chain_id = conn.execute("SELECT value FROM meta WHERE key = 'chain_id'").fetchone()[0]
    blocks, entries = conn.execute(
        "SELECT (SELECT count(*) FROM blocks), (SELECT count(*) FROM entries)"
    ).fetchone()
    row = conn.execute("SELECT height, hash FROM blocks ORDER BY height DESC LIMIT 1").fetchone()
    tip = Tip(row[0], row[1]) if row else Tip(-1, "")
    header = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "chain_id": chain_id,
        "height": tip.height,
        "hash": tip.hash,
        "blocks": blocks,
        "entries": entries,
    }
    out.write(_dumps(header) + "\n")
    for block, rows in _stored_chain(conn):
        doc = {
            "height": block.height,
            "hash": block.hash,
            "parent_hash": block.parent_hash,
            "time": block.time,
            "tx_root": block.tx_root,
            "entries": [{"txid": t, "sender": s, "payload": p} for _, t, s, p in rows],
        }
        out.write(_dumps(doc) + "\n")
    return ExportReport(chain_id, blocks, entries, tip)


def _lines(lines: Iterable[str | bytes]) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(lines, 1):
        if isinstance(line, bytes):
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError:
                raise LedgerImportError(f"export line {number} is not UTF-8") from None
        if line.strip():
            yield number, line


def _parse(number: int, line: str, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(line)
    except ValueError as exc:
        raise LedgerImportError(f"export line {number} ({what}) is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise LedgerImportError(f"export line {number} ({what}) is not a JSON object")
    return doc


def _field(doc: dict[str, Any], name: str, kind: type, number: int) -> Any:
    value = doc.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise LedgerImportError(
            f"export line {number}: field {name!r} is missing or not a {kind.__name__}",
            doc.get("height") if isinstance(doc.get("height"), int) else None,
        )
    return value


def _read_header(lines: Iterator[tuple[int, str]]) -> dict[str, Any]:
    first = next(lines, None)
    if first is None:
        raise LedgerImportError("the export is empty (no header line)")
    number, line = first
    header = _parse(number, line, "header")
    if header.get("format") != FORMAT:
        raise LedgerImportError(f"not an etdb ledger export (format {header.get('format')!r})")
    if header.get("version") != FORMAT_VERSION:
        raise LedgerImportError(
            f"export format version {header.get('version')!r}; this etdb reads {FORMAT_VERSION}"
        )
    for name, kind in (("chain_id", str), ("height", int), ("hash", str), ("entries", int)):
        _field(header, name, kind, number)
    if not is_hash(header["chain_id"]):
        raise LedgerImportError("the export's chain_id is not 64 lowercase hex digits")
    return header


def import_chain(conn: sqlite3.Connection, lines: Iterable[str | bytes]) -> ImportReport:
    """Check and append an export inside the caller's write transaction (which rolls back on
    any exception, so a failed import writes nothing)."""
    stream = _lines(lines)
    header = _read_header(stream)
    chain_id = header["chain_id"]
    local_id = conn.execute("SELECT value FROM meta WHERE key = 'chain_id'").fetchone()[0]
    row = conn.execute("SELECT height, hash FROM blocks ORDER BY height DESC LIMIT 1").fetchone()
    local_tip = row[0] if row else -1
    if local_tip < 0:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'chain_id'", (chain_id,))
    elif local_id != chain_id:
        raise LedgerImportError(
            f"refusing to import: this ledger (chain id {local_id}) and the export (chain id "
            f"{chain_id}) are different chains; import into an empty ledger instead"
        )
    checker = ChainChecker(chain_id)
    matched = added = entries_added = 0
    for number, line in stream:
        doc = _parse(number, line, "block")
        block = StoredBlock(
            _field(doc, "height", int, number),
            _field(doc, "hash", str, number),
            _field(doc, "parent_hash", str, number),
            _field(doc, "time", int, number),
            _field(doc, "tx_root", str, number),
        )
        items = _field(doc, "entries", list, number)
        rows = []
        try:
            checker.begin(block)
            for index, item in enumerate(items):
                if not isinstance(item, dict):
                    raise ChainBreak(block.height, f"entry {index} is not a JSON object")
                txid, sender, payload = item.get("txid"), item.get("sender"), item.get("payload")
                if not isinstance(txid, str):
                    raise ChainBreak(block.height, f"entry {index} has no txid")
                checker.entry(index, txid, sender, payload)
                rows.append((block.height, index, txid, sender, payload))
            checker.end()
        except ChainBreak as exc:
            raise LedgerImportError(
                f"the export is damaged at height {exc.height} (line {number}): {exc.problem}; "
                "nothing was imported",
                exc.height,
            ) from None
        if block.height <= local_tip:
            (here,) = conn.execute(
                "SELECT hash FROM blocks WHERE height = ?", (block.height,)
            ).fetchone()
            if here != block.hash:
                raise LedgerImportError(
                    f"refusing to import: at height {block.height} this ledger has block {here} "
                    f"but the export has {block.hash}: the chains diverge",
                    block.height,
                )
            matched += 1
            continue
        conn.execute(
            "INSERT INTO blocks VALUES (?, ?, ?, ?, ?)",
            (block.height, block.hash, block.parent_hash, block.time, block.tx_root),
        )
        conn.executemany(
            "INSERT INTO entries (height, idx, txid, sender, payload) VALUES (?, ?, ?, ?, ?)",
            rows,
        )
        added += 1
        entries_added += len(rows)
    tip = _tip(checker.prev)
    if (tip.height, tip.hash) != (header["height"], header["hash"]):
        raise LedgerImportError(
            f"the export is incomplete: its header announces tip {header['height']} "
            f"{header['hash']} but the blocks end at {tip.height} {tip.hash or '-'}; "
            "nothing was imported",
            tip.height + 1,
        )
    if checker.entries != header["entries"]:
        raise LedgerImportError(
            f"the export's header announces {header['entries']} entries, its blocks hold "
            f"{checker.entries}; nothing was imported"
        )
    return ImportReport(chain_id, matched, added, entries_added, tip)
