"""Following a ledger from a persisted cursor, detecting reorganisations, for every backend.

The caller (the indexer) stores a :class:`Cursor` after it has applied each block. On the next
run :func:`follow` checks that the blocks the cursor remembers are still on the best chain; if
one is not (a reorganisation orphaned it), it yields a :class:`Rollback` naming the first height
whose effects must be undone, then continues from the fork point. Only blocks at least
``confirmations`` deep are yielded, so shallow reorgs never reach the catalog at all when the
depth is chosen well.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from etdb.ledger.base import Block, Ledger, LedgerError

#: How many recent (height, hash) pairs a cursor keeps to find a fork point.
DEFAULT_HISTORY = 128
#: Blocks asked of the backend at once (one query on the embedded ledger, a batch on RPC).
BATCH = 500


class DeepReorgError(LedgerError):
    """The chain forked below everything the cursor remembers: rebuild from scratch."""

    def __init__(self, oldest: int) -> None:
        super().__init__(
            f"the ledger reorganised below height {oldest}, the oldest block this cursor "
            "remembers; rebuild the catalog from the ledger (etdb index --rebuild)"
        )
        self.oldest = oldest


@dataclass(frozen=True)
class Cursor:
    """The last block applied, plus recent (height, hash) pairs to locate a fork."""

    height: int = -1
    block_hash: str = ""
    recent: tuple[tuple[int, str], ...] = field(default=())
    history: int = DEFAULT_HISTORY

    def advance(self, block: Block) -> Cursor:
        recent = (*self.recent, (block.height, block.hash))[-self.history :]
        return Cursor(block.height, block.hash, recent, self.history)

    def rewind(self, height: int) -> Cursor:
        """The cursor as it was when the block at ``height`` was the last one applied."""
        recent = tuple(p for p in self.recent if p[0] <= height)
        if not recent:
            return Cursor(history=self.history)
        h, hsh = recent[-1]
        return Cursor(h, hsh, recent, self.history)

    def to_json(self) -> dict[str, Any]:
        return {
            "height": self.height,
            "block_hash": self.block_hash,
            "recent": [list(p) for p in self.recent],
            "history": self.history,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Cursor:
        return cls(
            int(doc["height"]),
            str(doc["block_hash"]),
            tuple((int(h), str(x)) for h, x in doc.get("recent", ())),
            int(doc.get("history", DEFAULT_HISTORY)),
        )


@dataclass(frozen=True)
class BlockEvent:
    """Apply this block, then persist ``cursor`` (the cursor after it)."""

    block: Block
    cursor: Cursor


@dataclass(frozen=True)
class Rollback:
    """Undo everything that came from heights >= ``from_height``, then persist ``cursor``."""

    from_height: int
    cursor: Cursor


def _fork_point(ledger: Ledger, cursor: Cursor) -> Cursor:
    """The newest remembered block still on the best chain (cursor rewound to it)."""
    for height, block_hash in reversed(cursor.recent):
        if ledger.block_hash(height) == block_hash:
            return cursor.rewind(height)
    if cursor.recent and cursor.recent[0][0] > 0:
        raise DeepReorgError(cursor.recent[0][0])
    return Cursor(history=cursor.history)  # forked at or below the first block: start over


def follow(
    ledger: Ledger,
    cursor: Cursor | None = None,
    *,
    confirmations: int | None = None,
    limit: int | None = None,
) -> Iterator[BlockEvent | Rollback]:
    """Yield rollbacks and confirmed blocks after ``cursor`` up to the current safe tip.

    ``confirmations`` defaults to the ledger's; ``limit`` caps the number of blocks yielded
    (so a caller can commit in batches). The generator stops at the safe tip; call it again
    later to continue.
    """
    cursor = cursor or Cursor()
    depth = ledger.confirmations if confirmations is None else confirmations
    if depth < 1:
        raise ValueError("confirmations must be at least 1")
    if cursor.height >= 0 and ledger.block_hash(cursor.height) != cursor.block_hash:
        cursor = _fork_point(ledger, cursor)
        yield Rollback(cursor.height + 1, cursor)
    yielded = 0
    while limit is None or yielded < limit:
        safe = ledger.tip().height - (depth - 1)
        if cursor.height + 1 > safe:
            return
        stop = min(safe, cursor.height + BATCH)
        if limit is not None:
            stop = min(stop, cursor.height + (limit - yielded))
        for block in ledger.blocks(cursor.height + 1, stop):
            if cursor.height >= 0 and block.parent_hash != cursor.block_hash:
                # The chain changed under us between two reads: find where, undo, go on.
                cursor = _fork_point(ledger, cursor)
                yield Rollback(cursor.height + 1, cursor)
                break
            cursor = cursor.advance(block)
            yield BlockEvent(block, cursor)
            yielded += 1
