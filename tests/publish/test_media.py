"""Key image, thumbnail and key movie from MRC files: decodable outputs, browser-ready video,
bounded memory on large files, and clear errors."""

import re
import subprocess
import tracemalloc
from pathlib import Path

import mrcfile
import numpy as np
import pytest
from PIL import Image

from etdb.publish import media
from etdb.publish.media import MediaError


def _mrc(path: Path, data: np.ndarray) -> Path:
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data)
    return path


def _volume(nz=16, ny=41, nx=50, dtype=np.int16) -> np.ndarray:
    rng = np.random.default_rng(0)
    vol = rng.normal(0, 50, (nz, ny, nx))
    vol[:, :4, :] += 2000  # a bright band along the first MRC rows (the bottom of the image)
    return vol.astype(dtype)


def probe(path: Path) -> dict:
    """What ffprobe would say, from the bundled ffmpeg: codec, pixel format, size, frames."""
    exe = media.ffmpeg_exe()
    info = subprocess.run([exe, "-hide_banner", "-i", str(path)], capture_output=True, text=True)
    decode = subprocess.run(
        [exe, "-hide_banner", "-i", str(path), "-f", "null", "-"], capture_output=True, text=True
    )
    assert decode.returncode == 0, decode.stderr
    video = re.search(r"Video: (\w+).*?, (\w+)\(?.*?, (\d+)x(\d+)", info.stderr)
    duration = re.search(r"Duration: (\d+):(\d+):([\d.]+)", info.stderr)
    frames = re.findall(r"frame=\s*(\d+)", decode.stderr)
    assert video and duration and frames, info.stderr
    h, m, s = duration.groups()
    return {
        "codec": video.group(1),
        "pix_fmt": video.group(2),
        "size": (int(video.group(3)), int(video.group(4))),
        "frames": int(frames[-1]),
        "seconds": int(h) * 3600 + int(m) * 60 + float(s),
    }


def test_key_image_is_the_central_slab_shown_as_imod_shows_it(tmp_path):
    src = _mrc(tmp_path / "v.rec", _volume())
    out = media.key_image(src, tmp_path / "keyimg_x.jpg")
    with Image.open(out) as im:
        assert im.format == "JPEG" and im.mode == "L" and im.size == (50, 41)
        pixels = np.asarray(im)
    # MRC rows run bottom-up: the bright first rows are at the bottom of the picture.
    assert pixels[-3:].mean() > 200 and pixels[:10].mean() < 200
    assert not list(tmp_path.glob(".*"))  # no temporary files left


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16, np.float16, np.float32])
def test_every_common_mode_renders(tmp_path, dtype):
    vol = _volume(nz=4, dtype=np.float32)
    if dtype in (np.int8, np.uint8):
        vol = np.clip(vol / 20, 0 if dtype == np.uint8 else -128, 127)
    if dtype == np.uint16:
        vol = vol + 500
    src = _mrc(tmp_path / "v.mrc", vol.astype(dtype))
    assert Image.open(media.key_image(src, tmp_path / "k.jpg")).size == (50, 41)


@pytest.mark.filterwarnings("ignore:Data array contains NaN")
def test_a_single_image_and_nans(tmp_path):
    img = _volume(nz=1, dtype=np.float32)[0]
    img[5:9, 5:9] = np.nan
    src = _mrc(tmp_path / "one.mrc", img)
    assert Image.open(media.key_image(src, tmp_path / "k.jpg")).size == (50, 41)


def test_large_images_are_scaled_down(tmp_path):
    src = _mrc(tmp_path / "v.rec", _volume(nz=2, ny=300, nx=400))
    assert Image.open(media.key_image(src, tmp_path / "k.jpg", max_size=100)).size == (100, 75)


def test_thumbnail_fits_the_box_and_keeps_the_aspect(tmp_path):
    Image.new("L", (400, 300), 128).save(tmp_path / "big.jpg")
    out = media.thumbnail(tmp_path / "big.jpg", tmp_path / "keyimg_x_s.jpg")
    assert Image.open(out).size == (200, 150)
    small = media.thumbnail(Image.new("RGB", (90, 120)), tmp_path / "s.jpg", size=60)
    assert Image.open(small).size == (45, 60)


def test_key_movie_is_browser_ready_h264(tmp_path):
    src = _mrc(tmp_path / "v.rec", _volume(nz=16, ny=41, nx=51))
    info = media.key_movie(src, tmp_path / "keymov_x.mp4", fps=10)
    assert (info.width, info.height, info.frames) == (50, 40, 16)  # even for yuv420p
    p = probe(info.path)
    assert p["codec"] == "h264" and p["pix_fmt"] == "yuv420p" and p["size"] == (50, 40)
    assert p["frames"] == 16 and p["seconds"] == pytest.approx(1.6, abs=0.15)
    data = info.path.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # +faststart: plays while downloading


def test_key_movie_thins_and_scales(tmp_path):
    src = _mrc(tmp_path / "v.rec", _volume(nz=40, ny=120, nx=160))
    info = media.key_movie(src, tmp_path / "m.mp4", max_frames=8, max_size=64)
    assert (info.frames, info.width, info.height) == (8, 64, 48)
    p = probe(info.path)
    assert p["frames"] == 8 and p["size"] == (64, 48)


