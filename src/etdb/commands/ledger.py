"""`etdb ledger`: inspect, verify, back up, publish to and read the configured ledger.

Every command opens the ledger named by the ``ledger`` setting (``local://`` by default) or by
``--ledger URL``. Ledger errors become a one-line message and exit code 1. URLs are shown
through the ledger's ``url`` attribute, which never carries a password.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import typer

from etdb.commands._common import (
    JSON_OPTION,
    console,
    emit,
    err_console,
    fail,
    read_payload,
    settings,
)
from etdb.content.fsutil import create_temp, fsync_dir
from etdb.ledger import Ledger, LedgerError, open_ledger
from etdb.ledger.costs import FEE_RATE_OPTIONS, estimate_records_cost, with_fee_rate
from etdb.ledger.local import ExportReport, LocalLedger
from etdb.ledger.messages import needs_multipart, publish_message
from etdb.publish.keystore import Keystore, KeystoreError, resolve_passphrase
from etdb.record.errors import MultipartError
from etdb.record.signing import PrivateKey, SigningError

app = typer.Typer(
    help="Inspect, verify, export/import, publish to and read the ledger (the `ledger` setting).",
    no_args_is_help=True,
)

LEDGER_OPTION = typer.Option(
    None, "--ledger", metavar="URL", help="Ledger URL (default: the `ledger` setting)."
)
_PREVIEW = 72  # payload characters shown by `read` without --json


def _scrub(text: str, url: str) -> str:
    """``text`` with the URL's password (as typed or percent-decoded) masked."""
    try:
        password = urlsplit(url).password
    except ValueError:  # unparsable: the ledger layer showed it redacted, as its scheme only
        return text
    if not password:
        return text
    for secret in {password, quote(password, safe="")}:
        text = text.replace(secret, "***")
    return text


@contextmanager
def _opened(url: str | None, fee_rate: Decimal | None = None) -> Iterator[Ledger]:
    """The ledger, closed afterwards; any LedgerError inside becomes a clean exit 1."""
    s = settings()
    raw = url or s.ledger
    try:
        if fee_rate is not None and raw.partition(":")[0].lower() != "local":
            raw = with_fee_rate(raw, fee_rate)
        ledger = open_ledger(raw, s.home)
        try:
            yield ledger
        finally:
            ledger.close()
    except LedgerError as exc:
        fail(_scrub(str(exc) or type(exc).__name__, raw))
    except ImportError as exc:  # a backend whose optional dependency is not installed
        fail(f"the {urlsplit(raw).scheme} ledger backend cannot load: {exc}")


def _backend(ledger: Ledger) -> str:
    return urlsplit(ledger.url).scheme or type(ledger).__name__


def _local_only(ledger: Ledger, what: str) -> LocalLedger:
    if not isinstance(ledger, LocalLedger):
        fail(
            f"{what} applies to the embedded ledger (local://) only; {ledger.url} is a "
            f"{_backend(ledger)} node, which keeps (and backs up) its own chain"
        )
    return ledger


