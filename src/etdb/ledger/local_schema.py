"""The embedded ledger's on-disk format: SQLite schema, hashing rules, chain checking.

Everything that decides whether a local chain (or an export of it) is valid lives here, so that
``LocalLedger.verify`` and the importer apply the very same rules.

Hashing (all digests are sha256d = sha256(sha256(x)), shown as lowercase hex in byte order,
without Bitcoin's byte reversal; integers are unsigned big-endian):

* ``txid = sha256d("etdb-local-ledger/tx/v1\\0" ‖ parent_hash[32] ‖ index[u32] ‖ sender ‖
  payload)`` where ``parent_hash`` is the hash of the block *before* the one holding the entry,
  ``index`` the entry's position in its block, ``sender`` is ``0x00`` (none) or ``0x01 ‖
  length[u16] ‖ UTF-8`` and ``payload`` the UTF-8 bytes to the end. Identical payloads thus get
  distinct txids, and a txid commits to its place in the chain.
* ``tx_root = sha256d("etdb-local-ledger/tx-root/v1\\0" ‖ txid_0[32] ‖ … ‖ txid_n-1[32])``: a
  sequential hash, not a Merkle tree. Nobody needs inclusion proofs for a file they hold whole,
  and a sequential hash is streamable (constant memory however large a block is) and has none
  of the odd-leaf duplication ambiguity of Bitcoin's Merkle tree.
* ``block hash = sha256d("etdb-local-ledger/block/v1\\0" ‖ height[u64] ‖ parent_hash[32] ‖
  time[u64] ‖ tx_root[32])``. Block 0's parent is the ledger's random ``chain_id``, so two
  ledgers never share block hashes even when they hold the same payloads at the same times.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

FORMAT = "etdb-local-ledger"
FORMAT_VERSION = 1

_TX_TAG = b"etdb-local-ledger/tx/v1\x00"
_ROOT_TAG = b"etdb-local-ledger/tx-root/v1\x00"
_BLOCK_TAG = b"etdb-local-ledger/block/v1\x00"
_HEX64 = re.compile(r"[0-9a-f]{64}")

#: Characters of a payload's start that ``find_payload`` looks up by index. 256 covers a whole
#: multipart header (its signature makes it unique per part) and, for single-transaction
#: records, the fields that differ between records; longer would only grow the file.
PAYLOAD_PREFIX_CHARS = 256

# An expression index on the payload's start, not a payload-hash column: it needs no change to
# the tables, the hashing or the export format, so ledgers written before it existed take it
# as they are (``LocalLedger.find_payload`` creates it on first use: the only migration).
PAYLOAD_INDEX_SQL = f"""
CREATE INDEX IF NOT EXISTS entries_payload_prefix
    ON entries (substr(payload, 1, {PAYLOAD_PREFIX_CHARS}))
"""

# `blocks.height` is the rowid, so the tip is the last row and a height range is a rowid range.
# Entries are keyed by (height, idx): a range scan walks one index in chain order.
SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blocks (
    height      INTEGER PRIMARY KEY CHECK (height >= 0),
    hash        TEXT NOT NULL UNIQUE,
    parent_hash TEXT NOT NULL,
    time        INTEGER NOT NULL,
    tx_root     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS entries (
    height  INTEGER NOT NULL,
    idx     INTEGER NOT NULL,
    txid    TEXT NOT NULL UNIQUE,
    sender  TEXT,
    payload TEXT NOT NULL,
    PRIMARY KEY (height, idx)
);
"""
    + "\n"
    + PAYLOAD_INDEX_SQL
)


def sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def is_hash(text: object) -> bool:
    return isinstance(text, str) and _HEX64.fullmatch(text) is not None


def compute_txid(parent_hash: str, index: int, sender: str | None, payload: str) -> str:
    if sender is None:
        sender_part = b"\x00"
    else:
        raw = sender.encode("utf-8")
        sender_part = b"\x01" + len(raw).to_bytes(2, "big") + raw
    data = (
        _TX_TAG
        + bytes.fromhex(parent_hash)
        + index.to_bytes(4, "big")
        + sender_part
        + payload.encode("utf-8")
    )
    return sha256d(data).hex()


class TxRoot:
    """Incremental tx_root: feed txids in block order, then read ``hexdigest()``."""

    __slots__ = ("_h",)

    def __init__(self) -> None:
        self._h = hashlib.sha256(_ROOT_TAG)

    def add(self, txid: str) -> None:
        self._h.update(bytes.fromhex(txid))

    def hexdigest(self) -> str:
        return hashlib.sha256(self._h.digest()).hexdigest()


def compute_tx_root(txids: list[str]) -> str:
    root = TxRoot()
    for txid in txids:
        root.add(txid)
    return root.hexdigest()


