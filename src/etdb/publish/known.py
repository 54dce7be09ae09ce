"""What is already on the ledger for a dataset: from the journal, or adopted from the catalog.

The journal is the publisher's own memory. If it is lost (a new machine, a restored backup
without it), the catalog still knows every record this publisher has on the ledger; a dataset
found there by its ``details.sid`` is *adopted*: journaled as the publish it already is, so
the pipeline edits it instead of publishing it a second time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from etdb.index.query import MAX_LIMIT, CatalogReader, SearchQuery
from etdb.publish.changes import record_fingerprint
from etdb.publish.journal import Journal, JournalEntry

__all__ = ["Known", "adopt", "catalog_records", "from_journal"]


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


def catalog_records(catalog: CatalogReader, address: str) -> dict[str, Known]:
    """sid -> the active record ``address`` has for it in the catalog (the first found)."""
    found: dict[str, Known] = {}
    after = None
    while True:
        page = catalog.search(
            SearchQuery(publisher=(address,), sort="published", limit=MAX_LIMIT, after=after)
        )
        for item in page.items:
            if not item.sid or item.sid in found or item.deactivated:
                continue
            detail = catalog.get(item.id)
            if detail is None:
                continue
            artifact = detail.artifact
            stamps = [int(e["timestamp"]) for e in detail.provenance.edits]
            stamps.append(int(artifact.get("timestamp") or 0))
            found[item.sid] = Known(
                "published",
                item.id,
                detail.provenance.txids,
                item.location,
                None,
                record_fingerprint(artifact),
                artifact,
                max(stamps),
                from_catalog=True,
            )
        if not page.next:
            return found
        after = page.next


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
