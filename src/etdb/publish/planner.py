"""Deciding what one dataset needs: the planning half of the publishing pipeline.

:class:`DatasetPlanner` compares a source's dataset with what is on the ledger for it (the
journal's entry, or a record adopted from the catalog) and prepares the signed message a run
would send: it reads folders' ``stat`` listings and MRC headers, never writes. Signing here is
harmless (nothing leaves the process) and makes the planned sizes exact: signatures have a
fixed size, and a stand-in CID has the length of the real one.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from etdb.content.blockstore import Blockstore
from etdb.content.cid import CID, DAG_PB
from etdb.content.kubo_api import KuboApi
from etdb.content.profiles import Profile, get_profile
from etdb.index.query import CatalogReader
from etdb.ledger.base import Ledger, payload_size
from etdb.ledger.messages import plan as plan_texts
from etdb.publish.changes import changed_paths, content_fingerprint, record_fingerprint
from etdb.publish.dataset import DatasetError, build_artifact, describe_files
from etdb.publish.journal import Journal
from etdb.publish.known import Known
from etdb.publish.listing import dataset_listing
from etdb.publish.media import MediaError
from etdb.publish.overlay import MediaPlan, mark_generated, plan_media
from etdb.publish.report import ACTIONABLE, Action, PlannedDataset
from etdb.publish.source import ClassifyRule, SourceDataset
from etdb.record import (
    Artifact,
    PrivateKey,
    RecordError,
    encode_deactivate,
    encode_edit,
    encode_publish,
    make_edit,
    sign_artifact,
    sign_deactivate,
    verify_publish,
)
from etdb.record.limits import DEFAULT_LIMITS, RecordLimits

__all__ = ["DatasetPlanner", "Message", "Prepared", "PublishConfig", "problem"]


@dataclass
class PublishConfig:
    key: PrivateKey
    ledger: Ledger
    blockstore: Blockstore
    profile: Profile | str
    journal: Journal
    media_dir: Path  # generated media live here, never in the lab's folders
    make_media: bool = True  # False: no medium is made (those made earlier are still used)
    pyramids: bool = True  # False: no OME-Zarr pyramid is made or listed (publish_pyramids)
    fill_from_files: bool = True
    catalog: CatalogReader | None = None  # if given, guards against a lost journal
    limits: RecordLimits = DEFAULT_LIMITS  # a record over them is refused before signing
    kubo: KuboApi | None = None  # if given, each dataset's DAG is pushed there before its record


@dataclass(frozen=True)
class Message:
    """What goes to the ledger for one dataset, signed, ready for ``journal.begin``."""

    kind: str  # publish | edit | deactivate
    payload: str
    timestamp: int
    artifact: Artifact | None  # the record as it will stand (None for a deactivation)


@dataclass
class Prepared:
    """One dataset as planned: what run() needs beyond the PlannedDataset it reports."""

    planned: PlannedDataset
    source: SourceDataset | None
    known: Known | None
    metadata: dict[str, Any]
    media: MediaPlan | None
    fingerprint: str | None  # content, at plan time
    must_add: bool  # the content is (re-)added: new, or changed since the journal's CID


class DatasetPlanner:
    """Prepares datasets for a run under one configuration (see the module docstring)."""

    def __init__(self, config: PublishConfig, rules: tuple[ClassifyRule, ...]) -> None:
        self.config = config
        self.rules = rules
        profile = config.profile
        self.profile = get_profile(profile) if isinstance(profile, str) else profile
        digest = bytes(32)  # a stand-in CID: same text length as the real one
        cid = CID.v0(digest) if self.profile.cid_version == 0 else CID.v1(DAG_PB, digest)
        self._placeholder = str(cid)
        self._empty: tempfile.TemporaryDirectory[str] | None = None  # for files-only datasets

    def fingerprint(self, ds: SourceDataset, overlay: dict[str, Path]) -> str:
        base, files, _ = self.content(ds, overlay)
        return content_fingerprint(base, profile=self.profile.name, overlay=files)

    def content(
        self, ds: SourceDataset, media: dict[str, Path] | None
    ) -> tuple[Path, dict[str, Path], tuple[str, ...]]:
        """The folder to import, the files overlaid on it and the warnings about it: a
        files-only dataset is its listing on an empty folder (``etdb.publish.listing``)."""
        if not ds.files_only:
            return ds.folder, dict(media or {}), ()
        listing = dataset_listing(ds)
        if self._empty is None:
            self._empty = tempfile.TemporaryDirectory(prefix="etdb-listing-")
        return Path(self._empty.name), {**listing.files, **(media or {})}, listing.warnings

    def prepare(self, ds: SourceDataset, known: Known | None) -> Prepared:
        if not ds.public:
            if known is not None and known.state == "published":
                message = self.deactivation(known)
                return self.planned(Action.DEACTIVATE, ds, known, message, None, {}, None)
            note = "deactivated earlier" if known is not None else None
            planned = PlannedDataset(
                ds.sid, Action.PRIVATE, ds.origin, ds.folder, 0, 0, 0, 0, reason=note
            )
            return Prepared(planned, ds, known, {}, None, None, must_add=False)
        try:
            return self.prepare_public(ds, known)
        except (DatasetError, MediaError, RecordError, OSError, ValueError) as exc:
            return problem(ds.sid, ds.origin, ds.folder, str(exc), ds)

    def describe(self, ds: SourceDataset, overlay: dict[str, Path] | None) -> list[dict[str, Any]]:
        base, files, _ = self.content(ds, overlay)
        entries = describe_files(
            base, ds.sid, files=ds.files, rules=self.rules, overlay=files or None
        )
        return mark_generated(ds.sid, entries, overlay or {})  # etdb's addition says so

    def prepare_public(self, ds: SourceDataset, known: Known | None) -> Prepared:
        cfg = self.config
        if not ds.folder.is_dir():
            raise DatasetError(f"{ds.folder}: the dataset folder is missing")
        files = self.describe(ds, None)
        media = plan_media(
            ds.folder,
            ds.sid,
            cfg.media_dir,
            ((f["fname"], f["subtype"]) for f in files),
            ds.key_media,
            pyramid=cfg.pyramids,
        )
        if not cfg.make_media:
            media = replace(media, to_make=(), reconstruction=None, note="media making is off")
        if media.overlay:
            files = self.describe(ds, media.overlay)
        metadata, disagreements, notes = self.metadata(ds, files)
        if media.note and cfg.make_media:
            notes.append(media.note)
        fingerprint = self.fingerprint(ds, media.overlay)
        if known is None or known.state == "deactivated":
            action = Action.NEW if known is None else Action.REPUBLISH
            must_add = True
        else:
            action = Action.EDIT
            must_add = (
                bool(media.to_make) or not known.cid or (known.content_fingerprint != fingerprint)
            )
            if known.from_catalog:
                notes.append(
                    f"in the catalog as record {known.record_txid}, not in the "
                    "journal: adopted (its content is re-read to compare)"
                )
            elif must_add:
                notes.append("the folder changed on disk: its content is added again")
        location = self._placeholder if must_add else str(known.cid if known else "")
        artifact = build_artifact(metadata, location, files, limits=self.config.limits)
        changes: tuple[str, ...] = ()
        if action is Action.EDIT:
            assert known is not None
            changes = changed_paths(known.artifact or {}, artifact)
            if must_add and "storage.location" not in changes:
                changes = ("storage.location", *changes)
            if not changes and record_fingerprint(artifact) == known.record_fingerprint:
                action = Action.UNCHANGED
        message = self.message(action, known, artifact) if action in ACTIONABLE else None
        work = self.planned(
            action, ds, known, message, media, metadata, fingerprint, must_add=must_add, files=files
        )
        work.planned = replace(
            work.planned,
            changes=changes,
            disagreements=tuple(disagreements),
            reason="; ".join(notes) or None,
            warnings=(*ds.warnings, *self.content(ds, None)[2]),
        )
        return work

    def metadata(
        self, ds: SourceDataset, files: list[dict[str, Any]]
    ) -> tuple[dict[str, Any], list[Any], list[str]]:
        """The source's metadata, filled from the MRC files where it lacks values."""
        metadata = dict(ds.metadata)
        if not self.config.fill_from_files:
            return metadata, [], []
        from etdb.publish.mrcmeta import dataset_facts, reconcile

        def of(subtype: str) -> list[str]:
            return [f["fname"] for f in files if f["subtype"] == subtype]

        facts = dataset_facts(
            ds.folder, tilt_series=of("tiltSeries"), reconstructions=of("reconstruction")
        )
        metadata, disagreements = reconcile(metadata, facts)
        notes = [f"{rel}: {why}" for rel, why in facts.problems]
        return metadata, list(disagreements), notes

    def timestamp(self, known: Known | None) -> int:
        # Edits and deactivations must be timestamped after the record's last edit, or the
        # indexer rejects them; two runs within a second must still move forward.
        now = int(time.time())
        return max(now, known.last_timestamp + 1) if known is not None else now

    def deactivation(self, known: Known) -> Message:
        ts = self.timestamp(known)
        signed = sign_deactivate(known.record_txid, self.config.key, timestamp=ts)
        return Message("deactivate", encode_deactivate(signed), ts, None)

    def message(self, action: Action, known: Known | None, artifact: Artifact) -> Message:
        """The signed, verified message for ``artifact`` (its final location already in it)."""
        key = self.config.key
        ts = self.timestamp(known)
        if action is Action.EDIT:
            assert known is not None and known.artifact is not None
            old = Artifact.from_wire(known.artifact)
            edit, signed = make_edit(known.record_txid, old, artifact, key, timestamp=ts, meta=True)
            payload, kind = encode_edit(edit), "edit"
        else:
            signed = sign_artifact(artifact, key, timestamp=ts, meta=True)
            payload, kind = encode_publish(signed), "publish"
        signed.require_complete()
        check = verify_publish(signed)
        # A dry run's StandInKey (publish/stand_in.py) cannot sign for its address; never sent.
        if not check.valid and not getattr(key, "plans_only", False):
            raise DatasetError(f"the signed record does not verify: {check.reason}")
        return Message(kind, payload, ts, signed)

    def planned(
        self,
        action: Action,
        ds: SourceDataset,
        known: Known | None,
        message: Message | None,
        media: MediaPlan | None,
        metadata: dict[str, Any],
        fingerprint: str | None,
        *,
        must_add: bool = False,
        files: list[dict[str, Any]] | None = None,
    ) -> Prepared:
        texts = plan_texts(self.config.ledger, message.payload, self.config.key) if message else []
        added = files if must_add and files else []
        planned = PlannedDataset(
            ds.sid,
            action,
            ds.origin,
            ds.folder,
            files=len(added) + (len(media.to_make) if media else 0),
            bytes=sum(f["fsize"] for f in added),
            record_bytes=sum(payload_size(t) for t in texts),
            transactions=len(texts),
            media=media.to_make if media else (),
        )
        return Prepared(planned, ds, known, metadata, media, fingerprint, must_add)


def problem(
    sid: str, origin: str, folder: Path | None, reason: str, source: SourceDataset | None = None
) -> Prepared:
    planned = PlannedDataset(sid, Action.PROBLEM, origin, folder, 0, 0, 0, 0, reason=reason)
    return Prepared(planned, source, None, {}, None, None, must_add=False)
