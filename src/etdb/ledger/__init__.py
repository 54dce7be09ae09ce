"""Ledgers: one interface, backends chosen by a URL-style setting.

=====================================  =========================================================
``local://`` or ``local:///path``      embedded hash-linked chain in SQLite (default:
                                       ``<data folder>/ledger.sqlite3``)
``flo+http://user:pass@host:7313``     FLO node, payloads in floData (as ETDB-Caltech)
``btc+http://user:pass@host:port``     Bitcoin-family node (Litecoin, Bitcoin...), OP_RETURN
``evm+http://host:8545?contract=0x…``  EVM chain: registry-contract event logs (or calldata)
=====================================  =========================================================

Options ride in the query string (``?confirmations=6&wallet=w``); see docs/ledgers.md.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from urllib.parse import urlsplit

from etdb.ledger.base import (
    Block,
    CorruptLedgerError,
    Entry,
    FeeEstimate,
    InsufficientFunds,
    Ledger,
    LedgerAuthError,
    LedgerConfigError,
    LedgerError,
    LedgerUnavailable,
    PayloadTooLarge,
    Tip,
    TxRef,
    TxStatus,
    UnknownBlock,
    WalletError,
)
from etdb.ledger.follow import BlockEvent, Cursor, DeepReorgError, Rollback, follow
from etdb.ledger.urls import redact

# scheme -> "module:factory"; a factory takes (url, home) and returns a Ledger. Imported lazily
# so that, e.g., web3 is loaded only by those who use an EVM chain.
BACKENDS: dict[str, str] = {
    "local": "etdb.ledger.local:open_local",
    "flo+http": "etdb.ledger.bitcoin:open_bitcoin",
    "flo+https": "etdb.ledger.bitcoin:open_bitcoin",
    "btc+http": "etdb.ledger.bitcoin:open_bitcoin",
    "btc+https": "etdb.ledger.bitcoin:open_bitcoin",
    "evm+http": "etdb.ledger.evm:open_evm",
    "evm+https": "etdb.ledger.evm:open_evm",
}


def open_ledger(url: str, home: Path | None = None) -> Ledger:
    """Open the ledger a URL names; ``home`` resolves relative local paths. A URL that cannot
    be parsed (a bad port, a broken IPv6 host, a NUL) is a :class:`LedgerConfigError`."""
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError as exc:
        raise LedgerConfigError(f"ledger URL {redact(url)!r} is not a URL: {exc}") from None
    target = BACKENDS.get(scheme)
    if target is None:
        known = ", ".join(sorted({s.split("+")[0] for s in BACKENDS}))
        raise LedgerConfigError(
            f"unknown ledger URL scheme {scheme!r} in {redact(url)!r} (known: {known})"
        )
    module_name, factory = target.split(":")
    module = importlib.import_module(module_name)
    try:
        ledger: Ledger = getattr(module, factory)(url, home)
        return ledger
    except LedgerError:
        raise
    except ValueError as exc:  # urllib's, on a port or host it cannot read
        raise LedgerConfigError(f"ledger URL {redact(url)!r}: {exc}") from None


__all__ = [
    "BACKENDS",
    "Block",
    "BlockEvent",
    "CorruptLedgerError",
    "Cursor",
    "DeepReorgError",
    "Entry",
    "FeeEstimate",
    "InsufficientFunds",
    "Ledger",
    "LedgerAuthError",
    "LedgerConfigError",
    "LedgerError",
    "LedgerUnavailable",
    "PayloadTooLarge",
    "Rollback",
    "Tip",
    "TxRef",
    "TxStatus",
    "UnknownBlock",
    "WalletError",
    "follow",
    "open_ledger",
]
