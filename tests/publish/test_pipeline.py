"""The publishing pipeline end to end: a source (a list of datasets), a real embedded ledger,
a real blockstore and journal, and the indexer's catalog reading back what was published."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import mrcfile
import numpy as np
import pytest

from etdb.content import exporter
from etdb.content.blockstore import FSBlockstore
from etdb.index.catalog import open_catalog
from etdb.index.indexer import Indexer
from etdb.ledger.base import payload_size
from etdb.ledger.local import LocalLedger
from etdb.publish.events import DatasetFailed, DatasetFinished, DatasetStarted
from etdb.publish.journal import Journal
from etdb.publish.pipeline import Action, PublishConfig, Publisher, PublishError
from etdb.publish.source import ClassifyRule, DatasetProblem, SourceDataset, SourceFile
from etdb.record import PrivateKey, decode, verify_publish

PROFILE = "kubo-v1"


def meta(sid: str, **changes: Any) -> dict[str, Any]:
    return {
        "title": f"Phantom cell {sid}",
        "date": "2014-01-14",
        "NCBItaxID": 2287,
        "speciesName": "Sulfolobus solfataricus",
        "scopeName": "Caltech Polara",
        "tiltSingleDual": 1,
        "defocus": -10,
        "dosage": 180,
        "magnification": 22500,
        "microscopist": "Ada Voxelstein",
        "institution": "Institute of Imaginary Microbiology",
        "lab": "Phantom Lab",
        "sid": sid,
        "swAcquisition": "SerialEM",
        **changes,
    }


def write_mrc(path: Path, shape: tuple[int, int, int], seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data)


def make_folder(root: Path, sid: str, *, media: bool = True, seed: int = 0) -> Path:
    """A go-etdb dataset folder: tilt series with its angle list, reconstruction, media."""
    folder = root / sid
    write_mrc(folder / "rawdata" / "ts.mrc", (5, 16, 16), seed)
    (folder / "rawdata" / "ts.rawtlt").write_text("-60\n-30\n0\n30\n60\n")
    write_mrc(folder / "3dimage_1" / "ts_full.rec", (8, 16, 16), seed + 1)
    (folder / "AutoCaps").mkdir()
    (folder / "AutoCaps" / "shot.jpg").write_bytes(b"\xff\xd8 not really a jpeg " + sid.encode())
    if media:
        (folder / f"keyimg_{sid}.jpg").write_bytes(b"key image " + sid.encode())
        (folder / f"keyimg_{sid}_s.jpg").write_bytes(b"thumb " + sid.encode())
        (folder / f"keymov_{sid}.mp4").write_bytes(b"movie " + sid.encode())
    return folder


class ListSource:
    """A source over a list: what a folder or SQL source yields, held in memory."""

    name = "test list"

    def __init__(self, items: list[SourceDataset | DatasetProblem], rules=()) -> None:
        self.items = items
        self.rules = tuple(rules)

    def datasets(self, only: Collection[str] | None = None) -> Iterator[Any]:
        for item in sorted(self.items, key=lambda i: i.sid or ""):
            if only is None or item.sid in only:
                yield item

    def close(self) -> None:
        pass

    def replace(self, sid: str, **changes: Any) -> None:
        self.items = [dataclasses.replace(i, **changes) if i.sid == sid else i for i in self.items]


class Lab:
    """Everything a publishing run touches, in one tmp folder."""

    def __init__(self, tmp: Path, *, max_payload: int = 10_000, key: PrivateKey | None = None):
        self.tmp = tmp
        self.key = key or PrivateKey(bytes([7]) * 32)
        self.ledger = LocalLedger(tmp / "ledger.sqlite3", max_payload=max_payload)
        self.store = FSBlockstore(tmp / "blocks")
        self.journal_path = tmp / "journal.sqlite3"
        self.journal = Journal.open(
            self.journal_path, ledger_url=self.ledger.url, publisher=self.key.address
        )
        self.media_dir = tmp / "media"
        self.catalog = open_catalog(f"sqlite:///{tmp / 'catalog.sqlite3'}")
        self.events: list[Any] = []

    def config(self, **changes: Any) -> PublishConfig:
        # Pyramids (on by default) have their own tests (test_pyramids.py).
        kw: dict[str, Any] = {"make_media": False, "pyramids": False} | changes
        return PublishConfig(self.key, self.ledger, self.store, PROFILE, self.journal,
                             self.media_dir, **kw)  # fmt: skip

    def publisher(self, source: ListSource, **changes: Any) -> Publisher:
        return Publisher(source, self.config(**changes), on_event=self.events.append)

    def index(self):
        Indexer(self.ledger, self.catalog).run()
        return self.catalog

    def entries(self) -> list[Any]:
        return [e for b in self.ledger.blocks(0, self.ledger.tip().height) for e in b.entries]

    def close(self) -> None:
        self.catalog.close()
        self.journal.close()
        self.store.close()
        self.ledger.close()


@pytest.fixture
def lab(tmp_path):
    lab = Lab(tmp_path)
    yield lab
    lab.close()


def dataset(root: Path, sid: str, **changes: Any) -> SourceDataset:
    folder = root / "data" / sid
    if not folder.exists():
        make_folder(root / "data", sid, media=changes.pop("media", True))
    changes.pop("media", None)
    return SourceDataset(sid, meta(sid), folder, origin=f"row {sid}", **changes)


def run(publisher: Publisher, **kw: Any):
    plan = publisher.plan(**kw)
    return plan, publisher.run(plan)


# -- publishing -----------------------------------------------------------------------------------


def test_new_datasets_are_published_indexed_and_verify(lab, tmp_path):
    files = (SourceFile("rawdata/ts.mrc", notes="binned 2", display_name="TS 01.mrc"),)
    source = ListSource(
        [dataset(tmp_path, "ab-1", files=files), dataset(tmp_path, "ab-2")],
        rules=[ClassifyRule("AutoCaps/*", "preview")],
    )
    publisher = lab.publisher(source)
    plan = publisher.plan()
    assert plan.counts()[Action.NEW] == 2 and plan.pending == 0
    by_sid = {d.sid: d for d in plan.datasets}
    assert by_sid["ab-1"].files == 7 and by_sid["ab-1"].bytes > 0
    summary = publisher.run(plan)
    assert summary.counts[Action.NEW] == 2 and summary.failed == ()
    # The plan's transactions and payload bytes are what went to the ledger.
    sent = lab.entries()
    assert len(sent) == plan.transactions == summary.transactions == 2
    assert sum(payload_size(e.payload) for e in sent) == plan.payload_bytes
    assert plan.fee.transactions == 2
    assert summary.bytes_added == sum(d.bytes for d in plan.datasets)
    assert isinstance(lab.events[0], DatasetStarted) and lab.events[0].sid == "ab-1"
    assert {e.sid for e in lab.events if isinstance(e, DatasetFinished)} == {"ab-1", "ab-2"}

    catalog = lab.index()
    entry = lab.journal.get("ab-1")
    detail = catalog.get(entry.record_txid)
    artifact = decode(sent[0].payload).artifact
    assert verify_publish(artifact).valid and artifact.floAddress == lab.key.address
    files_by_name = {f["fname"]: f for f in detail.artifact["storage"]["files"]}
    assert files_by_name["rawdata/ts.mrc"]["subtype"] == "tiltSeries"
    assert files_by_name["rawdata/ts.mrc"]["fNotes"] == "binned 2"
    assert files_by_name["rawdata/ts.mrc"]["dname"] == "TS 01.mrc"
    assert files_by_name["3dimage_1/ts_full.rec"]["subtype"] == "reconstruction"
    assert files_by_name["AutoCaps/shot.jpg"]["subtype"] == "preview"  # the source's rule
    assert files_by_name["keyimg_ab-1_s.jpg"]["type"] == "image"
    # Filled from the files: the database had no tilt range, the angle list has it.
    assert (detail.artifact["details"]["tiltMin"], detail.artifact["details"]["tiltMax"]) == (
        -60,
        60,
    )
    location = detail.artifact["storage"]["location"]
    assert entry.cid == location
    assert (
        exporter.stat(lab.store, f"{location}/rawdata/ts.mrc").size
        == (tmp_path / "data/ab-1/rawdata/ts.mrc").stat().st_size
    )

    # Nothing changed: nothing to do, nothing sent.
    again, summary = run(lab.publisher(source))
    assert again.counts()[Action.UNCHANGED] == 2 and again.transactions == 0
    assert summary.transactions == 0 and len(lab.entries()) == 2


def test_unchanged_content_is_not_read_again(lab, tmp_path, monkeypatch):
    source = ListSource([dataset(tmp_path, "ab-1")])
    run(lab.publisher(source))
    source.replace("ab-1", metadata=meta("ab-1", title="Renamed"))
    import etdb.publish.pipeline as pipeline_mod

    def no_reading(*_a, **_k):
        raise AssertionError("the content was read again")

    monkeypatch.setattr(pipeline_mod, "add_listed", no_reading)
    plan, summary = run(lab.publisher(source))
    assert plan.datasets[0].action is Action.EDIT and plan.datasets[0].bytes == 0
    assert summary.counts[Action.EDIT] == 1


def test_a_metadata_change_is_one_edit(lab, tmp_path):
    source = ListSource([dataset(tmp_path, "ab-1"), dataset(tmp_path, "ab-2")])
    run(lab.publisher(source))
    first = lab.journal.get("ab-1")
    source.replace("ab-1", metadata=meta("ab-1", tiltStep=2, microscopist="Grace Hopper"))
    plan = lab.publisher(source).plan()
    edit = next(d for d in plan.datasets if d.sid == "ab-1")
    assert edit.action is Action.EDIT and edit.bytes == 0 and edit.transactions == 1
    assert set(edit.changes) == {"details.tiltStep", "details.microscopist"}
    assert plan.counts()[Action.UNCHANGED] == 1
    summary = lab.publisher(source).run(plan)
    assert summary.counts[Action.EDIT] == 1 and len(lab.entries()) == 3
    detail = lab.index().get(first.record_txid)
    assert detail.artifact["details"]["microscopist"] == "Grace Hopper"
    assert detail.artifact["details"]["tiltStep"] == 2
    assert len(detail.provenance.edits) == 1
    now = lab.journal.get("ab-1")
    assert now.record_txid == first.record_txid and now.cid == first.cid
    assert now.artifact["details"]["tiltStep"] == 2  # the journal keeps the patched record
    assert run(lab.publisher(source))[0].counts()[Action.UNCHANGED] == 2


def test_a_content_change_edits_the_location(lab, tmp_path):
    source = ListSource([dataset(tmp_path, "ab-1")])
    run(lab.publisher(source))
    first = lab.journal.get("ab-1")
    (tmp_path / "data/ab-1/AutoCaps/shot2.jpg").write_bytes(b"another snapshot")
    plan, summary = run(lab.publisher(source))
    planned = plan.datasets[0]
    assert planned.action is Action.EDIT and "storage.location" in planned.changes
    assert planned.bytes > 0 and summary.counts[Action.EDIT] == 1
    detail = lab.index().get(first.record_txid)
    location = detail.artifact["storage"]["location"]
    assert location != first.cid and lab.journal.get("ab-1").cid == location
    assert exporter.stat(lab.store, f"{location}/AutoCaps/shot2.jpg").size == 16
    # Touching a file (same bytes, new mtime) re-reads it, finds the same CID: nothing sent.
    os.utime(tmp_path / "data/ab-1/AutoCaps/shot2.jpg", ns=(1, 1))
    plan, summary = run(lab.publisher(source))
    assert summary.counts[Action.UNCHANGED] == 1 and summary.transactions == 0
    # ...and remembers the new times: the run after that plans nothing and reads nothing.
    plan, summary = run(lab.publisher(source))
    assert plan.datasets[0].action is Action.UNCHANGED and summary.bytes_added == 0


def test_deactivate_then_republish(lab, tmp_path):
    source = ListSource([dataset(tmp_path, "ab-1"), dataset(tmp_path, "ab-2", public=False)])
    plan, _ = run(lab.publisher(source))
    assert plan.counts()[Action.PRIVATE] == 1 and lab.journal.get("ab-2") is None
    first = lab.journal.get("ab-1").record_txid
    source.replace("ab-1", public=False)
    plan, summary = run(lab.publisher(source))
    assert plan.datasets[0].action is Action.DEACTIVATE and summary.counts[Action.DEACTIVATE] == 1
    assert lab.journal.get("ab-1").state == "deactivated"
    assert lab.index().get(first).provenance.deactivated
    assert run(lab.publisher(source))[0].counts()[Action.PRIVATE] == 2  # stays so
    source.replace("ab-1", public=True)
    plan, summary = run(lab.publisher(source))
    assert plan.datasets[0].action is Action.REPUBLISH and summary.counts[Action.REPUBLISH] == 1
    again = lab.journal.get("ab-1")
    assert again.state == "published" and again.record_txid != first
    detail = lab.index().get(again.record_txid)
    assert not detail.provenance.deactivated and detail.summary.sid == "ab-1"


def test_problems_do_not_stop_the_others(lab, tmp_path):
    gone = dataset(tmp_path, "ab-gone")
    gone = dataclasses.replace(gone, folder=tmp_path / "nowhere")
    source = ListSource(
        [
            dataset(tmp_path, "ab-1"),
            gone,
            dataset(tmp_path, "ab-3", files=(SourceFile("rawdata/missing.mrc"),)),
            dataclasses.replace(dataset(tmp_path, "ab-4"), metadata=meta("ab-4", tiltSingleDual=3)),
            DatasetProblem("ab-5", "row 5", "no folder column"),
        ]
    )
    plan, summary = run(lab.publisher(source))
    reasons = dict(summary.failed)
    assert plan.counts()[Action.PROBLEM] == 4 and summary.counts[Action.NEW] == 1
    assert "folder is missing" in reasons["ab-gone"]
    assert "rawdata/missing.mrc" in reasons["ab-3"]
    assert "tiltSingleDual" in reasons["ab-4"]
    assert reasons["ab-5"] == "no folder column"
    assert lab.journal.get("ab-1") is not None and len(lab.entries()) == 1


def test_a_dataset_failing_during_the_run_is_reported(lab, tmp_path):
    source = ListSource([dataset(tmp_path, "ab-1"), dataset(tmp_path, "ab-2")])
    publisher = lab.publisher(source)
    plan = publisher.plan()
    shutil.rmtree(tmp_path / "data/ab-1")
    summary = publisher.run(plan)
    assert summary.counts[Action.NEW] == 1 and [s for s, _ in summary.failed] == ["ab-1"]
    assert any(isinstance(e, DatasetFailed) and e.sid == "ab-1" for e in lab.events)


def test_datasets_the_source_no_longer_lists_are_reported_not_deactivated(lab, tmp_path):
    source = ListSource([dataset(tmp_path, "ab-1"), dataset(tmp_path, "ab-2")])
    run(lab.publisher(source))
    source.items = source.items[:1]
    plan, summary = run(lab.publisher(source))
    problem = next(d for d in plan.datasets if d.sid == "ab-2")
    assert problem.action is Action.PROBLEM and "no longer lists" in (problem.reason or "")
    assert summary.transactions == 0 and lab.journal.get("ab-2").state == "published"
    # Restricted to other datasets, it is not mentioned.
    assert [d.sid for d in lab.publisher(source).plan(only=["ab-1"]).datasets] == ["ab-1"]


def test_multipart_records_on_a_small_ledger(tmp_path):
    lab = Lab(tmp_path, max_payload=400)
    try:
        source = ListSource([dataset(tmp_path, "ab-1"), dataset(tmp_path, "ab-2")])
        plan, summary = run(lab.publisher(source))
        assert plan.transactions > 4 and summary.transactions == plan.transactions
        sent = lab.entries()
        assert len(sent) == plan.transactions
        assert sum(payload_size(e.payload) for e in sent) == plan.payload_bytes
        catalog = lab.index()
        for sid in ("ab-1", "ab-2"):
            entry = lab.journal.get(sid)
            assert len(entry.txids) > 1
            assert catalog.get(entry.record_txid).summary.sid == sid
        source.replace("ab-1", metadata=meta("ab-1", title="A much longer title " * 10))
        plan, summary = run(lab.publisher(source))
        assert summary.counts[Action.EDIT] == 1 and summary.transactions == plan.transactions > 1
        detail = lab.index().get(lab.journal.get("ab-1").record_txid)
        assert detail.artifact["info"]["title"].startswith("A much longer title")
    finally:
        lab.close()


def test_limit_counts_actionable_datasets(lab, tmp_path):
    source = ListSource([dataset(tmp_path, f"ab-{i}") for i in range(4)])
    run(lab.publisher(source), only=["ab-0"])
    plan = lab.publisher(source).plan(limit=2)
    assert plan.counts()[Action.NEW] == 2 and plan.counts()[Action.UNCHANGED] == 1


# -- a dry run writes nothing ---------------------------------------------------------------------


def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """Every file under root (size, content hash), SQLite shared-memory files aside (a read
    transaction marks them)."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.name.endswith("-shm"):
            out[str(path.relative_to(root))] = (
                path.stat().st_size,
                hashlib.sha256(path.read_bytes()).hexdigest(),
            )
    return out


