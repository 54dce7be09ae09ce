"""Download one UnixFS file from the network, block-verified and resumable.

``plan_file`` fetches only the file's internal nodes (a few hundred bytes per 174 leaves) and
lists its leaves: where each one's bytes go, how many there are, and their CID. Internal nodes
are fetched a level at a time (``get_many`` when the getter has it), so planning a 5 GB file
costs a handful of round trips, not a walk of 20,000 blocks.

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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from etdb.content.blockstore import BlockGetter
from etdb.content.carfetch import RUN_BYTES, car_leaves
from etdb.content.cid import CID, DAG_PB, RAW
from etdb.content.dagpb import DagPBError, PBLink, decode_node, decode_unixfs
from etdb.content.errors import ContentError, InvalidNodeError, NotAFileError
from etdb.content.exporter import MAX_DEPTH, Kind, Node, load_node, resolve_node
from etdb.content.fetch import BlockFetcher
from etdb.content.fsutil import fsync_dir

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; two downloads into one file are the user's
    fcntl = None  # type: ignore[assignment]

__all__ = ["FilePlan", "Leaf", "download_file", "plan_file", "resumed_bytes"]

JOURNAL_BYTES = 64 << 20
JOURNAL_SECONDS = 2.0
JOURNAL_FORMAT = "etdb-part/1"
#: A dag-pb leaf's link Tsize exceeds its file bytes by its framing: at most 14 bytes for any
#: block under 2 MiB. An internal node adds at least one 36-byte link. Between the two: a leaf.
_LEAF_FRAME_MAX = 32


@dataclass
class Leaf:
    """``size`` file bytes at ``offset``, held by the block ``cid`` (a raw block, or the Data of
    a dag-pb node)."""

    offset: int
    size: int
    cid: CID


@dataclass
class FilePlan:
    """A file's root, size, and its leaves in file order (internal nodes already fetched).
    ``internal``: the CIDs of those internal nodes (blocks a CAR of the file may also hold)."""

    cid: CID
    size: int
    leaves: list[Leaf]
    internal: set[CID] = field(default_factory=set, compare=False)


# -- planning -----------------------------------------------------------------------------------


def plan_file(getter: BlockGetter, path: str | CID) -> FilePlan:
    """Resolve ``CID`` or ``CID/sub/path`` to a file and list its leaves (see module doc)."""
    root = resolve_node(getter, path)
    if not root.is_file:
        raise NotAFileError(f"{path} is a {root.kind}, not a file")
    size = root.size or 0
    leaves: list[Leaf] = []
    internal = {root.cid}
    level: list[tuple[Node, int]] = [(root, 0)]
    depth = 0
    while level:
        if depth > MAX_DEPTH:
            raise InvalidNodeError(root.cid, f"file DAG deeper than {MAX_DEPTH}")
        wanted: dict[CID, list[tuple[int, int, CID]]] = {}  # child -> (offset, size, parent)
        for node, offset in level:
            own = _own_bytes(node)
            if own:
                leaves.append(Leaf(offset, own, node.cid))
            if node.kind == Kind.RAW:
                continue
            assert node.pb is not None and node.unixfs is not None
            child_offset = offset + own
            for link, child_size in zip(node.pb.links, node.unixfs.blocksizes, strict=True):
                if child_size and _is_leaf(link, child_size):
                    leaves.append(Leaf(child_offset, child_size, link.cid))
                elif child_size:
                    wanted.setdefault(link.cid, []).append((child_offset, child_size, node.cid))
                child_offset += child_size
        level = []
        for cid, block in _get_all(getter, list(wanted)):
            internal.add(cid)
            child = load_node(_OneBlock(cid, block), cid)
            for offset, child_size, parent in wanted[cid]:
                if not child.is_file:
                    raise InvalidNodeError(parent, f"file links to a {child.kind} ({cid})")
                if child.size != child_size:
                    raise InvalidNodeError(
                        parent, f"child {cid} holds {child.size} bytes, blocksizes say {child_size}"
                    )
                level.append((child, offset))
        depth += 1
    leaves.sort(key=lambda leaf: leaf.offset)
    _check_coverage(root.cid, size, leaves)
    return FilePlan(root.cid, size, leaves, internal)


def _own_bytes(node: Node) -> int:
    if node.kind == Kind.RAW:
        return len(node.block)
    return len(node.unixfs.data or b"") if node.unixfs is not None else 0


def _is_leaf(link: PBLink, size: int) -> bool:
    """Whether a child can be planned as a leaf without fetching it. A raw child always is; a
    dag-pb child when its Tsize says "just framing" (no Tsize: fetched to find out). A wrong
    Tsize cannot corrupt the file: ``download_file`` checks each leaf holds ``size`` bytes."""
    if link.cid.codec == RAW:
        return True
    return link.tsize is not None and 0 <= link.tsize - size <= _LEAF_FRAME_MAX


def _get_all(getter: BlockGetter, cids: list[CID]) -> Iterator[tuple[CID, bytes]]:
    if not cids:
        return iter(())
    get_many = getattr(getter, "get_many", None)
    if get_many is not None:
        return get_many(cids)  # type: ignore[no-any-return]
    return ((cid, getter.get(cid)) for cid in cids)


class _OneBlock:
    """A BlockGetter holding one already-verified block (to decode it with ``load_node``)."""

    def __init__(self, cid: CID, block: bytes) -> None:
        self.cid, self.block = cid, block

    def get(self, cid: CID) -> bytes:
        assert cid == self.cid
        return self.block


def _check_coverage(root: CID, size: int, leaves: list[Leaf]) -> None:
    at = 0
    for leaf in leaves:
        if leaf.offset != at:
            raise InvalidNodeError(root, f"leaves leave a gap or overlap at byte {at}")
        at += leaf.size
    if at != size:
        raise InvalidNodeError(root, f"leaves hold {at} bytes, the file is {size}")


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
    part = dest.with_name(dest.name + ".part")
    journal = dest.with_name(dest.name + ".part.json")
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


def resumed_bytes(plan: FilePlan, dest: Path) -> int:
    """File bytes an earlier, interrupted ``download_file`` of ``plan`` into ``dest`` left
    verified on disk (what a re-run will not fetch again); 0 if there is nothing to resume."""
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    try:
        part_size = part.stat().st_size
    except OSError:
        return 0
    done = _load_journal(dest.with_name(dest.name + ".part.json"), plan, part_size)
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
