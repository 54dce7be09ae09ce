"""`etdb serve`: the web API (and, as they land, the portal and gateway) over the catalog,
with the indexer following the ledger in the background.

Listens on the ``host``/``port`` settings (127.0.0.1:8780 by default: exposing it to a network
is a deliberate ``--host 0.0.0.0``). Ctrl-C or SIGTERM stops it cleanly (exit status 0). A
setting it cannot use (an address it cannot listen on, a catalog it cannot open, a ledger it
cannot read, a catalog of another ledger) stops it before it binds: one line, exit status 2.
"""

from __future__ import annotations

import typer

from etdb.commands._common import console, fail, settings
from etdb.config import MAX_PORT

HOST_OPTION = typer.Option(None, "--host", help="Address to listen on (setting `host`).")
PORT_OPTION = typer.Option(None, "--port", help="Port to listen on (setting `port`).")
NO_INDEX_OPTION = typer.Option(
    False, "--no-index", help="Serve the catalog as it is; do not follow the ledger."
)
CATALOG_OPTION = typer.Option(
    None, "--catalog", metavar="URL", help="Catalog database URL (setting `catalog`)."
)
LEDGER_OPTION = typer.Option(None, "--ledger", metavar="URL", help="Ledger URL (setting `ledger`).")
ACCESS_LOG_OPTION = typer.Option(False, "--access-log", help="Log every request.")
WORKERS_OPTION = typer.Option(
    1, "--workers", min=1, max=64, help="API processes (one per core serves the most requests)."
)
PEER_OPTION = typer.Option(
    None,
    "--peer",
    metavar="URL",
    help="Upstream peer (etdb node, kubo gateway, trustless gateway) the gateway and portal "
    "read content this node does not hold through, verified; repeatable; replaces the setting "
    "`peers`.",
)


def serve_command(
    host: str | None = HOST_OPTION,
    port: int | None = PORT_OPTION,
    no_index: bool = NO_INDEX_OPTION,
    catalog: str | None = CATALOG_OPTION,
    ledger: str | None = LEDGER_OPTION,
    access_log: bool = ACCESS_LOG_OPTION,
    workers: int = WORKERS_OPTION,
    peer: list[str] | None = PEER_OPTION,
) -> None:
    """Serve the API (docs at /api/docs) and keep the catalog current with the ledger.

    Refuses to start (exit 2) on a setting it cannot use. /api/v1/health answers 200 "ok" or
    503 with the reason; /api/v1/status is 503 while the indexer is failed (it retries).
    With upstream peers (--peer or `peers`), files this node does not hold are read through
    them, every block verified, and kept in the peer cache (`peer_cache`, `peer_cache_size`).
    """
    from etdb.api.server import StartupError, serve

    s = settings(code=2)
    if peer:
        try:
            s = s.with_peers(peer)
        except ValueError as exc:
            fail(str(exc), 2)
    port = s.port_number if port is None else port
    if not 0 <= port <= MAX_PORT:
        fail(f"port {port} is out of range (0-{MAX_PORT})", 2)

    def announce(url: str) -> None:
        what = "serving" if no_index else "indexing and serving"
        console.print(
            f"etdb: {what} on {url} (API docs: {url}api/docs; Ctrl-C stops)", soft_wrap=True
        )

    try:
        serve(
            s,
            host=s.host if host is None else host,
            port=port,
            catalog_url=catalog,
            ledger_url=ledger,
            index=not no_index,
            access_log=access_log,
            workers=workers,
            on_listen=announce,
        )
    except StartupError as exc:
        fail(str(exc), 2)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
