"""Multipart messages in the indexer: parts waiting for their siblings, assembly, expiry, and
putting parts back after a reorganisation.

Parts wait in the catalog (``CatalogStore.add_part``) keyed by part 0's txid, so a set can
complete across any number of blocks and runs. :class:`MultipartDesk` decides what happens to
each arriving part and tells the indexer what to record: refusals (rejections) and, when a set
completes, the joined text to handle as a message. The rules are in the indexer's module
docstring; the ones that need care are explained where they are applied.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from etdb.index.store import CatalogStore, PendingPart, Position
from etdb.index.validate import Rejected, guarded
from etdb.ledger import Block, Ledger
from etdb.ledger.follow import Cursor
from etdb.record import Part, join, parse_part
from etdb.record.multipart import MULTIPART_PREFIXES

#: Meta key noting, for the blocks of one commit, the earlier parts each consumed (completed
#: or expired); keyed by the commit's last height. See :meth:`MultipartDesk.rollback`.
META_CONSUMED = "multipart.consumed.{height}"
#: Refusals decided by a block rather than by one of its entries (expiry) sort before them.
BEFORE_ENTRIES = -1


def is_multipart(payload: str) -> bool:
    return payload.lstrip().startswith(MULTIPART_PREFIXES)


def read_part(payload: str) -> Part | Rejected:
    """Parse a multipart part and verify its own signature."""
    return guarded("multipart", lambda: parse_part(payload.lstrip(), verify=True))


def part_key(part: Part, txid: str) -> str:
    """Parts are grouped by part 0's txid: its own for part 0, the reference for the others."""
    return (txid if part.part == 0 else part.reference).lower()


