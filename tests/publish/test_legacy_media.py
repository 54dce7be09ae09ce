"""Legacy key movies (.flv) and the lab's key-media flags, with the packaged ffmpeg and a real
publishing run: the FLV is converted to H.264 once, beside the lab's folder, and both are
listed; a corrupt FLV is a warning; a flag saying "none" keeps stale files from being published
as the lab's, while generated media still fill the gap."""

from __future__ import annotations

import errno
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from etdb.publish import transcode
from etdb.publish.listing import dataset_listing
from etdb.publish.media import MediaError, ffmpeg_exe
from etdb.publish.overlay import GENERATED_NOTE, StaleMediaError, make_media, plan_media
from etdb.publish.pipeline import Action
from tests.publish.test_pipeline import Lab, ListSource, dataset, run


@pytest.fixture
def lab(tmp_path):
    lab = Lab(tmp_path)
    yield lab
    lab.close()


def make_flv(path: Path, *, size: str = "63x47", seconds: float = 1.0) -> Path:
    """A real Flash video (Sorenson H.263, codec flv1), odd-sized like old key movies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
           "-i", f"testsrc=size={size}:rate=10:duration={seconds}", "-c:v", "flv1", str(path)]  # fmt: skip
    subprocess.run(cmd, check=True)
    return path


def video_of(path: Path) -> tuple[str, int, int]:
    """(codec, width, height) of the first video stream, from ffmpeg's own description."""
    info = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True)
    found = re.search(rb"Video: (\w+).*?, (\d+)x(\d+)", info.stderr)
    assert found, info.stderr
    return found.group(1).decode(), int(found.group(2)), int(found.group(3))


def test_the_flv_fixture_is_flash_video(tmp_path):
    assert video_of(make_flv(tmp_path / "k.flv"))[0] == "flv1"


def test_convert_flv_makes_browser_ready_h264(tmp_path):
    out = transcode.convert_flv(make_flv(tmp_path / "k.flv"), tmp_path / "out" / "k.mp4")
    assert video_of(out) == ("h264", 64, 48)  # odd sizes padded to even (yuv420p)
    head = out.read_bytes()[:4096]
    assert b"avc1" in head and head.index(b"moov") < head.index(b"mdat")  # +faststart
    assert sorted(p.name for p in out.parent.iterdir()) == ["k.mp4"]


def test_a_corrupt_flv_fails_clearly_and_leaves_no_file(tmp_path):
    bad = tmp_path / "k.flv"
    bad.write_bytes(b"FLV\x01" + b"\x00garbage" * 50)
    assert "not a readable video" in (transcode.flv_problem(bad) or "")
    with pytest.raises(MediaError, match="ffmpeg failed"):
        transcode.convert_flv(bad, tmp_path / "out" / "k.mp4")
    assert list((tmp_path / "out").iterdir()) == []


def test_a_conversion_killed_half_way_leaves_nothing_taken_as_done(tmp_path, monkeypatch):
    """SIGKILL ffmpeg mid-way (what a crash of the machine does to it): only a hidden
    temporary is left, and the next plan converts again."""
    flv = make_flv(tmp_path / "data" / "ab-1" / "keymov_ab-1.flv", size="320x240", seconds=20)
    out = tmp_path / "media" / "ab-1" / "keymov_ab-1.mp4"
    real_run = transcode._run

    def killed(cmd, timeout):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        tmp = Path(cmd[-1])
        while not (tmp.exists() and tmp.stat().st_size > 0) and proc.poll() is None:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL  # it was still converting
        return proc.returncode, "killed"

    monkeypatch.setattr(transcode, "_run", killed)
    with pytest.raises(MediaError):
        transcode.convert_flv(flv, out)
    assert not out.exists()
    monkeypatch.setattr(transcode, "_run", real_run)
    plan = plan_media(flv.parent, "ab-1", tmp_path / "media", [(flv.name, "keymov")])
    assert plan.to_make == ("keymov_ab-1.mp4",) and plan.legacy_movie == flv


def test_a_failed_conversion_is_remembered_until_the_file_changes(tmp_path):
    folder = tmp_path / "ab-1"
    flv = make_flv(folder / "keymov_ab-1.flv")
    data = flv.read_bytes()
    flv.write_bytes(
        data[:400] + bytes(len(data) - 400)
    )  # header intact (probe passes), body zeroed
    listed = [
        (flv.name, "keymov"),
        ("keyimg_ab-1.jpg", "keyimg"),
        ("keyimg_ab-1_s.jpg", "thumbnail"),
    ]
    plan = plan_media(folder, "ab-1", tmp_path / "media", listed)
    assert plan.to_make == ("keymov_ab-1.mp4",)
    assert make_media(plan, "ab-1", tmp_path / "media") == {}  # left out, no exception
    again = plan_media(folder, "ab-1", tmp_path / "media", listed)
    assert again.to_make == () and "cannot be converted" in (again.note or "")
    make_flv(flv)  # the lab replaces the file
    assert plan_media(folder, "ab-1", tmp_path / "media", listed).to_make == ("keymov_ab-1.mp4",)


