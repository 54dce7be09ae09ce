"""OME-Zarr pyramids at publish time: made beside the lab's folder, overlaid as one folder entry,
the same CIDs on every re-publish; a lab's own pyramid is one entry too.

Real pipeline runs (embedded ledger, blockstore, journal, catalog: ``tests.publish.test_pipeline``)
over dataset folders with a real MRC reconstruction; the DAG is read back with the exporter.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from etdb.config import ConfigError, Settings
from etdb.content import exporter
from etdb.index.query import SearchQuery
from etdb.mrc.ngff import read_multiscales
from etdb.mrc.pyramid import build_pyramid
from etdb.publish.changes import content_fingerprint
from etdb.publish.dataset import describe_files, regular_files
from etdb.publish.overlay import GENERATED_NOTE
from etdb.publish.pipeline import Action, PublishConfig
from etdb.publish.pyramids import entry_size
from tests.publish.test_pipeline import Lab, ListSource, dataset, run, write_mrc

SID = "ab-1"
ZARR = f"{SID}.ome.zarr"


@pytest.fixture
def lab(tmp_path):
    lab = Lab(tmp_path)
    yield lab
    lab.close()


def _on(lab: Lab, source: ListSource, **changes: Any):
    return lab.publisher(source, **({"make_media": True, "pyramids": True} | changes))


def _stamps(folder: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``folder`` (hidden too) with its size and mtime."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            st = (Path(root) / name).stat()
            out[str((Path(root) / name).relative_to(folder))] = (st.st_size, st.st_mtime_ns)
    return out


def _record(lab: Lab) -> dict[str, Any]:
    detail = lab.index().get(lab.journal.get(SID).record_txid)
    return detail.artifact


def _read(lab: Lab, path: str) -> bytes:
    return b"".join(exporter.iter_file(lab.store, path))


def _dag_files(lab: Lab, path: str) -> dict[str, bytes]:
    """Every file under a DAG folder, by relative path."""
    out: dict[str, bytes] = {}
    for entry in exporter.list_dir(lab.store, path):
        if entry.kind is exporter.Kind.DIRECTORY:
            sub = _dag_files(lab, f"{path}/{entry.name}")
            out |= {f"{entry.name}/{k}": v for k, v in sub.items()}
        else:
            out[entry.name] = _read(lab, f"{path}/{entry.name}")
    return out


def _disk_files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def test_pyramids_are_on_by_default_and_a_setting_turns_them_off(tmp_path):
    fields = PublishConfig.__dataclass_fields__
    assert fields["pyramids"].default is True
    assert Settings(home=tmp_path).publish_pyramids_on is True
    for off in ("false", "False", "no", "0", "off"):
        assert Settings(home=tmp_path, publish_pyramids=off).publish_pyramids_on is False
    with pytest.raises(ConfigError, match="publish_pyramids"):
        Settings(home=tmp_path, publish_pyramids="maybe")


def test_a_reconstruction_is_published_with_its_pyramid_as_one_folder_entry(lab, tmp_path):
    ds = dataset(tmp_path, SID)
    before = _stamps(ds.folder)
    plan, summary = run(_on(lab, ListSource([ds])))
    assert plan.datasets[0].media == (ZARR,)
    assert summary.counts[Action.NEW] == 1 and not summary.failed
    assert _stamps(ds.folder) == before  # the lab's folder is untouched
    made = lab.media_dir / SID / ZARR
    assert sorted(p.name for p in (lab.media_dir / SID).iterdir()) == [ZARR]  # no leftovers

    artifact = _record(lab)
    files = artifact["storage"]["files"]
    zarr = [f for f in files if f["subtype"] == "zarr"]
    assert zarr == [
        {
            "dname": ZARR,
            "fname": ZARR,
            "fsize": entry_size(made),
            "type": "preview",
            "subtype": "zarr",
            "fNotes": GENERATED_NOTE,
        }
    ]
    assert not any(f["fname"].startswith(f"{ZARR}/") for f in files)  # not file by file
    on_disk = _disk_files(made)
    assert zarr[0]["fsize"] == sum(len(b) for b in on_disk.values())
    # The DAG holds the builder's files, dot files included, byte for byte.
    location = artifact["storage"]["location"]
    assert _dag_files(lab, f"{location}/{ZARR}") == on_disk
    attrs = json.loads(_read(lab, f"{location}/{ZARR}/.zattrs"))
    multiscales = read_multiscales(attrs)
    assert multiscales.paths[0] == "0" and len(multiscales.paths) >= 1
    for level in multiscales.paths:
        assert json.loads(_read(lab, f"{location}/{ZARR}/{level}/.zarray"))["zarr_format"] == 2
    # The index takes it: the record is kept, and "zarr" is one of its file types.
    txid = lab.journal.get(SID).record_txid
    detail = lab.index().get(txid)
    assert detail is not None and "zarr" in detail.summary.file_types
    found = lab.catalog.search(SearchQuery(file_type=("zarr",)))
    assert [i.id for i in found.items] == [txid]


def _pyramid_cid(lab: Lab) -> str:
    location = lab.journal.get(SID).cid
    return str(exporter.stat(lab.store, f"{location}/{ZARR}").cid)


def test_re_publishing_gives_the_same_location_and_pyramid_cids(lab, tmp_path):
    ds = dataset(tmp_path, SID)
    run(_on(lab, ListSource([ds])))
    location, pyramid = lab.journal.get(SID).cid, _pyramid_cid(lab)
    made = lab.media_dir / SID / ZARR
    stamps = _stamps(made)
    tip = lab.ledger.tip()

    plan, summary = run(_on(lab, ListSource([ds])))  # reused: not built again, not re-read
    assert plan.datasets[0].action is Action.UNCHANGED and plan.datasets[0].media == ()
    assert _stamps(made) == stamps and lab.ledger.tip() == tip

    shutil.rmtree(lab.media_dir)  # a fresh, empty media folder: rebuilt, byte-identical
    plan, summary = run(_on(lab, ListSource([ds])))
    assert plan.datasets[0].media == (ZARR,)
    assert summary.counts[Action.UNCHANGED] == 1 and not summary.failed
    assert lab.journal.get(SID).cid == location and _pyramid_cid(lab) == pyramid
    assert lab.ledger.tip() == tip  # nothing new on the ledger


def test_pyramids_off_makes_and_lists_none(lab, tmp_path):
    ds = dataset(tmp_path, SID)
    plan, summary = run(_on(lab, ListSource([ds]), pyramids=False))
    assert plan.datasets[0].media == () and summary.counts[Action.NEW] == 1
    assert not (lab.media_dir / SID / ZARR).exists()
    assert not [f for f in _record(lab)["storage"]["files"] if f["subtype"] == "zarr"]
    # Turned on: the next run adds it (an edit); turned off again: the entry goes, though the
    # pyramid made meanwhile is still in the media folder.
    plan, summary = run(_on(lab, ListSource([ds])))
    assert summary.counts[Action.EDIT] == 1 and _pyramid_cid(lab)
    plan, summary = run(_on(lab, ListSource([ds]), pyramids=False))
    assert summary.counts[Action.EDIT] == 1 and (lab.media_dir / SID / ZARR).is_dir()
    assert not [f for f in _record(lab)["storage"]["files"] if f["subtype"] == "zarr"]


def test_no_media_uses_an_existing_pyramid_but_makes_none(lab, tmp_path):
    ds = dataset(tmp_path, SID)
    plan, summary = run(_on(lab, ListSource([ds]), make_media=False))
    assert plan.datasets[0].media == () and not (lab.media_dir / SID).exists()
    (lab.media_dir / SID).mkdir(parents=True)
    build_pyramid(ds.folder / "3dimage_1" / "ts_full.rec", lab.media_dir / SID / ZARR)
    plan, summary = run(_on(lab, ListSource([ds]), make_media=False))
    assert summary.counts[Action.EDIT] == 1
    assert [f["fname"] for f in _record(lab)["storage"]["files"] if f["subtype"] == "zarr"] == [
        ZARR
    ]


def test_a_build_killed_half_way_leaves_nothing_and_the_next_run_rebuilds(lab, tmp_path):
    """SIGKILL the build (what a crash does) while level 0 is being written: no folder under
    the final name, and the next run builds it whole (the leftover removed) and publishes."""
    ds = dataset(tmp_path, SID)
    big = ds.folder / "3dimage_1" / "ts_full.rec"
    write_mrc(big, (96, 384, 384), 3)  # ~56 MB: long enough a build to be caught in it
    out = lab.media_dir / SID / ZARR
    code = "import sys; from pathlib import Path; from etdb.publish.pyramids import make_pyramid; "
    code += "make_pyramid(Path(sys.argv[1]), Path(sys.argv[2]))"
    proc = subprocess.Popen([sys.executable, "-c", code, str(big), str(out)])
    try:
        building: list[Path] = []
        while not building and proc.poll() is None:
            found = out.parent.glob(f".{ZARR}.*.tmp/0") if out.parent.is_dir() else ()
            building = list(found)
            time.sleep(0.002)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the build finished before it could be killed"
    assert not out.exists() and building and building[0].parent.exists()
    plan, summary = run(_on(lab, ListSource([ds])))
    assert plan.datasets[0].media == (ZARR,) and summary.counts[Action.NEW] == 1
    assert sorted(p.name for p in out.parent.iterdir()) == [ZARR]  # the leftover is gone
    location = lab.journal.get(SID).cid
    assert _dag_files(lab, f"{location}/{ZARR}") == _disk_files(out)
    assert read_multiscales(json.loads(_read(lab, f"{location}/{ZARR}/.zattrs"))).paths


def test_a_labs_own_pyramid_is_one_entry_and_none_is_generated(lab, tmp_path):
    ds = dataset(tmp_path, SID)
    own = ds.folder / "3dimage_1" / "cell.ome.zarr"
    build_pyramid(ds.folder / "3dimage_1" / "ts_full.rec", own, chunk=4)  # many chunk files
    assert len(list(own.rglob("*"))) > 50
    assert [n for n in regular_files(ds.folder) if "ome.zarr" in n] == ["3dimage_1/cell.ome.zarr"]
    plan, summary = run(_on(lab, ListSource([ds])))
    assert plan.datasets[0].media == () and summary.counts[Action.NEW] == 1
    assert not (lab.media_dir / SID).exists()
    files = _record(lab)["storage"]["files"]
    zarr = [f for f in files if f["subtype"] == "zarr"]
    assert [(f["fname"], f["type"], f["fsize"]) for f in zarr] == [
        ("3dimage_1/cell.ome.zarr", "preview", entry_size(own))
    ]
    assert "fNotes" not in zarr[0] and len(files) < 10
    location = lab.journal.get(SID).cid
    assert _dag_files(lab, f"{location}/3dimage_1/cell.ome.zarr") == _disk_files(own)


def test_a_change_inside_a_pyramid_changes_the_content_fingerprint(tmp_path):
    ds = dataset(tmp_path, SID)
    own = ds.folder / "cell.ome.zarr"
    build_pyramid(ds.folder / "3dimage_1" / "ts_full.rec", own)
    media = tmp_path / "media.ome.zarr"
    build_pyramid(ds.folder / "3dimage_1" / "ts_full.rec", media)
    overlay = {ZARR: media}

    def fingerprint() -> str:
        return content_fingerprint(ds.folder, profile="kubo-v1", overlay=overlay)

    first = fingerprint()
    assert fingerprint() == first
    (own / ".zattrs").write_text((own / ".zattrs").read_text() + " ")  # a dot file is data here
    second = fingerprint()
    assert second != first
    (media / "0" / ".zarray").write_text((media / "0" / ".zarray").read_text() + " ")
    assert fingerprint() != second
    sizes = {f["fname"]: f["fsize"] for f in describe_files(ds.folder, SID, overlay=overlay)}
    assert sizes["cell.ome.zarr"] == entry_size(own) and sizes[ZARR] == entry_size(media)
