"""Copies of one record identity: which publish becomes the record, which is a replay.

A record's identity is what its OIP signature covers (``record.metasign.record_identity``):
every later publish of an identity already held is a copy. The first copy is the record,
except that a copy whose ``metaSignature`` verifies replaces an active location-only record
of its identity (the indexer's module docstring has the whole rule). Which record holds an
identity is asked of the store, or, while a catalog is built from scratch, of memory.
"""

from __future__ import annotations

from typing import Any

from etdb.index.store import CatalogStore, IndexedCopy, Position, RecordState
from etdb.index.validate import Rejected
from etdb.record.metasign import check_meta

#: Identities remembered in memory while building a catalog from scratch (see copy_of).
MAX_REMEMBERED = 2_000_000


class Copies:
    """The identity rule of one indexer, over its store."""

    def __init__(self, store: CatalogStore) -> None:
        self.store = store
        self._memory: set[str] | None = None

    def begin_run(self, *, fresh: bool) -> None:
        """``fresh``: the catalog is empty, so every identity will pass through memory."""
        self._memory = set() if fresh else None

    def forget(self) -> None:
        """Records were forgotten (a rollback): ask the store from now on."""
        self._memory = None

    def admit(
        self, document: dict[str, Any], identity: str, txid: str, pos: Position
    ) -> Rejected | bool:
        """Whether a verified publish (``identity``: its ``record_identity``) is
        metadata-signed, or why it may not become a record."""
        meta = check_meta(document, document.get("floAddress") or "")
        if meta.status == "invalid":
            return Rejected("publish", meta.reason)
        return self.claim(identity, meta.signed, txid, pos) or meta.signed

    def claim(self, identity: str, signed: bool, txid: str, pos: Position) -> Rejected | None:
        """Why a publish of ``identity`` may not become a record (a copy), or None; demotes a
        location-only record of the identity if this copy is metadata-signed."""
        prior = self.copy_of(identity)
        if prior is None:
            return None
        if signed and not prior.metadata_signed and not prior.deactivated and not prior.edited:
            self.store.supersede(prior.id, txid, pos)
            return None
        if prior.edited:
            return Rejected("publish", f"replay of record {prior.id} (of a state an edit signed)")
        return Rejected("publish", f"replay of record {prior.id}")

    def copy_of(self, identity: str) -> IndexedCopy | None:
        """The record already holding this identity. On a catalog built from scratch in this
        run, every identity held is in memory, so a new one (the usual case) is known to be
        new without asking the store, which would flush its buffered inserts before each
        record and halve the initial indexing rate; copies (rare) are looked up."""
        if self._memory is not None and identity not in self._memory:
            return None
        return self.store.find_identity(identity)

    def remember(self, identity: str) -> None:
        """``identity`` is now held (by a new record, or by the state an edit signed)."""
        if self._memory is None:
            return
        self._memory.add(identity)
        if len(self._memory) > MAX_REMEMBERED:
            self._memory = None


def edit_meta(patched: dict[str, Any] | Rejected, state: RecordState | None) -> Rejected | bool:
    """Whether an edited record is metadata-signed; a metaSignature that no longer verifies
    (the edit changed what it covers without re-signing) rejects the edit."""
    if isinstance(patched, Rejected) or state is None:
        return False
    meta = check_meta(patched, state.publisher)
    if meta.status == "invalid":
        return Rejected("edit", f"the edited record's {meta.reason}")
    return meta.signed
