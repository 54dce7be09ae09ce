"""Block storage keyed by multihash: a kubo-compatible flat-file store and an in-memory one.

``FSBlockstore`` lays blocks out exactly as kubo's flatfs (``next-to-last/2`` sharding)::

    <root>/SHARDING                       "/repo/flatfs/shard/v1/next-to-last/2"
    <root>/<shard>/<KEY>.data             KEY = BASE32-UPPER(multihash), no padding
                                          shard = KEY[-3:-1] (the next-to-last two characters)
    <root>/.temp/put-*                    blocks written but not yet synced

so a kubo repo's ``blocks`` folder can be opened directly, and CIDv0 and CIDv1 dag-pb CIDs of
the same node share one file (kubo also keys by multihash since 0.12).

Durability, made explicit and cheap:
  * ``put`` writes the block to a temp file in ``.temp`` without fsync and returns; the block is
    immediately readable through this object (``get``/``has``), not yet by other processes.
  * ``sync()`` (also called by ``close()``, the context-manager exit and automatically every
    ``flush_blocks`` blocks / ``flush_bytes`` bytes) fsyncs the pending temp files, renames them
    into place, then fsyncs the shard directories once each.
  * Guarantee: after ``sync()`` returns, every block put before it survives a crash. A crash
    before leaves final names holding only complete, fsynced blocks (a block is never renamed
    into place before its bytes are on disk) plus orphan temp files, which ``open`` deletes once
    they are older than ``stale_temp_age`` (age, not "all", because another process may be
    writing to the same store right now).

Reads never trust the disk: every block is re-hashed, and a mismatch raises
``CorruptBlockError`` naming the CID and the file. Identity CIDs are never stored; ``get``
returns their digest.

Iteration yields CIDv1 *raw* CIDs, since only the multihash is stored (kubo's ``AllKeysChan``
does the same); compare stored content by ``cid.multihash``.
"""

from __future__ import annotations

import base64
import contextlib
import os
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from etdb.content.cid import CID, RAW, CIDError, decode_varint
from etdb.content.errors import (
    BlockMismatchError,
    BlockNotFoundError,
    ContentError,
    CorruptBlockError,
)
from etdb.content.fsutil import fsync_dir, syncfs, write_temp

# Larger than any block a UnixFS importer makes (kubo refuses > 2 MiB over bitswap); a file
# larger than this in the store cannot be a block, and reading it would only waste memory.
MAX_BLOCK_SIZE = 8 << 20

SHARDING = "/repo/flatfs/shard/v1/next-to-last/2"
DATA_SUFFIX = ".data"
TEMP_DIR = ".temp"
_README = (
    "This is a repository of IPLD blocks in kubo's flatfs layout. Each block is in a file\n"
    "<shard>/<KEY>.data where KEY is the unpadded upper-case base32 of the block's multihash\n"
    "and <shard> is the next-to-last two characters of KEY.\n"
)
# Above this many files one global sync() is cheaper than an fsync per file (Linux only: there
# sync() waits for the writes to finish; elsewhere it may return early).
_FSYNC_EACH_MAX = 64


class BlockGetter(Protocol):
    """All a reader needs: the exporter and the CAR writer take any object with ``get``."""

    def get(self, cid: CID) -> bytes: ...


class Blockstore(BlockGetter, Protocol):
    def has(self, cid: CID) -> bool: ...

    def put(self, cid: CID, block: bytes, *, verify: bool = True) -> None: ...

    def delete(self, cid: CID) -> None: ...

    def cids(self) -> Iterator[CID]: ...

    def sync(self) -> None: ...


@dataclass
class VerifyReport:
    """What ``verify()`` found: ``corrupt`` blocks and files whose name is not a block key."""

    checked: int = 0
    corrupt: list[tuple[CID, Path | None]] = field(default_factory=list)
    unrecognised: list[Path] = field(default_factory=list)
    removed: int = 0

    @property
    def ok(self) -> bool:
        return not self.corrupt


# -- keys ---------------------------------------------------------------------------------------


def multihash_key(multihash: bytes) -> str:
    """The flatfs key of a block: unpadded upper-case base32 of its multihash."""
    return base64.b32encode(multihash).decode("ascii").rstrip("=")


def shard_of(key: str) -> str:
    """flatfs ``next-to-last/2``: the two characters before the last one (padded with ``_``)."""
    padded = "___" + key
    return padded[-3:-1]


def cid_from_key(key: str) -> CID:
    """The CIDv1 raw CID for a flatfs key (raises CIDError if the key is not a multihash)."""
    try:
        mh = base64.b32decode(key + "=" * (-len(key) % 8))
    except (ValueError, TypeError):
        raise CIDError(f"not a base32 key: {key!r}") from None
    code, pos = decode_varint(mh)
    length, pos = decode_varint(mh, pos)
    if len(mh) - pos != length:
        raise CIDError(f"bad multihash length in key {key!r}")
    return CID.v1(RAW, mh[pos:], code)