def compute_block_hash(height: int, parent_hash: str, time: int, tx_root: str) -> str:
    data = (
        _BLOCK_TAG
        + height.to_bytes(8, "big")
        + bytes.fromhex(parent_hash)
        + time.to_bytes(8, "big")
        + bytes.fromhex(tx_root)
    )
    return sha256d(data).hex()


@dataclass(frozen=True, slots=True)
class StoredBlock:
    """A block header as stored (what the chain checker is fed)."""

    height: int
    hash: str
    parent_hash: str
    time: int
    tx_root: str


@dataclass(frozen=True, slots=True)
class BuiltBlock:
    """A new block ready to be stored: header plus (txid, sender, payload) in order."""

    header: StoredBlock
    entries: tuple[tuple[str, str | None, str], ...]


def build_block(
    height: int, parent_hash: str, time: int, payloads: list[str], sender: str | None = None
) -> BuiltBlock:
    """Hash a new block on top of ``parent_hash`` (block 0: the chain id)."""
    txids = [compute_txid(parent_hash, i, sender, p) for i, p in enumerate(payloads)]
    tx_root = compute_tx_root(txids)
    header = StoredBlock(
        height, compute_block_hash(height, parent_hash, time, tx_root), parent_hash, time, tx_root
    )
    return BuiltBlock(header, tuple((t, sender, p) for t, p in zip(txids, payloads, strict=True)))


class ChainBreak(Exception):
    """The first place where a chain does not hash-link; ``height`` is the block at fault."""

    def __init__(self, height: int, problem: str) -> None:
        super().__init__(f"height {height}: {problem}")
        self.height = height
        self.problem = problem


class ChainChecker:
    """Checks blocks fed in order, in constant memory; raises :class:`ChainBreak` at the first
    fault. Use: ``begin(block)``, ``entry(...)`` for each of its entries, ``end()``."""

    def __init__(self, chain_id: str) -> None:
        self.chain_id = chain_id
        self.prev: StoredBlock | None = None
        self.blocks = 0
        self.entries = 0
        self._block: StoredBlock | None = None
        self._root = TxRoot()
        self._next_index = 0

    def begin(self, block: StoredBlock) -> None:
        h = block.height
        expected = 0 if self.prev is None else self.prev.height + 1
        if h != expected:
            raise ChainBreak(expected, f"block {expected} is missing (next stored block is {h})")
        for name in ("hash", "parent_hash", "tx_root"):
            if not is_hash(getattr(block, name)):
                raise ChainBreak(h, f"{name} {getattr(block, name)!r} is not 64 lowercase hex")
        if self.prev is None and not is_hash(self.chain_id):
            raise ChainBreak(0, f"the chain id {self.chain_id!r} is not 64 lowercase hex digits")
        parent = self.chain_id if self.prev is None else self.prev.hash
        if block.parent_hash != parent:
            what = "the chain id" if self.prev is None else f"block {h - 1}'s hash"
            raise ChainBreak(h, f"parent hash {block.parent_hash} is not {what} {parent}")
        if not isinstance(block.time, int) or block.time < 0:
            raise ChainBreak(h, f"time {block.time!r} is not a non-negative integer")
        if self.prev is not None and block.time < self.prev.time:
            raise ChainBreak(h, f"time {block.time} is before block {h - 1}'s {self.prev.time}")
        self._block = block
        self._root = TxRoot()
        self._next_index = 0

    def entry(self, index: int, txid: str, sender: object, payload: object) -> None:
        """One entry of the open block; ``sender`` and ``payload`` come from an export file
        as they are (hostile): checked here to be text (``sender`` may be null)."""
        block = self._block
        assert block is not None, "entry() outside begin()/end()"
        if index != self._next_index:
            raise ChainBreak(
                block.height, f"entry index {index} where {self._next_index} was expected"
            )
        if not isinstance(payload, str) or not (sender is None or isinstance(sender, str)):
            raise ChainBreak(block.height, f"entry {index} has a non-text payload or sender")
        computed = compute_txid(block.parent_hash, index, sender, payload)
        if txid != computed:
            raise ChainBreak(
                block.height,
                f"entry {index}: stored txid {txid} does not match its contents ({computed})",
            )
        self._root.add(txid)
        self._next_index += 1
        self.entries += 1

    def end(self) -> None:
        block = self._block
        assert block is not None, "end() without begin()"
        root = self._root.hexdigest()
        if block.tx_root != root:
            raise ChainBreak(
                block.height, f"tx_root {block.tx_root} does not match its entries ({root})"
            )
        computed = compute_block_hash(block.height, block.parent_hash, block.time, block.tx_root)
        if block.hash != computed:
            raise ChainBreak(
                block.height, f"block hash {block.hash} does not match its header ({computed})"
            )
        self.prev = block
        self._block = None
        self.blocks += 1
