"""`etdb add`, `etdb cat`, `etdb get`: content in and out of the local blockstore, like kubo's."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from etdb.commands._common import JSON_OPTION, emit, err_console, errors_as_exit, fail, settings
from etdb.content.blockstore import FSBlockstore
from etdb.content.cid import CID
from etdb.content.errors import ContentError

# Errors a command turns into "error: <message>", exit 1. OSError covers unreadable inputs
# and unwritable destinations; ValueError covers bad profile names and bad CIDs.
_ERRORS = (ContentError, OSError, ValueError)
# Below this, a progress bar would only flicker.
_PROGRESS_MIN_BYTES = 64 << 20


def register(app: typer.Typer) -> None:
    app.command("add")(add)
    app.command("cat")(cat)
    app.command("get")(get)


def open_store(create: bool = True) -> FSBlockstore:
    return FSBlockstore(settings().blockstore_path, create=create)


@contextmanager
def progress_bar(total: int | None, label: str) -> Iterator[Callable[[int], None] | None]:
    """A rich progress bar on stderr when it is a terminal and the job is big, else None."""
    if not err_console.is_terminal or (total is not None and total < _PROGRESS_MIN_BYTES):
        yield None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


# -- add ----------------------------------------------------------------------------------------


class _TrustedSink:
    """Stores the importer's blocks without re-hashing them: the importer computed each CID
    from these very bytes, and re-hashing would only slow a multi-GB add (reads re-hash)."""

    def __init__(self, store: FSBlockstore) -> None:
        self.store = store

    def put(self, cid: CID, block: bytes) -> None:
        self.store.put(cid, block, verify=False)


def _input_size(path: Path, hidden: bool) -> int:
    if not path.is_dir():
        return path.stat().st_size
    total = 0
    for folder, dirnames, files in os.walk(path):
        if not hidden:
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            files = [f for f in files if not f.startswith(".")]
        for f in files:
            with contextlib.suppress(OSError):  # vanished or unreadable: the import will say
                total += os.lstat(os.path.join(folder, f)).st_size
    return total


def add(
    path: Path = typer.Argument(..., help="File or folder to add (folders recursively)."),
    profile: str | None = typer.Option(
        None,
        "--profile",
        help="UnixFS import profile: kubo-v1, unixfs-v0-2015, unixfs-v1-2025 "
        "(default: the cid_profile setting, kubo-v1).",
    ),
    cid_version: int | None = typer.Option(
        None, "--cid-version", min=0, max=1, help="Override the profile's CID version (as kubo)."
    ),
    only_hash: bool = typer.Option(
        False, "--only-hash", "-n", help="Only compute the CID; store nothing."
    ),
    hidden: bool = typer.Option(
        False, "--hidden", help="Include files whose name starts with '.'."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the root CID."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Add a file or folder to the local blockstore and print its CID (root CID last)."""
    from etdb.content.unixfs import Importer, ImporterError, ImportResult, get_profile

    cfg = settings()
    with errors_as_exit(*_ERRORS, ImporterError):
        chosen = get_profile(profile or cfg.cid_profile, cid_version)
        if not path.exists() and not path.is_symlink():
            fail(f"{path}: no such file or folder")
        store = None if only_hash else FSBlockstore(cfg.blockstore_path)
        # No sink with --only-hash keeps the importer on its fast, hash-only path.
        sink = None if store is None else _TrustedSink(store)
        name = path.resolve().name or str(path)
        added: list[tuple[CID, str]] = []  # kubo's order: children before their folder

        def on_entry(rel: str, entry: ImportResult) -> None:
            added.append((entry.cid, f"{name}/{rel}" if rel else name))

        total = _input_size(path, hidden) if err_console.is_terminal else None
        try:
            with progress_bar(total, f"adding {path.name}") as on_progress:
                importer = Importer(
                    chosen, sink, hidden=hidden, on_progress=on_progress, on_entry=on_entry
                )
                result = importer.add_path(path)
        finally:
            if store is not None:
                store.sync()  # durable before we print the CID someone may publish
    if as_json:
        emit(
            {
                "cid": str(result.cid),
                "size": result.filesize,
                "dag_size": result.size,
                "blocks": result.blocks,
                "profile": chosen.name,
                "stored": not only_hash,
            },
            True,
        )
    elif quiet:
        typer.echo(str(result.cid))
    else:
        for cid, rel in added:
            typer.echo(f"added {cid} {rel}")
        typer.echo(str(result.cid))


# -- cat / get ----------------------------------------------------------------------------------


def cat(
    path: str = typer.Argument(..., metavar="CID[/PATH]", help="The file to print."),
    offset: int = typer.Option(0, "--offset", "-O", min=0, help="Start at this byte."),
    length: int | None = typer.Option(
        None, "--length", "-l", min=0, help="At most this many bytes."
    ),
) -> None:
    """Write a file's bytes to stdout (binary-safe)."""
    from etdb.content.exporter import iter_file, open_node

    out = typer.get_binary_stream("stdout")
    with errors_as_exit(*_ERRORS):
        store = open_store()
        node = open_node(store, path)
        end = None if length is None else offset + length
        try:
            for piece in iter_file(store, node, offset, end):
                out.write(piece)
            out.flush()
        except BrokenPipeError:  # `etdb cat X | head`: the reader left, as for coreutils cat
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            raise typer.Exit(141) from None


def get(
    path: str = typer.Argument(..., metavar="CID[/PATH]", help="The file or folder to write."),
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        help="Where to write it (must not exist; default: the last path segment or the CID).",
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Write a file or a whole folder tree from the blockstore to disk."""
    from etdb.content.export_tree import export
    from etdb.content.exporter import parse_path, stat

    with errors_as_exit(*_ERRORS):
        store = open_store()
        root, segments = parse_path(path)
        dest = output if output is not None else Path(segments[-1] if segments else str(root))
        info = stat(store, path)
        total = info.size if info.size is not None else None
        with progress_bar(total, f"writing {dest.name}") as on_progress:
            report = export(store, path, dest, on_progress=on_progress)
    for rel, target in report.skipped_symlinks:
        err_console.print(
            f"[yellow]warning:[/] skipped symlink {rel} -> {target!r}: it points outside {dest}",
            highlight=False,
            soft_wrap=True,
        )
    summary = {
        "cid": str(info.cid),
        "path": str(dest),
        "files": report.files,
        "directories": report.directories,
        "symlinks": report.symlinks,
        "bytes": report.bytes,
        "skipped_symlinks": [{"path": p, "target": t} for p, t in report.skipped_symlinks],
    }
    emit(
        summary,
        as_json,
        lambda: err_console.print(
            f"wrote {dest}: {report.files} files, {report.directories} folders, "
            f"{report.bytes} bytes",
            highlight=False,
        ),
    )