def test_plan_writes_nothing(lab, tmp_path):
    source = ListSource([dataset(tmp_path, "ab-1"), dataset(tmp_path, "ab-2", media=False)])
    run(lab.publisher(source), only=["ab-1"])
    source.replace("ab-1", metadata=meta("ab-1", title="Renamed"))
    before = snapshot(tmp_path)
    tip = lab.ledger.tip()
    plan = lab.publisher(source, make_media=True, catalog=lab.catalog).plan()
    assert plan.counts()[Action.EDIT] == 1 and plan.counts()[Action.NEW] == 1
    new = next(d for d in plan.datasets if d.sid == "ab-2")
    assert set(new.media) == {"keyimg_ab-2.jpg", "keyimg_ab-2_s.jpg", "keymov_ab-2.mp4"}
    assert snapshot(tmp_path) == before
    assert lab.ledger.tip() == tip and lab.journal.pending() == []
    assert not lab.media_dir.exists()


# -- media ----------------------------------------------------------------------------------------


def test_missing_media_are_generated_beside_the_folder_once(lab, tmp_path):
    source = ListSource([dataset(tmp_path, "ab-1", media=False)])
    plan, summary = run(lab.publisher(source, make_media=True))
    assert summary.counts[Action.NEW] == 1
    made = sorted(p.name for p in (lab.media_dir / "ab-1").iterdir())
    assert made == ["keyimg_ab-1.jpg", "keyimg_ab-1_s.jpg", "keymov_ab-1.mp4"]
    assert not (tmp_path / "data/ab-1/keyimg_ab-1.jpg").exists()
    detail = lab.index().get(lab.journal.get("ab-1").record_txid)
    subtypes = {f["fname"]: f["subtype"] for f in detail.artifact["storage"]["files"]}
    assert subtypes["keyimg_ab-1.jpg"] == "keyimg" and subtypes["keymov_ab-1.mp4"] == "keymov"
    assert subtypes["keyimg_ab-1_s.jpg"] == "thumbnail"
    location = detail.artifact["storage"]["location"]
    size = (lab.media_dir / "ab-1/keymov_ab-1.mp4").stat().st_size
    assert exporter.stat(lab.store, f"{location}/keymov_ab-1.mp4").size == size
    stamps = {p.name: p.stat().st_mtime_ns for p in (lab.media_dir / "ab-1").iterdir()}
    plan, summary = run(lab.publisher(source, make_media=True))
    assert plan.counts()[Action.UNCHANGED] == 1 and plan.datasets[0].media == ()
    assert {p.name: p.stat().st_mtime_ns for p in (lab.media_dir / "ab-1").iterdir()} == stamps


