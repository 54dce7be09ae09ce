"""What `etdb publish` shows: the plan, progress bars fed by the pipeline's events, the summary.

Everything goes through Rich; progress goes to stderr so that stdout carries only the plan or
summary (and only JSON with ``--json``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich import box
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from etdb.commands._common import console, err_console
from etdb.units import human_bytes

if TYPE_CHECKING:
    from etdb.ledger import FeeEstimate
    from etdb.publish.events import Event
    from etdb.publish.pipeline import Plan, Summary

__all__ = ["MAX_ROWS", "RunView", "fee_text", "human_bytes", "print_plan", "print_summary"]

#: Rows of a per-dataset table (problems, edits, disagreements) shown before "... and N more".
MAX_ROWS = 40


# -- progress ----------------------------------------------------------------------------------


class AmountColumn(ProgressColumn):
    """Bytes with their rate for byte bars, "done/total" for the datasets bar (one Progress
    has one set of columns)."""

    def __init__(self) -> None:
        super().__init__()
        self._bytes, self._rate = DownloadColumn(), TransferSpeedColumn()
        self._count = MofNCompleteColumn()

    def render(self, task: Task) -> Text:
        if task.fields.get("bytes"):
            return Text.assemble(self._bytes.render(task), " ", self._rate.render(task))
        return self._count.render(task)


class RunView:
    """Rich progress bars on stderr fed by the pipeline's events (stdout stays for results).
    Without a terminal (cron), one log line per dataset instead."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.progress: Progress | None = None
        self.planned: dict[str, int] = {}
        self.added: dict[str, int] = {}
        self.tasks: dict[str, TaskID] = {}
        #: Each wait for confirmations (the node's chain limit), for ``--json``'s ``chain_waits``.
        self.waits: list[dict[str, Any]] = []

    @contextmanager
    def running(self, plan: Plan) -> Iterator[None]:
        self.planned = {d.sid: d.bytes for d in plan.datasets}
        self.progress = p = Progress(
            TextColumn("{task.description}", style="bold"),
            BarColumn(),
            AmountColumn(),
            TimeRemainingColumn(),
            console=err_console,
            disable=not self.enabled,
        )
        self.tasks["datasets"] = p.add_task("datasets", total=len(plan.actionable) or None)
        self.tasks["bytes"] = p.add_task("added", total=plan.total_bytes or None, bytes=True)
        self.tasks["current"] = p.add_task("", total=None, visible=False, bytes=True)
        with p:
            yield

    def handle(self, event: Event) -> None:
        from etdb.publish import events as pl

        p = self.progress
        if p is None:
            return
        if isinstance(event, pl.DatasetStarted):
            self.added[event.sid] = 0
            p.update(self.tasks["current"], description=f"{event.action} {escape(event.sid)}",
                     completed=0, total=event.bytes or None, visible=True)  # fmt: skip
        elif isinstance(event, pl.BytesAdded):
            self.added[event.sid] = self.added.get(event.sid, 0) + event.n
            p.advance(self.tasks["bytes"], event.n)
            p.advance(self.tasks["current"], event.n)
        elif isinstance(event, pl.DatasetFinished | pl.DatasetFailed):
            # The bytes bar counts what was planned, even when less had to be added.
            rest = self.planned.get(event.sid, 0) - self.added.pop(event.sid, 0)
            p.advance(self.tasks["bytes"], max(rest, 0))
            p.advance(self.tasks["datasets"], 1)
            self._log(event)
        elif isinstance(event, pl.PushStarted):
            p.update(self.tasks["current"], description=f"push {escape(event.sid)} to kubo",
                     completed=0, total=self.planned.get(event.sid) or None,
                     visible=True)  # fmt: skip
        elif isinstance(event, pl.BlocksPushed):
            p.advance(self.tasks["current"], event.n)
        elif isinstance(event, pl.Recovered | pl.Pushed):
            self._log(event)
        elif isinstance(event, pl.WaitingForConfirmations):
            self.waits.append({"sid": event.sid, "unconfirmed": event.unconfirmed,
                               "timeout": event.timeout})  # fmt: skip
            p.update(self.tasks["current"], description=event.text, visible=True)
            self._log(event)

    def _log(self, event: Event) -> None:
        from etdb.publish import events as pl

        if isinstance(event, pl.DatasetFinished):
            txs = f"{len(event.txids)} tx {event.txids[0] if event.txids else ''}".strip()
            line = f"{event.action} {escape(event.sid)}: {txs} ({event.seconds:.1f} s)"
        elif isinstance(event, pl.DatasetFailed):
            line = f"[red]failed[/] {escape(event.sid)}: {escape(event.reason)}"
        elif isinstance(event, pl.Recovered):
            line = f"recovered {event.kind} {escape(event.sid)}: {len(event.txids)} tx"
        elif isinstance(event, pl.Pushed):
            line = (f"pushed {escape(event.sid)} to kubo {event.node}: {event.cid} "
                    f"({event.blocks} blocks)")  # fmt: skip
        elif isinstance(event, pl.WaitingForConfirmations):
            line = f"{escape(event.sid)}: {event.text} (at most {event.timeout:g} s)"
        else:
            return
        err_console.print(f"[dim]publish:[/] {line}", highlight=False, soft_wrap=True)


