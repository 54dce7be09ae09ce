"""From JSON-RPC answers (block headers, full blocks, logs) to etdb blocks and entries.

Pure functions, no I/O, so the rules are testable without a node. Identifiers follow the rest
of etdb: txids and block hashes are 64 lowercase hex characters without ``0x`` (multipart
references need exactly that); addresses are lowercase ``0x…``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from etdb.ledger.base import Block, CorruptLedgerError, Entry
from etdb.ledger.evm_registry import RECORD_TOPIC

TOPIC = "0x" + RECORD_TOPIC.hex()
_HEX = frozenset("0123456789abcdef")

# (txid, index, sender, payload) of one entry, before the block's fields are added.
_Fields = tuple[str, int, str, str]


def node_hash(value: Any, what: str = "hash") -> str:
    """A node's ``0x…`` 32-byte hash as etdb spells it; CorruptLedgerError if malformed."""
    text = str(value).lower().removeprefix("0x")
    if len(text) != 64 or not _HEX.issuperset(text):
        raise CorruptLedgerError(f"the node gave a malformed {what}: {value!r}")
    return text


def txid_hex(txid: str) -> str:
    """A caller's txid (with or without ``0x``) as 64 lowercase hex; ValueError otherwise."""
    text = txid.lower().removeprefix("0x")
    if len(text) != 64 or not _HEX.issuperset(text):
        raise ValueError(f"not a transaction id (64 hex characters): {txid!r}")
    return text


def payload_text(hex_data: str | None) -> str | None:
    """The UTF-8 text of ``0x…`` data, or None when empty or not UTF-8 (then not a record)."""
    try:
        data = bytes.fromhex((hex_data or "0x")[2:])
        return data.decode("utf-8") if data else None
    except (ValueError, UnicodeDecodeError):
        return None


def publisher_topic(address: str) -> str:
    """``topic1`` of a sender's records: the address left-padded to 32 bytes (as CALLER)."""
    return "0x" + "00" * 12 + address.removeprefix("0x").lower()


def _log_fields(logs: Sequence[dict[str, Any]]) -> Iterator[_Fields]:
    for log in logs:
        topics = [str(t).lower() for t in log.get("topics") or []]
        payload = payload_text(log.get("data"))
        if log.get("removed") or len(topics) != 2 or topics[0] != TOPIC or payload is None:
            continue  # anyone may call the registry: skip what is not a UTF-8 record
        sender = "0x" + topics[1][-40:]
        yield node_hash(log["transactionHash"], "txid"), int(log["logIndex"], 16), sender, payload


def _calldata_fields(
    head: dict[str, Any], sink: str, publishers: Sequence[str]
) -> Iterator[_Fields]:
    for tx in head.get("transactions") or []:
        if not isinstance(tx, dict) or str(tx.get("to") or "").lower() != sink:
            continue
        sender = str(tx.get("from") or "").lower()
        payload = payload_text(tx.get("input", tx.get("data")))
        if payload is None or (publishers and sender not in publishers):
            continue
        yield node_hash(tx["hash"], "txid"), int(tx["transactionIndex"], 16), sender, payload


def assemble(
    heads: Sequence[dict[str, Any] | None],
    start: int,
    logs: Sequence[dict[str, Any]] | None = None,
    *,
    sink: str = "",
    publishers: Sequence[str] = (),
) -> list[Block] | None:
    """Blocks ``start, start+1, ...`` from their headers, up to the first missing one.

    With ``logs`` (log mode) a block's entries are the registry logs carrying its hash;
    without, they are the block's transactions to ``sink`` (calldata mode: ``heads`` are full
    blocks). None when the answers disagree (headers that do not chain up by parent hash,
    logs of a block not among the headers): the chain moved between two reads; read again.
    """
    by_block: dict[str, list[dict[str, Any]]] = {}
    for log in logs or ():
        by_block.setdefault(node_hash(log["blockHash"], "block hash"), []).append(log)
    out: list[Block] = []
    for offset, head in enumerate(heads):
        if head is None:
            break
        height = int(head["number"], 16)
        block_hash = node_hash(head["hash"], "block hash")
        parent = node_hash(head["parentHash"], "block hash")
        if height != start + offset or (out and parent != out[-1].hash):
            return None
        time = int(head["timestamp"], 16)
        if logs is None:
            fields = _calldata_fields(head, sink, publishers)
        else:
            fields = _log_fields(by_block.pop(block_hash, ()))
        entries = tuple(
            Entry(height, block_hash, parent, time, *f) for f in sorted(fields, key=lambda f: f[1])
        )
        out.append(Block(height, block_hash, parent, time, entries))
    return None if by_block else out
