"""`etdb record check TXID`: verify a dataset from the ledger alone.

No catalog is trusted: the record is read from the configured ledger by its txid (multipart
parts found and joined), decoded, its signature checked (canonical form required) and its
metadata status said: "metadata signed" (a valid ``metaSignature``) or "location only"
(title, details and file list not covered; an invalid ``metaSignature`` makes it INVALID);
with ``--content``, every block of the dataset's DAG (``storage.location``) is read from the
local blockstore and re-hashed against its CID, and every file the record lists must be there
at its stated size. This is the one-line command the portal's provenance box shows.
"""

from __future__ import annotations

from typing import Any

import typer

from etdb.commands._common import JSON_OPTION, console, emit, errors_as_exit, fail, settings
from etdb.content.errors import ContentError
from etdb.index.validate import published_form
from etdb.ledger import LedgerError, open_ledger
from etdb.ledger.reading import read_message
from etdb.record import Publish, RecordError, decode, verify_publish
from etdb.record.metasign import check_meta

TXID_ARG = typer.Argument(..., metavar="TXID", help="The record's txid (part 0 of a multipart).")
CONTENT_OPTION = typer.Option(
    False,
    "--content",
    help="Also re-hash every block of the dataset in the local blockstore against its CID "
    "and check every listed file is there at its size.",
)


def check(
    txid: str = TXID_ARG, content: bool = CONTENT_OPTION, as_json: bool = JSON_OPTION
) -> None:
    """Verify a record from the ledger alone (signature; with --content, every byte)."""
    cfg = settings()
    with errors_as_exit(LedgerError, RecordError, ContentError, OSError, ValueError):
        with open_ledger(cfg.ledger, cfg.home) as ledger:
            message = read_message(ledger, txid.strip().lower())
        decoded = decode(message.text)
        if not isinstance(decoded, Publish):
            fail(f"transaction {txid} is an {decoded.kind}, not a published record")
        artifact = decoded.artifact
        result = verify_publish(artifact)
        meta = check_meta(published_form(decoded), artifact.floAddress or "")
        data: dict[str, Any] = {
            "txid": message.txids[0],
            "txids": list(message.txids),
            "height": message.height,
            "block_hash": message.block_hash,
            "valid": result.valid and meta.status != "invalid",
            "metadata": meta.status,
            "metadata_reason": meta.reason,
            "address": result.address,
            "reason": result.reason if not result.valid else meta.reason,
            "title": artifact.info.title if artifact.info else None,
            "location": artifact.location,
        }
        if content and data["valid"]:
            data["content"] = _check_content(cfg.blockstore_path, artifact)
    ok = data["valid"] and (not content or data["content"]["valid"])
    emit(data, as_json, lambda: _print(data))
    if not ok:
        raise typer.Exit(1)


def _check_content(blocks_path: Any, artifact: Any) -> dict[str, Any]:
    from etdb.content import exporter
    from etdb.content.blockstore import FSBlockstore
    from etdb.content.traversal import car_blocks

    problems: list[str] = []
    n_blocks = n_bytes = 0
    store = FSBlockstore(blocks_path, create=False)
    try:
        for f in artifact.files:
            try:
                size = exporter.stat(store, f"{artifact.location}/{f.fname}").size
            except ContentError as exc:
                problems.append(f"{f.fname}: {exc}")
                continue
            if f.fsize is not None and size != f.fsize:
                problems.append(f"{f.fname}: {size} bytes, the record says {f.fsize}")
        try:
            # The blockstore re-hashes every block it reads: a corrupt one raises here.
            for _cid, block in car_blocks(store, str(artifact.location), scope="all"):
                n_blocks += 1
                n_bytes += len(block)
        except ContentError as exc:
            problems.append(str(exc))
    finally:
        store.close()
    return {"valid": not problems, "blocks": n_blocks, "bytes": n_bytes, "problems": problems}


def _print(data: dict[str, Any]) -> None:
    if not data["valid"]:
        console.print(f"[bold red]INVALID[/] record {data['txid']}: {data['reason']}")
        return
    parts = f" ({len(data['txids'])} parts)" if len(data["txids"]) > 1 else ""
    console.print(
        f"[bold green]valid[/] record {data['txid']}{parts} at height {data['height']}, "
        f"signed by {data['address']}: {data['title']}",
        highlight=False,
    )
    console.print(
        "metadata signed" if data["metadata"] == "signed" else data["metadata_reason"],
        highlight=False,
    )
    content = data.get("content")
    if content is None:
        return
    if content["valid"]:
        console.print(
            f"content {data['location']}: {content['blocks']} blocks, "
            f"{content['bytes']:,} bytes re-hashed, every listed file present",
            highlight=False,
        )
    else:
        console.print(f"[bold red]content {data['location']} does NOT check out:[/]")
        for problem in content["problems"]:
            console.print(f"  {problem}", highlight=False)
