"""`etdb key`: create, import, inspect, export and delete publisher keys.

Keys are encrypted at rest (see :mod:`etdb.publish.keystore`). The passphrase comes from
``ETDB_KEY_PASSPHRASE`` or a terminal prompt. A WIF private key is never taken as a command-line
argument, where it would be kept in shell history and visible in ``ps``: it is read from a
file, from stdin, or from a hidden prompt.
"""

from __future__ import annotations

import getpass
import sys
from pathlib import Path

import typer
from rich.markup import escape

from etdb.commands._common import JSON_OPTION, console, emit, errors_as_exit, fail, settings
from etdb.publish.keystore import (
    KeyInfo,
    Keystore,
    KeystoreError,
    UnreadableKey,
    resolve_passphrase,
)
from etdb.record.signing import MAINNET, TESTNET, PrivateKey, SigningError

app = typer.Typer(
    help="Manage publisher keys (FLO addresses), stored encrypted under the etdb home folder.",
    no_args_is_help=True,
)

NAME_ARG = typer.Argument(
    ..., help="Key name: 1-64 characters from A-Z a-z 0-9 . _ - (no leading dot)"
)
# What a key command may fail with; each carries a user-facing message without secrets.
_ERRORS = (KeystoreError, SigningError, OSError)
# A WIF is 51-52 characters; anything much longer on stdin is not a WIF.
_MAX_WIF_INPUT = 4096


def _store() -> Keystore:
    return Keystore(settings().keys_path)


def _print_info(info: KeyInfo, heading: str | None = None) -> None:
    if heading:
        console.print(heading, highlight=False)
    for label, value in info.to_dict().items():
        console.print(f"  {label:<8} {value}", highlight=False, soft_wrap=True)


def _read_wif(wif_file: Path | None) -> str:
    from_stdin = str(wif_file) == "-" or (
        wif_file is None and sys.stdin is not None and not sys.stdin.isatty()
    )
    try:
        if from_stdin:
            text, source = sys.stdin.read(_MAX_WIF_INPUT), "stdin"
        elif wif_file is not None:
            with wif_file.open(encoding="utf-8") as fh:
                text, source = fh.read(_MAX_WIF_INPUT), str(wif_file)
        else:
            text, source = getpass.getpass("WIF private key (hidden): "), "the prompt"
    except UnicodeDecodeError:
        fail("the WIF private key input is not text")
    wif = text.strip()
    if not wif:
        fail(f"no WIF private key on {source}")
    return wif


@app.command("new")
def new(
    name: str = NAME_ARG,
    testnet: bool = typer.Option(False, "--testnet", help="Create a FLO testnet key."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Create a new random key and print its address."""
    with errors_as_exit(*_ERRORS):
        store = _store()
        if store.exists(name):  # checked before asking for a passphrase
            raise KeystoreError(f"a key named {name!r} exists already in {store.path}")
        passphrase = resolve_passphrase(confirm=True, prompt=f"New passphrase for key {name!r}: ")
        info = store.create(name, passphrase, network=TESTNET if testnet else MAINNET)
    emit(info.to_dict(), as_json, lambda: _print_info(info, f"Created key {name}:"))


@app.command("import")
def import_(
    name: str = NAME_ARG,
    wif_file: Path | None = typer.Option(
        None,
        "--wif-file",
        help="Read the WIF private key from this file ('-' for stdin). "
        "Default: stdin if piped, else a hidden prompt.",
        dir_okay=False,
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Import a WIF private key (network taken from the WIF)."""
    with errors_as_exit(*_ERRORS):
        store = _store()
        if store.exists(name):
            raise KeystoreError(f"a key named {name!r} exists already in {store.path}")
        key = PrivateKey.from_wif(_read_wif(wif_file))  # validate before asking a passphrase
        passphrase = resolve_passphrase(confirm=True, prompt=f"New passphrase for key {name!r}: ")
        info = store.add(name, key, passphrase)
    emit(info.to_dict(), as_json, lambda: _print_info(info, f"Imported key {name}:"))


@app.command("show")
def show(
    name: str = NAME_ARG,
    verify: bool = typer.Option(
        True,
        "--verify/--no-verify",
        help="Unlock the key (passphrase) to check that the stored address is this key's; "
        "--no-verify shows the stored address unchecked.",
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show a key's address and network, checked against the key itself."""
    with errors_as_exit(*_ERRORS):
        store = _store()
        if verify:
            passphrase = resolve_passphrase(prompt=f"Passphrase for key {name!r}: ")
            info = store.verified_info(name, passphrase)
        else:
            info = store.info(name)
    data = info.to_dict() | {"verified": verify}
    emit(data, as_json, lambda: _print_info(info, None if verify else "(not verified)"))


@app.command("list")
def list_(as_json: bool = JSON_OPTION) -> None:
    """List stored keys (addresses as stored; a file that cannot be read is listed with why)."""
    with errors_as_exit(*_ERRORS):
        store = _store()
        entries = store.list()

    def human() -> None:
        if not entries:
            console.print(
                f"No keys in {store.path}. Create one with: etdb key new NAME", highlight=False
            )
        for i in entries:
            if isinstance(i, UnreadableKey):
                why = escape(i.reason)  # the reason quotes the file: no markup from it
                console.print(f"{i.name:<20} [red]unreadable:[/] {why}", soft_wrap=True)
                continue
            console.print(
                f"{i.name:<20} {i.address}  {i.network.name:<8} {i.created}", highlight=False
            )

    emit([i.to_dict() for i in entries], as_json, human)


@app.command("export")
def export(
    name: str = NAME_ARG,
    yes_show_secret: bool = typer.Option(
        False, "--yes-show-secret", help="Confirm that the private key may be printed in clear."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Print a key's WIF private key. Anyone who sees it can publish as you."""
    if not yes_show_secret:
        fail("this prints the private key in clear; rerun with --yes-show-secret to confirm")
    with errors_as_exit(*_ERRORS):
        store = _store()
        info = store.info(name)
        wif = store.export_wif(name, resolve_passphrase(prompt=f"Passphrase for key {name!r}: "))
    if as_json:
        emit({**info.to_dict(), "wif": wif}, True)
    else:
        sys.stdout.write(wif + "\n")  # plain, so that `> file` gets exactly the WIF


@app.command("delete")
def delete(
    name: str = NAME_ARG,
    yes: bool = typer.Option(False, "--yes", help="Confirm the deletion (it cannot be undone)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Delete a key. Without a backup of its WIF, its address can never sign again."""
    with errors_as_exit(*_ERRORS):
        store = _store()
        try:
            address: str | None = store.info(name).address
        except KeystoreError:
            if not store.exists(name):
                raise  # unknown key: a clear error even without --yes
            address = None  # a corrupt file can still be deleted
        what = f"key {name!r} ({address or 'unreadable file'})"
        if not yes:
            fail(
                f"deleting {what} cannot be undone; export it first if needed, "
                "then rerun with --yes"
            )
        store.delete(name)
    emit(
        {"deleted": name, "address": address},
        as_json,
        lambda: console.print(f"Deleted {what}", highlight=False),
    )