def test_no_reconstruction_no_media_noted(lab, tmp_path):
    ds = dataset(tmp_path, "ab-1", media=False)
    for p in (ds.folder / "3dimage_1").iterdir():
        p.unlink()
    (ds.folder / "3dimage_1").rmdir()
    plan, summary = run(lab.publisher(ListSource([ds]), make_media=True))
    assert plan.datasets[0].media == () and "no reconstruction" in plan.datasets[0].reason
    assert summary.counts[Action.NEW] == 1 and not (lab.media_dir / "ab-1").exists()


# -- files vs database ----------------------------------------------------------------------------


def test_disagreements_are_reported_never_blocking(lab, tmp_path):
    ds = dataset(tmp_path, "ab-1")
    ds = dataclasses.replace(ds, metadata=meta("ab-1", tiltMin=-50, tiltMax=50))
    plan, summary = run(lab.publisher(ListSource([ds])))
    fields = {d.field for d in plan.datasets[0].disagreements}
    assert fields == {"tiltMin", "tiltMax"} and summary.disagreements == 2
    assert summary.counts[Action.NEW] == 1
    assert plan.to_json()["datasets"][0]["disagreements"][0]["field"] in fields
    record = lab.journal.get("ab-1").artifact
    assert record["details"]["tiltMin"] == -50  # the database's value is kept