# -- through a publishing run ---------------------------------------------------------------------


def _legacy(tmp_path: Path, sid: str, **changes):
    ds = dataset(tmp_path, sid, **changes)
    (ds.folder / f"keymov_{sid}.mp4").unlink()
    make_flv(ds.folder / f"keymov_{sid}.flv")
    return ds


def _files(lab, sid: str) -> dict[str, dict]:
    detail = lab.index().get(lab.journal.get(sid).record_txid)
    return {f["fname"]: f for f in detail.artifact["storage"]["files"]}


def test_a_legacy_key_movie_is_converted_once_and_both_are_listed(lab, tmp_path):
    ds = _legacy(tmp_path, "ab-1")
    plan, summary = run(lab.publisher(ListSource([ds]), make_media=True))
    assert plan.datasets[0].media == ("keymov_ab-1.mp4",) and summary.counts[Action.NEW] == 1
    mp4 = lab.media_dir / "ab-1" / "keymov_ab-1.mp4"
    assert video_of(mp4)[0] == "h264" and not (ds.folder / "keymov_ab-1.mp4").exists()
    files = _files(lab, "ab-1")
    assert (files["keymov_ab-1.flv"]["subtype"], files["keymov_ab-1.flv"]["cType"]) == (
        "keymov",
        "video/x-flv",
    )
    assert (files["keymov_ab-1.mp4"]["subtype"], files["keymov_ab-1.mp4"]["cType"]) == (
        "keymov",
        "video/mp4",
    )
    assert files["keymov_ab-1.mp4"]["fsize"] == mp4.stat().st_size
    assert "fNotes" not in files["keymov_ab-1.mp4"]  # the lab's movie, converted: not generated
    stamp = mp4.stat().st_mtime_ns
    plan, _ = run(lab.publisher(ListSource([ds]), make_media=True))
    assert plan.datasets[0].action is Action.UNCHANGED and mp4.stat().st_mtime_ns == stamp


def test_a_corrupt_legacy_movie_is_a_warning_not_a_failure(lab, tmp_path):
    ds = _legacy(tmp_path, "ab-1")
    (ds.folder / "keymov_ab-1.flv").write_bytes(b"this is not a video")
    plan, summary = run(lab.publisher(ListSource([ds]), make_media=True))
    assert "keymov_ab-1.flv cannot be converted" in (plan.datasets[0].reason or "")
    assert summary.counts[Action.NEW] == 1 and not summary.failed
    files = _files(lab, "ab-1")
    assert "keymov_ab-1.flv" in files and "keymov_ab-1.mp4" not in files
    assert not (lab.media_dir / "ab-1" / "keymov_ab-1.mp4").exists()


def test_a_flag_saying_none_refuses_a_stale_file_and_generates_instead(lab, tmp_path):
    stale = _legacy(tmp_path, "ab-1", key_media={"keyimg": True, "keymov": False})
    none = dataset(tmp_path, "ab-2", media=False, key_media={"keyimg": False, "keymov": False})
    plan, summary = run(lab.publisher(ListSource([stale, none]), make_media=True))
    by_sid = {d.sid: d for d in plan.datasets}
    assert by_sid["ab-1"].action is Action.PROBLEM
    assert "keymov_ab-1.flv" in (by_sid["ab-1"].reason or "") and "keymov" in by_sid["ab-1"].reason
    assert not (lab.media_dir / "ab-1").exists()  # the stale FLV was not converted
    assert summary.counts[Action.NEW] == 1
    assert set(by_sid["ab-2"].media) == {"keyimg_ab-2.jpg", "keyimg_ab-2_s.jpg", "keymov_ab-2.mp4"}
    notes = {n: f.get("fNotes") for n, f in _files(lab, "ab-2").items() if n.startswith("key")}
    assert notes == dict.fromkeys(by_sid["ab-2"].media, GENERATED_NOTE)  # marked as etdb's
    plan, _ = run(lab.publisher(ListSource([none]), make_media=True))
    assert plan.datasets[0].action is Action.UNCHANGED


def test_a_files_only_source_leaves_stale_key_media_out(tmp_path):
    """When the source lists the files, a stale key movie is one more unlisted file: reported,
    not published, and the dataset is not refused."""
    ds = _legacy(tmp_path, "ab-1", key_media={"keyimg": True, "keymov": False}, files_only=True)
    listing = dataset_listing(ds)
    assert {"keyimg_ab-1.jpg", "keyimg_ab-1_s.jpg"} <= set(listing.files)
    assert "keymov_ab-1.flv" not in listing.files and "keymov_ab-1.flv" in listing.warnings[0]
    listed = [(n, "keymov" if n.startswith("keymov") else "keyimg") for n in listing.files]
    plan = plan_media(ds.folder, "ab-1", tmp_path / "media", listed, ds.key_media)
    assert plan.legacy_movie is None and plan.to_make == ("keymov_ab-1.mp4",)


