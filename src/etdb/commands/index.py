"""`etdb index`: build the catalog from the ledger, check it, and show what was rejected.

``etdb index`` follows the ledger (the ``ledger`` setting, or ``--ledger``) from where the catalog
(``catalog_url``, or ``--catalog``) left off and prints what it did; ``--rebuild`` starts over,
``--check`` rebuilds into a temporary catalog and compares, then indexes on to the ledger's tip
(a ledger the catalog cannot be built from fails the check). The allow-list, multipart expiry
and record limits come from the ``publishers``, ``multipart_expiry`` and ``record_max_*``
settings. Errors are one line, exit 1.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from typing import Any

import click
import typer
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from etdb.api.models import rejection_json
from etdb.commands._common import JSON_OPTION, console, emit, err_console, fail, settings
from etdb.config import Settings
from etdb.index.check import CheckReport
from etdb.index.indexer import Indexer, IndexerError, IndexReport
from etdb.index.store import CatalogStore
from etdb.ledger import Ledger, LedgerError, open_ledger

app = typer.Typer(
    help="Index the ledger into the catalog (validate every message); status and rejections.",
    invoke_without_command=True,
)

LEDGER_OPTION = typer.Option(
    None, "--ledger", metavar="URL", help="Ledger URL (default: the `ledger` setting)."
)
CATALOG_OPTION = typer.Option(
    None, "--catalog", metavar="URL", help="Catalog URL (default: the `catalog` setting)."
)


@dataclass(frozen=True)
class _Opened:
    settings: Settings
    ledger: Ledger
    store: CatalogStore

    def indexer(self) -> Indexer:
        s = self.settings
        return Indexer(self.ledger, self.store, **s.indexer_options())


@contextmanager
def _opened(ledger_url: str | None, catalog_url: str | None) -> Iterator[_Opened]:
    """Ledger and catalog, closed afterwards; their errors become one line and exit 1, and so
    does any other error (a bug, or data no check foresaw): never a traceback. The indexer
    commits whole blocks only, so the catalog keeps its last committed state either way."""
    try:
        with _opened_or_failed(ledger_url, catalog_url) as opened:
            yield opened
    except (typer.Exit, typer.Abort, click.exceptions.Exit, click.ClickException, click.Abort):
        raise
    except Exception as exc:
        fail(f"unexpected {type(exc).__name__}: {_first_line(exc)}")


@contextmanager
def _opened_or_failed(ledger_url: str | None, catalog_url: str | None) -> Iterator[_Opened]:
    from sqlalchemy.exc import SQLAlchemyError

    from etdb.index.catalog import CatalogSchemaError, open_catalog  # SQL only when needed

    s = settings()
    try:
        ledger = open_ledger(ledger_url or s.ledger, s.home)
    except LedgerError as exc:
        fail(str(exc) or type(exc).__name__)
    try:
        try:
            store = open_catalog(catalog_url or s.catalog_url)
        except (ValueError, OSError, CatalogSchemaError, SQLAlchemyError) as exc:
            fail(f"catalog: {_first_line(exc)}")
        try:
            yield _Opened(s, ledger, store)
        except (LedgerError, IndexerError) as exc:
            fail(str(exc) or type(exc).__name__)
        except SQLAlchemyError as exc:
            fail(f"catalog: {_first_line(exc)}")
        finally:
            store.close()
    finally:
        ledger.close()


def _first_line(exc: BaseException) -> str:
    # SQLAlchemy appends the statement and a documentation link on later lines.
    return (str(exc) or type(exc).__name__).strip().splitlines()[0]


class _Bar:
    """Blocks indexed so far against the ledger tip, with blocks/s, on a terminal only."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("indexing"),
            BarColumn(),
            TextColumn("{task.completed:,.0f}/{task.total:,.0f} blocks"),
            TextColumn("{task.fields[rate]:,.0f} blocks/s"),
            TextColumn("{task.fields[records]:,} records"),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
        )
        self.task: TaskID | None = None
        self.start = 0

    def __call__(self, report: IndexReport) -> None:
        if self.task is None:
            self.start = report.height - report.blocks
            total = max(report.tip - self.start, 1)
            self.task = self.progress.add_task("index", total=total, rate=0, records=0)
        self.progress.update(
            self.task,
            completed=report.height - self.start,
            rate=report.blocks_per_second,
            records=report.records,
        )


