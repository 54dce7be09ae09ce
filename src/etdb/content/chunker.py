"""Fixed-size chunking and leaf hashing, the hot loop of the importer.

kubo's default chunker is ``size-262144``: the file is cut into chunks of exactly
``chunk_size`` bytes (``io.ReadFull``), the last one shorter; an empty file is one empty chunk.

Speed (measured on this project's 2-core machine, see docs/benchmarks.md): hashing is the
bottleneck (~1.5-2 GB/s per core with SHA-NI), reading from the page cache is 4-6x faster.
So: ``stream.read(chunk_size)`` (cheaper than ``readinto`` + memoryview in CPython), CIDv0 leaves
hashed as prefix/chunk/suffix without concatenating, and the leaves of a large file hashed two at
a time, one on a helper thread (hashlib releases the GIL for buffers > 2 KiB), which gains ~1.3x
over one core.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO

from etdb.content.cid import CID, RAW
from etdb.content.dagpb import file_leaf_frame

_sha256 = hashlib.sha256


def read_full(read: Callable[[int], bytes | None], size: int) -> bytes:
    """Read exactly ``size`` bytes, or fewer only at end of stream (Go's ``io.ReadFull``).

    Pipes and sockets return short reads; chunk boundaries must not depend on them.
    """
    buf = read(size)
    if buf is None:
        raise BlockingIOError("non-blocking stream returned no data")
    if len(buf) == size or not buf:
        return buf
    parts = [buf]
    have = len(buf)
    while have < size:
        more = read(size - have)
        if more is None:
            raise BlockingIOError("non-blocking stream returned no data")
        if not more:
            break
        parts.append(more)
        have += len(more)
    return b"".join(parts)


@dataclass(frozen=True, slots=True)
class Leaf:
    cid: CID
    block: bytes | None  # None when only hashing
    tsize: int  # what a parent link records: the block length
    filesize: int  # file bytes in this leaf


class LeafHasher:
    """Turns a chunk into a leaf: a raw block (CIDv1 ``raw``) or a dag-pb UnixFS File node."""

    def __init__(self, *, raw: bool, cid_version: int, keep_blocks: bool) -> None:
        self.raw = raw
        self.cid_version = cid_version
        self.keep_blocks = keep_blocks
        self._frames: dict[int, tuple[bytes, bytes]] = {}

    def __call__(self, chunk: bytes) -> Leaf:
        n = len(chunk)
        if self.raw:
            # A raw leaf is always CIDv1 (kubo gives raw leaves v1 CIDs even under CIDv0 roots).
            cid = CID.v1(RAW, _sha256(chunk).digest())
            return Leaf(cid, chunk if self.keep_blocks else None, n, n)
        frame = self._frames.get(n)
        if frame is None:
            frame = self._frames[n] = file_leaf_frame(n)
        prefix, suffix = frame
        # Hash the three pieces rather than hashing prefix + chunk + suffix: no 256 KiB copy.
        h = _sha256(prefix)
        h.update(chunk)
        h.update(suffix)
        digest = h.digest()
        cid = CID.v0(digest) if self.cid_version == 0 else CID.v1(0x70, digest)
        block = prefix + chunk + suffix if self.keep_blocks else None
        return Leaf(cid, block, len(prefix) + n + len(suffix), n)


_helper: ThreadPoolExecutor | None = None
_helper_lock = threading.Lock()


def two_cpus() -> bool:
    try:
        return len(os.sched_getaffinity(0)) >= 2
    except AttributeError:  # not Linux
        return (os.cpu_count() or 1) >= 2


def _helper_pool() -> ThreadPoolExecutor | None:
    """One shared helper thread, or None on a single-CPU machine (where it cannot help)."""
    global _helper
    if _helper is None:
        with _helper_lock:
            if _helper is None:
                if not two_cpus():
                    return None
                _helper = ThreadPoolExecutor(1, thread_name_prefix="etdb-leaf-hash")
    return _helper


def iter_leaves(
    stream: BinaryIO,
    chunk_size: int,
    hasher: LeafHasher,
    *,
    parallel: bool = True,
    on_progress: Callable[[int], None] | None = None,
) -> Iterator[Leaf]:
    """Yield the leaves of ``stream`` in file order; at least one (the empty leaf)."""
    read = stream.read
    first = read_full(read, chunk_size)
    pool = _helper_pool() if parallel and len(first) == chunk_size else None
    if pool is None:
        chunk = first
        while True:
            leaf = hasher(chunk)
            if on_progress is not None:
                on_progress(len(chunk))
            yield leaf
            if len(chunk) < chunk_size:
                return
            chunk = read_full(read, chunk_size)
            if not chunk:
                return
    # Two chunks in flight: the helper hashes chunk a while this thread reads and hashes b.
    # Memory stays at a few chunks whatever the file size.
    a = first
    submit = pool.submit
    while True:
        fut = submit(hasher, a)
        b = read_full(read, chunk_size) if len(a) == chunk_size else b""
        try:
            leaf_b = hasher(b) if b else None
        finally:
            leaf_a = fut.result()
        if on_progress is not None:
            on_progress(len(a))
        yield leaf_a
        if leaf_b is None:
            return
        if on_progress is not None:
            on_progress(len(b))
        yield leaf_b
        if len(b) < chunk_size:
            return
        a = read_full(read, chunk_size)
        if not a:
            return


def pread_full(fd: int, size: int, offset: int) -> bytes:
    """``size`` bytes at ``offset`` (fewer only at end of file); no shared file position."""
    buf = os.pread(fd, size, offset)
    if len(buf) == size or not buf:
        return buf
    parts = [buf]
    have = len(buf)
    while have < size:
        more = os.pread(fd, size - have, offset + have)
        if not more:
            break
        parts.append(more)
        have += len(more)
    return b"".join(parts)


def iter_file_leaves(
    fd: int,
    chunk_size: int,
    hasher: LeafHasher,
    *,
    batch: int,
    on_progress: Callable[[int], None] | None = None,
) -> Iterator[Leaf]:
    """Leaves of the regular file ``fd`` (from offset 0), read and hashed by two threads.

    Each round, this thread reads and hashes ``batch`` consecutive chunks with ``os.pread``
    while the helper does the next ``batch``: both reading and hashing release the GIL, and
    one hand-off per ``2 * batch`` chunks keeps synchronization cheap (measured: batch 64
    reaches ~1.8x single-core sha256 on 2 cores; per-chunk hand-offs only ~1.3x). Memory is one
    chunk per thread plus the leaves of a round, which hold blocks only when a sink wants them,
    so callers pass a small ``batch`` then.
    """
    pool = _helper_pool()
    if pool is None:
        raise RuntimeError("iter_file_leaves needs a second CPU")

    def work(first: int, count: int) -> list[Leaf]:
        leaves = []
        for i in range(first, first + count):
            chunk = pread_full(fd, chunk_size, i * chunk_size)
            if not chunk and i:
                break  # end of file on a chunk boundary: no leaf (only an empty file has one)
            leaves.append(hasher(chunk))
            if len(chunk) < chunk_size:
                break
        return leaves

    index = 0
    while True:
        theirs = pool.submit(work, index + batch, batch)
        try:
            mine = work(index, batch)
        finally:
            later = theirs.result()
        done = len(mine) < batch or mine[-1].filesize < chunk_size
        for leaf in mine if done else mine + later:
            if on_progress is not None:
                on_progress(leaf.filesize)
            yield leaf
        if done or len(later) < batch or later[-1].filesize < chunk_size:
            return
        index += 2 * batch