@app.command()
def info(ledger_url: str | None = LEDGER_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Show the ledger's URL, backend, tip and options."""
    with _opened(ledger_url) as ledger:
        tip = ledger.tip()
        data: dict[str, Any] = {
            "url": ledger.url,
            "backend": _backend(ledger),
            "tip_height": tip.height,
            "tip_hash": tip.hash,
            "max_payload": ledger.max_payload,
            "confirmations": ledger.confirmations,
        }
        if isinstance(ledger, LocalLedger):
            data |= ledger.stats()

    def human() -> None:
        for key, value in data.items():
            shown = "-" if value in ("", None) else value
            console.print(f"{key:<14} {shown}", highlight=False, soft_wrap=True)
        if data.get("exists") is False:
            console.print("(no ledger file yet: the first publish or import creates it)")

    emit(data, as_json, human)


@app.command()
def verify(ledger_url: str | None = LEDGER_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Recompute the embedded ledger's hash chain; exit 1 at the first broken link.

    A node backend (FLO, Bitcoin family, EVM) validates its own chain: nothing to do here,
    exit 0 with a note.
    """
    with _opened(ledger_url) as ledger:
        if not isinstance(ledger, LocalLedger):
            note = (
                f"not applicable: {ledger.url} is a {_backend(ledger)} node, and a node "
                "verifies its own chain"
            )
            emit(
                {"applicable": False, "ok": None, "note": note},
                as_json,
                lambda: console.print(note, highlight=False),
            )
            return
        report = ledger.verify()
    emit(
        {"applicable": True, **report.to_json()},
        as_json,
        lambda: console.print(str(report), highlight=False, soft_wrap=True),
    )
    if not report.ok:
        raise typer.Exit(1)


@app.command("export")
def export(
    output: str = typer.Option(
        ..., "--output", "-o", metavar="FILE|-", help="Where to write (- for stdout)."
    ),
    ledger_url: str | None = LEDGER_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Write the embedded ledger as a verifiable NDJSON export (docs/ledgers.md)."""
    with _opened(ledger_url) as ledger:
        local = _local_only(ledger, "export")
        if output == "-":
            local.export(sys.stdout)
            sys.stdout.flush()
            return
        target = Path(output)
        report = _export_to_file(local, target)
    data = {
        "file": str(target),
        "chain_id": report.chain_id,
        "blocks": report.blocks,
        "entries": report.entries,
        "tip_height": report.tip.height,
        "tip_hash": report.tip.hash,
    }
    emit(
        data,
        as_json,
        lambda: console.print(
            f"Exported {report.blocks} blocks, {report.entries} entries (tip {report.tip.height}) "
            f"to {target}",
            highlight=False,
        ),
    )


def _export_to_file(local: LocalLedger, target: Path) -> ExportReport:
    """Export beside ``target``, fsync, rename into place: a crash never leaves a file that
    looks like a complete export (and the header's tip would expose a truncated one)."""
    try:
        fd, tmp = create_temp(target.parent, f".{target.name}.")
    except OSError as exc:
        fail(f"cannot write {target}: {exc.strerror or exc}")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
            report = local.export(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
        fsync_dir(target.parent)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        fail(f"cannot write {target}: {exc.strerror or exc}")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return report


@app.command("import")
def import_(
    source: str = typer.Argument(
        ..., metavar="FILE|-", help="An export (etdb ledger export), - for stdin."
    ),
    ledger_url: str | None = LEDGER_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Import an export into an empty embedded ledger, or extend a ledger that is its prefix.

    Every hash is checked while importing; on any fault nothing is written.
    """
    with _opened(ledger_url) as ledger:
        local = _local_only(ledger, "import")
        try:
            if source == "-":
                report = local.import_(sys.stdin)
            else:
                with open(source, encoding="utf-8") as lines:
                    report = local.import_(lines)
        except OSError as exc:
            fail(f"cannot read {source}: {exc.strerror or exc}")
        except UnicodeDecodeError:
            fail(f"{source} is not UTF-8 text")
    data = {
        "chain_id": report.chain_id,
        "matched": report.matched,
        "blocks": report.blocks,
        "entries": report.entries,
        "tip_height": report.tip.height,
        "tip_hash": report.tip.hash,
    }
    emit(
        data,
        as_json,
        lambda: console.print(
            f"Imported {report.blocks} blocks, {report.entries} entries "
            f"({report.matched} blocks were already here); tip {report.tip.height}",
            highlight=False,
        ),
    )


@app.command()
def publish(
    source: str = typer.Argument(
        ..., metavar="FILE|-", help="The payload (e.g. a signed floData), - for stdin."
    ),
    key: str | None = typer.Option(
        None, "--key", "-k", help="Key that signs multipart parts, needed above max_payload."
    ),
    ledger_url: str | None = LEDGER_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Publish one payload; above the ledger's max_payload, as signed multipart parts."""
    payload = read_payload(source)
    if not payload:
        fail(f"{source} holds no payload")
    with _opened(ledger_url) as ledger:
        if needs_multipart(ledger, payload):
            if key is None:
                size = len(payload.encode("utf-8"))
                fail(
                    f"the payload is {size} bytes, over this ledger's max_payload of "
                    f"{ledger.max_payload}: give --key NAME to send it as signed multipart parts"
                )
            try:
                refs = publish_message(ledger, payload, _load_key(key))
            except MultipartError as exc:  # e.g. more parts than oipd assembles
                fail(f"{source}: {exc}")
        else:
            refs = [ledger.publish(payload)]
    data = {"txids": [r.txid for r in refs], "heights": [r.height for r in refs]}

    def show_txids() -> None:
        for ref in refs:
            typer.echo(ref.txid)

    emit(data, as_json, show_txids)


def _load_key(name: str) -> PrivateKey:
    try:
        return Keystore(settings().keys_path).load(name, resolve_passphrase())
    except (KeystoreError, SigningError) as exc:
        fail(str(exc))


@app.command()
def read(
    start: int = typer.Option(
        0, "--from", help="First height (negative: counted back from the tip)."
    ),
    stop: int | None = typer.Option(None, "--to", help="Last height (default: the tip)."),
    ledger_url: str | None = LEDGER_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per entry (NDJSON)."),
) -> None:
    """List the entries of a range of blocks (height, txid, sender, payload)."""
    with _opened(ledger_url) as ledger:
        tip = ledger.tip().height
        first = tip + 1 + start if start < 0 else start
        last = tip if stop is None else stop
        count = 0
        for block in ledger.blocks(max(first, 0), last):
            for e in block.entries:
                count += 1
                if as_json:
                    doc = {
                        "height": e.height,
                        "block_hash": e.block_hash,
                        "time": e.time,
                        "txid": e.txid,
                        "index": e.index,
                        "sender": e.sender,
                        "payload": e.payload,
                    }
                    sys.stdout.write(json.dumps(doc, ensure_ascii=False) + "\n")
                else:
                    preview = e.payload.replace("\n", " ")
                    if len(preview) > _PREVIEW:
                        preview = preview[: _PREVIEW - 1] + "…"
                    console.print(
                        f"{e.height:>8} {e.txid} {e.sender or '-'} {preview}",
                        highlight=False,
                        markup=False,
                        soft_wrap=True,
                    )
        if not as_json and count == 0:
            err_console.print(f"no entries in heights {max(first, 0)}..{last} (tip {tip})")


def _decimal(text: str | None) -> Decimal | None:
    if text is None:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        fail(f"--fee-rate {text!r} is not a number")
    if not value.is_finite() or value < 0:
        fail(f"--fee-rate {text!r} must be a non-negative number")
    return value


@app.command()
def cost(
    records: int = typer.Option(..., "--records", min=0, help="How many records."),
    record_bytes: int = typer.Option(..., "--bytes", min=1, help="Bytes per record (its floData)."),
    fee_rate: str | None = typer.Option(
        None,
        "--fee-rate",
        metavar="R",
        help="Fee rate to price with instead of the node's estimate: "
        + "; ".join(f"{k}: {unit}" for k, (_, unit) in FEE_RATE_OPTIONS.items())
        + ". Ignored by the embedded ledger (no fees).",
    ),
    ledger_url: str | None = LEDGER_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Estimate transactions, bytes and fee to publish N records of B bytes (multipart counted)."""
    rate = _decimal(fee_rate)
    with _opened(ledger_url, rate) as ledger:
        if rate is not None and isinstance(ledger, LocalLedger):
            err_console.print("note: --fee-rate ignored: the embedded ledger has no fees")
        try:
            report = estimate_records_cost(ledger, records, record_bytes)
        except ValueError as exc:
            fail(str(exc), 2)
    fee = report.fee

    def human() -> None:
        console.print(
            f"{report.records} records of {report.record_bytes} bytes: {report.transactions} "
            f"transactions ({report.transactions_per_record} per record), "
            f"{report.payload_bytes} payload bytes",
            highlight=False,
        )
        console.print(
            f"fee: {fee.total:f} {fee.unit} in all, {report.per_record:f} {fee.unit} per record",
            highlight=False,
        )
        console.print(f"basis: {fee.basis}", highlight=False, soft_wrap=True)

    emit(report.to_json(), as_json, human)