def _summary(report: IndexReport) -> str:
    return (
        f"indexed {report.blocks:,} blocks to height {report.height:,} (ledger tip "
        f"{report.tip:,}): {report.records:,} records, {report.edits:,} edits, "
        f"{report.deactivations:,} deactivations, {report.rejections:,} rejected, "
        f"{report.rollbacks:,} rollbacks in {report.seconds:.1f} s "
        f"({report.blocks_per_second:,.0f} blocks/s)"
    )


def _print_check(check: CheckReport) -> None:
    if check.equal:
        console.print(
            f"check: the catalog equals a fresh rebuild to height {check.height:,} "
            f"({check.records:,} records, {check.rejections:,} rejections)",
            soft_wrap=True,
        )
        return
    console.print(
        f"check: the catalog differs from a fresh rebuild to height {check.height:,} "
        f"({check.total_differences:,} differences):",
        soft_wrap=True,
    )
    for line in check.differences:
        console.print(f"  {line}", highlight=False, markup=False, soft_wrap=True)


@app.callback()
def index(
    ctx: typer.Context,
    rebuild: bool = typer.Option(False, "--rebuild", help="Empty the catalog and index anew."),
    check: bool = typer.Option(
        False,
        "--check",
        help="Compare the catalog with a fresh rebuild, then index on to the ledger's tip "
        "(exit 1 if they differ or the catalog cannot be built).",
    ),
    limit_blocks: int | None = typer.Option(
        None, "--limit-blocks", min=1, metavar="N", help="Index at most N blocks."
    ),
    ledger_url: str | None = LEDGER_OPTION,
    catalog_url: str | None = CATALOG_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Index every confirmed block after the catalog's cursor (validating every message)."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = (ledger_url, catalog_url)
        return
    with _opened(ledger_url, catalog_url) as opened:
        indexer = opened.indexer()
        data: dict[str, Any] = {}
        report: IndexReport | None = None
        if rebuild or not check:
            bar = _Bar() if err_console.is_terminal and not as_json else None
            with bar.progress if bar else nullcontext():
                step = indexer.rebuild if rebuild else indexer.run
                report = step(limit_blocks, progress=bar)
            data["index"] = report.to_json()
        result = indexer.check() if check else None
        if result is not None:
            data["check"] = result.to_json()

        def human() -> None:
            if report is not None:
                console.print(_summary(report), highlight=False, soft_wrap=True)
            if result is not None:
                _print_check(result)

        emit(data, as_json, human)
        if result is not None and not result.equal:
            raise typer.Exit(1)


def _urls(
    ctx: typer.Context, ledger_url: str | None, catalog_url: str | None
) -> tuple[str | None, str | None]:
    """URLs given to the subcommand, else to ``etdb index`` before it."""
    parent = ctx.obj if isinstance(ctx.obj, tuple) else (None, None)
    return ledger_url or parent[0], catalog_url or parent[1]


@app.command()
def rejections(
    ctx: typer.Context,
    limit: int = typer.Option(50, "--limit", min=1, max=1000, metavar="N"),
    after: str | None = typer.Option(
        None, "--after", metavar="HEIGHT:INDEX", help="Continue after this ledger position."
    ),
    ledger_url: str | None = LEDGER_OPTION,
    catalog_url: str | None = CATALOG_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """List rejected messages in ledger order, with the reason each was refused."""
    with _opened(*_urls(ctx, ledger_url, catalog_url)) as opened:
        try:
            rows = opened.store.rejections(limit=limit, after=after)
        except ValueError as exc:
            fail(f"--after: {exc}")
    items: list[dict[str, Any]] = [rejection_json(r) for r in rows]

    def human() -> None:
        if not items:
            console.print("no rejected messages")
        for r in items:
            console.print(
                f"{r['height']}:{r['index']} {r['txid'][:16]} [{r['kind']}] {r['reason']}",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )

    emit(items, as_json, human)


@app.command()
def status(
    ctx: typer.Context,
    ledger_url: str | None = LEDGER_OPTION,
    catalog_url: str | None = CATALOG_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Ledger tip, indexed height, lag, records, rejections and waiting multipart messages."""
    with _opened(*_urls(ctx, ledger_url, catalog_url)) as opened:
        data = asdict(opened.indexer().status())

    def human() -> None:
        for key, value in data.items():
            console.print(f"{key:>18}  {value if value is not None else '-'}", highlight=False)

    emit(data, as_json, human)
