"""The write side of a catalog store: what the indexer records, block by block.

The indexer (``indexer.py``) decides what is valid; a store only keeps it. Everything derived
from one ledger block is written inside one :meth:`CatalogStore.transaction` together with the
cursor, so a crash at any instant leaves the catalog at a block boundary, and re-running the
indexer is idempotent. Every row carries the height it came from, so a reorganisation is undone
with :meth:`CatalogStore.rollback` alone.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from etdb.index.query import CatalogReader, Rejection


@dataclass(frozen=True, slots=True)
class Position:
    """Where on the ledger something happened."""

    height: int
    index: int  # entry order within the block
    block_hash: str
    time: int  # block time, unix seconds


@dataclass(frozen=True, slots=True)
class PublishedRecord:
    """A valid publish: ``id`` is its txid (part 0's for a multipart)."""

    id: str
    txids: tuple[str, ...]
    publisher: str
    artifact: dict[str, Any]  # wire form, as published
    signature: str
    signature_valid: bool
    position: Position  # of the transaction that completed it (last part of a multipart)
    metadata_signed: bool = False  # a valid metaSignature covers the artifact
    # record.metasign.record_identity(artifact) when None (what the indexer relies on).
    identity: str | None = None


@dataclass(frozen=True, slots=True)
class AppliedEdit:
    txid: str
    record_id: str
    timestamp: int  # the edit's own timestamp
    patch: list[dict[str, Any]]  # RFC 6902, as applied
    artifact_after: dict[str, Any]  # the record's artifact once this edit is applied
    position: Position
    metadata_signed: bool = False  # of artifact_after


@dataclass(frozen=True, slots=True)
class Deactivation:
    txid: str
    record_id: str
    timestamp: int
    position: Position


@dataclass(frozen=True, slots=True)
class PendingPart:
    """One multipart part waiting for its siblings; ``key`` is part 0's txid."""

    key: str
    txid: str
    part: int
    max_index: int
    address: str
    text: str  # the whole floData of the part, as on the ledger
    position: Position


@dataclass(frozen=True, slots=True)
class RecordState:
    """What the indexer needs to judge an edit or deactivation of a record."""

    id: str
    publisher: str
    artifact: dict[str, Any]  # current (after edits)
    deactivated: bool
    height: int


@dataclass(frozen=True, slots=True)
class IndexedCopy:
    """The record holding an identity (``record.metasign.record_identity``)."""

    id: str
    metadata_signed: bool
    deactivated: bool
    edited: bool  # the identity is that of an edited state, not of the publish itself


class CatalogStore(CatalogReader, Protocol):
    """A catalog: the read side (:class:`CatalogReader`) plus what the indexer writes."""

    def transaction(self) -> AbstractContextManager[None]:
        """Everything written inside commits together, or not at all."""
        ...

    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None:
        """Indexer state: the cursor (JSON), the ledger's identity, settings it ran with."""
        ...

    def add_record(self, record: PublishedRecord) -> None: ...

    def record_state(self, record_id: str) -> RecordState | None: ...

    def find_identity(self, identity: str) -> IndexedCopy | None:
        """The record that holds ``identity`` (its publish, or a state an edit signed), if
        any: a publish of the same identity is a copy of it. Superseded records hold none."""
        ...

    def supersede(self, record_id: str, by: str, position: Position) -> None:
        """Demote ``record_id`` (location only) in favour of ``by``, the metadata-signed copy
        of its identity added next at ``position``: it is kept, deactivated, with
        ``superseded_by``; :meth:`rollback` from that height restores it."""
        ...

    def apply_edit(self, edit: AppliedEdit) -> None: ...

    def deactivate(self, deactivation: Deactivation) -> None: ...

    def add_rejection(self, rejection: Rejection) -> None: ...

    def add_part(self, part: PendingPart) -> None: ...

    def parts(self, key: str) -> list[PendingPart]: ...

    def drop_parts(self, key: str) -> None: ...

    def expire_parts(self, before_time: int) -> list[PendingPart]:
        """Remove and return parts whose block time is older than ``before_time``."""
        ...

    def rollback(self, from_height: int) -> None:
        """Forget everything from heights >= ``from_height``: records, edits (the current
        artifact falls back to the newest remaining edit, or the original), deactivations and
        supersessions, rejections and pending parts."""
        ...

    def clear(self) -> None:
        """Empty the catalog (``etdb index --rebuild``)."""
        ...

    def close(self) -> None: ...
