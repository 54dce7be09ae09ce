"""The publishing pipeline: a lab's source -> content -> signed record -> ledger, exactly once.

:meth:`Publisher.plan` reads the source, the journal (and the catalog, if given) and the
folders' ``stat`` listings, and says what each dataset needs: a new record, an edit, a
deactivation, a republication, or nothing. It writes nothing anywhere. :meth:`Publisher.run`
does it, dataset by dataset:

1. make missing media (``overlay.py``) and add the folder to the blockstore, then **sync** it:
   nothing on the ledger may point at content that is not durably stored;
2. build, sign and verify the record (or edit, or deactivation);
2a. with a kubo node configured (``PublishConfig.kubo``), push the dataset's DAG there, pinned
   (``etdb.content.kubo_push``), unless the journal records it pushed to that node (its peer
   ID) already; the push is journaled once kubo has it pinned. A push that fails is that
   dataset's failure (nothing goes to the ledger for it; the next run pushes again);
3. ``journal.begin`` it, durably, with the exact payload and timestamp — nothing is signed
   for the ledger's sake before this and nothing is sent before it;
4. ``outbox.send`` it: every part's intent and txid are journaled around ``ledger.publish``.

A crash anywhere is therefore safe: the next run first finishes what the journal holds
(``outbox.recover``), then re-plans from the journal. Which datasets changed is found without
reading their data (``changes.py``).

A lost journal is guarded against only when a catalog is configured: a dataset the journal does
not know but the catalog holds as an active record of this publisher (same ``details.sid``) is
adopted into the journal, not published again; a dataset several such records claim is not
adopted but reported as that dataset's problem, naming them (the others go on). **Without a
catalog, a lost or replaced journal makes every dataset NEW again, and a run would publish
duplicates.** Keep the journal with the lab's backups, or configure the catalog.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection

from etdb.content.errors import ContentError
from etdb.content.kubo_push import push
from etdb.ledger.base import LedgerError, TxRef
from etdb.ledger.rpc_errors import ChainTooLong
from etdb.publish import outbox
from etdb.publish.changes import record_fingerprint
from etdb.publish.dataset import DatasetError, add_listed, build_artifact
from etdb.publish.events import (
    BlocksPushed,
    BytesAdded,
    DatasetFailed,
    DatasetFinished,
    DatasetStarted,
    Event,
    Pushed,
    PushStarted,
    Recovered,
    WaitingForConfirmations,
)
from etdb.publish.journal import JournalError
from etdb.publish.known import CatalogRecords, Known, adopt, catalog_records, from_journal
from etdb.publish.media import MediaError
from etdb.publish.overlay import make_media
from etdb.publish.planner import DatasetPlanner, Message, Prepared, PublishConfig, problem
from etdb.publish.report import ACTIONABLE, Action, Plan, PlannedDataset, Summary
from etdb.publish.source import DatasetProblem, Source, SourceDataset
from etdb.record import RecordError

__all__ = [
    "Action",
    "Event",
    "Plan",
    "PlannedDataset",
    "PublishConfig",
    "PublishError",
    "Publisher",
    "Summary",
]


_NO_CLAIMS = CatalogRecords({}, {})


class PublishError(Exception):
    """The run cannot start (journal of another publisher or ledger...); says what to do."""


class Publisher:
    """Plans and runs the publication of a source's datasets (see the module docstring)."""

    def __init__(
        self,
        source: Source,
        config: PublishConfig,
        *,
        on_event: Callable[[Event], None] | None = None,
        chain_wait: float | None = None,
        publisher: str | None = None,
    ) -> None:
        """``chain_wait``: seconds a run waits for a block when the node takes no more
        unconfirmed transactions in a row (None: the run stops there, see ``outbox``).
        ``publisher``: the address the journal and catalog are for, when ``config.key`` only
        stands in for it (a dry run without the key: sizes are exact, signatures are not)."""
        self.source = source
        self.config = config
        self.on_event = on_event
        self.publisher = publisher or config.key.address
        self.wait = None if chain_wait is None else outbox.ChainWait(chain_wait, self._waiting)
        self.planner = DatasetPlanner(config, tuple(source.rules))
        self._prepared: dict[str, Prepared] = {}

    # -- planning -------------------------------------------------------------------------------

    def _check_binding(self) -> None:
        journal, cfg = self.config.journal, self.config
        if journal.publisher != self.publisher:
            raise PublishError(
                f"the journal {journal.path} belongs to publisher {journal.publisher}, not to "
                f"the key's {self.publisher}: use that publisher's key or its own journal"
            )
        if journal.ledger_url != cfg.ledger.url:
            raise PublishError(
                f"the journal {journal.path} is for ledger {journal.ledger_url}, not "
                f"{cfg.ledger.url}: each ledger has its own journal"
            )

    def plan(self, *, only: Collection[str] | None = None, limit: int | None = None) -> Plan:
        """What a run would do; reads the source, journal, catalog and folders, writes nothing.

        ``only`` restricts the plan to those sids; ``limit`` caps the actionable datasets (new,
        edit, deactivate, republish): actionable ones past it are left out of the plan, for a
        later run. Record sizes, transactions and fee are exact except for media still to be
        generated (their sizes are unknown until they exist: a few bytes of ``fsize`` digits).
        """
        self._check_binding()
        cfg = self.config
        wanted = set(only) if only is not None else None
        known = {e.sid: from_journal(e) for e in cfg.journal.entries()}
        claims = catalog_records(cfg.catalog, self.publisher) if cfg.catalog else _NO_CLAIMS
        prepared: list[Prepared] = []
        listed: set[str] = set()
        actionable = 0
        for item in self.source.datasets(only):
            if isinstance(item, DatasetProblem):
                sid = item.sid or f"({item.origin})"
                listed.add(sid)
                prepared.append(problem(sid, item.origin, None, item.reason))
                continue
            listed.add(item.sid)
            conflict = None if item.sid in known else claims.conflicts.get(item.sid)
            if conflict is not None:
                prepared.append(problem(item.sid, item.origin, item.folder, conflict, item))
                continue
            if limit is not None and actionable >= limit:
                continue
            work = self.planner.prepare(item, known.get(item.sid) or claims.adoptable.get(item.sid))
            actionable += work.planned.actionable
            prepared.append(work)
        for sid, k in known.items():
            if sid not in listed and (wanted is None or sid in wanted) and k.state == "published":
                why = (
                    f"record {k.record_txid} is on the ledger but the source no longer lists the "
                    "dataset; not deactivated (check the source's query, or make it list the "
                    "dataset as not public to deactivate it)"
                )
                prepared.append(problem(sid, "journal", None, why))
        self._prepared = {w.planned.sid: w for w in prepared}
        datasets = tuple(w.planned for w in prepared)
        todo = [d for d in datasets if d.actionable]
        transactions = sum(d.transactions for d in todo)
        payload_bytes = sum(d.record_bytes for d in todo)
        return Plan(
            datasets,
            pending=len(cfg.journal.pending()),
            total_bytes=sum(d.bytes for d in todo),
            transactions=transactions,
            payload_bytes=payload_bytes,
            fee=cfg.ledger.estimate_fee(payload_bytes, transactions),
        )

    # -- running --------------------------------------------------------------------------------

    def run(self, plan: Plan) -> Summary:
        """Finish what the journal holds unfinished, then the plan's actionable datasets in
        order. One dataset's failure is reported and the run goes on; a ledger failure stops
        the run (everything sent is journaled: running again resumes)."""
        self._check_binding()
        cfg = self.config
        started = time.monotonic()
        self._counts = dict.fromkeys(Action, 0)
        self._failed = [
            (d.sid, d.reason or "") for d in plan.datasets if d.action is Action.PROBLEM
        ]
        self._bytes = self._transactions = self._pushed = 0
        recovered = 0
        try:
            for entry in outbox.recover(cfg.journal, cfg.ledger, cfg.key, wait=self.wait):
                recovered += 1
                kind, txid, _ = entry.history[-1] if entry.history else ("publish", "", 0)
                self._emit(
                    Recovered(entry.sid, kind, entry.txids if kind == "publish" else (txid,))
                )
            for planned in plan.datasets:
                if planned.actionable:
                    self._run_one(planned)
        except (LedgerError, JournalError) as exc:
            # The journal holds every intent and txid: nothing is lost, a re-run resumes.
            self._failed.append(("(run stopped)", f"{exc}; run again to resume"))
        return Summary(
            counts=self._counts,
            failed=tuple(self._failed),
            recovered=recovered,
            bytes_added=self._bytes,
            transactions=self._transactions,
            seconds=time.monotonic() - started,
            disagreements=sum(len(d.disagreements) for d in plan.datasets),
            pushed=self._pushed,
        )

    def _emit(self, event: Event) -> None:
        if self.on_event is not None:
            self.on_event(event)

    def _waiting(self, sid: str, refusal: ChainTooLong) -> None:
        assert self.wait is not None
        self._emit(WaitingForConfirmations(sid, refusal.unconfirmed, self.wait.timeout))

    def _fail(self, sid: str, reason: str) -> None:
        self._failed.append((sid, reason))
        self._emit(DatasetFailed(sid, reason))

    def _run_one(self, planned: PlannedDataset) -> None:
        sid = planned.sid
        work = self._prepared.get(sid)
        source = work.source if work is not None else None
        if work is None or source is None:  # a plan made by another Publisher
            found = [d for d in self.source.datasets([sid]) if isinstance(d, SourceDataset)]
            if not found:
                self._fail(sid, "the source no longer lists it")
                return
            source = found[0]
            work = Prepared(planned, source, None, {}, None, None, must_add=True)
        # Re-decide against the journal as it is now: recovery may have moved this dataset.
        entry = self.config.journal.get(sid)
        known: Known | None = None
        if entry is not None:
            known = from_journal(entry)
        elif work.known is not None and work.known.from_catalog:
            known = work.known  # still to be adopted
        work = self.planner.prepare(source, known)
        assert work.source is not None
        action = work.planned.action
        if action is Action.PROBLEM:
            self._fail(sid, work.planned.reason or "cannot be published")
            return
        if action not in ACTIONABLE:
            self._counts[action] += 1
            return
        self._emit(DatasetStarted(sid, str(action), work.planned.bytes))
        t0 = time.monotonic()
        try:
            done, txids = self._execute(work)
        except (DatasetError, MediaError, RecordError, OSError, ValueError, LookupError) as exc:
            self._fail(sid, str(exc))
            return
        self._counts[done] += 1
        self._emit(DatasetFinished(sid, str(done), txids, time.monotonic() - t0))

    def _execute(self, work: Prepared) -> tuple[Action, tuple[str, ...]]:
        cfg = self.config
        ds, known, action = work.source, work.known, work.planned.action
        assert ds is not None
        if action is Action.DEACTIVATE:
            assert known is not None
            return action, self._send(ds.sid, self.planner.deactivation(known), known, None, None)
        assert work.media is not None
        overlay = (
            make_media(work.media, ds.sid, cfg.media_dir)
            if work.media.to_make
            else dict(work.media.overlay)
        )
        files = self.planner.describe(ds, overlay or None)
        fingerprint = self.planner.fingerprint(ds, overlay)
        if work.must_add or known is None or fingerprint != known.content_fingerprint:
            self._kubo_node()  # kubo unreachable: fail now, before the dataset's bytes are read
            base, content, _ = self.planner.content(ds, overlay)
            added = add_listed(
                base,
                files,
                cfg.blockstore,
                self.planner.profile,
                overlay=content or None,
                on_progress=lambda n: self._added(ds.sid, n),
            )
            if self.planner.fingerprint(ds, overlay) != fingerprint:
                raise DatasetError(f"{ds.folder} changed while it was being added; try again later")
            cfg.blockstore.sync()  # durable BEFORE anything on the ledger points at it
            cid = str(added.cid)
        else:
            assert known.cid is not None
            cid = known.cid
        artifact = build_artifact(work.metadata, cid, files, limits=cfg.limits)
        if known is not None and known.from_catalog:
            same = cid == known.cid
            entry = adopt(cfg.journal, ds.sid, known, fingerprint if same else None)
            known = from_journal(entry)
        if (
            action is Action.EDIT
            and known is not None
            and cid == known.cid
            and (record_fingerprint(artifact) == known.record_fingerprint)
        ):
            # Only the folder's times changed (or adopted as is): the bytes were re-read and
            # are the same; remember the new fingerprint so the next run does not re-read them.
            if known.content_fingerprint != fingerprint:
                cfg.journal.refresh(ds.sid, content_fingerprint=fingerprint)
            return Action.UNCHANGED, ()
        message = self.planner.message(action, known, artifact)
        fingerprints = (fingerprint, record_fingerprint(artifact))
        self._push(ds.sid, cid)
        return action, self._send(ds.sid, message, known, cid, fingerprints)

    def _kubo_node(self) -> str | None:
        """The configured kubo node's peer ID (None: no node); DatasetError if unreachable."""
        kubo = self.config.kubo
        try:
            return None if kubo is None else kubo.peer_id()
        except ContentError as exc:
            raise DatasetError(f"push to kubo: {exc}") from None

    def _push(self, sid: str, cid: str) -> None:
        """Push the dataset's DAG to the kubo node, once per node (see the module docstring)."""
        cfg, node = self.config, self._kubo_node()
        if cfg.kubo is None or node is None or cfg.journal.pushed(cid, node):
            return
        self._emit(PushStarted(sid, cid, cfg.kubo.shown))
        try:
            # Just added and synced (or known from the journal): no need to look blocks up first.
            done = push(cfg.kubo, cfg.blockstore, cid, check_first=False,
                        on_block=lambda n: self._emit(BlocksPushed(sid, n)))  # fmt: skip
        except ContentError as exc:
            raise DatasetError(f"push to kubo: {exc}") from None
        cfg.journal.record_push(cid, done.node, api=done.api, blocks=done.blocks, size=done.bytes)
        self._pushed += 1
        self._emit(Pushed(sid, cid, done.node, done.blocks, done.bytes, done.seconds))

    def _added(self, sid: str, n: int) -> None:
        self._bytes += n
        self._emit(BytesAdded(sid, n))

    def _send(
        self,
        sid: str,
        message: Message,
        known: Known | None,
        cid: str | None,
        fingerprints: tuple[str, str] | None,
    ) -> tuple[str, ...]:
        """Journal the message (durably, before anything is sent), then send it exactly once."""
        cfg = self.config
        op = cfg.journal.begin(
            sid,
            message.kind,  # type: ignore[arg-type]
            message.payload,
            timestamp=message.timestamp,
            since_height=max(cfg.ledger.tip().height, 0),
            record_txid=known.record_txid
            if known is not None and message.kind != "publish"
            else None,
            artifact=message.artifact.to_wire() if message.artifact is not None else None,
            cid=cid,
            content_fingerprint=fingerprints[0] if fingerprints else None,
            record_fingerprint=fingerprints[1] if fingerprints else None,
        )
        sent: list[str] = []

        def on_sent(_index: int, ref: TxRef) -> None:
            sent.append(ref.txid)
            self._transactions += 1

        outbox.send(cfg.journal, op, cfg.ledger, cfg.key, on_sent=on_sent, wait=self.wait)
        return tuple(sent)
