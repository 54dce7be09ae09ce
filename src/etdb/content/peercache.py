"""A bounded on-disk cache of verified blocks fetched from peers (the read-through's memory).

It is a folder of its own, never the lab's blockstore: the blockstore's blocks are the lab's
data and are never evicted, the cache's are copies of other nodes' blocks and are. Layout::

    <root>/<shard>/<KEY>.data     one block, named as in flatfs (``blockstore.multihash_key``)
    <root>/<shard>/.put-*         a block being written (renamed within its folder: cheap)
    <root>/SIZE                   the bytes the cache holds (the lock file, see below)

The 1024 shard folders are made when the cache is opened, not on a stream's path.

Bounded in bytes, least recently used first out: a block's mtime is its last use (set when it
is written and on every hit). A put is a temp file renamed into place, nothing more (it sits on
a stream's path: a few system calls, no lock); each process adds what it put to the recorded
total every ``flush`` bytes (1/32 of the bound, at most 16 MiB), under an exclusive ``flock``
on ``SIZE``. When the total passes ``max_bytes - flush`` the folder is scanned and the oldest
blocks are deleted until ``LOW_WATER`` of the bound is left (one scan pays for many puts), so
the folder never holds more than ``max_bytes`` plus ``flush`` for each other process.

Safe with several server processes (``etdb serve --workers``) through that lock. The total may
be off by what happened outside it (a torn block deleted on sight, a block two processes both
put: an over-count; a process killed before it added its puts: an under-count of at most
``flush``); every scan sets it right, and the cache is scanned whenever it is opened.
Crash-safe without any fsync: a block is written to a temp file beside its name and renamed
into place, so a name holds nothing but a whole write, and every read is re-hashed, so a block
the disk lost or tore (a crash before the kernel wrote it) is only a miss, deleted on sight. A
process killed mid-put leaves a temp file, deleted by the next open once it is older than
``STALE_TEMP_AGE``.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from etdb.content.blockstore import DATA_SUFFIX, MAX_BLOCK_SIZE, multihash_key, shard_of
from etdb.content.cid import CID
from etdb.content.fsutil import write_temp

try:
    import fcntl
except ImportError:  # Windows: one process per cache (the in-process lock still holds)
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOW_WATER", "PeerCache"]

#: After an eviction the cache holds at most this fraction of its bound.
LOW_WATER = 0.9
STALE_TEMP_AGE = 3600.0
#: The most bytes a process puts before it adds them to the recorded total.
FLUSH_MAX = 16 << 20
SIZE_FILE = "SIZE"
TEMP_PREFIX = ".put-"
#: Every shard a block's key can have: two characters of the key's (upper-case) base32.
_BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
SHARDS = [a + b for a in _BASE32 for b in _BASE32]


class PeerCache:
    """Verified blocks kept in ``root``, at most ``max_bytes`` of them (``max_bytes > 0``).

    ``get`` answers a block or None (a miss: absent, or a file that fails its hash); ``put``
    keeps a block whose bytes the caller has verified (a fetcher's), or re-hashes them.
    Thread-safe, and safe with other processes sharing the folder.
    """

    def __init__(self, root: str | os.PathLike[str], max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError(f"a peer cache holds at least one byte, not {max_bytes}")
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.flush = max(min(max_bytes // 32, FLUSH_MAX), 1)
        self._lock = threading.Lock()  # guards _unaccounted
        self._scan_lock = threading.Lock()  # flock is per open file: this orders our threads
        self._unaccounted = 0  # bytes this process put and has not added to SIZE yet
        self.root.mkdir(parents=True, exist_ok=True)
        present = set(os.listdir(self.root))
        for shard in SHARDS:
            if shard not in present:
                (self.root / shard).mkdir(exist_ok=True)
        with self._locked() as fd:
            _write_total(fd, self._scan_and_evict(clean_temp=True))

    # -- reading --------------------------------------------------------------------------------

    def path_of(self, cid: CID) -> Path:
        key = multihash_key(cid.multihash)
        return self.root / shard_of(key) / (key + DATA_SUFFIX)

    def get(self, cid: CID) -> bytes | None:
        """The block, re-hashed, and marked as just used; None if it is not (wholly) here."""
        path = self.path_of(cid)
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_BLOCK_SIZE + 1)
        except OSError:  # absent, evicted meanwhile, unreadable: a miss all the same
            return None
        if len(data) > MAX_BLOCK_SIZE or not cid.verify(data):
            with contextlib.suppress(OSError):  # torn by a crash, or tampered with
                path.unlink()
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # its last use, for the LRU order
        return data

    def has(self, cid: CID) -> bool:
        """True if a file for the block is here (not verified: ``get`` checks the bytes)."""
        return self.path_of(cid).is_file()

    def size(self) -> int:
        """The bytes held, as recorded (this process's puts included)."""
        self._account(0, force=True)
        with self._locked() as fd:
            return _read_total(fd) or 0

    # -- writing --------------------------------------------------------------------------------

    def put(self, cid: CID, block: bytes, *, verify: bool = True) -> None:
        """Keep ``block`` (``verify=False``: the caller has hashed it); a block larger than the
        whole cache is not kept."""
        if len(block) > min(self.max_bytes, MAX_BLOCK_SIZE) or cid.is_identity:
            return
        if verify and not cid.verify(block):
            raise ValueError(f"refusing to cache bytes that do not hash to {cid}")
        path = self.path_of(cid)
        temp = self._write_temp(path.parent, block)
        if temp is None:
            return
        try:
            os.replace(temp, path)  # the same block put twice: the same bytes either way
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        self._account(len(block))

    def _write_temp(self, folder: Path, block: bytes) -> str | None:
        """The block in a new temp file in ``folder``; None if there is no such shard (a key
        shorter than any multihash's: no block of ours)."""
        try:
            return write_temp(folder, TEMP_PREFIX, block)
        except FileNotFoundError:
            return None

    def _account(self, size: int, *, force: bool = False) -> None:
        """Add ``size`` put bytes to the total, every ``flush`` bytes (or now, ``force``)."""
        with self._lock:
            self._unaccounted += size
            if self._unaccounted < self.flush and not force:
                return
            size, self._unaccounted = self._unaccounted, 0
        with self._locked() as fd:
            total = _read_total(fd)
            total = None if total is None else total + size
            if total is None or total > self.max_bytes - self.flush:
                total = self._scan_and_evict()
            _write_total(fd, total)

    # -- bounds ---------------------------------------------------------------------------------

    def _scan_and_evict(self, *, clean_temp: bool = False) -> int:
        """Count what the folder holds; past ``max_bytes - flush``, delete the least recently
        used blocks until ``LOW_WATER`` of the bound is left. Return the bytes left. Locked.
        ``clean_temp``: also delete temp files of puts that died (by age, not all: another
        process may be writing one now)."""
        blocks = sorted(self._blocks(clean_temp))  # (mtime, size, path): oldest first
        total = sum(size for _, size, _ in blocks)
        if total <= self.max_bytes - self.flush:
            return total
        target = int(self.max_bytes * LOW_WATER)
        for _, size, path in blocks:
            if total <= target:
                break
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
                total -= size
        return total

    def _blocks(self, clean_temp: bool) -> Iterator[tuple[float, int, str]]:
        cutoff = time.time() - STALE_TEMP_AGE
        with os.scandir(self.root) as shards:
            for shard in shards:
                if not shard.is_dir(follow_symlinks=False):
                    continue
                with os.scandir(shard.path) as entries:
                    for entry in entries:
                        with contextlib.suppress(FileNotFoundError):
                            if entry.name.endswith(DATA_SUFFIX):
                                st = entry.stat(follow_symlinks=False)
                                yield st.st_mtime, st.st_size, entry.path
                            elif (
                                clean_temp
                                and entry.name.startswith(TEMP_PREFIX)
                                and entry.stat(follow_symlinks=False).st_mtime <= cutoff
                            ):
                                os.unlink(entry.path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[int]:
        """This process's lock, then the folder's ``flock`` on SIZE; yields SIZE's descriptor."""
        with self._scan_lock:
            fd = os.open(self.root / SIZE_FILE, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                yield fd
            finally:
                os.close(fd)  # releases the flock


def _read_total(fd: int) -> int | None:
    """The recorded total; None if SIZE holds none (new, or cut short by a crash)."""
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


def _write_total(fd: int, total: int) -> None:
    data = f"{total}\n".encode()
    os.pwrite(fd, data, 0)
    os.ftruncate(fd, len(data))
