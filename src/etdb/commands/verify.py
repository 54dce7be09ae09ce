"""`etdb verify`: re-hash every block of the local blockstore; repair corrupt ones from peers.

Disks rot and copies get truncated; a node that serves a corrupt block would be dropped by
every verifying client as a liar. ``--repair`` fetches each corrupt block from ``--peer``
sources (verified against its CID) and swaps it in atomically. Exit status 1 while any
corruption remains.
"""

from __future__ import annotations

import typer

from etdb.commands._common import (
    JSON_OPTION,
    check_urls,
    console,
    emit,
    errors_as_exit,
    fail,
    settings,
)

REPAIR = typer.Option(False, "--repair", help="Re-fetch corrupt blocks from --peer sources.")
PEERS = typer.Option(
    None, "--peer", metavar="URL", help="A block source (etdb node or IPFS gateway); repeat."
)


def verify_command(
    repair: bool = REPAIR,
    peer: list[str] | None = PEERS,
    as_json: bool = JSON_OPTION,
) -> None:
    """Re-hash every block in the local blockstore; report (and with --repair fix) corrupt ones."""
    from etdb.client.mirror import Repair, repair_blocks
    from etdb.content.blockstore import FSBlockstore
    from etdb.content.errors import ContentError

    if repair and not peer:
        fail("--repair needs at least one --peer URL to fetch good copies from")
    check_urls("--peer", peer or ())
    s = settings()
    with errors_as_exit(ContentError):
        store = FSBlockstore(s.blockstore_path, create=False)
    report = store.verify()
    repairs: list[Repair] = []
    if repair and report.corrupt:
        from etdb.content.fetch import BlockFetcher

        with BlockFetcher(list(peer or [])) as fetcher:
            repairs = repair_blocks(store, fetcher, report.corrupt)
    repaired = {r.cid.multihash for r in repairs if r.error is None}
    remaining = [(cid, path) for cid, path in report.corrupt if cid.multihash not in repaired]
    data = {
        "blockstore": str(store.root),
        "checked": report.checked,
        "corrupt": [{"cid": str(cid), "path": str(path)} for cid, path in report.corrupt],
        "unrecognised": [str(p) for p in report.unrecognised],
        "repaired": [str(r.cid) for r in repairs if r.error is None],
        "unrepaired": [
            {"cid": str(r.cid), "error": r.error} for r in repairs if r.error is not None
        ],
        "ok": not remaining,
    }

    def human() -> None:
        console.print(f"{report.checked} blocks checked in {store.root}", highlight=False)
        for cid, path in report.corrupt:
            fixed = " (repaired)" if cid.multihash in repaired else ""
            console.print(f"  [red]corrupt[/] {cid} {path}{fixed}", highlight=False)
        for r in repairs:
            if r.error is not None:
                console.print(f"  [red]not repaired[/] {r.cid}: {r.error}", highlight=False)
        for p in report.unrecognised:
            console.print(f"  [yellow]not a block file[/] {p}", highlight=False)
        if remaining:
            hint = "" if repair else " (etdb verify --repair --peer URL fetches good copies)"
            console.print(f"{len(remaining)} corrupt blocks remain{hint}", highlight=False)
        else:
            console.print("every block matches its CID", highlight=False)

    emit(data, as_json, human)
    if remaining:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("verify")(verify_command)
