"""The `etdb` command. Each group lives in `etdb.commands.<group>`; this module only mounts them."""

from __future__ import annotations

import importlib
import sys

import typer

from etdb._version import __version__
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

# (module, group name or None for top-level commands registered by the module itself)
_GROUPS: list[tuple[str, str | None]] = [
    ("etdb.commands.demo", None),  # demo
    ("etdb.commands.content", None),  # add, cat, get
    ("etdb.commands.car", "car"),
    ("etdb.commands.record", "record"),
    ("etdb.commands.key", "key"),
    ("etdb.commands.ledger", "ledger"),
    ("etdb.commands.index", "index"),
    ("etdb.commands.publish", None),  # publish
    ("etdb.commands.push", None),  # push
    ("etdb.commands.serve", None),  # serve
    ("etdb.commands.mirror", None),  # mirror
    ("etdb.commands.verify", None),  # verify
    ("etdb.commands.download", None),  # download
    ("etdb.commands.search", None),  # search
]


def _mount() -> None:
    for module_name, group in _GROUPS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            # A group whose module is not part of this build is left out; any other import
            # failure (a missing dependency inside the module) is a real error.
            if exc.name != module_name:
                raise
            continue
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
