"""Key image, thumbnail and key movie of a tomogram, straight from its MRC file.

ETDB-Caltech's dataset page shows a key movie (a sweep through z, autoplaying), a key image and
a thumbnail for every dataset (``keymov_<sid>.mp4``, ``keyimg_<sid>.jpg``, ``keyimg_<sid>_s.jpg``).
This module makes them for real data as well as for the demo, so it never loads a volume: the
MRC file is memory-mapped (:func:`etdb.mrc.volume.open_volume`) and only the slices an output
needs are read, one at a time. Contrast is :mod:`etdb.mrc.display`'s one rule (the slice
viewer's), from a bounded sample, so a 4 GB reconstruction costs the same memory as a 4 MB one.
The movie is H.264 in an MP4 (yuv420p, even dimensions, ``+faststart``) — what every browser
plays — encoded by the ffmpeg binary that ships with ``imageio-ffmpeg``, fed raw 8-bit frames
through a pipe. Every output is written to a temporary name and renamed into place, so an
interrupted run never leaves a truncated JPEG or MP4 that would later be published.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from etdb.mrc import display
from etdb.mrc.errors import MrcError
from etdb.mrc.volume import open_volume as _open_mrc

__all__ = [
    "MediaError",
    "MovieInfo",
    "ensure_media",
    "ffmpeg_exe",
    "find_reconstruction",
    "key_image",
    "key_movie",
    "open_volume",
    "render_slab",
    "thumbnail",
]

THUMBNAIL_SIZE = 200
_STDERR_LINES = 12
_RECONSTRUCTION_SUFFIXES = (".rec", ".mrc")


class MediaError(Exception):
    """A key image, thumbnail or movie could not be made; the message says why."""


@dataclass(frozen=True)
class MovieInfo:
    path: Path
    frames: int
    width: int
    height: int
    fps: float


# -- reading --------------------------------------------------------------------------------------


@contextmanager
def open_volume(path: str | os.PathLike[str]) -> Iterator[np.ndarray]:
    """The MRC data as a read-only memory map of shape ``(z, y, x)``; MediaError if it cannot
    be shown (:func:`etdb.mrc.volume.open_volume`'s refusals, same message)."""
    try:
        with _open_mrc(path) as data:
            yield data
    except MrcError as exc:
        raise MediaError(str(exc)) from exc


def _fit(size: tuple[int, int], max_size: int | None) -> tuple[int, int]:
    w, h = size
    if max_size is None or max(w, h) <= max_size:
        return w, h
    scale = max_size / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


# -- images ---------------------------------------------------------------------------------------


def render_slab(
    mrc_path: str | os.PathLike[str],
    *,
    center: int | None = None,
    thickness: int | None = None,
    box: tuple[int, int, int, int] | None = None,
    max_size: int | None = None,
) -> Image.Image:
    """A slab average as an 8-bit image, contrast from the slab itself (one rule: display).

    ``box`` = (left, top, right, bottom) in displayed pixels crops before scaling.
    """
    with open_volume(mrc_path) as data:
        image = display.slab_average(data, center, thickness or display.default_slab(len(data)))
    pic = Image.fromarray(display.to_gray8(image, display.contrast_limits(image)), mode="L")
    if box is not None:
        pic = pic.crop(box)
    target = _fit(pic.size, max_size)
    return pic if target == pic.size else pic.resize(target, Image.Resampling.LANCZOS)


def _save_jpeg(pic: Image.Image, out: Path, quality: int) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        pic.save(tmp, format="JPEG", quality=quality, optimize=True)
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise MediaError(f"{out}: cannot write JPEG: {exc}") from exc
    return out


def key_image(
    mrc_path: str | os.PathLike[str],
    out_jpg: str | os.PathLike[str],
    *,
    slab: int | None = None,
    max_size: int | None = 2048,
    quality: int = 90,
) -> Path:
    """``keyimg_<sid>.jpg``: the central slab of the reconstruction, auto-contrasted."""
    pic = render_slab(mrc_path, thickness=slab, max_size=max_size)
    return _save_jpeg(pic, Path(out_jpg), quality)


def thumbnail(
    image: str | os.PathLike[str] | Image.Image,
    out: str | os.PathLike[str],
    *,
    size: int = THUMBNAIL_SIZE,
    quality: int = 85,
) -> Path:
    """``keyimg_<sid>_s.jpg``: the key image shrunk to fit ``size``×``size``."""
    try:
        pic = image.copy() if isinstance(image, Image.Image) else Image.open(image)
        pic = pic.convert("L") if pic.mode not in ("L", "RGB") else pic
        pic.thumbnail((size, size), Image.Resampling.LANCZOS)
    except OSError as exc:
        raise MediaError(f"{image}: cannot read image: {exc}") from exc
    return _save_jpeg(pic, Path(out), quality)


# -- movie ----------------------------------------------------------------------------------------


def ffmpeg_exe() -> str:
    """The ffmpeg binary bundled with imageio-ffmpeg (or ``$IMAGEIO_FFMPEG_EXE``)."""
    try:
        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as exc:
        raise MediaError(f"ffmpeg not found (install imageio-ffmpeg): {exc}") from exc
    if not os.access(exe, os.X_OK):
        raise MediaError(f"ffmpeg at {exe} is not executable")
    return exe


def _movie_size(nx: int, ny: int, max_size: int | None) -> tuple[int, int]:
    w, h = _fit((nx, ny), max_size)
    return max(2, w - w % 2), max(2, h - h % 2)  # yuv420p needs even dimensions


def key_movie(
    mrc_path: str | os.PathLike[str],
    out_mp4: str | os.PathLike[str],
    *,
    fps: float = 20.0,
    max_frames: int = 600,
    max_size: int | None = 1024,
    crf: int = 23,
    ffmpeg: str | None = None,
) -> MovieInfo:
    """``keymov_<sid>.mp4``: a sweep through z, one slice per frame (evenly thinned to at most
    ``max_frames``), H.264/yuv420p with the index up front (``+faststart``) so it streams."""
    out = Path(out_mp4)
    exe = ffmpeg or ffmpeg_exe()
    with open_volume(mrc_path) as data:
        nz, ny, nx = data.shape
        limits = display.volume_contrast_limits(data)
        zs = np.unique(np.linspace(0, nz - 1, min(nz, max_frames)).round().astype(int))
        width, height = _movie_size(nx, ny, max_size)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        cmd = [exe, "-hide_banner", "-loglevel", "warning", "-y",
               "-f", "rawvideo", "-pix_fmt", "gray", "-s", f"{width}x{height}",
               "-framerate", f"{fps:g}", "-i", "pipe:0", "-an",
               "-c:v", "libx264", "-preset", "veryfast", "-crf", str(crf),
               "-pix_fmt", "yuv420p", "-movflags", "+faststart", "-f", "mp4", str(tmp)]  # fmt: skip
        with tempfile.TemporaryFile() as errors:
            try:
                proc = subprocess.Popen(
                    cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors
                )
            except OSError as exc:
                raise MediaError(f"cannot run ffmpeg ({exe}): {exc}") from exc
            code = _feed(proc, (_frame(data[z], limits, width, height) for z in zs), tmp)
            if code != 0:
                tmp.unlink(missing_ok=True)
                errors.seek(0)
                tail = errors.read().decode("utf-8", "replace").strip().splitlines()
                detail = "\n".join(tail[-_STDERR_LINES:]) or "(no output)"
                raise MediaError(f"ffmpeg failed (exit {code}) making {out}:\n{detail}")
    os.replace(tmp, out)
    return MovieInfo(out, len(zs), width, height, fps)


def _feed(proc: subprocess.Popen[bytes], frames: Iterator[bytes], tmp: Path) -> int:
    """Pipe the frames to ffmpeg and return its exit status. On any error of ours (a read
    error, Ctrl-C) ffmpeg is stopped and its partial output removed before re-raising."""
    assert proc.stdin is not None
    try:
        for frame in frames:
            proc.stdin.write(frame)
        proc.stdin.close()
    except BrokenPipeError:
        pass  # ffmpeg stopped early; its exit status and stderr say why
    except BaseException:
        proc.kill()
        proc.wait()
        tmp.unlink(missing_ok=True)
        raise
    return proc.wait()


def _frame(
    section: np.ndarray, limits: tuple[float, float] | None, width: int, height: int
) -> bytes:
    gray = display.to_gray8(np.asarray(section, dtype=np.float32), limits)
    h, w = gray.shape
    if (w, h) != (width, height):
        if width <= w and height <= h and w - width < 2 and h - height < 2:
            gray = gray[:height, :width]  # only trimming an odd row/column
        else:
            gray = np.asarray(
                Image.fromarray(gray).resize((width, height), Image.Resampling.BILINEAR)
            )
    return np.ascontiguousarray(gray).tobytes()


# -- a dataset folder -----------------------------------------------------------------------------


def find_reconstruction(folder: str | os.PathLike[str]) -> Path | None:
    """The reconstruction a dataset's media are made from: ``3dimage_*/*.rec|*.mrc``, the
    ``*_full.rec`` (IMOD's full-size output) first, then the largest."""
    candidates = [
        p
        for p in Path(folder).glob("3dimage_*/*")
        if p.is_file()
        and p.suffix.lower() in _RECONSTRUCTION_SUFFIXES
        and not p.name.startswith(".")
    ]
    if not candidates:
        return None
    return sorted(
        candidates, key=lambda p: (not p.stem.endswith("_full"), -p.stat().st_size, p.name)
    )[0]


def ensure_media(
    folder: str | os.PathLike[str],
    sid: str,
    *,
    reconstruction: str | os.PathLike[str] | None = None,
) -> list[Path]:
    """Make whichever of the key image, thumbnail and key movie the dataset folder lacks
    (go-etdb names); returns the files created."""
    folder = Path(folder)
    keyimg = folder / f"keyimg_{sid}.jpg"
    thumb = folder / f"keyimg_{sid}_s.jpg"
    movie = folder / f"keymov_{sid}.mp4"
    if keyimg.exists() and thumb.exists() and movie.exists():
        return []
    source = Path(reconstruction) if reconstruction else find_reconstruction(folder)
    if source is None:
        raise MediaError(f"{folder}: no reconstruction (3dimage_*/*.rec) to make media from")
    made: list[Path] = []
    if not keyimg.exists():
        made.append(key_image(source, keyimg))
    if not thumb.exists():
        made.append(thumbnail(keyimg, thumb))
    if not movie.exists():
        made.append(key_movie(source, movie).path)
    return made
