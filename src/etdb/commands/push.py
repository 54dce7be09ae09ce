"""`etdb push CID...`: push datasets' DAGs from the local blockstore to a kubo node, pinned.

A thin shell around :func:`etdb.content.kubo_push.push_all`: each CID's blocks are all found
locally before anything is sent, then streamed to kubo's ``dag import`` and checked pinned.
Exit codes: 0 when every CID is pinned on the node, 1 when one is not (each listed with its
reason) or the node cannot be reached, 2 for a usage error (a bad CID or ``--ipfs-api``).
"""

from __future__ import annotations

from collections.abc import Callable

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from etdb.commands._common import JSON_OPTION, console, emit, err_console, fail, settings
from etdb.commands.publish import kubo_api_url
from etdb.content.blockstore import Blockstore
from etdb.content.cid import CID
from etdb.content.errors import ContentError
from etdb.content.kubo_api import DEFAULT_API, KuboApi
from etdb.content.kubo_push import PushResult, declared_size, push_all, root_cid

CIDS_ARG = typer.Argument(..., metavar="CID", help="Root CIDs of the DAGs to push.")
IPFS_API_OPTION = typer.Option(
    None,
    "--ipfs-api",
    metavar="URL",
    help="kubo's RPC API: an http(s) URL or its multiaddr (/ip4/127.0.0.1/tcp/5001). Default: "
    f"the `ipfs_api` setting, else kubo's default {DEFAULT_API}.",
    show_default=False,
)


def push_command(
    cids: list[str] = CIDS_ARG,
    ipfs_api: str | None = IPFS_API_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Push DAGs from the local blockstore to a kubo node (`dag import`, pinned)."""
    from etdb.commands.content import open_store

    try:
        roots = [root_cid(text) for text in cids]
    except ValueError as exc:
        fail(str(exc), 2)
    url = kubo_api_url(ipfs_api, settings()) or DEFAULT_API
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
    )
    try:
        with open_store(create=False) as store, KuboApi(url) as kubo, progress:
            done, failed = push_all(kubo, store, roots, on_start=_bar(progress, store))
            shown = kubo.shown
    except (ContentError, OSError) as exc:
        fail(str(exc) or type(exc).__name__)
    emit(
        {"ipfs_api": shown, "pushed": [r.to_json() for r in done],
         "failed": [{"cid": c, "reason": why} for c, why in failed]},
        as_json,
        lambda: _print(done, failed),
    )  # fmt: skip
    if failed:
        raise typer.Exit(1)


def _bar(progress: Progress, store: Blockstore) -> Callable[[CID], Callable[[int], None]]:
    """Each push's bar: its DAG's declared size as the total when the root says it."""

    def start(root: CID) -> Callable[[int], None]:
        try:
            total = declared_size(store, root)
        except ContentError:
            total = None  # the push itself says what is wrong with the root
        task = progress.add_task(f"push {str(root)[:16]}…", total=total)
        return lambda n: progress.advance(task, n)

    return start


def _print(done: list[PushResult], failed: list[tuple[str, str]]) -> None:
    for r in done:
        console.print(
            f"pushed {r.root} to {r.node} ({r.blocks} blocks, {r.bytes} bytes, pinned)",
            highlight=False,
            soft_wrap=True,
        )
    for cid, why in failed:
        err_console.print(f"[bold red]error:[/] {escape(f'{cid}: {why}')}", highlight=False,
                          soft_wrap=True)  # fmt: skip


def register(app: typer.Typer) -> None:
    app.command("push")(push_command)