# -- plan and summary --------------------------------------------------------------------------


def print_plan(plan: Plan, about: dict[str, str | None], *, full: bool) -> None:
    from etdb.publish.pipeline import Action

    for label in ("source", "publisher", "ledger"):
        console.print(f"{label}: {about[label]}", highlight=False, soft_wrap=True)
    by_action: dict[Action, list[Any]] = {}
    for d in plan.datasets:
        by_action.setdefault(d.action, []).append(d)
    table = Table(box=box.SIMPLE_HEAD, title="plan" if full else None)
    for column in ("action", "datasets", "bytes to add", "transactions", "payload"):
        table.add_column(column, justify="left" if column == "action" else "right")
    for action, count in plan.counts().items():
        rows = by_action.get(action, [])
        if count:
            table.add_row(str(action), f"{count:,}", human_bytes(sum(d.bytes for d in rows)),
                          f"{sum(d.transactions for d in rows):,}",
                          human_bytes(sum(d.record_bytes for d in rows)))  # fmt: skip
    if plan.datasets:
        console.print(table)
    else:
        console.print("The source lists no datasets.")
    console.print(
        f"total: {human_bytes(plan.total_bytes)} to add, {plan.transactions:,} ledger "
        f"transactions, {human_bytes(plan.payload_bytes)} of payload; {fee_text(plan.fee)}",
        highlight=False,
        soft_wrap=True,
    )
    if plan.pending:
        console.print(f"unfinished journal operations completed first: {plan.pending}")
    problems = [(d.sid, d.origin, d.reason or "") for d in by_action.get(Action.PROBLEM, [])]
    _rows("problems (not published)", ("sid", "origin", "reason"), problems)
    if not full:
        return
    edits = [(d.sid, ", ".join(d.changes)) for d in by_action.get(Action.EDIT, [])]
    _rows("edits", ("sid", "changed fields"), edits)
    media = [(d.sid, ", ".join(d.media)) for d in plan.datasets if d.media]
    _rows("media to generate", ("sid", "files"), media)
    disagreements = [(d.sid, str(x)) for d in plan.datasets for x in d.disagreements]
    _rows("file and database disagree", ("sid", "disagreement"), disagreements)
    warnings = [(d.sid, w) for d in plan.datasets for w in d.warnings]
    _rows("warnings (left out, dataset published)", ("sid", "warning"), warnings)


def fee_text(fee: FeeEstimate) -> str:
    """ "fee 0.0123 FLO (basis)", or "no fee (basis)" on a ledger without fees."""
    amount = "no fee" if fee.unit == "none" else f"fee {fee.total} {fee.unit}"
    return f"{amount} ({fee.basis})"


def _rows(title: str, columns: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    if not rows:
        return
    table = Table(box=box.SIMPLE_HEAD, title=f"{title}: {len(rows)}")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows[:MAX_ROWS]:
        table.add_row(*(Text(cell) for cell in row))  # text, not markup: sids, reasons
    console.print(table)
    if len(rows) > MAX_ROWS:
        console.print(f"... and {len(rows) - MAX_ROWS} more (all of them with --json)")


def print_summary(summary: Summary) -> None:
    table = Table("action", "done", box=box.SIMPLE_HEAD, title="published")
    for action, count in summary.counts.items():
        if count:
            table.add_row(str(action), f"{count:,}")
    if table.row_count:
        console.print(table)
    console.print(
        f"{human_bytes(summary.bytes_added)} added, {summary.transactions:,} ledger transactions, "
        f"{summary.recovered} recovered, {summary.disagreements} file/database disagreements"
        f"{f', {summary.pushed} pushed to kubo' if summary.pushed else ''}; "
        f"{summary.seconds:.1f} s",
        highlight=False,
    )
    _rows("failed", ("sid", "reason"), [(sid, reason) for sid, reason in summary.failed])
