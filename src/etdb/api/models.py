"""What the v1 API answers: JSON views of the catalog's types, and their OpenAPI schemas.

Routes build plain dicts with the ``*_json`` functions (fast: no model validation per request)
and declare the pydantic models below as their documented responses; the schemathesis suite
checks that the two agree. Times are unix seconds (UTC), as on the ledger.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from pydantic import BaseModel, Field, create_model

from etdb.index.query import (
    FacetValue,
    IndexStatus,
    Provenance,
    PublisherInfo,
    RecordDetail,
    RecordSummary,
    Rejection,
    Summary,
)

# -- schemas (documentation) -----------------------------------------------------------------


class ErrorDetail(BaseModel):
    parameter: str | None = Field(description="The query or path parameter at fault, if any.")
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


def _summary_model() -> type[BaseModel]:
    """``RecordOut``: :class:`RecordSummary`'s fields, types and meanings (its field
    metadata), so the API's record row cannot drift from the catalog's."""
    hints = typing.get_type_hints(RecordSummary)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(RecordSummary):
        kind = list[str] if f.name == "file_types" else hints[f.name]
        fields[f.name] = (kind, Field(description=f.metadata["doc"]))
    model: type[BaseModel] = create_model("RecordOut", __doc__="One search hit.", **fields)
    return model


if typing.TYPE_CHECKING:

    class RecordOut(BaseModel):
        """Built at run time from RecordSummary."""

else:
    RecordOut = _summary_model()


class FacetOut(BaseModel):
    value: str
    count: int


class PageLinks(BaseModel):
    self: str
    next: str | None


class RecordPage(BaseModel):
    items: list[RecordOut]
    total: int = Field(description="records matching the query, over all pages")
    facets: dict[str, list[FacetOut]]
    next: str | None = Field(description="pass as `after` for the next page; null at the end")
    links: PageLinks


class ProvenanceOut(BaseModel):
    publisher: str
    txids: list[str] = Field(description="every transaction that carried the publish")
    block_height: int
    block_hash: str
    block_time: int
    signature_valid: bool
    edits: list[dict[str, Any]] = Field(description="{txid, height, time, timestamp, patch}")
    deactivated: bool
    deactivated_by: str | None
    metadata_signed: bool = False  # a valid metaSignature covers title, details, files
    superseded_by: str | None = None  # the metadata-signed copy that replaced this record


class RecordLinks(BaseModel):
    self: str
    files: str | None = Field(
        description="the record's folder on this server's IPFS gateway (null without one)"
    )


class RecordDetailOut(BaseModel):
    summary: RecordOut
    artifact: dict[str, Any] = Field(description="the current artifact (after edits), wire form")
    original: dict[str, Any] = Field(description="the artifact as first published")
    provenance: ProvenanceOut
    links: RecordLinks


class PublisherOut(BaseModel):
    address: str
    name: str | None
    records: int
    first_published: int | None
    last_published: int | None


class PublisherList(BaseModel):
    items: list[PublisherOut]


class SummaryOut(BaseModel):
    records: int
    species: dict[str, int]
    publishers: dict[str, int]
    total_bytes: int


class StatusOut(BaseModel):
    ledger_url: str = Field(description="the ledger URL, without any password")
    ledger_tip: int | None = Field(description="null when the ledger cannot be reached")
    indexed_height: int
    lag: int | None
    records: int
    rejected: int | None = Field(description="null if the catalog cannot count them")
    pending_multiparts: int
    indexer: str = Field(
        description='"starting", "running", "failed" (waiting to retry), "stopped", '
        '"off" (serve --no-index)'
    )
    indexer_error: str | None = Field(description="the last failure (its kind; details logged)")
    indexer_failures: int = Field(description="failures in a row (0 while running)")
    indexer_next_retry: str | None = Field(description="when a failed indexer retries (UTC)")


class RejectionOut(BaseModel):
    txid: str
    height: int
    index: int
    time: int
    kind: str
    reason: str
    payload_excerpt: str


class RejectionPage(BaseModel):
    items: list[RejectionOut]
    next: str | None


# -- views -----------------------------------------------------------------------------------


_SUMMARY_FIELDS = tuple(f.name for f in dataclasses.fields(RecordSummary))


def summary_json(s: RecordSummary) -> dict[str, Any]:
    row = {name: getattr(s, name) for name in _SUMMARY_FIELDS}
    row["file_types"] = list(s.file_types)
    return row


def facets_json(facets: dict[str, list[FacetValue]]) -> dict[str, list[dict[str, Any]]]:
    return {
        name: [{"value": v.value, "count": v.count} for v in values]
        for name, values in facets.items()
    }


def provenance_json(publisher: str, p: Provenance) -> dict[str, Any]:
    return {
        "publisher": publisher,
        "txids": list(p.txids),
        "block_height": p.block_height,
        "block_hash": p.block_hash,
        "block_time": p.block_time,
        "signature_valid": p.signature_valid,
        "edits": [dict(e) for e in p.edits],
        "deactivated": p.deactivated,
        "deactivated_by": p.deactivated_by,
        "metadata_signed": p.metadata_signed,
        "superseded_by": p.superseded_by,
    }


def detail_json(d: RecordDetail, links: dict[str, str | None]) -> dict[str, Any]:
    return {
        "summary": summary_json(d.summary),
        "artifact": d.artifact,
        "original": d.original,
        "provenance": provenance_json(d.summary.publisher, d.provenance),
        "links": links,
    }


def publisher_json(p: PublisherInfo) -> dict[str, Any]:
    return {
        "address": p.address,
        "name": p.name,
        "records": p.records,
        "first_published": p.first_published,
        "last_published": p.last_published,
    }


def catalog_summary_json(s: Summary) -> dict[str, Any]:
    return {
        "records": s.records,
        "species": dict(s.species),
        "publishers": dict(s.publishers),
        "total_bytes": s.total_bytes,
    }


def status_json(s: IndexStatus) -> dict[str, Any]:
    return dataclasses.asdict(s)  # the field names are the API's keys


def rejection_json(r: Rejection) -> dict[str, Any]:
    return dataclasses.asdict(r)  # the field names are the API's keys
