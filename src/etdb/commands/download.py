"""`etdb download`: fetch the files of selected datasets from peers, every block verified.

The filters are the API's, under the same names (``--date-from`` is ``date_from``), so the
browse page's "download this selection" command (``etdb.web.selection.download_command``)
runs as printed. See docs/downloading.md. The work is in :mod:`etdb.client.download`; this
module parses, asks, and draws.

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
from rich.filesize import decimal as human_bytes
from rich.table import Table

from etdb.commands._common import (
    JSON_OPTION,
    check_urls,
    console,
    emit,
    err_console,
    fail,
    settings,
)
from etdb.commands._download_view import DownloadView, print_summary

if TYPE_CHECKING:
    from etdb.client.download import Dataset

INTERRUPTED = 130
_MULTI = "repeat for any-of"


def _filter(flag: str, help: str) -> Any:
    return typer.Option(None, flag, help=help, rich_help_panel="Selection (API filters)")


def download(
    q: str | None = _filter("--q", "Full text (title, species, notes, file names...)."),
    publisher: list[str] | None = _filter("--publisher", f"Publisher address; {_MULTI}."),
    species: list[str] | None = _filter("--species", f"Species name; {_MULTI}."),
    taxid: list[str] | None = _filter("--taxid", f"NCBI taxonomy id; {_MULTI}."),
    strain: list[str] | None = _filter("--strain", f"Strain; {_MULTI}."),
    scope: list[str] | None = _filter("--scope", f"Microscope; {_MULTI}."),
    lab: list[str] | None = _filter("--lab", f"Lab; {_MULTI}."),
    institution: list[str] | None = _filter("--institution", f"Institution; {_MULTI}."),
    microscopist: list[str] | None = _filter("--microscopist", f"Microscopist; {_MULTI}."),
    tilt_axis: str | None = _filter("--tilt-axis", "single (1) or dual (2)."),
    date_from: str | None = _filter("--date-from", "Acquired on or after (ISO date, unix s)."),
    date_to: str | None = _filter("--date-to", "Acquired on or before (a bare date: that day)."),
    published_from: str | None = _filter("--published-from", "Published on or after."),
    published_to: str | None = _filter("--published-to", "Published on or before."),
    tilt_min_from: str | None = _filter("--tilt-min-from", "Minimum tilt >= (degrees)."),
    tilt_min_to: str | None = _filter("--tilt-min-to", "Minimum tilt <= (degrees)."),
    tilt_max_from: str | None = _filter("--tilt-max-from", "Maximum tilt >= (degrees)."),
    tilt_max_to: str | None = _filter("--tilt-max-to", "Maximum tilt <= (degrees)."),
    tilt_step_from: str | None = _filter("--tilt-step-from", "Tilt step >= (degrees)."),
    tilt_step_to: str | None = _filter("--tilt-step-to", "Tilt step <= (degrees)."),
    defocus_from: str | None = _filter("--defocus-from", "Defocus >= (µm)."),
    defocus_to: str | None = _filter("--defocus-to", "Defocus <= (µm)."),
    dosage_from: str | None = _filter("--dosage-from", "Dosage >= (e/Å²)."),
    dosage_to: str | None = _filter("--dosage-to", "Dosage <= (e/Å²)."),
    emdb: str | None = _filter("--emdb", "EMDB id."),
    include_deactivated: bool = typer.Option(
        False,
        "--include-deactivated",
        help="Also records their publisher deactivated.",
        rich_help_panel="Selection (API filters)",
    ),
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
        help="Files to fetch, comma-separated: tiltseries, reconstruction, subvolume, keymov, "
        "keyimg, snapshot, thumbnail, other. Default: all.",
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
    server: str | None = typer.Option(
        None, "--server", metavar="URL", help="etdb API to select from (default: local node)."
    ),
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
    from etdb.client.api import ApiClient, ClientError
    from etdb.client.download import select
    from etdb.client.layout import DEFAULT_LAYOUT, Layout, LayoutError
    from etdb.client.manifest import Manifest, ManifestError
    from etdb.client.selection import SelectionError, api_params, load_filter, parse_file_types

    values = dict(locals())
    params = api_params(values)
    base = (server or f"http://127.0.0.1:{settings().port}").rstrip("/")
    check_urls("--server", [base])
    check_urls("--peer", peers or ())
    try:
        types = parse_file_types(file_type)
        template = Layout(layout or DEFAULT_LAYOUT)
        group = load_filter(filter_file) if filter_file else None
        if ids and (params or group):
            raise SelectionError("--id selects exactly those records: drop the filters")
        with ApiClient(base) as api:
            records = select(api, params, ids=ids or (), filter_group=group)
        datasets = _planned(records, types, template)
        manifest = Manifest.load(dest) if not dry_run else None
    except ClientError as exc:
        flag = f"--{exc.parameter.replace('_', '-')}: " if exc.parameter else ""
        fail(f"{flag}{exc}")
    except (SelectionError, LayoutError, ManifestError) as exc:
        fail(str(exc))
    total = sum(d.bytes for d in datasets)
    nfiles = sum(len(d.files) for d in datasets)
    about = {
        "server": base,
        "peers": peers or [base],
        "dest": str(dest),
        "layout": template.template,
    }
    if dry_run or manifest is None:
        emit({"dry_run": True, **about, **_listing(datasets)}, as_json,
             lambda: _print_listing(datasets, full=True))  # fmt: skip
        return
    if not datasets:
        emit({"dry_run": False, **about, **_listing(datasets), "summary": None}, as_json,
             lambda: console.print("Nothing selected."))  # fmt: skip
        return
    if not as_json:
        _print_listing(datasets, full=False)
    question = (
        f"Download {nfiles} files of {len(datasets)} datasets ({human_bytes(total)}) into {dest}?"
    )
    if not yes and _interactive() and not typer.confirm(question, default=False, err=True):
        fail("nothing was downloaded (not confirmed)")
    manifest.selection = {"server": base, "params": params, "ids": ids or [],
                          "filter_file": str(filter_file) if filter_file else None,
                          "file_types": sorted(types), "layout": template.template}  # fmt: skip
    for dataset in datasets:
        dataset.files = manifest.merge({dataset.id: dataset.record}, dataset.files)
    summary = _run(datasets, manifest, peers or [base], concurrency)
    emit({"dry_run": False, **about, **_listing(datasets), "summary": summary.to_json()},
         as_json, lambda: print_summary(summary, manifest))  # fmt: skip
    if summary.failed:
        raise typer.Exit(1)


def _planned(records: list[dict[str, Any]], types: frozenset[str], layout: Any) -> list[Dataset]:
    from etdb.client.download import plan

    return plan(records, types, layout)


def _run(datasets: list[Dataset], manifest: Any, peers: list[str], concurrency: int) -> Any:
    from etdb.client.download import Downloader
    from etdb.content.fetch import BlockFetcher

    view = DownloadView(enabled=err_console.is_terminal)
    try:
        with BlockFetcher(peers, concurrency=concurrency) as fetcher, view.running(datasets):
            return Downloader(fetcher, manifest, listener=view).run(datasets)
    except KeyboardInterrupt:
        fail(f"interrupted; progress is in {manifest.path}: re-run the same command to resume",
             INTERRUPTED)  # fmt: skip


def _listing(datasets: list[Dataset]) -> dict[str, Any]:
    return {
        "datasets": [_dataset_json(d) for d in datasets],
        "files": sum(len(d.files) for d in datasets),
        "total_bytes": sum(d.bytes for d in datasets),
    }


def _dataset_json(d: Dataset) -> dict[str, Any]:
    files = [{"fname": f.fname, "path": f.path, "type": f.type, "size": f.size, "cid": f.cid,
              "status": f.status} for f in d.files]  # fmt: skip
    return {"id": d.id, "sid": d.sid, "species": d.species, "bytes": d.bytes, "files": files}


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