def describe_indexes(indexes: Sequence[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2, 5"``."""
    spans: list[list[int]] = []
    for i in indexes:
        if spans and spans[-1][1] == i - 1:
            spans[-1][1] = i
        else:
            spans.append([i, i])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


# -- pure rules -------------------------------------------------------------------------------


def _head(waiting: Sequence[PendingPart]) -> PendingPart | None:
    return next((p for p in waiting if p.part == 0), None)


def _ledger_order(parts: Sequence[PendingPart]) -> list[PendingPart]:
    return sorted(parts, key=lambda p: (p.position.height, p.position.index))


def _foreign(part: PendingPart, head: PendingPart) -> str | None:
    """Why ``part`` cannot belong to the message ``head`` (part 0) starts, if it cannot."""
    if part.address != head.address:
        return (
            f"multipart part {part.part} of {head.key} is signed by {part.address}, "
            f"but part 0 by {head.address}"
        )
    if part.max_index != head.max_index:
        return (
            f"multipart part {part.part} of {head.key} says the last part is {part.max_index}, "
            f"part 0 says {head.max_index}"
        )
    return None


def admit(candidate: PendingPart, waiting: Sequence[PendingPart]) -> Rejected | None:
    """Whether a verified part may wait with the parts already under its key.

    Part 0 defines the message (signer and last index): once it is known, parts that disagree
    are refused at once. Before it arrives, a part by another signer can only wait; it is
    refused when the set completes. Of two parts by one signer at one index, the first on the
    ledger stands (a signer contradicting itself gets no say in which is right).
    """
    head = candidate if candidate.part == 0 else _head(waiting)
    if head is not None and head is not candidate:
        reason = _foreign(candidate, head)
        if reason:
            return Rejected("multipart", reason)
    for other in waiting:
        if other.part == candidate.part and other.address == candidate.address:
            what = "duplicate of" if other.text == candidate.text else "conflicts with"
            return Rejected(
                "multipart",
                f"multipart part {candidate.part} of {candidate.key} {what} the part "
                f"already sent in {other.txid}",
            )
    return None


@dataclass(frozen=True, slots=True)
class Assembly:
    """A completed set: the joined text, its parts in order, and the parts that did not belong
    (another signer or last index than part 0), each with its reason."""

    text: str
    members: tuple[PendingPart, ...]
    strays: tuple[tuple[PendingPart, str], ...]


def assemble(waiting: Sequence[PendingPart]) -> Assembly | Rejected | None:
    """Join a key's parts once part 0 and every part to its last index are in; None while
    incomplete, Rejected if the complete set cannot be joined (an empty part, say)."""
    head = _head(waiting)
    if head is None:
        return None
    members: dict[int, PendingPart] = {}
    strays: list[tuple[PendingPart, str]] = []
    for p in _ledger_order(waiting):
        reason = _foreign(p, head)
        if reason is None and p.part in members:
            reason = f"multipart part {p.part} of {head.key} repeats {members[p.part].txid}"
        if reason is None:
            members[p.part] = p
        else:
            strays.append((p, reason))
    if len(members) < head.max_index + 1:
        return None
    ordered = tuple(members[i] for i in range(head.max_index + 1))
    # Stored parts were verified on arrival: parse again without re-checking signatures.
    text = guarded(
        "multipart",
        lambda: join(
            [parse_part(p.text.lstrip(), verify=False) for p in ordered],
            part0_txid=head.key,
            verify=False,
        ),
    )
    if isinstance(text, Rejected):
        return text
    return Assembly(text, ordered, tuple(strays))


def missing_parts(waiting: Sequence[PendingPart]) -> list[int]:
    head = _head(waiting)
    top = head.max_index if head else max(p.max_index for p in waiting)
    have = {p.part for p in waiting if head is None or p.address == head.address}
    return [i for i in range(top + 1) if i not in have]


# -- the desk ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Refusal:
    """A rejection to record: of transaction ``txid``, decided at ``position``."""

    why: Rejected
    txid: str
    payload: str
    position: Position


@dataclass(frozen=True, slots=True)
class Joined:
    """A completed multipart message: handle ``text`` as if sent in one transaction ``key``."""

    text: str
    key: str
    txids: tuple[str, ...]


class MultipartDesk:
    """Waiting parts of one catalog, block by block (inside the indexer's transaction)."""

    def __init__(self, store: CatalogStore, ledger: Ledger, expiry: int) -> None:
        self.store = store
        self.ledger = ledger
        self.expiry = expiry
        self._consumed: list[PendingPart] = []  # parts the current block removed
        # A lower bound of the oldest waiting part's block time, None when none wait: blocks
        # that cannot expire anything skip the query (and the flush of the store's buffered
        # writes that comes with it), which matters on a ledger without multiparts.
        self._floor: float | None = float("-inf")
        # Every read of the store flushes its buffered inserts, and most sets complete within
        # a batch of blocks, so waiting parts are kept here: ``_waiting`` holds the waiting
        # parts of the keys seen this run (stored or not), ``_unsaved`` those not yet written,
        # which :meth:`save` writes before the indexer commits. ``_known_all``: the store had
        # no waiting part when the run began (and no rollback since), so a key not in
        # ``_waiting`` has none. All of it is reset by each run: a failed run's transaction
        # took its writes with it.
        self._waiting: dict[str, list[PendingPart]] = {}
        self._unsaved: dict[str, list[PendingPart]] = {}
        # height -> {"hash", "parts"}: the notes of this commit's blocks, written by save().
        self._notes: dict[int, dict[str, Any]] = {}
        self._known_all = False

    def begin_run(self) -> None:
        """Learn whether any part waits (another process may have written the catalog)."""
        waiting = self.store.pending_multiparts()
        self._floor = float("-inf") if waiting else None
        self._known_all = not waiting
        self._waiting.clear()
        self._unsaved.clear()
        self._notes.clear()

    def save(self) -> None:
        """Write the parts still waiting, and the notes of consumed parts, to the store (before
        the indexer commits, and before anything reads or rolls back the store's parts)."""
        for parts in self._unsaved.values():
            for part in parts:
                self.store.add_part(part)
        self._unsaved.clear()
        if self._notes:
            self._write_notes(self._notes)
        self._notes = {}

    def _write_notes(self, notes: dict[int, dict[str, Any]]) -> None:
        # One meta row per commit, not per block: each write flushes the store's buffer.
        doc = {str(h): note for h, note in sorted(notes.items())}
        self.store.set_meta(META_CONSUMED.format(height=max(notes)), json.dumps(doc))

    def begin_block(self, block: Block) -> list[Refusal]:
        """Expire sets whose first part is older than the expiry (block time): every part of
        such a set is refused, at this block, since it is this block's time that decided."""
        self._consumed = []
        before = block.time - self.expiry
        if self._floor is None or before <= self._floor:
            return []
        self.save()
        expired = self.store.expire_parts(before)
        self._floor = before
        groups: dict[str, list[PendingPart]] = {}
        for p in expired:
            groups.setdefault(p.key, []).append(p)
        at = Position(block.height, BEFORE_ENTRIES, block.hash, block.time)
        refusals: list[Refusal] = []
        for key, old in groups.items():
            self._waiting.pop(key, None)
            newer = self.store.parts(key)  # the rest of the set goes with its first part
            if newer:
                self.store.drop_parts(key)
            group = _ledger_order([*old, *newer])
            self._consumed.extend(group)
            last = max(p.max_index for p in group)
            why = Rejected(
                "multipart",
                f"multipart incomplete after {self.expiry} s: missing parts "
                f"{describe_indexes(missing_parts(group))} of 0-{last} (key {key})",
            )
            refusals.extend(Refusal(why, p.txid, p.text, at) for p in group)
        return refusals

    def arrive(self, txid: str, payload: str, pos: Position) -> tuple[list[Refusal], Joined | None]:
        """Take one ``oip-mp(`` payload: refuse it, keep it waiting, or complete its set."""
        part = read_part(payload)
        if isinstance(part, Rejected):
            return [Refusal(part, txid, payload, pos)], None
        key = part_key(part, txid)
        waiting = self._parts_of(key)
        # With no sibling waiting, a later part may be one of a set already assembled (a
        # resend). Part 0 cannot be: the key is its own, new txid.
        if not waiting and part.part > 0 and self.store.record_state(key) is not None:
            why = Rejected(
                "multipart", f"multipart part {part.part} refers to record {key}, already indexed"
            )
            return [Refusal(why, txid, payload, pos)], None
        pending = PendingPart(key, txid, part.part, part.max_index, part.address, payload, pos)
        problem = admit(pending, waiting)
        if problem is not None:
            return [Refusal(problem, txid, payload, pos)], None
        done = assemble([*waiting, pending])
        if done is None:
            self._add(pending)
            return [], None
        # Complete: the part that completes the set is never stored, the others go.
        if len(waiting) > len(self._unsaved.pop(key, [])):
            self.store.drop_parts(key)  # some were written in an earlier batch
        del self._waiting[key]
        self._consumed.extend(waiting)
        if isinstance(done, Rejected):
            return [Refusal(done, key, payload, pos)], None
        strays = [Refusal(Rejected("multipart", r), p.txid, p.text, pos) for p, r in done.strays]
        return strays, Joined(done.text, key, tuple(p.txid for p in done.members))

    def end_block(self, block: Block) -> None:
        """Note the parts from earlier blocks this block consumed, for :meth:`rollback`."""
        earlier = [
            [p.txid, p.position.height, p.position.index]
            for p in self._consumed
            if p.position.height < block.height
        ]
        if earlier:
            self._notes[block.height] = {"hash": block.hash, "parts": earlier}

    def rollback(self, fork: int, old: Cursor) -> None:
        """After ``store.rollback(fork)`` (and :meth:`save` before it): put back the parts below
        the fork that orphaned blocks had consumed. The store forgets what those blocks did,
        but not the parts they removed; without this a multipart completed just above a fork
        would never complete again when its last part is mined anew. ``old`` is the cursor
        before the rollback."""
        self._waiting.clear()  # the store just forgot parts above the fork
        self._known_all = False
        hashes = dict(old.recent)
        blocks: dict[int, Block] = {}
        for last in range(fork, old.height + 1):  # a commit ending at or above the fork
            key = META_CONSUMED.format(height=last)
            raw = self.store.get_meta(key)
            if not raw:
                continue
            self.store.set_meta(key, "")
            kept: dict[int, dict[str, Any]] = {}
            for h, note in ((int(h), n) for h, n in json.loads(raw).items()):
                if h < fork:
                    kept[h] = note  # a block that stays: its note stays
                elif note["hash"] == hashes.get(h):  # else a block already rolled back
                    for txid, part_height, index in note["parts"]:
                        if part_height < fork:
                            self._restore(txid, part_height, index, blocks)
            if kept:
                self._write_notes(kept)

    def _restore(self, txid: str, height: int, index: int, blocks: dict[int, Block]) -> None:
        # Below the fork, so still on the chain; it passed admission once already.
        if height not in blocks:
            blocks[height] = self.ledger.block(height)
        entry = next((e for e in blocks[height].entries if e.txid == txid), None)
        if entry is None or entry.index != index:
            return  # the chain moved again: the next follow() sees it and rolls back further
        part = read_part(entry.payload)
        if isinstance(part, Rejected):
            return
        pos = Position(entry.height, entry.index, entry.block_hash, entry.time)
        key = part_key(part, txid)
        self._add(
            PendingPart(key, txid, part.part, part.max_index, part.address, entry.payload, pos)
        )

    def _parts_of(self, key: str) -> list[PendingPart]:
        if key not in self._waiting:
            self._waiting[key] = [] if self._known_all else self.store.parts(key)
        return self._waiting[key]

    def _add(self, part: PendingPart) -> None:
        self._parts_of(part.key).append(part)
        self._unsaved.setdefault(part.key, []).append(part)
        t = part.position.time
        self._floor = t if self._floor is None else min(self._floor, t)
