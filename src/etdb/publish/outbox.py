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

A node that takes no more unconfirmed transactions in a row (``ChainTooLong``: nothing was
sent) leaves the same state as a crash after ``will_send``. With a :class:`ChainWait`,
:func:`send` waits for a new block and goes through the very same steps again (the intent is
looked up first, so even a node that lied about refusing it gets no duplicate), for at most
``timeout`` seconds from the first refusal; then, or without a ChainWait, the error stops it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from etdb.ledger.base import Ledger, LedgerError, TxRef
from etdb.ledger.messages import find_payload, publish_message
from etdb.ledger.rpc_errors import ChainTooLong
from etdb.publish.journal import Journal, JournalEntry, JournalError, Operation
from etdb.record.signing import PrivateKey

__all__ = ["ChainWait", "ChainWaitTimeout", "recover", "send"]


class ChainWaitTimeout(LedgerError):
    """No block made room for more unconfirmed transactions within the wait's timeout."""


@dataclass(frozen=True)
class ChainWait:
    """How :func:`send` waits when the node refuses a longer unconfirmed chain: for a block
    (the tip polled every ``poll`` seconds), at most ``timeout`` seconds from the first refusal
    of one operation; ``on_wait(sid, refusal)`` is told each time it starts waiting."""

    timeout: float
    on_wait: Callable[[str, ChainTooLong], None] | None = None
    poll: float = 1.0

    def for_block(self, ledger: Ledger, sid: str, height: int, refusal: ChainTooLong,
                  deadline: float) -> None:  # fmt: skip
        """Return once the tip is above ``height``; ChainWaitTimeout at ``deadline``."""
        if self.on_wait is not None:
            self.on_wait(sid, refusal)
        while ledger.tip().height <= height:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChainWaitTimeout(
                    f"{refusal}; no block confirmed them within {self.timeout:g} s (is the chain "
                    "mined? on regtest: generatetoaddress). Nothing of the refused transaction "
                    "was sent; raise the publish_chain_wait setting to wait longer"
                )
            time.sleep(min(self.poll, left))


def send(
    journal: Journal,
    op: Operation,
    ledger: Ledger,
    key: PrivateKey,
    *,
    on_sent: Callable[[int, TxRef], None] | None = None,
    wait: ChainWait | None = None,
) -> JournalEntry:
    """Put the operation ``op`` on ``ledger`` (what is not there yet) and finish it.

    ``on_sent(i, ref)`` is called for each part once its txid is journaled, including a part
    found on the ledger after a crash. ``wait``: see the module docstring. Returns the
    dataset's journal entry.
    """
    _check_binding(journal, ledger, key)
    deadline = None
    while True:
        height = ledger.tip().height if wait is not None else 0
        try:
            return _send_once(journal, op.id, ledger, key, on_sent)
        except ChainTooLong as refusal:
            if wait is None:
                raise
            deadline = deadline or time.monotonic() + wait.timeout
            wait.for_block(ledger, op.sid, height, refusal, deadline)


def _send_once(
    journal: Journal,
    op_id: int,
    ledger: Ledger,
    key: PrivateKey,
    on_sent: Callable[[int, TxRef], None] | None,
) -> JournalEntry:
    op = journal.operation(op_id)  # as journaled now: the caller's copy may be stale
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


def recover(
    journal: Journal, ledger: Ledger, key: PrivateKey, *, wait: ChainWait | None = None
) -> list[JournalEntry]:
    """Finish every operation a crash (or a refusal) left pending, oldest first."""
    return [send(journal, op, ledger, key, wait=wait) for op in journal.pending()]


def _check_binding(journal: Journal, ledger: Ledger, key: PrivateKey) -> None:
    if ledger.url != journal.ledger_url:
        raise JournalError(
            f"journal {journal.path} is for ledger {journal.ledger_url}, not {ledger.url}"
        )
    if key.address != journal.publisher:
        raise JournalError(
            f"journal {journal.path} is for publisher {journal.publisher}, not {key.address}"
        )
