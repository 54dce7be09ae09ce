"""Legacy key movies: a lab's Flash video (``keymov_<sid>.flv``) as the H.264 MP4 browsers play.

ETDB-Caltech's datasets carry their key movie as ``.flv``, which no browser plays any more.
go-etdb converted it with ffmpeg (``-movflags faststart -vcodec libx264 -pix_fmt yuv420p -vf
pad=width=ceil(iw/2)*2:height=ceil(ih/2)*2``) and published the MP4 next to the FLV; this does
the same with the ffmpeg binary ``imageio-ffmpeg`` ships. ffmpeg reads the file itself, so
nothing of it passes through Python's memory, and the output is written under a temporary name
and renamed only when ffmpeg succeeds: a conversion killed half-way never leaves a file that a
later run would take as done.

A file that cannot be converted is the dataset's *warning*, not its failure: the failure is
remembered in a hidden marker beside the output (keyed by the FLV's size and mtime), so later
runs report it again without re-running ffmpeg, until the lab replaces the file.

Every ffmpeg run is bounded (:func:`ffmpeg_timeout`: a generous floor plus time per MB of the
FLV): a hostile or broken file that keeps ffmpeg busy (or blocked) forever would otherwise hang
the whole publish run. On expiry ffmpeg is killed, its temporary output removed, and the file
is a conversion failure like any other.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

from etdb.publish.media import MediaError, ffmpeg_exe

__all__ = [
    "LEGACY_MOVIE_SUFFIX",
    "convert_flv",
    "failed_conversion",
    "ffmpeg_timeout",
    "flv_problem",
    "remember_failure",
]

LEGACY_MOVIE_SUFFIX = ".flv"
_STDERR_TAIL = 4096  # bytes of ffmpeg's messages kept for an error (a hostile file may spew)
_MARKER_MAX = 8192  # a marker larger than this is not ours: ignored
_REASON_LINES = 6
# go-etdb's conversion; -vf pads odd sizes to even ones, which yuv420p needs.
_H264 = ("-movflags", "+faststart", "-vcodec", "libx264", "-pix_fmt", "yuv420p",
         "-vf", "pad=width=ceil(iw/2)*2:height=ceil(ih/2)*2")  # fmt: skip
# ffmpeg's time limit: far above what a real key movie takes, even on a slow shared machine.
_TIMEOUT_FLOOR = 60.0  # seconds, however small the file
_TIMEOUT_PER_MB = 1.0  # seconds more per MB of the FLV
_VIDEO_STREAM = re.compile(r"Stream #\d+:\d+.*?: Video: ")


class _TimedOut(MediaError):
    """ffmpeg did not finish in time and was killed."""


def ffmpeg_timeout(flv: str | os.PathLike[str]) -> float:
    """Seconds ffmpeg gets for ``flv``: the floor plus a second per MB (the floor if unreadable)."""
    try:
        size = os.stat(flv).st_size
    except OSError:
        size = 0
    return _TIMEOUT_FLOOR + _TIMEOUT_PER_MB * size / 1_000_000


def _run(cmd: list[str], timeout: float) -> tuple[int, str]:
    """Run ffmpeg; its exit status and the tail of its messages. After ``timeout`` seconds, or
    on an interruption of ours (Ctrl-C), ffmpeg is killed first (then _TimedOut, or re-raise)."""
    with tempfile.TemporaryFile() as errors:
        try:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors
            )
        except OSError as exc:
            raise MediaError(f"cannot run ffmpeg ({cmd[0]}): {exc}") from exc
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise _TimedOut(f"ffmpeg did not finish within {timeout:.0f} s; stopped") from None
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        size = errors.seek(0, os.SEEK_END)
        errors.seek(max(0, size - _STDERR_TAIL))
        return code, errors.read().decode("utf-8", "replace")


def _reason(messages: str) -> str:
    lines = [line for line in messages.strip().splitlines() if line.strip()]
    return "\n".join(lines[-_REASON_LINES:]) or "(no output)"


def flv_problem(
    flv: str | os.PathLike[str], *, ffmpeg: str | None = None, timeout: float | None = None
) -> str | None:
    """Why ``flv`` cannot be converted, from its header alone (None: it has a video stream).

    Cheap enough for planning: ffmpeg opens the file and describes its streams, decodes nothing.
    A file whose body is damaged passes; :func:`convert_flv` then fails on it. ``timeout``:
    default :func:`ffmpeg_timeout`; a probe that takes longer is the file's problem.
    """
    exe = ffmpeg or ffmpeg_exe()
    cmd = [exe, "-hide_banner", "-nostdin", "-i", os.fspath(flv)]
    try:
        _, messages = _run(cmd, ffmpeg_timeout(flv) if timeout is None else timeout)
    except _TimedOut as exc:
        return f"not a readable video: {exc} reading its header"
    if _VIDEO_STREAM.search(messages):
        return None
    tail = [line for line in messages.splitlines() if "output file" not in line]
    return f"not a readable video: {_reason(chr(10).join(tail))}"


def convert_flv(
    flv: str | os.PathLike[str],
    out_mp4: str | os.PathLike[str],
    *,
    ffmpeg: str | None = None,
    timeout: float | None = None,
) -> Path:
    """``keymov_<sid>.mp4`` from ``keymov_<sid>.flv`` as go-etdb made it (see the module
    docstring); MediaError, with ffmpeg's last messages, if it cannot be converted or takes
    longer than ``timeout`` seconds (default :func:`ffmpeg_timeout`)."""
    out = Path(out_mp4)
    exe = ffmpeg or ffmpeg_exe()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    cmd = [exe, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-y",
           "-i", os.fspath(flv), *_H264, "-f", "mp4", str(tmp)]  # fmt: skip
    try:
        try:
            code, messages = _run(cmd, ffmpeg_timeout(flv) if timeout is None else timeout)
        except _TimedOut as exc:
            raise MediaError(f"converting {flv}: {exc} (a broken or hostile file?)") from None
        if code != 0:
            raise MediaError(f"ffmpeg failed (exit {code}) converting {flv}:\n{_reason(messages)}")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


# -- remembered failures --------------------------------------------------------------------------


def _marker(out_mp4: Path) -> Path:
    return out_mp4.with_name(f".{out_mp4.name}.failed")


def _stamp(flv: Path) -> dict[str, int]:
    st = flv.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def remember_failure(flv: Path, out_mp4: Path, reason: str) -> None:
    """Record that ``flv`` (as it is now) cannot be converted, atomically."""
    marker = _marker(out_mp4)
    marker.parent.mkdir(parents=True, exist_ok=True)
    tmp = marker.with_name(f"{marker.name}.tmp")
    tmp.write_text(json.dumps({**_stamp(flv), "reason": reason[: _MARKER_MAX // 2]}))
    os.replace(tmp, marker)


def failed_conversion(flv: Path, out_mp4: Path) -> str | None:
    """Why converting ``flv`` failed before, if it did and the file has not changed since."""
    marker = _marker(out_mp4)
    try:
        if marker.stat().st_size > _MARKER_MAX:
            return None
        saved = json.loads(marker.read_text("utf-8"))
        if not isinstance(saved, dict) or not isinstance(saved.get("reason"), str):
            return None
        stamp = _stamp(flv)
    except (OSError, ValueError):
        return None
    same = all(saved.get(k) == v for k, v in stamp.items())
    return saved["reason"] if same else None