def check_put(cid: CID, block: bytes, verify: bool) -> None:
    if len(block) > MAX_BLOCK_SIZE:
        raise ContentError(f"block {cid} is {len(block)} bytes, over the {MAX_BLOCK_SIZE} limit")
    if verify and not cid.verify(block):
        raise BlockMismatchError(cid)


# -- filesystem store ---------------------------------------------------------------------------


class FSBlockstore:
    """kubo-compatible flat-file blockstore. Thread-safe; see the module docstring for the
    durability contract. Use as a context manager (or call ``sync``/``close``) after writing."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        create: bool = True,
        stale_temp_age: float = 3600.0,
        flush_blocks: int = 1024,
        flush_bytes: int = 256 << 20,
    ) -> None:
        self.root = Path(path)
        self._temp = self.root / TEMP_DIR
        self._flush_blocks = flush_blocks
        self._flush_bytes = flush_bytes
        self._lock = threading.Lock()
        # key -> (temp file, size) for blocks put but not yet renamed into place.
        self._pending: dict[str, tuple[Path, int]] = {}
        self._pending_bytes = 0
        self._open(create)
        self._clean_temp(stale_temp_age)

    def _open(self, create: bool) -> None:
        sharding = self.root / "SHARDING"
        if not self.root.is_dir():
            if not create:
                raise ContentError(f"no blockstore at {self.root}")
            self.root.mkdir(parents=True, exist_ok=True)
        if sharding.is_file():
            found = sharding.read_text(encoding="utf-8", errors="replace").strip()
            if found != SHARDING:
                raise ContentError(
                    f"{self.root}: unsupported flatfs sharding {found!r} (need {SHARDING!r})"
                )
        elif create:
            sharding.write_text(SHARDING + "\n", encoding="utf-8")
            (self.root / "_README").write_text(_README, encoding="utf-8")

    def _clean_temp(self, max_age: float) -> None:
        cutoff = time.time() - max_age
        if not self._temp.is_dir():  # made on the first put: a read-only repo stays untouched
            return
        with os.scandir(self._temp) as entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    if entry.stat(follow_symlinks=False).st_mtime <= cutoff:
                        os.unlink(entry.path)

    # -- paths ----------------------------------------------------------------------------------

    def path_of(self, cid: CID) -> Path:
        """Where the block for ``cid`` lives (whether or not it is there)."""
        key = multihash_key(cid.multihash)
        return self.root / shard_of(key) / (key + DATA_SUFFIX)

    # -- reading --------------------------------------------------------------------------------

    def get(self, cid: CID) -> bytes:
        if cid.is_identity:
            return cid.digest
        key = multihash_key(cid.multihash)
        pending = self._pending.get(key)
        data = None
        if pending is not None:
            path = pending[0]
            data = self._read(cid, path, missing_ok=True)  # None if synced meanwhile
        if data is None:
            path = self.root / shard_of(key) / (key + DATA_SUFFIX)
            data = self._read(cid, path, missing_ok=False)
            assert data is not None  # missing_ok=False raises instead
        if not cid.verify(data):
            raise CorruptBlockError(cid, path)
        return data

    @staticmethod
    def _read(cid: CID, path: Path, *, missing_ok: bool) -> bytes | None:
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_BLOCK_SIZE + 1)
        except FileNotFoundError:
            if missing_ok:
                return None
            raise BlockNotFoundError(cid) from None
        if len(data) > MAX_BLOCK_SIZE:
            raise CorruptBlockError(cid, path)
        return data

    def has(self, cid: CID) -> bool:
        """True if a file for the block exists (not verified: ``get`` checks the bytes)."""
        if cid.is_identity:
            return True
        key = multihash_key(cid.multihash)
        return key in self._pending or self.path_of(cid).is_file()

    __contains__ = has

    # -- writing --------------------------------------------------------------------------------

    def put(self, cid: CID, block: bytes, *, verify: bool = True) -> None:
        """Store ``block`` under ``cid``; refuse bytes that do not hash to it (``verify=False``
        skips the re-hash for callers that just computed the CID from these very bytes)."""
        if cid.is_identity:
            if cid.digest != bytes(block):
                raise BlockMismatchError(cid)
            return
        check_put(cid, block, verify)
        key = multihash_key(cid.multihash)
        if key in self._pending:
            return
        try:
            # A same-size file is taken as the block (kubo only checks existence); a shorter
            # one left by a crash on a non-ordering filesystem is rewritten.
            if self.path_of(cid).stat().st_size == len(block):
                return
        except FileNotFoundError:
            pass
        try:
            name = write_temp(self._temp, "put-", block)
        except FileNotFoundError:
            self._temp.mkdir(exist_ok=True)
            name = write_temp(self._temp, "put-", block)
        with self._lock:
            if key in self._pending:  # another thread won the race: keep one copy
                os.unlink(name)
                return
            self._pending[key] = (Path(name), len(block))
            self._pending_bytes += len(block)
            full = (
                len(self._pending) >= self._flush_blocks or self._pending_bytes >= self._flush_bytes
            )
        if full:
            self.sync()

    def put_many(self, items: Iterable[tuple[CID, bytes]], *, verify: bool = True) -> int:
        """Put every (cid, block); return how many were given. Call ``sync`` after."""
        n = 0
        for cid, block in items:
            self.put(cid, block, verify=verify)
            n += 1
        return n

    def sync(self) -> None:
        """Make every block put so far durable (see the module docstring)."""
        with self._lock:
            batch = self._pending
            self._pending = {}
            self._pending_bytes = 0
            if not batch:
                return
            try:
                self._sync_files([p for p, _ in batch.values()])
                dirs: set[Path] = set()
                new_dirs = False
                for key, (temp, _size) in batch.items():
                    shard = self.root / shard_of(key)
                    if not shard.is_dir():
                        shard.mkdir(exist_ok=True)
                        new_dirs = True
                    os.replace(temp, shard / (key + DATA_SUFFIX))
                    dirs.add(shard)
                if new_dirs:
                    dirs.add(self.root)
                for d in dirs:
                    fsync_dir(d)
            except BaseException:
                # Keep whatever was not renamed pending, so a retry (or close) finishes it.
                for key, value in batch.items():
                    if value[0].exists():
                        self._pending[key] = value
                raise

    def _sync_files(self, paths: list[Path]) -> None:
        if len(paths) > _FSYNC_EACH_MAX and syncfs(self._temp):
            return
        for p in paths:
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def delete(self, cid: CID) -> None:
        if cid.is_identity:
            return
        key = multihash_key(cid.multihash)
        found = False
        with self._lock:
            pending = self._pending.pop(key, None)
            if pending is not None:
                self._pending_bytes -= pending[1]
                pending[0].unlink(missing_ok=True)
                found = True
        try:
            self.path_of(cid).unlink()
            found = True
        except FileNotFoundError:
            pass
        if not found:
            raise BlockNotFoundError(cid)

    def close(self) -> None:
        self.sync()

    def __enter__(self) -> FSBlockstore:
        return self

    def __exit__(self, *exc: object) -> None:
        # Flush even after an error: the pending blocks are verified, complete blocks, and
        # keeping them saves redoing the work; nothing references them until a caller does.
        self.sync()

    # -- enumeration ----------------------------------------------------------------------------

    def _files(self) -> Iterator[tuple[str, Path]]:
        """(key, path) of every stored block file, synced ones first, then pending ones."""
        with os.scandir(self.root) as shards:
            shard_dirs = [e.path for e in shards if len(e.name) == 2 and e.is_dir()]
        for shard in sorted(shard_dirs):
            with os.scandir(shard) as entries:
                for e in entries:
                    if e.name.endswith(DATA_SUFFIX):
                        yield e.name[: -len(DATA_SUFFIX)], Path(e.path)
        for key, (temp, _size) in list(self._pending.items()):
            yield key, temp

    def cids(self) -> Iterator[CID]:
        """Every stored block, as a CIDv1 raw CID (see the module docstring)."""
        for key, _path in self._files():
            with contextlib.suppress(CIDError):
                yield cid_from_key(key)

    __iter__ = cids

    def size_bytes(self) -> int:
        total = 0
        for _key, path in self._files():
            with contextlib.suppress(FileNotFoundError):
                total += path.stat().st_size
        return total

    def verify(self, *, remove_corrupt: bool = False) -> VerifyReport:
        """Re-hash every block; report (and optionally delete) the ones that fail."""
        report = VerifyReport()
        for key, path in self._files():
            try:
                cid = cid_from_key(key)
            except CIDError:
                report.unrecognised.append(path)
                continue
            report.checked += 1
            try:
                data = self._read(cid, path, missing_ok=True)
            except CorruptBlockError:
                data = b""  # oversized: certainly not the block
                ok = False
            else:
                if data is None:  # deleted or synced while we looked
                    report.checked -= 1
                    continue
                ok = cid.verify(data)
            if not ok:
                report.corrupt.append((cid, path))
                if remove_corrupt:
                    path.unlink(missing_ok=True)
                    report.removed += 1
        return report
