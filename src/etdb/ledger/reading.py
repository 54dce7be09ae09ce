"""Reading one OIP message back from a ledger by its txid, multipart parts joined.

``etdb record check TXID`` uses this to verify a dataset from the ledger alone, without trusting
any catalog: the transaction is looked up, its payload read from its block, and, when it is
part 0 of an ``oip-mp`` series, the later parts (which name part 0's txid, so they can only be in
the same block or later ones) are collected from the following blocks and joined.
"""

from __future__ import annotations

from dataclasses import dataclass

from etdb.ledger.base import Ledger, LedgerError
from etdb.record.errors import MultipartError
from etdb.record.multipart import MULTIPART_PREFIXES, Part, join, parse_part

__all__ = ["DEFAULT_SCAN_BLOCKS", "LedgerMessage", "MessageNotFound", "read_message"]

#: How many blocks after part 0 are searched for the later parts: oipd gives up on an
#: incomplete multipart after a week, about 15,000 FLO blocks.
DEFAULT_SCAN_BLOCKS = 20_000


class MessageNotFound(LedgerError):
    """The ledger has no such transaction, or the message's parts are not all on it."""


@dataclass(frozen=True, slots=True)
class LedgerMessage:
    text: str  # the whole message (multipart data joined)
    txids: tuple[str, ...]  # part 0 first
    height: int  # of the first transaction
    block_hash: str
    time: int
    sender: str | None


def read_message(
    ledger: Ledger, txid: str, *, scan_blocks: int = DEFAULT_SCAN_BLOCKS
) -> LedgerMessage:
    """The message whose (first) transaction is ``txid``."""
    status = ledger.transaction(txid)
    if status is None or status.height is None:
        raise MessageNotFound(f"{ledger.url} has no transaction {txid} in a block")
    block = ledger.block(status.height)
    entry = next((e for e in block.entries if e.txid.lower() == txid.lower()), None)
    if entry is None:
        raise MessageNotFound(f"transaction {txid} carries no payload in block {block.height}")
    found = LedgerMessage(
        entry.payload, (entry.txid,), block.height, block.hash, block.time, entry.sender
    )
    if not entry.payload.startswith(MULTIPART_PREFIXES):
        return found
    try:
        head = parse_part(entry.payload, verify=False)
    except MultipartError as exc:
        raise MessageNotFound(f"transaction {txid}: {exc}") from None
    if head.part != 0:
        raise MessageNotFound(
            f"transaction {txid} is part {head.part} of a multipart record, not its first: "
            f"check part 0 ({head.reference or 'unknown'}) instead"
        )
    parts: dict[int, tuple[Part, str]] = {0: (head, entry.txid)}
    stop = min(ledger.tip().height, block.height + scan_blocks)
    for later in ledger.blocks(block.height, stop):
        for e in later.entries:
            if not e.payload.startswith(MULTIPART_PREFIXES) or e.txid == entry.txid:
                continue
            try:
                part = parse_part(e.payload, verify=False)
            except MultipartError:
                continue
            if part.reference.lower() == entry.txid.lower() and part.part not in parts:
                parts[part.part] = (part, e.txid)
        if len(parts) == head.max_index + 1:
            break
    ordered = [parts[i] for i in sorted(parts)]
    try:
        text = join([p for p, _ in ordered], part0_txid=entry.txid)
    except MultipartError as exc:
        raise MessageNotFound(
            f"multipart record {txid}: {exc} (searched blocks {block.height}-{stop})"
        ) from None
    return LedgerMessage(
        text,
        tuple(t for _, t in ordered),
        block.height,
        block.hash,
        block.time,
        entry.sender,
    )