def test_unreadable_files_raise_media_error(tmp_path):
    garbage = tmp_path / "garbage.mrc"
    garbage.write_bytes(b"x" * 4096)
    with pytest.raises(MediaError, match="not an MRC file"):
        media.key_image(garbage, tmp_path / "k.jpg")
    truncated = _mrc(tmp_path / "t.mrc", _volume())
    with open(truncated, "r+b") as f:
        f.truncate(1024 + 100)
    with pytest.raises(MediaError, match="truncated"):
        media.key_movie(truncated, tmp_path / "m.mp4")
    # A header announcing a huge extended header is refused before anything is read.
    liar = _mrc(tmp_path / "liar.mrc", _volume())
    with open(liar, "r+b") as f:
        f.seek(92)
        f.write((2**31 - 1).to_bytes(4, "little"))
    with pytest.raises(MediaError, match="truncated"):
        media.key_image(liar, tmp_path / "k.jpg")
    complex_mrc = _mrc(tmp_path / "c.mrc", np.zeros((2, 8, 8), np.complex64))
    with pytest.raises(MediaError, match="mode"):
        media.key_image(complex_mrc, tmp_path / "k.jpg")
    with pytest.raises(MediaError, match="cannot read"):
        media.key_image(tmp_path / "missing.rec", tmp_path / "k.jpg")
    with pytest.raises(MediaError, match="cannot read image"):
        media.thumbnail(garbage, tmp_path / "s.jpg")
    assert not (tmp_path / "k.jpg").exists() and not (tmp_path / "m.mp4").exists()


def test_ffmpeg_failures_name_the_cause(tmp_path):
    src = _mrc(tmp_path / "v.rec", _volume())
    fake = tmp_path / "ffmpeg"
    fake.write_text("#!/bin/sh\necho 'line one' >&2\necho 'Unknown encoder libx264' >&2\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(MediaError, match=r"exit 3[\s\S]*Unknown encoder libx264"):
        media.key_movie(src, tmp_path / "m.mp4", ffmpeg=str(fake))
    with pytest.raises(MediaError, match="cannot run ffmpeg"):
        media.key_movie(src, tmp_path / "m.mp4", ffmpeg=str(tmp_path / "no-such-ffmpeg"))
    assert not list(tmp_path.glob("*.mp4")) and not list(tmp_path.glob(".*"))


def test_an_error_while_feeding_frames_stops_ffmpeg_and_leaves_nothing(tmp_path, monkeypatch):
    src = _mrc(tmp_path / "v.rec", _volume())
    real, calls = media._frame, []

    def failing(*args):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("read error")
        return real(*args)

    monkeypatch.setattr(media, "_frame", failing)
    with pytest.raises(OSError, match="read error"):
        media.key_movie(src, tmp_path / "m.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.rec"]


def test_ensure_media_makes_only_what_is_missing(tmp_path):
    (tmp_path / "3dimage_7").mkdir()
    _mrc(tmp_path / "3dimage_7" / "cell_full.rec", _volume(ny=40))
    made = media.ensure_media(tmp_path, "ab2010-01-01-1")
    assert sorted(p.name for p in made) == [
        "keyimg_ab2010-01-01-1.jpg",
        "keyimg_ab2010-01-01-1_s.jpg",
        "keymov_ab2010-01-01-1.mp4",
    ]
    assert media.ensure_media(tmp_path, "ab2010-01-01-1") == []
    (tmp_path / "keyimg_ab2010-01-01-1_s.jpg").unlink()
    assert [p.name for p in media.ensure_media(tmp_path, "ab2010-01-01-1")] == [
        "keyimg_ab2010-01-01-1_s.jpg"
    ]
    with pytest.raises(MediaError, match="no reconstruction"):
        media.ensure_media(tmp_path / "3dimage_7", "x")


def _rss_anon_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    pytest.skip("no RssAnon in /proc/self/status")


def test_memory_stays_bounded_on_a_large_file(tmp_path):
    """A 200 MB reconstruction: only a few slices are ever in memory.

    File pages the memory map touches are page cache (RssFile, reclaimable), not memory the
    process holds, so what is measured is anonymous memory and Python/numpy allocations.
    """
    path = tmp_path / "big.rec"
    with mrcfile.new_mmap(path, shape=(100, 1024, 1024), mrc_mode=1) as mrc:
        rng = np.random.default_rng(1)
        for z in range(0, 100, 9):
            mrc.data[z] = rng.integers(-300, 300, (1024, 1024), dtype=np.int16)
    assert path.stat().st_size > 200_000_000
    before = _rss_anon_kib()
    tracemalloc.start()
    try:
        media.key_image(path, tmp_path / "k.jpg")
        media.key_movie(path, tmp_path / "m.mp4", max_frames=12, max_size=256)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20, f"peak Python allocations {peak / 2**20:.0f} MiB"
    assert _rss_anon_kib() - before < 50 * 1024
