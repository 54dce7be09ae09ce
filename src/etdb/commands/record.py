"""`etdb record`: verify, sign and re-encode OIP 0.4.2 Research-Tomogram records.

Inputs may be raw floData (``json:{…}``), OIP JSON in any of the shapes ``etdb.record.decode``
accepts, an oipd ``{artifact, meta}`` document, one ``oip-mp(…)`` multipart part, or a JSON file
holding any of these under a ``floData`` key (as the conformance fixtures do).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
from etdb.publish.keystore import Keystore, KeystoreError, resolve_passphrase
from etdb.record import (
    Deactivate,
    Edit,
    PrivateKey,
    Publish,
    RecordError,
    VerifyResult,
    decode,
    encode,
    encode_publish,
    parse_part,
    publish_envelope,
    sign_artifact,
    verify_deactivate,
    verify_edit,
    verify_part,
    verify_publish,
)
from etdb.record.multipart import FLO_DATA_LIMIT, MULTIPART_PREFIXES

app = typer.Typer(
    help="Verify, sign and re-encode OIP 0.4.2 Research-Tomogram records.",
    no_args_is_help=True,
)

SOURCE_ARG = typer.Argument(..., metavar="FILE|-", help="Input file, or - for stdin.")


def _verify_text(text: str, publisher: str | None) -> tuple[VerifyResult, dict[str, Any]]:
    extra: dict[str, Any] = {}
    if text.startswith(MULTIPART_PREFIXES):
        part = parse_part(text, verify=False)
        extra = {"part": part.part, "max": part.max_index, "reference": part.reference}
        return verify_part(part), extra
    msg = decode(text, strict=False, bare_artifact=True)
    if isinstance(msg, Publish):
        extra["title"] = msg.artifact.info.title if msg.artifact.info else None
        if msg.txid:
            extra["txid"] = msg.txid
        return verify_publish(msg.artifact), extra
    extra["txid"] = msg.txid if isinstance(msg, Edit) else msg.artifact_id
    if not publisher:
        reason = (
            f"an {msg.kind} is checked against the original record's publisher: "
            "pass --publisher ADDRESS"
        )
        return VerifyResult(False, None, reason, msg.kind), extra
    if isinstance(msg, Deactivate):
        return verify_deactivate(msg, publisher), extra
    return verify_edit(msg, publisher), extra


@app.command()
def verify(
    source: str = SOURCE_ARG,
    publisher: str | None = typer.Option(
        None, "--publisher", help="Original publisher address (for edits and deactivations)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Check a record's signature and mandatory fields; exit 1 with the reason if invalid."""
    text = read_payload(source)
    try:
        result, extra = _verify_text(text, publisher)
    except RecordError as exc:
        result, extra = VerifyResult(False, None, str(exc), "unknown"), {}
    data = {
        "valid": result.valid,
        "address": result.address,
        "reason": result.reason,
        "kind": result.kind,
        **extra,
    }
    if as_json:
        emit(data, True)
        if not result.valid:
            raise typer.Exit(1)
        return
    if not result.valid:
        fail(result.reason)
    where = f" part {extra['part']}/{extra['max']}" if "part" in extra else ""
    console.print(f"valid {result.kind}{where} signed by {result.address}", highlight=False)


@app.command()
def sign(
    source: str = SOURCE_ARG,
    key: str = typer.Option(..., "--key", "-k", help="Name of the signing key (etdb key list)."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write the signed envelope JSON to this file."
    ),
    timestamp: int | None = typer.Option(
        None, "--timestamp", help="Publication time, unix seconds (default: the draft's, else now)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Sign a draft publish (artifact JSON or envelope); print the floData to send."""
    text = read_payload(source)
    try:
        msg = decode(text, strict=False, bare_artifact=True)
    except RecordError as exc:
        fail(str(exc))
    if not isinstance(msg, Publish):
        fail(f"only a publish can be signed here, this is an {msg.kind}")
    private_key = _load_key(key)
    try:
        signed = sign_artifact(msg.artifact, private_key, timestamp=timestamp, meta=True)
        flo_data = encode_publish(signed)
    except RecordError as exc:
        fail(str(exc))
    envelope = publish_envelope(signed)
    if output is not None:
        try:
            output.write_text(json.dumps(envelope, indent=2, ensure_ascii=False) + "\n", "utf-8")
        except OSError as exc:
            fail(f"cannot write {output}: {exc.strerror or exc}")
    size = len(flo_data.encode("utf-8"))
    if size > FLO_DATA_LIMIT:
        err_console.print(
            f"note: the floData is {size} bytes, over the {FLO_DATA_LIMIT}-byte limit: "
            "it will be sent as a multipart",
            highlight=False,
        )
    if as_json:
        emit(envelope, True)
    elif output is not None:
        err_console.print(f"signed by {signed.floAddress}; wrote {output}", highlight=False)
    else:
        typer.echo(flo_data)


def _load_key(name: str) -> PrivateKey:
    try:
        return Keystore(settings().keys_path).load(name, resolve_passphrase())
    except (KeystoreError, RecordError, OSError) as exc:
        fail(str(exc))


@app.command("encode")
def encode_cmd(source: str = SOURCE_ARG) -> None:
    """Re-encode a record (e.g. an oipd document) as the floData go-etdb would have sent."""
    text = read_payload(source)
    try:
        typer.echo(encode(decode(text, strict=False, bare_artifact=True)))
    except RecordError as exc:
        fail(str(exc))


# `etdb record check TXID`: reads the ledger and the blockstore (record_check.py).
from etdb.commands.record_check import check  # noqa: E402 - registered after the group's own commands

app.command("check")(check)
