"""Putting one OIP message on any ledger: a single transaction, or signed multipart parts.

A message (publish, edit, deactivate floData) that fits ``ledger.max_payload`` goes out as one
transaction. A larger one is cut into ``oip-mp(...)`` parts (``etdb.record.multipart``): part 0
first, then every later part naming part 0's txid, as go-etdb sent them. Signatures are
deterministic, so re-planning after a crash reproduces the very same part texts: a caller can
resume with the txids it already holds and nothing is sent twice.

:func:`find_payload` answers the question a resuming sender must ask before sending again:
"is this exact text already on the ledger (or on its way into a block)?"
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from etdb.ledger.base import Block, FeeEstimate, Ledger, TxRef, payload_size
from etdb.record.multipart import plan_parts, sign_part
from etdb.record.signing import PrivateKey

#: Stands in for part 0's txid when only sizes matter (planning, fee estimates).
PLACEHOLDER_TXID = "0" * 64


def needs_multipart(ledger: Ledger, payload: str) -> bool:
    return payload_size(payload) > ledger.max_payload


def plan(ledger: Ledger, payload: str, key: PrivateKey, part0_txid: str | None = None) -> list[str]:
    """The transaction payloads that carry ``payload`` (one, or the signed parts)."""
    if not needs_multipart(ledger, payload):
        return [payload]
    chunks = plan_parts(payload, address=key.address, limit=ledger.max_payload)
    max_index = len(chunks) - 1
    reference = part0_txid or PLACEHOLDER_TXID
    return [
        sign_part(key, i, max_index, reference if i else "", chunk, limit=ledger.max_payload)
        for i, chunk in enumerate(chunks)
    ]


def publish_message(
    ledger: Ledger,
    payload: str,
    key: PrivateKey,
    *,
    sent: Sequence[TxRef] = (),
    before_send: Callable[[int, str], None] | None = None,
    on_sent: Callable[[int, TxRef], None] | None = None,
) -> list[TxRef]:
    """Send ``payload``; return the txids of every transaction (part 0 first).

    ``sent`` holds transactions of this same message already sent (e.g. recorded in a journal
    before a crash); they are not sent again. ``before_send(i, text)`` is called with the exact
    text right before each ``ledger.publish``, so a journal can record the intent first (and
    later look that text up on the ledger); ``on_sent(i, ref)`` is called right after each new
    transaction, so the caller can record it before anything else can fail.
    """
    refs = list(sent)
    texts = plan(ledger, payload, key, refs[0].txid if refs else None)
    for i in range(len(refs), len(texts)):
        if i == 1:  # later parts need part 0's real txid
            texts = plan(ledger, payload, key, refs[0].txid)
        if before_send is not None:
            before_send(i, texts[i])
        ref = ledger.publish(texts[i])
        refs.append(ref)
        if on_sent is not None:
            on_sent(i, ref)
    return refs


def find_payload(
    ledger: Ledger, payload: str, *, since_height: int, sender: str | None = None
) -> TxRef | None:
    """The transaction carrying exactly ``payload`` in a block at ``since_height`` or above, or
    still waiting for one (mempool, pending block), where the backend can see those; else None.

    ``sender`` narrows the search to that paying address where the ledger records senders
    (entries whose sender is unknown still match). Backends with a ``find_payload`` method
    (embedded: an indexed lookup; Bitcoin family: blocks and mempool; EVM: logs and the pending
    block) answer themselves; any other ledger is scanned block by block up to its tip. When
    several transactions carry the text, the oldest wins.
    """
    own = getattr(ledger, "find_payload", None)
    if callable(own):
        found: TxRef | None = own(payload, since_height=since_height, sender=sender)
        return found
    return scan_blocks(ledger.blocks(since_height, ledger.tip().height), payload, sender)


def scan_blocks(blocks: Iterable[Block], payload: str, sender: str | None = None) -> TxRef | None:
    """The first entry of ``blocks`` carrying exactly ``payload`` (and sent by ``sender`` when
    both are known), as a TxRef with its height."""
    for block in blocks:
        for entry in block.entries:
            if entry.payload != payload:
                continue
            if sender is not None and entry.sender is not None and entry.sender != sender:
                continue
            return TxRef(entry.txid, entry.height)
    return None


def estimate_cost(ledger: Ledger, payloads: Sequence[str], key: PrivateKey) -> FeeEstimate:
    """The fee to publish every payload (with multipart where needed)."""
    texts = [t for p in payloads for t in plan(ledger, p, key)]
    return ledger.estimate_fee(sum(payload_size(t) for t in texts), len(texts))
