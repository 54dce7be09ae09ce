"""Putting one OIP message on any ledger: a single transaction, or signed multipart parts.

A message (publish, edit, deactivate floData) that fits ``ledger.max_payload`` goes out as one
transaction. A larger one is cut into ``oip-mp(...)`` parts (``etdb.record.multipart``): part 0
first, then every later part naming part 0's txid, as go-etdb sent them. Signatures are
deterministic, so re-planning after a crash reproduces the very same part texts: a caller can
resume with the txids it already holds and nothing is sent twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from etdb.ledger.base import FeeEstimate, Ledger, TxRef, payload_size
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
    on_sent: Callable[[int, TxRef], None] | None = None,
) -> list[TxRef]:
    """Send ``payload``; return the txids of every transaction (part 0 first).

    ``sent`` holds transactions of this same message already sent (e.g. recorded in a journal
    before a crash); they are not sent again. ``on_sent(i, ref)`` is called right after each
    new transaction, so the caller can record it before anything else can fail.
    """
    refs = list(sent)
    texts = plan(ledger, payload, key, refs[0].txid if refs else None)
    for i in range(len(refs), len(texts)):
        if i == 1:  # later parts need part 0's real txid
            texts = plan(ledger, payload, key, refs[0].txid)
        ref = ledger.publish(texts[i])
        refs.append(ref)
        if on_sent is not None:
            on_sent(i, ref)
    return refs


def estimate_cost(ledger: Ledger, payloads: Sequence[str], key: PrivateKey) -> FeeEstimate:
    """The fee to publish every payload (with multipart where needed)."""
    texts = [t for p in payloads for t in plan(ledger, p, key)]
    return ledger.estimate_fee(sum(payload_size(t) for t in texts), len(texts))
