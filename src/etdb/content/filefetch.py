"""Download one UnixFS file from the network, block-verified and resumable.

``plan_file`` (from :mod:`etdb.content.fileplan`, re-exported here) lists the file's leaves
by fetching only its internal nodes.

``download_file`` fetches the leaves through a ``BlockFetcher`` (each one verified against its
CID before a byte of it is written) and writes them where they belong with ``os.pwrite`` into
``<dest>.part``, in whatever order they arrive. Leaves come first as long runs of CAR streams
(``carfetch``: one request per ``RUN_BYTES`` of file, not per leaf); whatever no peer streamed
(peers without CAR support, runs given up after failures) is then fetched block by block.
Progress is journaled in ``<dest>.part.json``: the set of leaves whose bytes are on disk.
The journal is only ever written after an ``fdatasync`` of the data it describes, and
atomically (temp file + rename), every ``JOURNAL_BYTES`` or ``JOURNAL_SECONDS`` and on the
way out of an error or Ctrl-C; so after a crash or SIGKILL the journal never claims a leaf that
is not on disk, and a re-run never fetches a leaf the journal holds. At the end the file is
fsynced and renamed to ``dest``.

The file's bytes are exactly those the root CID names, by construction: the internal nodes are
verified (their hashes chain up to the root), each leaf is verified and must hold exactly the
byte count its parent's ``blocksizes`` assign to it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from etdb.content.carfetch import RUN_BYTES, car_leaves
from etdb.content.cid import CID, DAG_PB, RAW
from etdb.content.dagpb import DagPBError, decode_node, decode_unixfs
from etdb.content.errors import ContentError, InvalidNodeError
from etdb.content.fetch import BlockFetcher
from etdb.content.fileplan import FilePlan, Leaf, plan_file
from etdb.content.fsutil import fsync_dir

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; two downloads into one file are the user's
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "JOURNAL_SUFFIX",
    "PART_SUFFIX",
    "FilePlan",
    "Leaf",
    "download_file",
    "matches_plan",
    "part_paths",
    "plan_file",
    "resumed_bytes",
]

JOURNAL_BYTES = 64 << 20
JOURNAL_SECONDS = 2.0
JOURNAL_FORMAT = "etdb-part/1"
#: ``<dest>.part`` holds a download's verified bytes, ``<dest>.part.json`` its journal.
PART_SUFFIX = ".part"
JOURNAL_SUFFIX = ".part.json"
# -- downloading --------------------------------------------------------------------------------


def download_file(
    fetcher: BlockFetcher,
    plan: FilePlan,
    dest: Path,
    *,
    on_bytes: Callable[[int], None] | None = None,
    car: bool = True,
    run_bytes: int = RUN_BYTES,
) -> int:
    """Fetch the file into ``dest`` (see module doc); return the bytes written this run.

    ``on_bytes(n)`` is called (in this thread) each time ``n`` verified bytes are written. A
    ``dest`` already there with the plan's size is taken as complete (0 is returned); one of
    another size is refused, never overwritten. ``car=False`` fetches block by block only;
    ``run_bytes`` is the file bytes asked for per CAR stream.
    """
    dest = Path(dest)
    part, journal = part_paths(dest)
    if dest.exists():
        if not dest.is_file() or dest.stat().st_size != plan.size:
            raise ContentError(
                f"{dest} already exists and is not {plan.cid} ({plan.size} bytes); "
                "refusing to overwrite it"
            )
        # Complete from an earlier run (a crash between the rename and the cleanup leaves these).
        part.unlink(missing_ok=True)
        journal.unlink(missing_ok=True)
        return 0
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(part, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o666)
    try:
        _lock(fd, part)
        done = _load_journal(journal, plan, os.fstat(fd).st_size)
        if done is None:  # new, or a journal of another file: start over
            os.ftruncate(fd, 0)
            os.ftruncate(fd, plan.size)
            done = bytearray((len(plan.leaves) + 7) // 8)
        writer = _PartWriter(plan, fd, journal, done, on_bytes)
        try:
            if car:
                missing = [i for i in range(len(plan.leaves)) if not _is_set(done, i)]
                for cid, block, indices in car_leaves(fetcher, plan, missing, run_bytes=run_bytes):
                    writer.write(cid, block, indices)
            _fill_by_block(fetcher, writer)
        except BaseException:
            # Keep what was verified and written (Ctrl-C, a FetchError): the next run resumes.
            with contextlib.suppress(OSError):
                writer.checkpoint()
            raise
        missing = [i for i in range(len(plan.leaves)) if not _is_set(done, i)]
        if missing:  # get_many yields every CID it was given; this is a bug guard
            leaf = plan.leaves[missing[0]]
            raise ContentError(f"{part}: leaf {leaf.cid} at byte {leaf.offset} never arrived")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(part, dest)
    fsync_dir(dest.parent)
    journal.unlink(missing_ok=True)
    return writer.written


class _PartWriter:
    """Writes verified leaves into the ``.part`` and keeps the journal (in the caller's
    thread: the done-bitmap and the journal have one writer)."""

    def __init__(
        self,
        plan: FilePlan,
        fd: int,
        journal: Path,
        done: bytearray,
        on_bytes: Callable[[int], None] | None,
    ) -> None:
        self.plan, self.fd, self.journal, self.done = plan, fd, journal, done
        self.on_bytes = on_bytes
        self.written = self.unsynced = 0
        self.last_sync = time.monotonic()

    def write(self, cid: CID, block: bytes, indices: list[int]) -> None:
        """Write a verified leaf block at each of its places (``indices`` into the plan)."""
        data = _leaf_bytes(cid, block)
        for i in indices:
            leaf = self.plan.leaves[i]
            if len(data) != leaf.size:
                raise InvalidNodeError(
                    cid,
                    f"leaf at byte {leaf.offset} of {self.plan.cid} holds {len(data)} bytes, "
                    f"its parent says {leaf.size}",
                )
            _pwrite_all(self.fd, data, leaf.offset)
            self.done[i >> 3] |= 1 << (i & 7)
            self.written += leaf.size
            self.unsynced += leaf.size
            if self.on_bytes is not None:
                self.on_bytes(leaf.size)
        if self.unsynced >= JOURNAL_BYTES or time.monotonic() - self.last_sync >= JOURNAL_SECONDS:
            self.checkpoint()

    def checkpoint(self) -> None:
        _checkpoint(self.fd, self.journal, self.plan, self.done)
        self.unsynced, self.last_sync = 0, time.monotonic()


def _fill_by_block(fetcher: BlockFetcher, writer: _PartWriter) -> None:
    """Fetch and write every leaf not yet done, one block request each."""
    where: dict[CID, list[int]] = {}  # one fetch for a leaf repeated (runs of zeros in MRCs)
    for i, leaf in enumerate(writer.plan.leaves):
        if not _is_set(writer.done, i):
            where.setdefault(leaf.cid, []).append(i)
    if where:
        for cid, block in fetcher.get_many(list(where)):
            writer.write(cid, block, where[cid])


def _leaf_bytes(cid: CID, block: bytes) -> bytes:
    if cid.codec == RAW:
        return block
    if cid.codec != DAG_PB:
        raise InvalidNodeError(cid, f"unsupported codec {cid.codec_name} in a file")
    try:
        fs = decode_unixfs(decode_node(block).data or b"")
    except DagPBError as exc:
        raise InvalidNodeError(cid, str(exc)) from None
    return fs.data or b""


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


def _is_set(done: bytearray, i: int) -> bool:
    return bool(done[i >> 3] & (1 << (i & 7)))


def _lock(fd: int, part: Path) -> None:
    if fcntl is None:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise ContentError(f"{part} is being written by another download") from None


# -- the journal --------------------------------------------------------------------------------


def _checkpoint(fd: int, journal: Path, plan: FilePlan, done: bytearray) -> None:
    """Make the data durable, then (only then) record which leaves it holds."""
    os.fdatasync(fd) if hasattr(os, "fdatasync") else os.fsync(fd)
    body = {
        "format": JOURNAL_FORMAT,
        "cid": str(plan.cid),
        "size": plan.size,
        "leaves": len(plan.leaves),
        "verified": sum(bin(b).count("1") for b in done),
        "done": base64.b64encode(bytes(done)).decode("ascii"),
    }
    temp = journal.with_name(journal.name + ".tmp")
    with open(temp, "w", encoding="utf-8") as f:
        json.dump(body, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, journal)


def part_paths(dest: Path) -> tuple[Path, Path]:
    """Where a download of ``dest`` keeps its bytes and its journal until it is complete."""
    return dest.with_name(dest.name + PART_SUFFIX), dest.with_name(dest.name + JOURNAL_SUFFIX)


def resumed_bytes(plan: FilePlan, dest: Path) -> int:
    """File bytes an earlier, interrupted ``download_file`` of ``plan`` into ``dest`` left
    verified on disk (what a re-run will not fetch again); 0 if there is nothing to resume."""
    part, journal = part_paths(Path(dest))
    try:
        part_size = part.stat().st_size
    except OSError:
        return 0
    done = _load_journal(journal, plan, part_size)
    if done is None:
        return 0
    return sum(leaf.size for i, leaf in enumerate(plan.leaves) if _is_set(done, i))


def _load_journal(journal: Path, plan: FilePlan, part_size: int) -> bytearray | None:
    """The done-bitmap of a journal for this very plan and a ``.part`` of the right size;
    None for anything else (missing, damaged, another file's)."""
    try:
        body = json.loads(journal.read_text(encoding="utf-8"))
        done = bytearray(base64.b64decode(body["done"], validate=True))
        same = (
            body.get("format") == JOURNAL_FORMAT
            and body.get("cid") == str(plan.cid)
            and body.get("size") == plan.size
            and body.get("leaves") == len(plan.leaves)
            and len(done) == (len(plan.leaves) + 7) // 8
            and part_size == plan.size
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return done if same else None


def matches_plan(target: Path, file_plan: FilePlan) -> bool:
    """Whether the file on disk holds exactly the plan's bytes: its size, and every leaf
    re-hashed against its CID (raw leaves only: a dag-pb leaf's framing is not on disk)."""
    if any(leaf.cid.codec != RAW for leaf in file_plan.leaves):
        return False
    try:
        if target.stat().st_size != file_plan.size:
            return False
        with target.open("rb") as f:
            for leaf in file_plan.leaves:
                f.seek(leaf.offset)
                if not leaf.cid.verify(f.read(leaf.size)):
                    return False
    except OSError:
        return False
    return True
