"""The `etdb` command. Each group lives in `etdb.commands.<group>`; this module only mounts them."""

from __future__ import annotations

import sys
from types import ModuleType

import typer

from etdb._version import __version__
from etdb.commands import (
    car,
    content,
    demo,
    download,
    index,
    key,
    ledger,
    mirror,
    publish,
    push,
    record,
    search,
    serve,
    verify,
)
from etdb.commands._common import fail

app = typer.Typer(
    name="etdb",
    help="etdb: publish, index, search and download electron-tomography datasets "
    "recorded on a public ledger and stored by content address (IPFS-compatible).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# Imported, not looked up by name: a missing or misspelt module stops `etdb` at start.
# (module, group name), in --help order: a group module owns a Typer ``app`` mounted under that
# name; with None the module ``register``s its top-level commands (content: add, cat, get).
_MOUNTS: list[tuple[ModuleType, str | None]] = [
    (demo, None),
    (content, None),
    (car, "car"),
    (record, "record"),
    (key, "key"),
    (ledger, "ledger"),
    (index, "index"),
    (publish, None),
    (push, None),
    (serve, None),
    (mirror, None),
    (verify, None),
    (download, None),
    (search, None),
]


def _mount() -> None:
    for module, group in _MOUNTS:
        if group is None:
            module.register(app)
        else:
            app.add_typer(module.app, name=group)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"etdb {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """etdb command line."""


_mount()


def check_arguments(argv: list[str]) -> str | None:
    """Why ``argv`` cannot be taken, if it cannot: an argument that is not UTF-8 (Python hands
    it over with lone surrogates, which no file, URL or query can carry further)."""
    for arg in argv:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            shown = arg.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            return f"argument {shown!r} is not valid UTF-8"
    return None


def main() -> None:
    problem = check_arguments(sys.argv[1:])
    if problem is not None:
        try:
            fail(problem, 2)
        except typer.Exit as stop:  # outside click's main loop: exit ourselves
            sys.exit(stop.exit_code)
    app()
