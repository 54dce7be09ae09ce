"""The one interface every ledger backend implements, and the types it speaks.

A ledger is an ordered, append-only sequence of blocks; each block holds entries (a transaction
carrying one payload: an OIP floData string). Backends: the embedded local chain
(``local.py``), Bitcoin-family chains over JSON-RPC with floData or OP_RETURN carriers
(``bitcoin.py``), and EVM chains (``evm.py``). Following a ledger safely across restarts and
reorganisations is ``follow.py``'s job, the same for every backend.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, Self, runtime_checkable


class LedgerError(Exception):
    """Base of every ledger error; the message says what failed and what to do."""


class LedgerConfigError(LedgerError):
    """The ledger URL or one of its options is invalid."""


class LedgerUnavailable(LedgerError):
    """The node or file cannot be reached right now (after retries); try again later."""


class LedgerAuthError(LedgerError):
    """The node refused our credentials."""


class WalletError(LedgerError):
    """The node has no (loaded, unlocked) wallet to pay for a transaction."""


class InsufficientFunds(LedgerError):
    """The wallet cannot pay for the transaction."""


class PayloadTooLarge(LedgerError):
    """A payload exceeds what one transaction of this ledger can carry (``max_payload``)."""


class CorruptLedgerError(LedgerError):
    """Stored blocks do not hash-link (embedded ledger) or a node answered nonsense."""


class UnknownBlock(LedgerError):
    """A height beyond the tip, or below the first block, was asked for."""


@dataclass(frozen=True, slots=True)
class TxRef:
    """Where a published payload went: its transaction id (hex), once known its block height."""

    txid: str
    height: int | None = None


@dataclass(frozen=True, slots=True)
class Entry:
    """One payload-carrying transaction inside a block.

    ``index`` orders entries within a block (transaction position, or log index on EVM);
    ``sender`` is the address that paid for the transaction where the backend knows it.
    """

    height: int
    block_hash: str
    parent_hash: str
    time: int
    txid: str
    index: int
    sender: str | None
    payload: str


@dataclass(frozen=True, slots=True)
class Block:
    height: int
    hash: str
    parent_hash: str
    time: int
    entries: tuple[Entry, ...] = ()


@dataclass(frozen=True, slots=True)
class Tip:
    """The newest block. An empty ledger has height -1 and hash ""."""

    height: int
    hash: str


@dataclass(frozen=True, slots=True)
class TxStatus:
    """A transaction's place: ``confirmations`` 0 means seen but not yet in a block."""

    txid: str
    confirmations: int
    height: int | None = None
    block_hash: str | None = None


@dataclass(frozen=True, slots=True)
class FeeEstimate:
    """The fee for ``transactions`` transactions carrying ``payload_bytes`` bytes in all.

    ``unit`` is the chain's coin (``FLO``, ``LTC``, ``ETH``...) or ``none`` for the embedded
    ledger; ``basis`` says where the rate came from (node estimate, configured rate...).
    """

    total: Decimal
    unit: str
    transactions: int
    payload_bytes: int
    basis: str

    @property
    def per_transaction(self) -> Decimal:
        return self.total / self.transactions if self.transactions else Decimal(0)


@runtime_checkable
class Ledger(Protocol):
    """What the publisher, the indexer and the CLI need from any ledger."""

    #: The ledger's URL with any password removed (safe to print and log).
    url: str
    #: The most payload bytes (UTF-8) one transaction carries; larger payloads go multipart.
    max_payload: int
    #: How deep a block must be before its entries count (1 = as soon as it is in a block).
    confirmations: int

    def tip(self) -> Tip:
        """The newest block (confirmed or not)."""
        ...

    def block_hash(self, height: int) -> str | None:
        """The hash of the block at ``height`` on the current best chain, None beyond the tip."""
        ...

    def block(self, height: int) -> Block:
        """The block at ``height`` with its payload entries; UnknownBlock beyond the tip."""
        ...

    def blocks(self, start: int, stop: int) -> Iterator[Block]:
        """Blocks ``start..stop`` (inclusive) in order; stops early at the tip."""
        ...

    def publish(self, payload: str) -> TxRef:
        """Send one transaction carrying ``payload``; PayloadTooLarge above ``max_payload``."""
        ...

    def transaction(self, txid: str) -> TxStatus | None:
        """Where a transaction stands, or None if the ledger has never seen it."""
        ...

    def estimate_fee(self, payload_bytes: int, transactions: int = 1) -> FeeEstimate:
        """The fee to publish ``transactions`` transactions carrying ``payload_bytes`` in all."""
        ...

    def close(self) -> None:
        """Release the connection or file; the ledger is not used after this."""
        ...

    # Every backend is a context manager (``with open_ledger(...) as ledger:``), whichever
    # kind the URL names: :class:`Closing` gives these two from ``close``.
    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...


class Closing:
    """``with ledger:`` for a backend: enter returns the ledger, exit closes it (even when the
    block raised)."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def payload_size(payload: str) -> int:
    """Size that counts against ``max_payload``: UTF-8 bytes."""
    return len(payload.encode("utf-8"))