# -- journal guards -------------------------------------------------------------------------------


def test_a_lost_journal_adopts_the_catalogs_records(lab, tmp_path):
    source = ListSource([dataset(tmp_path, "ab-1"), dataset(tmp_path, "ab-2")])
    run(lab.publisher(source))
    first = {sid: lab.journal.get(sid) for sid in ("ab-1", "ab-2")}
    lab.index()
    lab.journal.close()
    lab.journal_path.unlink()
    lab.journal = Journal.open(tmp_path / "new-journal.sqlite3", ledger_url=lab.ledger.url,
                               publisher=lab.key.address)  # fmt: skip
    source.replace("ab-2", metadata=meta("ab-2", title="Changed since"))
    plan, summary = run(lab.publisher(source, catalog=lab.catalog))
    assert all("adopted" in (d.reason or "") for d in plan.datasets)
    assert summary.counts[Action.UNCHANGED] == 1 and summary.counts[Action.EDIT] == 1
    assert summary.counts[Action.NEW] == 0 and len(lab.entries()) == 3
    for sid, before in first.items():
        now = lab.journal.get(sid)
        assert now.record_txid == before.record_txid and now.cid == before.cid
    assert lab.index().get(first["ab-2"].record_txid).artifact["info"]["title"] == "Changed since"
    # Adopted with its content fingerprint: the next run reads nothing and sends nothing.
    assert run(lab.publisher(source))[0].counts()[Action.UNCHANGED] == 2


