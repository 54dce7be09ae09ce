"""The indexer: follow a ledger from a persisted cursor and write what is valid into a catalog.

Semantics (the product; tests in ``tests/index/test_indexer*.py`` hold them):

**Blocks and crashes.** :meth:`Indexer.run` applies every confirmed block after the cursor
stored in the catalog (meta ``cursor``, :meth:`Cursor.to_json`). Every write a block causes and
the cursor after it commit in one store transaction, so a kill at any instant followed by a
restart gives the very catalog an uninterrupted run gives; re-running changes nothing. To keep
commits cheap, consecutive blocks share a transaction (at most ``commit_blocks`` blocks or
``commit_seconds``): a transaction still ends on a block boundary, with the cursor of its last
block. Only ledger and store failures escape (and leave the open transaction uncommitted);
any payload, however malformed, ends as a record, an edit, a deactivation, a waiting multipart
part or a rejection with its reason. One indexer per catalog: each transaction first checks
that the stored cursor is still the one this run started from (:class:`CursorMoved` if another
``etdb index``/``etdb serve`` moved it; ``follow_forever`` waits and carries on from there).

**Which ledger.** The first run stores the hash of the ledger's block 0 and the settings that
change results (allow-list, multipart expiry, record limits); a later run with another
ledger or such settings stops (:class:`LedgerMismatch`, :class:`SettingsChanged`;
``identity.py``) rather than mix two histories. :meth:`Indexer.rebuild` starts over.

**Payloads.** Each entry, in ledger order (height, index):

* ``oip-mp(`` parts: parsed and signature-checked on arrival (else rejected), then kept under
  part 0's txid. Part 0 defines the message: once it is known, parts by another signer or with
  another last index are rejected; a second part at an index already filled by the same signer
  is rejected. When part 0 and every part to its last index are in (in any order, across any
  blocks) they are joined and the result is handled as a message at the position of the part
  that completed it, with id = part 0's txid and txids = every part in order. A part naming a
  record already in the catalog is rejected. A set whose first part is older than
  ``multipart_expiry`` seconds (block time) expires: each of its parts is rejected with
  "multipart incomplete after N s: missing parts …", at the block that expired it.
* Publish (``json:``/bare JSON, strictly decoded): the publisher must be on the allow-list, the
  signature and Table 1's mandatory fields must check (``verify_publish``; every signature
  must be in canonical form, ``record.wire.check_signature``). A record's *identity* is what
  its signature covers, ``location-floAddress-timestamp`` (``record_identity``): a second
  publish of an identity already held (by a record, or by a state one of its edits signed) is
  a copy, "replay of record <id>", whatever its signature's spelling or its unsigned metadata
  says. One exception: a copy carrying a valid ``metaSignature`` (record/metasign.py) replaces
  an active location-only record of its identity, which stays visible, deactivated, with
  ``superseded_by`` (``store.supersede``, undone by a rollback of the copy's block). A
  ``metaSignature`` that does not verify rejects the publish. The artifact is stored as
  published (key order, spellings such as 2018's ``NBCItaxID``, unknown keys), and edits patch
  that document, as oipd patched its stored JSON.
* Edit: the record must exist and be active; the edit must be signed by the record's original
  publisher (a newer-form edit must sign ``txid-timestamp``, not only the legacy preimage a
  deactivation shares); the patch must apply; the patched artifact must keep ``floAddress``
  and still pass ``verify_publish`` with its signature, as newer oipd requires (an edit that
  moves the data re-signs the record, so the stored signature always vouches for the location).
  A patched artifact carrying a ``metaSignature`` that does not verify is rejected; whether
  the record is "metadata signed" is derived again from each patched artifact. Edits apply in
  ledger order.
* Deactivate: the record must exist and be active, signed by its original publisher.
* Edits and deactivations must carry a timestamp later than the record's latest applied edit:
  their signatures do not cover their content, so this is what stops a signature from being
  replayed with another patch or turned into a deactivation.
* Anything else (non-OIP text, malformed JSON, unknown kinds, schema errors) is rejected with
  the record package's precise reason and a payload excerpt of at most 200 characters.

**Reorganisations.** ``follow`` yields :class:`Rollback`; the store forgets everything from
that height and the cursor moves back, in one transaction. Parts older than the fork that a
now-orphaned block had consumed (completed or expired) are put back from the ledger: each block
that consumes earlier parts notes them in meta ``multipart.consumed.<height>`` (``parts.py``).
Reorgs deeper than the cursor remembers raise ``DeepReorgError``: rebuild.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields

from etdb.index.check import CheckReport, all_rejections
from etdb.index.check import check as check_catalog
from etdb.index.copies import Copies, edit_meta
from etdb.index.identity import (
    CursorMoved,
    IndexerError,
    LedgerMismatch,
    SettingsChanged,
    check_cursor,
    check_ledger,
    check_settings,
    claim,
    settings_doc,
    store_cursor,
    stored_cursor,
)
from etdb.index.parts import MultipartDesk, Refusal, is_multipart
from etdb.index.query import IndexStatus, Rejection, SearchQuery
from etdb.index.store import (
    AppliedEdit,
    CatalogStore,
    Deactivation,
    Position,
    PublishedRecord,
)
from etdb.index.validate import (
    Rejected,
    check_deactivate,
    check_edit,
    check_publish,
    excerpt,
    published_form,
    read_message,
)
from etdb.ledger import Block, BlockEvent, Ledger, LedgerUnavailable, Rollback, follow
from etdb.ledger.follow import Cursor
from etdb.record import Deactivate, Edit, Publish
from etdb.record.limits import DEFAULT_LIMITS, RecordLimits
from etdb.record.metasign import record_identity

log = logging.getLogger(__name__)

__all__ = [
    "CursorMoved",
    "IndexReport",
    "Indexer",
    "IndexerError",
    "LedgerMismatch",
    "SettingsChanged",
]

DEFAULT_EXPIRY = 604_800  # one week, as oipd


@dataclass
class IndexReport:
    """What one run did; ``height`` is the indexed height after it, ``tip`` the ledger's."""

    blocks: int = 0
    records: int = 0
    edits: int = 0
    deactivations: int = 0
    rejections: int = 0
    rollbacks: int = 0
    height: int = -1
    tip: int = -1
    seconds: float = 0.0

    def add(self, other: IndexReport) -> None:
        """Add ``other``'s counts (not its height and tip, which are the caller's to set)."""
        for name in ("blocks", "records", "edits", "deactivations", "rejections", "rollbacks"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.seconds += other.seconds

    @property
    def blocks_per_second(self) -> float:
        return self.blocks / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, int | float]:
        out: dict[str, int | float] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["seconds"] = round(self.seconds, 3)
        out["blocks_per_second"] = round(self.blocks_per_second, 1)
        return out


