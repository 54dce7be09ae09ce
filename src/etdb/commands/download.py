"""`etdb download`: fetch the files of selected datasets from peers, every block verified.

The filters are the API's, under the same names (``--date-from`` is ``date_from``), so the
browse page's "download this selection" command (``etdb.web.selection.download_command``)
runs as printed (the filter options are :mod:`etdb.commands._filters`'). See
docs/downloading.md. The work is in :mod:`etdb.client.download_request`; this module parses,
asks, and draws.

Exit codes (the house convention of ``etdb.commands._common``): 0 when every selected file is
on disk and verified (or for a dry run), 1 when a file failed or the selection could not be
read, 2 for a usage error, 130 after Ctrl-C (re-run the same command to resume).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich import box
from rich.table import Table

from etdb.client.selection import DEFAULT_FILE_TYPES, FILE_TYPES
from etdb.commands._common import (
    JSON_OPTION,
    check_urls,
    console,
    emit,
    err_console,
    fail,
)
from etdb.commands._download_view import DownloadView, print_summary
from etdb.commands._filters import SERVER_OPTION, client_error, selection_options, server_url
from etdb.units import human_bytes

if TYPE_CHECKING:
    from etdb.client.download import Dataset, DownloadSummary
    from etdb.client.download_request import DownloadRequest, PreparedDownload

INTERRUPTED = 130


@selection_options()
def download(
    filters: dict[str, Any],
    filter_file: Path | None = typer.Option(
        None,
        "--filter-file",
        metavar="JSON",
        help="An ETDB-downloads filter (complex-filter query stack), ANDed with the flags.",
    ),
    ids: list[str] | None = typer.Option(
        None, "--id", metavar="TXID", help="Exactly this record (txid or prefix); repeatable."
    ),
    file_type: list[str] | None = typer.Option(
        None,
        "--file-type",
        metavar="TYPES",
        help=f"Files to fetch, comma-separated: {', '.join(FILE_TYPES)}, or all (zarr: the "
        f"OME-Zarr pyramid, a folder). Default: {', '.join(DEFAULT_FILE_TYPES)}.",
    ),
    dest: Path = typer.Option(
        Path("etdb-download"), "--dest", metavar="DIR", help="Destination folder."
    ),
    layout: str | None = typer.Option(
        None,
        "--layout",
        metavar="TEMPLATE",
        help="Path of each file under --dest (default {species}/{sid}/{name}); placeholders: "
        "species, sid, id, publisher, lab, microscopist, date, type, name, path.",
    ),
    server: str | None = SERVER_OPTION,
    peers: list[str] | None = typer.Option(
        None,
        "--peer",
        metavar="URL",
        help="Block source: an etdb node or IPFS trustless gateway; repeatable. Default: --server.",
    ),
    concurrency: int = typer.Option(
        16, "--concurrency", min=1, max=256, help="Blocks in flight across all peers."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="List datasets, files and bytes; fetch nothing."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Download the files of the selected datasets, verified block by block, resumable."""
    from etdb.client.download_request import DownloadRequest

    request = DownloadRequest(
        server=server_url(server), filters=filters, ids=ids or (), filter_file=filter_file,
        file_types=file_type, dest=dest, layout=layout, peers=peers or (),
        concurrency=concurrency,
    )  # fmt: skip
    check_urls("--peer", request.peers)
    prepared = _prepare(request, dry_run)
    if prepared.manifest is None:
        emit({"dry_run": True, **prepared.listing()}, as_json,
             lambda: _print_listing(prepared.datasets, full=True))  # fmt: skip
        return
    manifest = prepared.manifest
    if not prepared.datasets:
        emit({"dry_run": False, **prepared.listing(), "summary": None}, as_json,
             lambda: console.print("Nothing selected."))  # fmt: skip
        return
    if not as_json:
        _print_listing(prepared.datasets, full=False)
    question = (
        f"Download {prepared.files} files of {len(prepared.datasets)} datasets "
        f"({human_bytes(prepared.bytes)}) into {dest}?"
    )
    if not yes and _interactive() and not typer.confirm(question, default=False, err=True):
        fail("nothing was downloaded (not confirmed)")
    summary = _run(prepared)
    emit({"dry_run": False, **prepared.listing(), "summary": summary.to_json()},
         as_json, lambda: print_summary(summary, manifest))  # fmt: skip
    if summary.failed:
        raise typer.Exit(1)


def _prepare(request: DownloadRequest, dry_run: bool) -> PreparedDownload:
    from etdb.client.api import ClientError
    from etdb.client.download_request import prepare
    from etdb.client.layout import LayoutError
    from etdb.client.manifest import ManifestError
    from etdb.client.selection import SelectionError

    try:
        return prepare(request, dry_run=dry_run)
    except ClientError as exc:
        fail(client_error(exc))
    except (SelectionError, LayoutError, ManifestError) as exc:
        fail(str(exc))


def _run(prepared: PreparedDownload) -> DownloadSummary:
    from etdb.client.download_request import run

    view = DownloadView(enabled=err_console.is_terminal)
    try:
        with view.running(prepared.datasets):
            return run(prepared, view)
    except KeyboardInterrupt:
        where = prepared.manifest.path if prepared.manifest else prepared.request.dest
        fail(f"interrupted; progress is in {where}: re-run the same command to resume",
             INTERRUPTED)  # fmt: skip


def _print_listing(datasets: list[Dataset], *, full: bool) -> None:
    if not datasets:
        console.print("No dataset matches (or none has files of the chosen types).")
        return
    table = Table(box=box.SIMPLE_HEAD, title="datasets" if full else None)
    for column in ("sid", "species", "files", "bytes", "id"):
        table.add_column(column, justify="right" if column in ("files", "bytes") else "left")
    for d in datasets[: None if full else 20]:
        table.add_row(d.sid, d.species, str(len(d.files)), human_bytes(d.bytes), d.id[:12])
    console.print(table)
    if not full and len(datasets) > 20:
        console.print(f"... and {len(datasets) - 20} more datasets (all of them with --dry-run)")
    if full:
        files = Table("path", "type", "size", box=box.SIMPLE_HEAD, title="files")
        for d in datasets:
            for f in d.files:
                files.add_row(f.path, f.type, human_bytes(f.size or 0))
        console.print(files)
    nfiles = sum(len(d.files) for d in datasets)
    total = sum(d.bytes for d in datasets)
    console.print(f"total: {len(datasets)} datasets, {nfiles} files, {human_bytes(total)}")


def _interactive() -> bool:
    return sys.stdin is not None and sys.stdin.isatty() and err_console.is_terminal


def register(app: typer.Typer) -> None:
    app.command("download")(download)