def test_flags_saying_yes_keep_the_labs_own_media(tmp_path):
    ds = _legacy(tmp_path, "ab-1", key_media={"keyimg": True, "keymov": True})
    listed = [
        ("keyimg_ab-1.jpg", "keyimg"),
        ("keyimg_ab-1_s.jpg", "thumbnail"),
        ("keymov_ab-1.flv", "keymov"),
    ]
    plan = plan_media(ds.folder, "ab-1", tmp_path / "media", listed, ds.key_media)
    assert plan.to_make == ("keymov_ab-1.mp4",) and plan.reconstruction is None
    with pytest.raises(StaleMediaError, match=r"keyimg_ab-1\.jpg, keyimg_ab-1_s\.jpg"):
        plan_media(ds.folder, "ab-1", tmp_path / "media", listed, {"keyimg": False})


# -- a file that keeps ffmpeg waiting forever ---------------------------------------------------


def _stalled_flv(tmp_path: Path) -> tuple[Path, threading.Event, threading.Thread]:
    """``keymov_ab-1.flv`` as a FIFO fed the first part of a real FLV and then never more (the
    writer holds it open): the real ffmpeg reads, converts what it got, and waits forever.
    The FIFO stands in for a hostile or broken file that keeps ffmpeg busy, which cannot be
    crafted reliably; ffmpeg itself is not replaced. ``done.set()`` lets the writer go."""
    real = make_flv(tmp_path / "real.flv", size="320x240", seconds=20)
    data = real.read_bytes()
    fifo = tmp_path / "data" / "ab-1" / "keymov_ab-1.flv"
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)
    done = threading.Event()

    def feed() -> None:
        try:
            with open(fifo, "wb") as pipe:  # blocks until ffmpeg opens it
                pipe.write(data[: len(data) * 2 // 3])
                pipe.flush()
                done.wait()
        except BrokenPipeError:
            pass  # ffmpeg was killed while we wrote

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    return fifo, done, writer


def _nobody_reads(fifo: Path) -> bool:
    """Whether no process has the FIFO open for reading (opening it to write then fails)."""
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError as exc:
        return exc.errno == errno.ENXIO
    return False


def test_the_time_limit_scales_with_the_file_and_has_a_generous_floor(tmp_path):
    small, big = tmp_path / "small.flv", tmp_path / "big.flv"
    small.write_bytes(b"x")
    with open(big, "wb") as f:
        f.truncate(500_000_000)  # sparse
    assert transcode.ffmpeg_timeout(small) >= 60
    assert transcode.ffmpeg_timeout(big) >= 60 + 500  # a second per MB on top
    assert transcode.ffmpeg_timeout(tmp_path / "missing.flv") >= 60


def test_a_conversion_that_never_ends_is_killed_and_leaves_nothing(tmp_path):
    fifo, done, writer = _stalled_flv(tmp_path)
    out = tmp_path / "media" / "ab-1" / "keymov_ab-1.mp4"
    try:
        with pytest.raises(MediaError, match="did not finish within 3 s"):
            transcode.convert_flv(fifo, out, timeout=3)
        assert _nobody_reads(fifo)  # ffmpeg is gone: no process left holding the file
    finally:
        done.set()
        writer.join(timeout=30)
    assert list(out.parent.iterdir()) == []  # no output, no temporary


def test_a_probe_that_never_ends_is_the_files_problem(tmp_path):
    fifo = tmp_path / "data" / "ab-1" / "keymov_ab-1.flv"
    fifo.parent.mkdir(parents=True)
    # Nobody ever writes: ffmpeg blocks opening it. (Not _stalled_flv's FIFO replaced: its
    # writer thread, if slow to start, would open the new FIFO and feed ffmpeg after all.)
    os.mkfifo(fifo)
    reason = transcode.flv_problem(fifo, timeout=2) or ""
    assert "not a readable video" in reason and "did not finish within 2 s" in reason
    assert _nobody_reads(fifo)


def test_a_timed_out_conversion_is_a_remembered_warning(tmp_path, monkeypatch):
    """Through the media step: the stall is a per-dataset note, as a corrupt file is. The time
    limit's floor is lowered to 3 s here (the module's constant, not ffmpeg, is changed), so the
    test does not wait the real minute."""
    fifo, done, writer = _stalled_flv(tmp_path)
    monkeypatch.setattr(transcode, "_TIMEOUT_FLOOR", 3.0)
    listed = [
        (fifo.name, "keymov"),
        ("keyimg_ab-1.jpg", "keyimg"),
        ("keyimg_ab-1_s.jpg", "thumbnail"),
    ]
    plan = plan_media(fifo.parent, "ab-1", tmp_path / "media", listed)  # the probe reads the header
    assert plan.to_make == ("keymov_ab-1.mp4",)
    try:
        assert make_media(plan, "ab-1", tmp_path / "media") == {}  # left out, no exception
    finally:
        done.set()
        writer.join(timeout=30)
    assert not (tmp_path / "media" / "ab-1" / "keymov_ab-1.mp4").exists()
    again = plan_media(fifo.parent, "ab-1", tmp_path / "media", listed)
    assert again.to_make == () and "did not finish within 3 s" in (again.note or "")
