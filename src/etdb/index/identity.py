"""Which ledger, and which settings, a catalog was built from; and its cursor.

A catalog is one ledger's history seen through one allow-list, one multipart expiry and one
set of record limits (``record/limits.py``). The indexer records them all in the catalog's
meta on its first block and refuses to continue with another ledger (:class:`LedgerMismatch`)
or other such settings (:class:`SettingsChanged`): mixing them would leave a catalog no single
rebuild reproduces. The ledger is known by the hash
of its block 0 (a chain's genesis; the embedded ledger's block 0 hashes its random chain id);
its URL is kept for messages only, so a moved file or renamed node host is the same ledger.
"""

from __future__ import annotations

import json

from etdb.index.store import CatalogStore
from etdb.ledger import Ledger
from etdb.ledger.follow import Cursor
from etdb.record.limits import DEFAULT_LIMITS, RecordLimits

META_CURSOR = "cursor"
META_GENESIS = "ledger_genesis"
META_URL = "ledger_url"
META_SETTINGS = "index_settings"


class IndexerError(Exception):
    """The catalog cannot be (further) built from this ledger as asked; the message says why."""


class LedgerMismatch(IndexerError):
    """The catalog was built from another ledger."""


class SettingsChanged(IndexerError):
    """The catalog was built with another allow-list, multipart expiry or record limits."""


class CursorMoved(IndexerError):
    """Another indexer wrote the catalog during this run (this run's batch was not written)."""


def settings_doc(
    publishers: frozenset[str] | None,
    multipart_expiry: int,
    limits: RecordLimits = DEFAULT_LIMITS,
) -> str:
    """The settings that change what a catalog holds, as stored (canonical JSON). A catalog
    built before limits existed has none stored: it holds what no limit bounded, so it too
    must be rebuilt."""
    listed = sorted(publishers) if publishers is not None else "*"
    doc = {"publishers": listed, "multipart_expiry": multipart_expiry, "limits": limits.to_json()}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def check_ledger(store: CatalogStore, ledger: Ledger) -> None:
    """:class:`LedgerMismatch` unless the catalog is new or was built from ``ledger``."""
    genesis = store.get_meta(META_GENESIS)
    if not genesis:
        return
    current = ledger.block_hash(0)
    if current != genesis:
        was = store.get_meta(META_URL) or "another ledger"
        now = f"block 0 {current}" if current else "no blocks"
        raise LedgerMismatch(
            f"this catalog was built from {was} (block 0 {genesis}), but {ledger.url} has "
            f"{now}; rebuild it from this ledger with etdb index --rebuild, or point "
            "--ledger/--catalog at the right pair"
        )


def check_settings(store: CatalogStore, settings: str) -> None:
    stored = store.get_meta(META_SETTINGS)
    if stored and stored != settings:
        raise SettingsChanged(
            f"this catalog was indexed with {stored}, the current settings are {settings}; "
            "rebuild it (etdb index --rebuild) so that they apply to the whole ledger"
        )


def claim(store: CatalogStore, ledger: Ledger, settings: str) -> None:
    """Inside a transaction: record ledger and settings (once the ledger has a block 0)."""
    if store.get_meta(META_GENESIS):
        if store.get_meta(META_URL) != ledger.url:
            store.set_meta(META_URL, ledger.url)
        return
    genesis = ledger.block_hash(0)
    if genesis:
        store.set_meta(META_GENESIS, genesis)
        store.set_meta(META_URL, ledger.url)
        store.set_meta(META_SETTINGS, settings)


def stored_cursor(store: CatalogStore) -> Cursor:
    """The cursor the catalog holds (an empty one for a new catalog)."""
    raw = store.get_meta(META_CURSOR)
    if not raw:
        return Cursor()
    try:
        return Cursor.from_json(json.loads(raw))
    except (ValueError, KeyError, TypeError) as exc:
        raise IndexerError(
            f"the catalog's cursor is unreadable ({exc}); rebuild it (etdb index --rebuild)"
        ) from None


def store_cursor(store: CatalogStore, cursor: Cursor) -> None:
    store.set_meta(META_CURSOR, json.dumps(cursor.to_json()))


def check_cursor(store: CatalogStore, expected: Cursor) -> None:
    """Inside a transaction: :class:`CursorMoved` unless the catalog is still at ``expected``."""
    if stored_cursor(store) != expected:
        raise CursorMoved(
            "the catalog's cursor moved under this indexer: another `etdb index` or "
            "`etdb serve` is indexing into it; run one indexer per catalog"
        )
