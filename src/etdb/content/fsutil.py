"""Small filesystem helpers shared by the blockstore, the exporter and the CAR command."""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import sys


def create_temp(directory: str | os.PathLike[str], prefix: str) -> tuple[int, str]:
    """Create a new, empty, uniquely named file in ``directory``; return (fd, path).

    Unlike ``tempfile.mkstemp`` (always 0600), the mode is 0666 minus the umask, as for any
    file the user creates: exported files should be ordinary files, and blocks readable by,
    e.g., a gateway running as another user. (kubo's flatfs makes 0600 block files; a kubo
    repo stays readable by its owner, which is all ``FSBlockstore`` needs to open it.)
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        path = os.path.join(directory, prefix + secrets.token_hex(8))
        try:
            return os.open(path, flags, 0o666), path
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file in {directory}")


def write_temp(
    directory: str | os.PathLike[str], prefix: str, data: bytes, *, fsync: bool = False
) -> str:
    """``data`` in a new file of :func:`create_temp` (``fsync``: made durable before closing);
    return its path. On any failure the file is closed and removed, and the error raised
    (FileNotFoundError when ``directory`` does not exist)."""
    fd, path = create_temp(directory, prefix)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if fsync:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    os.close(fd)
    return path


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Persist a directory's entries (e.g. renames into it). A no-op where directories cannot
    be opened (Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def syncfs(path: str | os.PathLike[str]) -> bool:
    """Flush the one filesystem holding ``path`` (Linux ``syncfs(2)``); False if unavailable.

    One syncfs is far cheaper than an fsync per file for a batch of a thousand blocks, and
    unlike ``os.sync()`` it does not flush every other program's writes on a shared host.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.syncfs
    except (OSError, AttributeError):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        return int(fn(fd)) == 0
    finally:
        os.close(fd)
