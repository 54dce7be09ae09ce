"""Rows read from an embedded ledger file, checked for the types the reader trusts.

A ledger file can come from anywhere (an imported export, a copy, a foreign writer), and
SQLite stores any value in any column. So reads check what they hand on:

* A block's height, time and an entry's index must be integers; hashes and txids text; a
  sender text or NULL. Anything else is :class:`CorruptLedgerError` naming the block and
  column: the chain itself is damaged (``etdb ledger verify`` says where).
* A payload is one transaction's data, read and judged by the indexer, and one odd
  transaction must never stop it for good. So a payload that is not text is handed on, never
  raised: a BLOB that is UTF-8 is that text (its txid hashes those very bytes); other bytes
  are decoded with ``surrogateescape``, so each undecodable byte becomes a lone surrogate
  (U+DC80-U+DCFF) that the record text rule refuses wherever it is (the indexer rejects the
  payload with that reason; nothing is cleaned into a different, valid message). Reads take
  payloads as bytes (``CAST(payload AS BLOB)``: a TEXT value that is not UTF-8 would fail the
  whole query), so TEXT, BLOB and a number's text are decoded alike; NULL is empty.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from etdb.ledger.base import Block, CorruptLedgerError, Entry

__all__ = ["check_int", "check_text", "group_blocks", "payload_text"]


def _damaged(height: object, column: str, value: object, wanted: str) -> CorruptLedgerError:
    shown = repr(value)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    return CorruptLedgerError(
        f"the ledger file is damaged: block {height!r} has {column} {shown} "
        f"({type(value).__name__}), not {wanted} (etdb ledger verify shows where the chain breaks)"
    )


def check_int(height: object, column: str, value: Any) -> int:
    if type(value) is not int:  # bool is no height, and neither is a float or text
        raise _damaged(height, column, value, "an integer")
    return value


def check_text(height: object, column: str, value: Any, *, null: bool = False) -> Any:
    if isinstance(value, str) or (null and value is None):
        return value
    raise _damaged(height, column, value, "text or NULL" if null else "text")


def payload_text(value: Any) -> str:
    """A stored payload as the text handed on (see the module docstring)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return "" if value is None else str(value)  # NULL: a foreign schema without NOT NULL


def group_blocks(rows: list[tuple[Any, ...]]) -> Iterator[Block]:
    """Rows of the block/entry join (ordered by height, idx) as Blocks, checked."""
    current: tuple[int, str, str, int] | None = None
    entries: list[Entry] = []
    for height, bhash, parent, btime, txid, idx, sender, payload in rows:
        if current is None or current[0] != height:
            if current is not None:
                yield Block(*current, tuple(entries))
            current, entries = _header(height, bhash, parent, btime), []
        if txid is not None:
            entry = (
                check_text(height, "a txid", txid),
                check_int(height, "an entry index", idx),
                check_text(height, "a sender", sender, null=True),
                payload_text(payload),
            )
            entries.append(Entry(*current, *entry))
    if current is not None:
        yield Block(*current, tuple(entries))


def _header(height: Any, bhash: Any, parent: Any, btime: Any) -> tuple[int, str, str, int]:
    return (
        check_int(height, "height", height),
        check_text(height, "hash", bhash),
        check_text(height, "parent_hash", parent),
        check_int(height, "time", btime),
    )
