"""`etdb mirror`: keep every dataset of a publisher (or any selection) in the local blockstore.

The selection comes from a node's API (``--server``); blocks come from ``--peer`` sources
(default: that node), each verified against its CID before it is stored. After a first pass
the command keeps polling for newly published records (``--once`` stops after one pass). The
local ``etdb serve`` serves the blockstore, so a mirror is also a new source for everyone.
The selection options are the API's filters, as `etdb download` and `etdb search` take them
(:mod:`etdb.commands._filters`), so a browse page's selection mirrors as it downloads. The work
is :func:`etdb.client.mirror_run.run_mirror`; this module parses options and draws.
"""

from __future__ import annotations

import sys
from typing import Any

import typer

from etdb.client.mirror import MirroredDataset
from etdb.client.mirror_run import MirrorListener, MirrorReport, MirrorTotals
from etdb.commands._common import (
    JSON_OPTION,
    check_urls,
    console,
    err_console,
    fail,
    settings,
)
from etdb.commands._filters import client_error, selection_options
from etdb.units import human_bytes

SERVER = typer.Option(
    None,
    "--server",
    metavar="URL",
    help="The node whose API lists the records (default: the first --peer).",
)
PEERS = typer.Option(
    None,
    "--peer",
    metavar="URL",
    help="A block source (etdb node or IPFS gateway); repeat. Default: --server.",
)
ONCE = typer.Option(False, "--once", help="One pass, then exit (default: keep following).")
INTERVAL = typer.Option(60.0, "--interval", min=1.0, help="Seconds between polls when following.")
CONCURRENCY = typer.Option(16, "--concurrency", min=1, max=256, help="Blocks in flight.")


@selection_options()
def mirror_command(
    filters: dict[str, Any],
    server: str | None = SERVER,
    peer: list[str] | None = PEERS,
    once: bool = ONCE,
    interval: float = INTERVAL,
    concurrency: int = CONCURRENCY,
    as_json: bool = JSON_OPTION,
) -> None:
    """Fetch and keep every block of the selected datasets; keep following for new ones."""
    from etdb.client.client import ClientError
    from etdb.client.mirror_run import MirrorRequest, run_mirror

    try:
        listing, peers = MirrorRequest.sources(server, peer)
    except ValueError as exc:
        fail(str(exc))
    check_urls("--server", [listing])
    check_urls("--peer", peers)
    request = MirrorRequest(listing, peers, filters, settings().blockstore_path, once=once,
                            interval=interval, concurrency=concurrency)  # fmt: skip
    try:
        report = run_mirror(request, _View(as_json))
    except ClientError as exc:
        fail(client_error(exc))
    if as_json:
        _write_json(report.as_json())
    else:
        _print_report(report)
    if report.failed or report.interrupted:
        raise typer.Exit(130 if report.interrupted else 1)


class _View(MirrorListener):
    """Text as it goes on stderr (stdout: one line per dataset, the summary); with ``--json``,
    one JSON line per pass that mirrored something while following."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def started(self, hit: Any) -> None:
        if not self.as_json:
            size = human_bytes(hit.total_bytes)
            err_console.print(f"mirroring {hit.id[:12]} {hit.title!r} ({size})",
                              highlight=False, soft_wrap=True)  # fmt: skip

    def finished(self, outcome: MirroredDataset) -> None:
        if self.as_json:
            return
        if outcome.ok and outcome.dag is not None:
            d = outcome.dag
            console.print(
                f"  ok: {d.blocks} blocks, {d.fetched} fetched "
                f"({human_bytes(d.fetched_bytes)}), "
                f"{d.held} already held, {d.repaired} repaired in {outcome.seconds:.1f} s",
                highlight=False,
            )
        else:
            console.print(f"  [red]failed:[/] {outcome.error}", highlight=False, soft_wrap=True)

    def following(self, server: str, interval: float) -> None:
        if not self.as_json:
            err_console.print(f"following {server} every {interval:g} s (Ctrl-C stops)")

    def retrying(self, exc: Exception) -> None:
        err_console.print(f"[yellow]warning:[/] {exc} (retrying)", highlight=False)

    def passed(self, batch: list[MirroredDataset], totals: MirrorTotals) -> None:
        if self.as_json and batch:
            _write_json({"pass": [o.as_json() for o in batch], "totals": totals.as_json()})


def _print_report(report: MirrorReport) -> None:
    t, n = report.totals, len(report.outcomes)
    console.print(
        f"{n - len(report.failed)} of {n} datasets mirrored; {t.fetched_blocks} blocks "
        f"({human_bytes(t.fetched_bytes)}) fetched, {t.held_blocks} already held"
        + (" (interrupted)" if report.interrupted else ""),
        highlight=False,
    )
    for p in report.peers:
        state = f"dropped: {p.reason}" if p.dropped else "ok"
        console.print(
            f"  {p.url}: {p.blocks} blocks, {human_bytes(p.bytes)}, {p.failures} failures, "
            f"{p.lies} lies ({state})",
            highlight=False,
            soft_wrap=True,
        )


def _write_json(data: Any) -> None:
    import json

    sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def register(app: typer.Typer) -> None:
    app.command("mirror")(mirror_command)
