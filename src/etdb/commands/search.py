"""`etdb search`: search a node's catalog from the terminal, as a table or as JSON.

The filters are `etdb download`'s (:mod:`etdb.commands._filters`), so a search that lists the
right records becomes a download by changing the command's name (the query argument is
download's ``--q``). The work is :mod:`etdb.client.search`; this module parses and draws.

Exit codes (``etdb.commands._common``): 0 when the search ran (even with no hit), 1 when the
node could not be asked or refused a value (the flag is named), 2 for a usage error.
"""

from __future__ import annotations

from typing import Any

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from etdb.client.search import COLUMNS, ORDERS, SORT_KEYS
from etdb.commands._common import JSON_OPTION, console, emit, fail
from etdb.commands._filters import SERVER_OPTION, client_error, selection_options, server_url
from etdb.index.query import DEFAULT_LIMIT

#: The most rows one search prints (the API pages; the limit bounds memory and output).
MAX_ROWS = 10_000


@selection_options(skip=frozenset({"q"}))
def search_command(
    filters: dict[str, Any],
    query: str | None = typer.Argument(
        None, metavar="QUERY", help="Full text (title, species, notes, file names...)."
    ),
    server: str | None = SERVER_OPTION,
    sort: str | None = typer.Option(
        None,
        "--sort",
        metavar="KEY",
        help=f"{', '.join(SORT_KEYS)}. Default: relevance with a query, else published.",
    ),
    order: str | None = typer.Option(
        None, "--order", metavar="ORDER", help=f"{' or '.join(ORDERS)} (default: the key's)."
    ),
    limit: int = typer.Option(
        DEFAULT_LIMIT, "--limit", min=1, max=MAX_ROWS, help="The most records to list."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Search the catalog: full text and the API's filters; a table, or --json."""
    from etdb.client.api import ClientError
    from etdb.client.search import SearchRequest, search

    for flag, value, choices in (("--sort", sort, SORT_KEYS), ("--order", order, ORDERS)):
        if value is not None and value not in choices:
            fail(f"{flag}: {value!r} is not one of {', '.join(choices)}", 2)
    base = server_url(server)
    request = SearchRequest(base, query, filters, sort, order, limit)
    try:
        result = search(request)
    except ClientError as exc:
        fail(client_error(exc))
    emit(result.as_json(base), as_json, lambda: _print_table(result.items, result.total))


def _print_table(items: list[dict[str, Any]], total: int) -> None:
    from etdb.client.search import row

    if not items:
        console.print("No record matches.")
        return
    table = Table(box=box.SIMPLE_HEAD)
    for column in COLUMNS:
        # Identifiers are never wrapped (they are copied); free text takes what is left.
        fixed = column not in ("title", "species")
        table.add_column(column, justify="right" if column == "size" else "left", no_wrap=fixed)
    for item in items:
        table.add_row(*(Text(cell) for cell in row(item)))  # Text: a title is never markup
    console.print(table)
    more = f" (first {len(items)}; --limit for more)" if total > len(items) else ""
    console.print(f"{total} records match{more}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("search")(search_command)
