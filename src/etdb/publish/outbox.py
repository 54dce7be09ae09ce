"""Sending one journaled operation exactly once, and finishing what a crash interrupted.

The journal (:mod:`etdb.publish.journal`) records an intent before every transaction and its
txid right after. A crash can therefore leave at most one part with an intent and no txid:
it may or may not have reached the ledger. Before anything is sent again, :func:`send` looks
that exact text up on the ledger (:func:`etdb.ledger.messages.find_payload`, from the height
journaled when the operation began, mempool / pending block included): found, its txid is
journaled and it is not sent again; not found, it never made it and is sent now. Re-planning
reproduces the very same texts (deterministic signatures, the journaled timestamp and part 0's
journaled txid), and the journal refuses a re-planned text that differs.

Crash points and what the next run does:

* before ``begin``: nothing journaled, nothing sent; the caller starts afresh.
* after ``begin``, before the first ``will_send``: the operation is pending with no parts;
  every part is sent.
* after ``will_send``, before or after the ledger accepted the transaction: looked up, then
  journaled (found) or sent (not found).
* after ``sent``, between parts: the parts with txids are kept; the rest are sent.
* after the last ``sent``, before ``finish``: nothing is sent; the operation is finished.
"""

from __future__ import annotations

from collections.abc import Callable

from etdb.ledger.base import Ledger, TxRef
from etdb.ledger.messages import find_payload, publish_message
from etdb.publish.journal import Journal, JournalEntry, JournalError, Operation
from etdb.record.signing import PrivateKey

__all__ = ["recover", "send"]


def send(
    journal: Journal,
    op: Operation,
    ledger: Ledger,
    key: PrivateKey,
    *,
    on_sent: Callable[[int, TxRef], None] | None = None,
) -> JournalEntry:
    """Put the operation ``op`` on ``ledger`` (what is not there yet) and finish it.

    ``on_sent(i, ref)`` is called for each part once its txid is journaled, including a part
    found on the ledger after a crash. Returns the dataset's journal entry.
    """
    _check_binding(journal, ledger, key)
    op = journal.operation(op.id)  # as journaled now: the caller's copy may be stale
    if op.state == "abandoned":
        raise JournalError(f"operation {op.id} ({op.kind} of {op.sid}) was abandoned")
    if op.state == "done":
        return journal.finish(op.id)  # the dataset as it stands

    def record(index: int, ref: TxRef) -> None:
        journal.sent(op.id, index, ref.txid)
        if on_sent is not None:
            on_sent(index, ref)

    done: list[TxRef] = []
    for part in op.parts:
        if part.txid is not None:
            done.append(TxRef(part.txid))
            continue
        # An intent without a txid: the crash came after will_send(), perhaps after the
        # ledger took the transaction. Never send it again if it is there.
        found = find_payload(ledger, part.text, since_height=op.since_height)
        if found is None:
            break  # it never made it: publish_message sends it (will_send accepts the retry)
        record(part.index, found)
        done.append(found)
    publish_message(
        ledger,
        op.payload,
        key,
        sent=done,
        before_send=lambda index, text: journal.will_send(op.id, index, text),
        on_sent=record,
    )
    return journal.finish(op.id)


def recover(journal: Journal, ledger: Ledger, key: PrivateKey) -> list[JournalEntry]:
    """Finish every operation a crash left pending, oldest first."""
    return [send(journal, op, ledger, key) for op in journal.pending()]


def _check_binding(journal: Journal, ledger: Ledger, key: PrivateKey) -> None:
    if ledger.url != journal.ledger_url:
        raise JournalError(
            f"journal {journal.path} is for ledger {journal.ledger_url}, not {ledger.url}"
        )
    if key.address != journal.publisher:
        raise JournalError(
            f"journal {journal.path} is for publisher {journal.publisher}, not {key.address}"
        )
