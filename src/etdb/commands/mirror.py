"""`etdb mirror`: keep every dataset of a publisher (or any selection) in the local blockstore.

The selection comes from a node's API (``--server``); blocks come from ``--peer`` sources
(default: that node), each verified against its CID before it is stored. After a first pass
the command keeps polling for newly published records (``--once`` stops after one pass). The
local ``etdb serve`` serves the blockstore, so a mirror is also a new source for everyone.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import typer

from etdb.commands._common import (
    JSON_OPTION,
    check_urls,
    console,
    err_console,
    fail,
    settings,
)

PUBLISHER = typer.Option(None, "--publisher", metavar="ADDR", help="Publisher address; repeat.")
SPECIES = typer.Option(None, "--species", metavar="NAME", help="Species name; repeat for any of.")
TAXID = typer.Option(None, "--taxid", metavar="ID", help="NCBI taxonomy id; repeat for any of.")
LAB = typer.Option(None, "--lab", metavar="NAME", help="Lab; repeat for any of.")
INSTITUTION = typer.Option(
    None, "--institution", metavar="NAME", help="Institution; repeat for any of."
)
MICROSCOPIST = typer.Option(
    None, "--microscopist", metavar="NAME", help="Microscopist; repeat for any of."
)
QUERY = typer.Option(None, "--query", "-q", metavar="TEXT", help="Full-text query.")
DATE_FROM = typer.Option(
    None, "--date-from", metavar="DATE", help="Acquired on or after (ISO date)."
)
DATE_TO = typer.Option(None, "--date-to", metavar="DATE", help="Acquired on or before (ISO date).")
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


def mirror_command(
    publisher: list[str] | None = PUBLISHER,
    species: list[str] | None = SPECIES,
    taxid: list[int] | None = TAXID,
    lab: list[str] | None = LAB,
    institution: list[str] | None = INSTITUTION,
    microscopist: list[str] | None = MICROSCOPIST,
    query: str | None = QUERY,
    date_from: str | None = DATE_FROM,
    date_to: str | None = DATE_TO,
    server: str | None = SERVER,
    peer: list[str] | None = PEERS,
    once: bool = ONCE,
    interval: float = INTERVAL,
    concurrency: int = CONCURRENCY,
    as_json: bool = JSON_OPTION,
) -> None:
    """Fetch and keep every block of the selected datasets; keep following for new ones."""
    from etdb.client.client import Client, ClientError
    from etdb.client.mirror import Mirror, MirroredDataset
    from etdb.content.blockstore import FSBlockstore
    from etdb.content.fetch import BlockFetcher

    if not server and not peer:
        fail("give --server URL (the node listing the records) or at least one --peer URL")
    server = server or (peer or [""])[0]
    peers = list(peer or [server])
    check_urls("--server", [server])
    check_urls("--peer", peers)
    filters: dict[str, Any] = {
        "publisher": publisher,
        "species": species,
        "taxid": taxid,
        "lab": lab,
        "institution": institution,
        "microscopist": microscopist,
        "date_from": date_from,
        "date_to": date_to,
    }
    if query:
        filters["q"] = query
    s = settings()
    store = FSBlockstore(s.blockstore_path)
    totals = {"fetched_blocks": 0, "fetched_bytes": 0, "held_blocks": 0}

    def on_block(_cid: object, size: int, fetched: bool) -> None:
        key = "fetched_blocks" if fetched else "held_blocks"
        totals[key] += 1
        if fetched:
            totals["fetched_bytes"] += size

    def on_start(hit: Any) -> None:
        if not as_json:
            err_console.print(
                f"mirroring {hit.id[:12]} {hit.title!r} ({_size(hit.total_bytes)})",
                highlight=False,
                soft_wrap=True,
            )

    def on_done(outcome: MirroredDataset) -> None:
        if as_json:
            return
        if outcome.ok and outcome.dag is not None:
            d = outcome.dag
            console.print(
                f"  ok: {d.blocks} blocks, {d.fetched} fetched ({_size(d.fetched_bytes)}), "
                f"{d.held} already held, {d.repaired} repaired in {outcome.seconds:.1f} s",
                highlight=False,
            )
        else:
            console.print(f"  [red]failed:[/] {outcome.error}", highlight=False, soft_wrap=True)

    outcomes: list[MirroredDataset] = []
    started = time.monotonic()
    fetcher = BlockFetcher(peers, local=store, keep=store, concurrency=concurrency)
    client = Client(server, peers=peers, cache=store)
    mirror = Mirror(client, store, fetcher, filters, on_block, on_start, on_done)
    interrupted = False
    try:
        if once:
            outcomes = mirror.pass_once()
        else:
            if not as_json:
                err_console.print(f"following {server} every {interval:g} s (Ctrl-C stops)")

            def on_error(exc: Exception) -> None:
                err_console.print(f"[yellow]warning:[/] {exc} (retrying)", highlight=False)

            for batch in mirror.follow(interval, on_error=on_error):
                outcomes.extend(batch)
                if as_json and batch:
                    _write_json({"pass": [o.as_json() for o in batch], "totals": totals})
    except KeyboardInterrupt:
        interrupted = True
    except ClientError as exc:
        flag = f" (option --{exc.parameter.replace('_', '-')})" if exc.parameter else ""
        fail(f"{exc}{flag}")
    finally:
        fetcher.close()
        client.close()
        store.close()  # blocks fetched before an interruption are kept (they are verified)
    failed = [o for o in outcomes if not o.ok]
    summary = {
        "datasets": len(outcomes),
        "failed": len(failed),
        **totals,
        "seconds": round(time.monotonic() - started, 3),
        "interrupted": interrupted,
        "peers": [_peer_json(p) for p in fetcher.peers()],
        "items": [o.as_json() for o in outcomes],
    }
    if as_json:
        _write_json(summary)
    else:
        console.print(
            f"{len(outcomes) - len(failed)} of {len(outcomes)} datasets mirrored; "
            f"{totals['fetched_blocks']} blocks ({_size(totals['fetched_bytes'])}) fetched, "
            f"{totals['held_blocks']} already held" + (" (interrupted)" if interrupted else ""),
            highlight=False,
        )
        for p in fetcher.peers():
            state = f"dropped: {p.reason}" if p.dropped else "ok"
            console.print(
                f"  {p.url}: {p.blocks} blocks, {_size(p.bytes)}, {p.failures} failures, "
                f"{p.lies} lies ({state})",
                highlight=False,
                soft_wrap=True,
            )
    if failed or interrupted:
        raise typer.Exit(130 if interrupted else 1)


def _peer_json(p: Any) -> dict[str, Any]:
    return {
        "url": p.url,
        "blocks": p.blocks,
        "bytes": p.bytes,
        "failures": p.failures,
        "lies": p.lies,
        "dropped": p.dropped,
        "reason": p.reason,
    }


def _write_json(data: Any) -> None:
    import json

    sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def register(app: typer.Typer) -> None:
    app.command("mirror")(mirror_command)
