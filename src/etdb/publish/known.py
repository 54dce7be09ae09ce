"""What is already on the ledger for a dataset: from the journal, or adopted from the catalog.

The journal is the publisher's own memory. If it is lost (a new machine, a restored backup
without it), the catalog still knows every record this publisher has on the ledger; a dataset
found there by its ``details.sid`` is *adopted*: journaled as the publish it already is, so
the pipeline edits it instead of publishing it a second time. A dataset several catalog
records claim is not adopted: it is that dataset's problem (:class:`CatalogRecords`
``conflicts``), reported with the txids, and the other datasets go on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from etdb.index.query import MAX_LIMIT, CatalogReader, RecordDetail, SearchQuery
from etdb.publish.changes import record_fingerprint
from etdb.publish.journal import Journal, JournalEntry

__all__ = ["CatalogRecords", "Known", "adopt", "catalog_records", "from_journal"]


@dataclass(frozen=True)
class Known:
    """A dataset's record as it stands on the ledger."""

    state: str  # "published" | "deactivated"
    record_txid: str
    txids: tuple[str, ...]  # every transaction of the publish, part 0 first
    cid: str | None
    content_fingerprint: str | None  # None: unknown (adopted), the content is re-read
    record_fingerprint: str | None
    artifact: dict[str, Any] | None  # current (after edits), wire form
    last_timestamp: int  # of the newest publish/edit: the next one must come after it
    from_catalog: bool = False  # not in the journal yet: adopt before acting on it
    metadata_signed: bool = False  # the catalog's record carries a valid metaSignature


def from_journal(entry: JournalEntry) -> Known:
    stamps = [ts for _, _, ts in entry.history]
    if entry.artifact and isinstance(entry.artifact.get("timestamp"), int):
        stamps.append(entry.artifact["timestamp"])
    return Known(
        entry.state,
        entry.record_txid,
        entry.txids,
        entry.cid,
        entry.content_fingerprint,
        entry.record_fingerprint,
        entry.artifact,
        max(stamps, default=entry.updated_at),
    )


@dataclass(frozen=True)
class CatalogRecords:
    """What the catalog holds of a publisher's datasets, by sid."""

    adoptable: dict[str, Known]  # sid -> its one active record
    # sid -> why it is not adopted: several records claim it (the reason names every txid).
    conflicts: dict[str, str]


def catalog_records(catalog: CatalogReader, address: str) -> CatalogRecords:
    """The active records ``address`` has in the catalog, by sid.

    Only records filed under ``address`` whose signature verified count, and the catalog keeps
    one record per identity (what the signature covers), preferring the metadata-signed copy
    (``index/copies.py``): a forged copy of one of our records is never a candidate. Several
    records claiming one sid (different identities: published twice, or edited elsewhere) are
    not resolved by picking one: that sid is a conflict whose reason names every txid, for the
    lab to decide; other sids are not held up by it."""
    found: dict[str, list[Known]] = {}
    after = None
    while True:
        page = catalog.search(
            SearchQuery(publisher=(address,), sort="published", limit=MAX_LIMIT, after=after)
        )
        for item in page.items:
            detail = catalog.get(item.id) if item.sid and not item.deactivated else None
            if item.sid and detail is not None and detail.artifact.get("floAddress") == address:
                found.setdefault(item.sid, []).append(_known(item.id, item.location, detail))
        if not page.next:
            break
        after = page.next
    return CatalogRecords(
        {sid: copies[0] for sid, copies in found.items() if len(copies) == 1},
        {sid: _conflict(copies) for sid, copies in found.items() if len(copies) > 1},
    )


def _known(record_id: str, location: str | None, detail: RecordDetail) -> Known:
    artifact = detail.artifact
    stamps = [int(e["timestamp"]) for e in detail.provenance.edits]
    stamps.append(int(artifact.get("timestamp") or 0))
    return Known(
        "published",
        record_id,
        detail.provenance.txids,
        location,
        None,
        record_fingerprint(artifact),
        artifact,
        max(stamps),
        from_catalog=True,
        metadata_signed=detail.provenance.metadata_signed,
    )


def _conflict(copies: list[Known]) -> str:
    each = ", ".join(
        f"{k.record_txid} ({'metadata signed' if k.metadata_signed else 'location only'})"
        for k in copies
    )
    return (
        f"not adopted from the catalog: {len(copies)} records there claim this dataset: "
        f"{each}. Check each (etdb record check TXID), deactivate the ones that are not this "
        "dataset's, then run again"
    )


def adopt(
    journal: Journal, sid: str, known: Known, content_fingerprint: str | None
) -> JournalEntry:
    """Journal a record found in the catalog as this dataset's publish (one transaction:
    nothing is sent, and a crash leaves either no trace or the whole adoption)."""
    artifact = known.artifact or {}
    return journal.adopt(
        sid,
        txids=known.txids,
        timestamp=int(artifact.get("timestamp") or known.last_timestamp),
        artifact=artifact,
        cid=known.cid,
        content_fingerprint=content_fingerprint,
        record_fingerprint=known.record_fingerprint,
    )
