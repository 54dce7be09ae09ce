"""Where a record comes from, re-checked for the dataset page's provenance box.

The catalog says whether a signature held when the record was indexed; the page does not take
that on trust (a catalog is a cache anyone can edit). Every render re-verifies the publish
signature (``location-floAddress-timestamp``, ~0.2 ms) of the record *as first published*:
edits change the current view, not what was signed, and each edit's own signature was checked
by the indexer before it was applied. The signer must also be the publisher the catalog files
the record under.

The verify command is the one line a reader can run elsewhere to check the same thing without
trusting this server: it re-reads the transaction from the ledger (their own ``ledger``
setting) and checks its signature and mandatory fields with ``etdb record verify``. The
signature covers ``storage.location``, the CID that names every byte of the dataset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from etdb.index.query import Provenance, RecordDetail
from etdb.record import Artifact, RecordError, verify_publish
from etdb.record.metasign import LOCATION_ONLY
from etdb.web.render import utc_date

__all__ = [
    "SignatureCheck",
    "check_signature",
    "edit_history",
    "metadata_text",
    "provenance_json",
    "verify_command",
]

_TIME = "%Y-%m-%d %H:%M UTC"


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    valid: bool
    address: str | None  # who signed, as the record claims
    reason: str  # why it fails, or what was checked

    def to_json(self) -> dict[str, Any]:
        return {"valid": self.valid, "address": self.address, "reason": self.reason}


def check_signature(original: dict[str, Any], publisher: str) -> SignatureCheck:
    """Re-verify the publish signature of ``original`` (wire form), signed by ``publisher``."""
    try:
        artifact = Artifact.from_wire(original)
    except RecordError as exc:
        return SignatureCheck(False, original.get("floAddress"), f"record is malformed: {exc}")
    result = verify_publish(artifact)
    if not result.valid:
        return SignatureCheck(False, result.address, result.reason)
    if result.address != publisher:
        return SignatureCheck(
            False, result.address, f"signed by {result.address}, but filed under {publisher}"
        )
    return SignatureCheck(True, result.address, "signature over location, address and time holds")


def changed_paths(patch: Any) -> list[str]:
    """The record fields an edit's patch touches (``/info/title`` ...), as stored."""
    if isinstance(patch, dict):  # the squashed form: {"replace": {"/info/title": ...}, ...}
        return sorted({str(p) for entries in patch.values() for p in _squashed_paths(entries)})
    if isinstance(patch, list):
        return [str(op["path"]) for op in patch if isinstance(op, dict) and "path" in op]
    return []


def _squashed_paths(entries: Any) -> list[Any]:
    if isinstance(entries, dict):
        return list(entries)
    if isinstance(entries, list):
        return [e for e in entries if isinstance(e, str)]
    return []


def edit_history(provenance: Provenance) -> list[dict[str, Any]]:
    """Each edit: txid, block height and time, the edit's own timestamp, the changed paths."""
    return [
        {
            "txid": str(e.get("txid", "")),
            "height": e.get("height"),
            "time": e.get("time"),
            "time_text": utc_date(e.get("time"), _TIME),
            "timestamp": e.get("timestamp"),
            "changed": changed_paths(e.get("patch")),
        }
        for e in provenance.edits
    ]


def verify_command(detail: RecordDetail) -> str:
    """One shell line that re-reads the record from the ledger (multipart parts joined),
    verifies its signature, and re-hashes every block of its files against their CIDs:
    ``etdb record check`` trusts no catalog, this site included."""
    prov = detail.provenance
    txid = prov.txids[0] if prov.txids else detail.summary.id
    return f"etdb record check {txid} --content"


def provenance_json(detail: RecordDetail) -> dict[str, Any]:
    prov = detail.provenance
    return {
        "publisher": detail.summary.publisher,
        "txids": list(prov.txids),
        "block_height": prov.block_height,
        "block_hash": prov.block_hash,
        "block_time": prov.block_time,
        "signature_valid_when_indexed": prov.signature_valid,
        "edits": [{k: v for k, v in e.items() if k != "time_text"} for e in edit_history(prov)],
        "deactivated": prov.deactivated,
        "deactivated_by": prov.deactivated_by,
        "metadata_signed": prov.metadata_signed,
        "metadata": metadata_text(prov),
        "superseded_by": prov.superseded_by,
    }


def metadata_text(prov: Provenance) -> str:
    """What the publisher's signatures cover, as the provenance panel says it."""
    return "metadata signed" if prov.metadata_signed else LOCATION_ONLY
