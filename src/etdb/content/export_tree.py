"""Writing a UnixFS file or tree to disk (``etdb get``), without ever escaping the destination.

Safety rules, because a DAG may come from anyone:
  * ``dest`` must not exist (or be an empty directory when exporting a directory), so nothing
    of the user's is overwritten and no pre-existing symlink inside it can redirect a write.
  * Every entry name is checked: not empty, not ``.``/``..``, no ``/`` (or the OS separator),
    no NUL; a directory listing the same name twice is refused. A bad name aborts the export
    with ``UnsafeExportError`` naming the directory's CID.
  * Files and directories are all written first, while the tree holds no symlink, so no write
    can follow one. Each file is written to a temp file beside it and renamed into place.
  * Symlinks are created last, and only if relative and pointing inside ``dest``; after all are
    made, each is re-checked with ``realpath`` (links through links can escape where each link
    alone looks harmless) until none escapes. Refused links are not created and are listed in
    ``ExportReport.skipped_symlinks`` (the CLI warns about them): the export still succeeds,
    as ``tar`` does with unsafe links.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from etdb.content.blockstore import BlockGetter
from etdb.content.cid import CID
from etdb.content.dagpb import PBLink
from etdb.content.errors import ContentError, UnsafeExportError
from etdb.content.exporter import (
    Kind,
    Node,
    iter_file,
    iter_links,
    load_node,
    read_symlink,
    resolve_node,
)
from etdb.content.fsutil import create_temp

_TEMP_PREFIX = ".etdb-get-"


@dataclass
class ExportReport:
    files: int = 0
    directories: int = 0
    symlinks: int = 0
    bytes: int = 0
    # (path relative to dest, link target) of symlinks refused as unsafe.
    skipped_symlinks: list[tuple[str, str]] = field(default_factory=list)


def check_name(name: str, parent: CID) -> None:
    """Refuse a directory entry name that could address anything but a child of its folder."""
    bad = (
        not name
        or name in (".", "..")
        or "/" in name
        or "\0" in name
        or (os.sep != "/" and os.sep in name)
        or (os.altsep is not None and os.altsep in name)
    )
    if bad:
        raise UnsafeExportError(f"directory {parent} has an unsafe entry name {name!r}")


def safe_links(store: BlockGetter, directory: Node) -> Iterator[tuple[str, PBLink]]:
    """(name, link) of the folder's entries, each name checked (:func:`check_name`); a name
    listed twice is refused (which of the two would be written is anyone's guess)."""
    seen: set[str] = set()
    for name, link in iter_links(store, directory):
        check_name(name, directory.cid)
        if name in seen:
            raise UnsafeExportError(f"directory {directory.cid} lists {name!r} twice")
        seen.add(name)
        yield name, link


def export(
    store: BlockGetter,
    path: str | CID,
    dest: str | os.PathLike[str],
    *,
    on_progress: Callable[[int], None] | None = None,
) -> ExportReport:
    """Write the file, symlink or directory tree at ``CID[/path]`` to ``dest``.

    ``on_progress(n)`` is called with the number of file bytes just written.
    """
    root = resolve_node(store, path)
    dest = Path(dest)
    _check_dest(dest, root)
    report = ExportReport()
    if root.kind == Kind.DIRECTORY:
        dest.mkdir(parents=True, exist_ok=True)
        symlinks: list[tuple[Path, str]] = []
        _write_tree(store, root, dest, report, symlinks, on_progress)
        _make_symlinks(dest, symlinks, report)
    elif root.kind == Kind.SYMLINK:
        dest.parent.mkdir(parents=True, exist_ok=True)
        # A lone link is checked against the folder it is written into.
        _make_symlinks(dest.parent, [(dest, read_symlink(store, root))], report)
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        _write_file(store, root, dest, report, on_progress)
    return report


def _check_dest(dest: Path, root: Node) -> None:
    if dest.is_symlink():
        raise UnsafeExportError(f"{dest} already exists (as a symlink)")
    if not dest.exists():
        return
    if root.kind == Kind.DIRECTORY and dest.is_dir() and not any(dest.iterdir()):
        return
    raise UnsafeExportError(f"{dest} already exists; choose a new destination")


def _write_tree(
    store: BlockGetter,
    root: Node,
    dest: Path,
    report: ExportReport,
    symlinks: list[tuple[Path, str]],
    on_progress: Callable[[int], None] | None,
) -> None:
    # Iterative DFS: a hostile DAG can nest deeper than Python's recursion limit.
    stack: list[tuple[Node, Path]] = [(root, dest)]
    report.directories += 1
    while stack:
        directory, folder = stack.pop()
        for name, link in safe_links(store, directory):
            child = load_node(store, link.cid)
            target = folder / name
            if child.kind == Kind.DIRECTORY:
                target.mkdir()
                report.directories += 1
                stack.append((child, target))
            elif child.kind == Kind.SYMLINK:
                symlinks.append((target, read_symlink(store, child)))
            else:
                _write_file(store, child, target, report, on_progress)


def _write_file(
    store: BlockGetter,
    node: Node,
    target: Path,
    report: ExportReport,
    on_progress: Callable[[int], None] | None,
) -> None:
    fd, temp = create_temp(target.parent, _TEMP_PREFIX)
    try:
        with os.fdopen(fd, "wb") as out:
            for piece in iter_file(store, node):
                out.write(piece)
                report.bytes += len(piece)
                if on_progress is not None:
                    on_progress(len(piece))
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    report.files += 1


def _lexically_inside(link: Path, target: str, boundary: Path) -> bool:
    if not target or "\0" in target or os.path.isabs(target):
        return False
    resolved = os.path.normpath(os.path.join(os.path.dirname(link), target))
    rel = os.path.relpath(resolved, boundary)
    return rel != ".." and not rel.startswith(".." + os.sep)


def _inside(path: str, boundary: str) -> bool:
    return path == boundary or path.startswith(boundary.rstrip(os.sep) + os.sep)


def _make_symlinks(boundary: Path, links: list[tuple[Path, str]], report: ExportReport) -> None:
    made: list[tuple[Path, str]] = []
    for link, target in links:
        if _lexically_inside(link, target, boundary):
            try:
                os.symlink(target, link)
            except OSError as exc:  # e.g. Windows without the privilege
                raise ContentError(f"cannot create symlink {link}: {exc}") from exc
            made.append((link, target))
        else:
            report.skipped_symlinks.append((os.path.relpath(link, boundary), target))
    real_boundary = os.path.realpath(boundary)
    changed = True
    while changed:  # removing one link can change where others resolve: repeat until stable
        changed = False
        for item in list(made):
            link, target = item
            if not _inside(os.path.realpath(link), real_boundary):
                link.unlink()
                made.remove(item)
                report.skipped_symlinks.append((os.path.relpath(link, boundary), target))
                changed = True
    report.symlinks += len(made)