Progress = Callable[[IndexReport], None]


class Indexer:
    """Ledger -> catalog (see the module docstring for every rule it applies)."""

    def __init__(
        self,
        ledger: Ledger,
        store: CatalogStore,
        *,
        publishers: frozenset[str] | None = None,
        multipart_expiry: int = DEFAULT_EXPIRY,
        limits: RecordLimits = DEFAULT_LIMITS,
        confirmations: int | None = None,
        commit_blocks: int = 200,
        commit_seconds: float = 1.0,
    ) -> None:
        if multipart_expiry < 0:
            raise ValueError("multipart_expiry must not be negative")
        if commit_blocks < 1:
            raise ValueError("commit_blocks must be at least 1")
        self.ledger = ledger
        self.store = store
        self.publishers = publishers
        self.multipart_expiry = multipart_expiry
        self.limits = limits  # what a record may hold (validate.py); part of the settings
        self.confirmations = confirmations
        self.commit_blocks = commit_blocks
        self.commit_seconds = commit_seconds
        self._cursor = Cursor()
        self._batch = IndexReport()
        self._parts = MultipartDesk(store, ledger, multipart_expiry)
        self._copies = Copies(store)
        self._settings = settings_doc(publishers, multipart_expiry, limits)

    # -- public API ---------------------------------------------------------------------------

    def run(
        self,
        limit_blocks: int | None = None,
        *,
        progress: Progress | None = None,
        stop: threading.Event | None = None,
    ) -> IndexReport:
        """Apply every confirmed block after the stored cursor (at most ``limit_blocks``);
        ``progress`` is called with the running totals after each commit. Setting ``stop``
        ends the run after the current commit."""
        started = time.monotonic()
        check_ledger(self.store, self.ledger)
        check_settings(self.store, self._settings)
        self._cursor = stored_cursor(self.store)
        self._parts.begin_run()
        self._copies.begin_run(fresh=self._catalog_is_empty())
        report = IndexReport(height=self._cursor.height, tip=self.ledger.tip().height)
        events = follow(
            self.ledger, self._cursor, confirmations=self.confirmations, limit=limit_blocks
        )
        done = False
        while not done:
            self._batch = IndexReport()
            with self.store.transaction():
                check_cursor(self.store, self._cursor)
                claim(self.store, self.ledger, self._settings)
                done = self._apply_some(events)
            report.add(self._batch)
            report.height = self._cursor.height
            report.seconds = time.monotonic() - started
            if progress is not None and (self._batch.blocks or self._batch.rollbacks):
                progress(report)
            if stop is not None and stop.is_set():
                break
        report.seconds = time.monotonic() - started
        return report

    def rebuild(
        self, limit_blocks: int | None = None, *, progress: Progress | None = None
    ) -> IndexReport:
        """Empty the catalog (state, cursor, ledger identity) and index from block 0."""
        with self.store.transaction():
            self.store.clear()  # meta too: cursor, ledger identity, multipart notes
        return self.run(limit_blocks, progress=progress)

    def follow_forever(
        self,
        poll_interval: float = 5.0,
        stop_event: threading.Event | None = None,
        *,
        progress: Progress | None = None,
    ) -> IndexReport:
        """Keep the catalog current until ``stop_event`` is set (``etdb serve``). A ledger that
        is unreachable for a while, or another indexer writing the same catalog for a while, is
        waited out; any other error ends the loop."""
        stop = stop_event or threading.Event()
        total = IndexReport()
        while not stop.is_set():
            try:
                report = self.run(progress=progress, stop=stop)
                total.add(report)
                total.height, total.tip = report.height, report.tip
            except (LedgerUnavailable, CursorMoved) as exc:
                # Both pass: the node comes back; the other indexer's work is picked up by
                # the next run, which starts from the cursor it committed.
                log.warning("indexing paused, retrying in %.0f s: %s", poll_interval, exc)
            stop.wait(poll_interval)
        return total

    def check(self) -> CheckReport:
        """Compare the catalog with a fresh rebuild to the same height (``check.py``)."""
        return check_catalog(self)

    def twin(self, store: CatalogStore) -> Indexer:
        """An indexer of the same ledger with the same settings, writing into ``store``."""
        return Indexer(
            self.ledger,
            store,
            publishers=self.publishers,
            multipart_expiry=self.multipart_expiry,
            limits=self.limits,
            confirmations=self.confirmations,
            commit_blocks=self.commit_blocks,
            commit_seconds=self.commit_seconds,
        )

    def status(self) -> IndexStatus:
        """Ledger tip, indexed height, lag, active records, rejections, waiting multiparts;
        :class:`LedgerMismatch` if the catalog was built from another ledger."""
        check_ledger(self.store, self.ledger)
        tip = self.ledger.tip().height
        height = self.store.indexed_height()
        return IndexStatus(
            ledger_url=self.ledger.url,
            ledger_tip=tip,
            indexed_height=height,
            lag=max(tip - height, 0),
            records=self.store.summary().records,
            rejected=self._rejection_count(),
            pending_multiparts=self.store.pending_multiparts(),
        )

    def _rejection_count(self) -> int:
        # CatalogReader.rejection_count() is a recent addition: count page by page where a
        # store does not have it yet.
        count = getattr(self.store, "rejection_count", None)
        return count() if callable(count) else sum(1 for _ in all_rejections(self.store))

    def indexed_cursor(self) -> Cursor:
        """The cursor the catalog holds (an empty one for a new catalog)."""
        return stored_cursor(self.store)

    # -- events -------------------------------------------------------------------------------

    def _apply_some(self, events: Iterator[BlockEvent | Rollback]) -> bool:
        """Apply events until the batch is full; True once ``events`` is exhausted."""
        deadline = time.monotonic() + self.commit_seconds
        applied = 0
        exhausted = True
        for event in events:
            if isinstance(event, Rollback):
                self._rollback(event)
                self._batch.rollbacks += 1
            else:
                self._block(event.block)
                self._batch.blocks += 1
            self._cursor = event.cursor
            applied += 1
            if applied >= self.commit_blocks or time.monotonic() >= deadline:
                exhausted = False
                break
        if applied:
            self._parts.save()
            store_cursor(self.store, self._cursor)
        return exhausted

    def _block(self, block: Block) -> None:
        self._record(self._parts.begin_block(block))
        for entry in block.entries:
            pos = Position(entry.height, entry.index, entry.block_hash, entry.time)
            if not is_multipart(entry.payload):
                self._message(entry.payload, entry.txid, (entry.txid,), pos)
                continue
            refusals, joined = self._parts.arrive(entry.txid, entry.payload, pos)
            self._record(refusals)
            if joined is not None:
                # As if the whole message had been sent where its last part was.
                self._message(joined.text, joined.key, joined.txids, pos)
        self._parts.end_block(block)

    def _rollback(self, event: Rollback) -> None:
        self._copies.forget()  # records were forgotten: ask the store from now on
        self._parts.save()
        self.store.rollback(event.from_height)
        self._parts.rollback(event.from_height, self._cursor)

    def _record(self, refusals: list[Refusal]) -> None:
        for r in refusals:
            self._reject(r.why, r.txid, r.position, r.payload)

    # -- messages -----------------------------------------------------------------------------

    def _message(self, text: str, txid: str, txids: tuple[str, ...], pos: Position) -> None:
        message = read_message(text)
        if isinstance(message, Rejected):
            self._reject(message, txid, pos, text)
        elif isinstance(message, Publish):
            self._publish(message, txid, txids, pos, text)
        elif isinstance(message, Edit):
            self._edit(message, txid, pos, text)
        elif isinstance(message, Deactivate):
            self._deactivate(message, txid, pos, text)

    def _publish(
        self, message: Publish, txid: str, txids: tuple[str, ...], pos: Position, text: str
    ) -> None:
        address, signature = message.artifact.floAddress or "", message.artifact.signature or ""
        document = published_form(message)
        identity = record_identity(document)  # once: the copy check, the row and the memory
        checked = check_publish(message, self.publishers, self.limits) or self._copies.admit(
            document, identity, txid, pos
        )
        if isinstance(checked, Rejected):
            self._reject(checked, txid, pos, text)
            return
        record = PublishedRecord(
            txid, txids, address, document, signature, True, pos, checked, identity
        )
        self.store.add_record(record)
        self._batch.records += 1
        self._copies.remember(identity)

    def _catalog_is_empty(self) -> bool:
        if self._cursor.height >= 0:
            return False
        everything = SearchQuery(include_deactivated=True, limit=1)
        return self.store.search(everything).total == 0

    def _last_edit(self, record_id: str) -> int | None:
        detail = self.store.get(record_id)
        stamps = [int(e["timestamp"]) for e in detail.provenance.edits] if detail else []
        return max(stamps, default=None)

    def _edit(self, message: Edit, txid: str, pos: Position, text: str) -> None:
        record_id = message.txid.lower()
        state = self.store.record_state(record_id)
        last = self._last_edit(record_id) if state is not None else None
        patched = check_edit(message, state, last, self.limits)
        signed = edit_meta(patched, state)
        if isinstance(patched, Rejected):
            self._reject(patched, txid, pos, text)
            return
        if isinstance(signed, Rejected):
            self._reject(signed, txid, pos, text)
            return
        self.store.apply_edit(
            AppliedEdit(txid, record_id, message.timestamp, message.patch, patched, pos, signed)
        )
        self._batch.edits += 1
        # A publish of the state this edit signed is a copy of this record, never a new one.
        self._copies.remember(record_identity(patched))

    def _deactivate(self, message: Deactivate, txid: str, pos: Position, text: str) -> None:
        record_id = message.artifact_id.lower()
        state = self.store.record_state(record_id)
        last = self._last_edit(record_id) if state is not None else None
        timestamp = check_deactivate(message, state, last)
        if isinstance(timestamp, Rejected):
            self._reject(timestamp, txid, pos, text)
            return
        self.store.deactivate(Deactivation(txid, record_id, timestamp, pos))
        self._batch.deactivations += 1

    def _reject(self, why: Rejected, txid: str, pos: Position, payload: str) -> None:
        self.store.add_rejection(
            Rejection(txid, pos.height, pos.index, pos.time, why.kind, why.reason, excerpt(payload))
        )
        self._batch.rejections += 1
