"""A record's folder entry on disk (an OME-Zarr pyramid): every file of it, verified, resumable.

A folder entry is fetched as the files :func:`etdb.content.treeplan.plan_tree` lists, into a
folder at the entry's layout path. Single-block files (a pyramid's chunks, mostly) come
through one ``get_many`` (concurrent, each block verified against its CID), a file's block
written once however many paths hold it (zarr's all-zero chunks share one CID), each written
to a temp file beside it and renamed; larger files go through ``filefetch`` as any record file
does, resuming from their ``.part``. At the end one ``syncfs`` makes the folder durable before
the manifest says done.

A re-run trusts nothing on disk it cannot re-hash: a file already there counts only if its
bytes are the plan's; anything else there is the user's and is never overwritten (the entry
fails naming it), as for a single file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from etdb.content.blockstore import MAX_BLOCK_SIZE
from etdb.content.cid import CID
from etdb.content.errors import ContentError
from etdb.content.fetch import BlockFetcher
from etdb.content.filefetch import (
    JOURNAL_SUFFIX,
    PART_SUFFIX,
    FilePlan,
    download_file,
    matches_plan,
    plan_file,
    resumed_bytes,
)
from etdb.content.fsutil import syncfs, write_temp
from etdb.content.treeplan import TreeFile, TreePlan

__all__ = ["FolderResult", "fetch_folder", "folder_complete"]

#: Names of the temp files a single-block file is written to before its rename.
TEMP_PREFIX = ".etdb-"


@dataclass(frozen=True, slots=True)
class FolderResult:
    fetched: int  # bytes fetched this run
    size: int  # the files' bytes


def fetch_folder(
    fetcher: BlockFetcher,
    tree: TreePlan,
    target: Path,
    *,
    on_start: Callable[[int, int], None] | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> FolderResult:
    """Write ``tree``'s files under ``target`` (see the module docstring). ``on_start(size,
    already)`` is called once the files on disk are checked; ``on_bytes(n)`` per write."""
    _folders(target, tree)
    raw: dict[CID, list[Path]] = {}
    planned: list[tuple[FilePlan, Path]] = []
    size = already = 0
    for file in tree.files:
        path = target / file.path
        if file.raw:
            have = _raw_on_disk(file, path)
            if have is None:
                raw.setdefault(file.cid, []).append(path)
                size += file.size
            else:
                size, already = size + have, already + have
            continue
        plan = plan_file(fetcher, file.cid)
        size += plan.size
        if not path.exists():
            planned.append((plan, path))
            already += resumed_bytes(plan, path)
        elif matches_plan(path, plan):
            already += plan.size
        else:
            raise _not_ours(path, plan.cid)
    if on_start:
        on_start(size, already)
    fetched = _fetch_raw(fetcher, raw, on_bytes)
    for plan, path in planned:
        fetched += download_file(fetcher, plan, path, on_bytes=on_bytes)
    if not syncfs(target):
        os.sync()
    written = sum(os.lstat(target / f.path).st_size for f in tree.files)
    return FolderResult(fetched, written)


def folder_complete(target: Path, size: int, files: int) -> bool:
    """Whether ``target`` still holds ``files`` files of ``size`` bytes in all (a file added
    or removed since makes the next run check each one again)."""
    try:
        return target.is_dir() and not target.is_symlink() and _count(target) == (files, size)
    except OSError:
        return False


def _count(target: Path) -> tuple[int, int]:
    files = total = 0
    for folder, _, names in os.walk(target):
        for name in names:
            if name.startswith(TEMP_PREFIX) or name.endswith((PART_SUFFIX, JOURNAL_SUFFIX)):
                continue
            st = os.lstat(os.path.join(folder, name))
            files, total = files + 1, total + st.st_size
    return files, total


def _folders(target: Path, tree: TreePlan) -> None:
    for folder in (target, *(target / f for f in tree.folders)):
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            raise ContentError(f"{folder} exists and is not a folder; move it away and re-run")
        folder.mkdir(parents=True, exist_ok=True)


def _raw_on_disk(file: TreeFile, path: Path) -> int | None:
    """The size of ``path`` when it holds exactly the block ``file.cid``; None when absent."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_BLOCK_SIZE + 1)
    except FileNotFoundError:
        return None
    if path.is_symlink() or not file.cid.verify(data):
        raise _not_ours(path, file.cid)
    return len(data)


def _fetch_raw(
    fetcher: BlockFetcher, raw: dict[CID, list[Path]], on_bytes: Callable[[int], None] | None
) -> int:
    fetched = 0
    for cid, block in fetcher.get_many(list(raw)):
        fetched += len(block)
        for path in raw[cid]:
            temp = write_temp(path.parent, TEMP_PREFIX, block)
            try:
                os.replace(temp, path)
            except BaseException:
                Path(temp).unlink(missing_ok=True)
                raise
            if on_bytes:
                on_bytes(len(block))
    return fetched


def _not_ours(path: Path, cid: CID) -> ContentError:
    return ContentError(f"{path} exists and is not {cid}; move it away and re-run")
