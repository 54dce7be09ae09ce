"""``etdb index --check``: is the catalog what a fresh rebuild from the ledger would make?

The catalog is derived data, so the question has an exact answer: index the same ledger, with
the same settings, up to the same height into a temporary SQLite catalog, then compare what a
reader sees (:class:`CatalogSnapshot`): record ids, each record's current artifact,
deactivation and copy state (``metadata_signed``, ``superseded_by``: ``copies.py``), the
rejections (txid, kind, reason) and the waiting multipart parts. Everything
is read through the :class:`~etdb.index.query.CatalogReader` interface, so a catalog altered
behind the indexer's back (by SQL, a bad restore, a bug) shows up as differences.

The rebuild then goes on to the ledger's tip: a catalog that cannot be built (an indexer that
fails at some block, every run, on every new node) is a difference too, with the error, even
when everything indexed so far agrees.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from etdb.index.identity import IndexerError
from etdb.index.query import MAX_LIMIT, CatalogReader, Rejection, SearchQuery
from etdb.index.store import CatalogStore
from etdb.ledger import LedgerUnavailable
from etdb.ledger.follow import Cursor

#: Differences listed in a report (the counts are always complete).
MAX_LISTED = 50
_PAGE = 1000
#: How a difference in ``metadata_signed`` reads (the portal's and record check's words).
_SIGNED = {True: "metadata signed", False: "location only"}


class Rebuildable(Protocol):
    """What :func:`check` needs of an indexer (``indexer.Indexer``, which sits above this
    module and calls it): its catalog, its cursor, and a twin writing elsewhere."""

    @property
    def store(self) -> CatalogReader: ...

    def indexed_cursor(self) -> Cursor: ...

    def twin(self, store: CatalogStore) -> Rebuildable: ...

    def run(self, limit_blocks: int | None = None) -> object: ...


class CopyState(NamedTuple):
    """A record's state as one copy of its identity (``index/copies.py``)."""

    metadata_signed: bool
    superseded_by: str | None


@dataclass(frozen=True)
class CatalogSnapshot:
    """What a reader sees of a catalog, in comparable form."""

    records: dict[str, tuple[str, bool]]  # id -> (current artifact as canonical JSON, deactivated)
    rejections: Counter[tuple[str, str, str]]  # (txid, kind, reason) -> times
    pending_multiparts: int
    copies: dict[str, CopyState] = field(default_factory=dict)  # id -> its copy state