def test_a_journal_of_another_publisher_is_refused(lab, tmp_path):
    source = ListSource([dataset(tmp_path, "ab-1")])
    other = dataclasses.replace(lab.config(), key=PrivateKey(bytes([9]) * 32))
    with pytest.raises(PublishError, match="belongs to publisher"):
        Publisher(source, other).plan()


def test_a_ledger_failure_stops_the_run_and_a_rerun_resumes(lab, tmp_path):
    source = ListSource([dataset(tmp_path, f"ab-{i}") for i in range(3)])
    ledger_file = tmp_path / "ledger.sqlite3"
    away = tmp_path / "ledger-away.sqlite3"

    def unplug(event):
        lab.events.append(event)
        if isinstance(event, DatasetStarted) and event.sid == "ab-1":
            ledger_file.rename(away)  # the ledger becomes unavailable, for real

    publisher = Publisher(source, lab.config(), on_event=unplug)
    summary = publisher.run(publisher.plan())
    assert summary.counts[Action.NEW] == 1
    assert summary.failed[-1][0] == "(run stopped)" and "run again" in summary.failed[-1][1]
    assert {e.sid for e in lab.events if isinstance(e, DatasetStarted)} == {"ab-0", "ab-1"}
    away.rename(ledger_file)
    plan, summary = run(lab.publisher(source))
    assert plan.counts()[Action.NEW] == 2 and summary.counts[Action.NEW] == 2
    assert summary.failed == () and len(lab.entries()) == 3
    assert len({lab.journal.get(f"ab-{i}").record_txid for i in range(3)}) == 3
