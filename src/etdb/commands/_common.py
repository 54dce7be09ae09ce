"""What every command shares: settings, `--json` output, and turning errors into exit codes."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from etdb.config import Settings, load_settings

JSON_OPTION = typer.Option(False, "--json", help="Print machine-readable JSON instead of text.")

console = Console()
err_console = Console(stderr=True)


def settings(code: int = 1) -> Settings:
    """The settings; an unusable one is a one-line error and exit ``code``."""
    try:
        return load_settings()
    except ValueError as exc:
        fail(str(exc), code)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print a one-line error on stderr and exit non-zero. The message is text, never markup:
    it may quote what others wrote (a node's error, a lab's file name, "[/...]" included)."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def emit(data: Any, as_json: bool, human: Callable[[], None] | None = None) -> None:
    """Print `data` as JSON, or call `human` to render it for people."""
    if as_json or human is None:
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    else:
        human()


@contextmanager
def errors_as_exit(*types: type[BaseException]) -> Iterator[None]:
    """Turn our typed errors into a clear message and exit code 1 (never a traceback)."""
    try:
        yield
    except types as exc:
        fail(str(exc) or type(exc).__name__)


def check_urls(flag: str, urls: Iterable[str]) -> None:
    """Exit 2 naming ``flag`` unless each of ``urls`` can name a peer or server (http[s])."""
    from etdb.content.peers import check_peer_url

    for url in urls:
        try:
            check_peer_url(url)
        except ValueError as exc:
            fail(f"{flag}: {exc}", 2)


def read_payload(source: str) -> str:
    """A ledger payload from a file (``-``: stdin): a ``{"floData": …}`` document's floData
    (how the historical records and ``etdb ledger read --json`` keep them), else the text
    without its trailing line breaks (as ``etdb record sign`` prints it; spaces are kept:
    multipart data may end in them). Exit 1 naming the file when it cannot be read."""
    from pathlib import Path

    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"cannot read {source}: {exc.strerror or exc}")
    except UnicodeDecodeError:
        fail(f"{source} is not UTF-8 text")
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            doc = json.loads(stripped)
        except ValueError:
            doc = None
        if isinstance(doc, dict) and isinstance(doc.get("floData"), str):
            return str(doc["floData"])
    return text.rstrip("\r\n")