def _canonical(artifact: dict[str, Any]) -> str:
    return json.dumps(artifact, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def all_rejections(store: CatalogReader) -> Iterator[Rejection]:
    """Every rejection in ledger order (the read interface pages them)."""
    token: str | None = None
    while True:
        rows = store.rejections(limit=_PAGE, after=token)
        yield from rows
        if len(rows) < _PAGE:
            return
        token = f"{rows[-1].height}:{rows[-1].index}"


def snapshot(store: CatalogReader) -> CatalogSnapshot:
    """Every record (deactivated included) with its current artifact, and every rejection."""
    records: dict[str, tuple[str, bool]] = {}
    copies: dict[str, CopyState] = {}
    after: str | None = None
    while True:
        page = store.search(
            SearchQuery(include_deactivated=True, sort="published", limit=MAX_LIMIT, after=after)
        )
        for item in page.items:
            detail = store.get(item.id)
            if detail is not None:
                seen = detail.provenance
                records[item.id] = (_canonical(detail.artifact), seen.deactivated)
                copies[item.id] = CopyState(seen.metadata_signed, seen.superseded_by)
        if page.next is None or not page.items:
            break
        after = page.next
    rejections = Counter((r.txid, r.kind, r.reason) for r in all_rejections(store))
    return CatalogSnapshot(records, rejections, store.pending_multiparts(), copies)


def _artifact_difference(mine: str, theirs: str) -> str:
    a, b = json.loads(mine), json.loads(theirs)
    keys = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return ", ".join(keys[:5]) or "key order"


def compare(catalog: CatalogSnapshot, rebuilt: CatalogSnapshot) -> list[str]:
    """Human-readable differences, catalog first; empty when they agree."""
    out: list[str] = []
    mine, theirs = catalog.records, rebuilt.records
    for rid in sorted(mine.keys() - theirs.keys()):
        out.append(f"record {rid}: in the catalog, not in a rebuild")
    for rid in sorted(theirs.keys() - mine.keys()):
        out.append(f"record {rid}: missing from the catalog")
    for rid in sorted(mine.keys() & theirs.keys()):
        (art, off), (art2, off2) = mine[rid], theirs[rid]
        if art != art2:
            out.append(
                f"record {rid}: current artifact differs ({_artifact_difference(art, art2)})"
            )
        if off != off2:
            state, other = ("deactivated", "active") if off else ("active", "deactivated")
            out.append(f"record {rid}: {state} in the catalog, {other} in a rebuild")
        out += _copy_differences(rid, catalog.copies.get(rid), rebuilt.copies.get(rid))
    extra = catalog.rejections - rebuilt.rejections
    missing = rebuilt.rejections - catalog.rejections
    if extra or missing:
        out.append(
            f"rejections: {catalog.rejections.total()} in the catalog, "
            f"{rebuilt.rejections.total()} in a rebuild"
        )
        for (txid, kind, reason), n in sorted(extra.items()):
            out.append(f"rejection of {txid} [{kind}] only in the catalog ({n}x): {reason}")
        for (txid, kind, reason), n in sorted(missing.items()):
            out.append(f"rejection of {txid} [{kind}] missing from the catalog ({n}x): {reason}")
    if catalog.pending_multiparts != rebuilt.pending_multiparts:
        out.append(
            f"waiting multipart messages: {catalog.pending_multiparts} in the catalog, "
            f"{rebuilt.pending_multiparts} in a rebuild"
        )
    return out


def _copy_differences(rid: str, mine: CopyState | None, theirs: CopyState | None) -> list[str]:
    if mine is None or theirs is None:
        return []  # a snapshot made without copy states (compare's callers may build them)
    out = []
    if mine.metadata_signed != theirs.metadata_signed:
        out.append(
            f"record {rid}: {_SIGNED[mine.metadata_signed]} in the catalog, "
            f"{_SIGNED[theirs.metadata_signed]} in a rebuild"
        )
    if mine.superseded_by != theirs.superseded_by:
        out.append(
            f"record {rid}: {_superseded(mine.superseded_by)} in the catalog, "
            f"{_superseded(theirs.superseded_by)} in a rebuild"
        )
    return out


def _superseded(by: str | None) -> str:
    return f"superseded by {by}" if by else "not superseded"


def _build_to_tip(twin: Rebuildable) -> str | None:
    """Index the rest of the ledger into ``twin``: why it fails, or None."""
    try:
        twin.run()
    except (LedgerUnavailable, IndexerError):
        raise  # the ledger or the setup, not the catalog: the caller reports these
    except Exception as exc:  # what stops every indexer of this ledger, whatever it is
        return (
            f"the catalog cannot be built: indexing fails after block "
            f"{twin.indexed_cursor().height} "
            f"({type(exc).__name__}: {_first_line(exc)}); etdb index stops there on every run"
        )
    return None


def _first_line(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__).strip().splitlines()[0][:300]


@dataclass
class CheckReport:
    """The outcome of :func:`check`: equal, or the differences (at most ``MAX_LISTED`` lines,
    ``total_differences`` counts them all)."""

    height: int
    records: int
    rejections: int
    differences: list[str] = field(default_factory=list)
    total_differences: int = 0

    @property
    def equal(self) -> bool:
        return self.total_differences == 0

    def to_json(self) -> dict[str, Any]:
        return {
            "equal": self.equal,
            "height": self.height,
            "records": self.records,
            "rejections": self.rejections,
            "total_differences": self.total_differences,
            "differences": self.differences,
        }


def check(indexer: Rebuildable) -> CheckReport:
    """Rebuild ``indexer``'s ledger into a temporary SQLite catalog, to the height its
    catalog has reached, with the same settings, and compare."""
    from etdb.index.catalog import open_catalog  # the SQL layer, only when checking

    cursor = indexer.indexed_cursor()
    with tempfile.TemporaryDirectory(prefix="etdb-check-") as tmp:
        fresh = open_catalog(f"sqlite:///{Path(tmp) / 'check.sqlite3'}")
        try:
            twin = indexer.twin(fresh)
            if cursor.height >= 0:
                twin.run(limit_blocks=cursor.height + 1)
            reached = twin.indexed_cursor()
            ours, theirs = snapshot(indexer.store), snapshot(fresh)
            unbuildable = _build_to_tip(twin)
        finally:
            fresh.close()
    differences = compare(ours, theirs)
    if unbuildable is not None:
        differences.insert(0, unbuildable)
    if (reached.height, reached.block_hash) != (cursor.height, cursor.block_hash):
        differences.insert(
            0,
            f"the catalog is at block {cursor.height} {cursor.block_hash[:16]}, which the ledger "
            f"no longer has there (a rebuild reached {reached.height} {reached.block_hash[:16]}): "
            "run etdb index to follow the reorganisation",
        )
    return CheckReport(
        height=cursor.height,
        records=len(ours.records),
        rejections=ours.rejections.total(),
        differences=differences[:MAX_LISTED],
        total_differences=len(differences),
    )
