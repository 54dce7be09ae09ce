"""What `etdb download` shows: progress bars fed by the downloader, and the summary.

Progress goes to stderr (stdout carries only the listing and summary, and only JSON with
``--json``); without a terminal, one log line per file instead of bars.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich import box
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from etdb.client.download import DownloadListener
from etdb.commands._common import console, err_console
from etdb.units import human_bytes

if TYPE_CHECKING:
    from etdb.client.download import Dataset, DownloadSummary
    from etdb.client.manifest import FileEntry, Manifest

__all__ = ["DownloadView", "print_summary"]


class DownloadView(DownloadListener):
    """A total bar (bytes of every selected file, rate, ETA) and one for the current file."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.progress: Progress | None = None
        self.total: TaskID | None = None
        self.current: TaskID | None = None
        self.counted: dict[tuple[str, str], int] = {}  # bytes shown per file

    @contextmanager
    def running(self, datasets: Sequence[Dataset]) -> Iterator[None]:
        total = sum(d.bytes for d in datasets)
        self.progress = p = Progress(
            TextColumn("{task.description}", style="bold"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=err_console,
            disable=not self.enabled,
        )
        self.total = p.add_task("total", total=total or None)
        self.current = p.add_task("", total=None, visible=False)
        with p:
            yield

    def file_started(self, entry: FileEntry, size: int, already: int) -> None:
        p = self.progress
        if p is None or self.total is None or self.current is None:
            return
        shown = self.counted.setdefault(entry.key, 0)
        p.update(self.current, description=entry.path, total=size, completed=already,
                 visible=True)  # fmt: skip
        p.advance(self.total, already - shown)
        self.counted[entry.key] = already

    def file_bytes(self, entry: FileEntry, n: int) -> None:
        if self.progress is None or self.total is None or self.current is None:
            return
        self.counted[entry.key] = self.counted.get(entry.key, 0) + n
        self.progress.advance(self.current, n)
        self.progress.advance(self.total, n)

    def file_finished(self, entry: FileEntry) -> None:
        p = self.progress
        if p is not None and self.total is not None:
            # The total counts each file at its size once, however much was fetched now.
            rest = (entry.size or 0) - self.counted.get(entry.key, 0)
            if entry.status == "done" and rest > 0:
                p.advance(self.total, rest)
            self.counted[entry.key] = entry.size or 0
        if entry.status == "failed":
            line = f"[red]failed[/] {entry.path}: {entry.reason}"
        else:
            line = f"done {entry.path} ({human_bytes(entry.size or 0)}) {entry.cid or ''}"
        if not self.enabled or entry.status == "failed":
            err_console.print(f"[dim]download:[/] {line}", highlight=False, soft_wrap=True)


def print_summary(summary: DownloadSummary, manifest: Manifest) -> None:
    console.print(
        f"{summary.done} files downloaded, {summary.skipped} already complete, "
        f"{len(summary.failed)} failed; {human_bytes(summary.bytes_fetched)} fetched in "
        f"{summary.seconds:.1f} s ({human_bytes(int(_rate(summary)))}/s); "
        f"manifest: {manifest.path}",
        highlight=False,
        soft_wrap=True,
    )
    if summary.peers:
        table = Table(box=box.SIMPLE_HEAD, title="peers")
        for column in ("peer", "blocks", "bytes", "failures", "lies", "state"):
            table.add_column(column, justify="left" if column in ("peer", "state") else "right")
        for peer in summary.peers:
            state = f"dropped: {peer.get('reason')}" if peer.get("dropped") else "ok"
            table.add_row(str(peer.get("url")), f"{peer.get('blocks', 0):,}",
                          human_bytes(int(peer.get("bytes", 0))), str(peer.get("failures", 0)),
                          str(peer.get("lies", 0)), state)  # fmt: skip
        console.print(table)
    if summary.failed:
        table = Table("file", "reason", box=box.SIMPLE_HEAD, title=f"failed: {len(summary.failed)}")
        for path, reason in summary.failed:
            table.add_row(path, reason)
        console.print(table)


def _rate(summary: DownloadSummary) -> float:
    return summary.bytes_fetched / summary.seconds if summary.seconds > 0 else 0.0
