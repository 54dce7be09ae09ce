"""`etdb car export` / `etdb car import`: move DAGs between blockstores as CAR files."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import typer

from etdb.commands._common import JSON_OPTION, emit, err_console, errors_as_exit, fail
from etdb.commands.content import open_store
from etdb.content.car import Scope, export_car, import_car
from etdb.content.errors import ContentError
from etdb.content.fsutil import create_temp

app = typer.Typer(
    help="Export and import CAR files (content-addressed archives, as `ipfs dag export`).",
    no_args_is_help=True,
)

_ERRORS = (ContentError, OSError, ValueError)


def _parse_entity_bytes(text: str) -> tuple[int, int | None]:
    """``FROM:TO`` as the trustless gateway's ``entity-bytes`` (inclusive, ``*`` = end)."""
    first, sep, last = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return int(first), None if last == "*" else int(last)
    except ValueError:
        raise typer.BadParameter(f"expected FROM:TO (TO may be '*'), got {text!r}") from None


def _write_atomically(dest: Path, write: Callable[[BinaryIO], int]) -> int:
    """Write beside ``dest`` and rename: a failure never leaves a truncated CAR behind."""
    fd, temp = create_temp(dest.parent, ".etdb-car-")
    try:
        with os.fdopen(fd, "wb") as out:
            size = write(out)
        os.replace(temp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return size


@app.command("export")
def export(
    path: str = typer.Argument(..., metavar="CID[/PATH]", help="The DAG to export."),
    output: str = typer.Option(..., "--output", "-o", help="CAR file to write ('-' = stdout)."),
    scope: Scope = typer.Option(
        "all",
        "--scope",
        help="all: the whole DAG; entity: the file, or the folder node(s) only; block: one block.",
    ),
    entity_bytes: str | None = typer.Option(
        None, "--entity-bytes", help="FROM:TO (inclusive, TO may be '*'); implies --scope entity."
    ),
    dups: bool = typer.Option(False, "--dups", help="Repeat blocks that occur more than once."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Write a CARv1 (DFS order, roots = the CID) of a DAG from the local blockstore."""
    rng = _parse_entity_bytes(entity_bytes) if entity_bytes is not None else None
    if rng is not None:
        scope = "entity"
    with errors_as_exit(*_ERRORS):
        store = open_store()

        def write(out: BinaryIO) -> int:
            return export_car(store, path, out, scope=scope, entity_bytes=rng, dups=dups)

        if output == "-":
            out = typer.get_binary_stream("stdout")
            write(out)
            out.flush()
            return
        dest = Path(output)
        size = _write_atomically(dest, write)
    emit(
        {"path": path, "output": str(dest), "scope": scope, "bytes": size},
        as_json,
        lambda: err_console.print(f"wrote {dest} ({size} bytes)", highlight=False),
    )


@app.command("import")
def import_(
    file: str = typer.Argument(..., help="CAR file (v1 or v2) to import ('-' = stdin)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Verify every block of a CAR, store it, and print the CAR's root CIDs."""
    with errors_as_exit(*_ERRORS):
        store = open_store()
        if file == "-":
            roots = import_car(store, typer.get_binary_stream("stdin"))
        else:
            if not Path(file).is_file():
                fail(f"{file}: no such file")
            with open(file, "rb") as f:
                roots = import_car(store, f)

    def human() -> None:
        for r in roots:
            typer.echo(str(r))

    emit({"roots": [str(r) for r in roots]}, as_json, human)
