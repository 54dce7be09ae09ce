"""What a publishing run will do (:class:`Plan`) and what it did (:class:`Summary`).

Both are plain values: the CLI prints them as a table or as JSON (``to_json``), a dry run stops
at the plan. Fee, transaction and byte totals count only the *actionable* datasets (those with
something to put on the ledger).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from etdb.ledger.base import FeeEstimate

__all__ = ["ACTIONABLE", "Action", "Plan", "PlannedDataset", "Summary"]


class Action(StrEnum):
    NEW = "new"
    EDIT = "edit"
    DEACTIVATE = "deactivate"
    REPUBLISH = "republish"  # public again after a deactivation: a new record
    UNCHANGED = "unchanged"
    PRIVATE = "private"  # not public, never published: nothing to do
    PROBLEM = "problem"  # the source row or folder cannot be published; reason says why


#: Actions that put something on the ledger (``limit`` counts these).
ACTIONABLE = frozenset({Action.NEW, Action.EDIT, Action.DEACTIVATE, Action.REPUBLISH})


def _plain(value: Any) -> Any:
    """A JSON-ready copy of a disagreement (a dataclass of the mrcmeta helper) or any value."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


@dataclass(frozen=True)
class PlannedDataset:
    sid: str
    action: Action
    origin: str
    folder: Path | None
    files: int  # what will be added (0 when the content is unchanged)
    bytes: int
    record_bytes: int  # ledger payload of its message
    transactions: int  # how many transactions carry it (multipart)
    changes: tuple[str, ...] = ()  # EDIT: the record paths that change
    reason: str | None = None  # PROBLEM: why; others: a note
    disagreements: tuple[Any, ...] = ()  # etdb.publish.mrcmeta.Disagreement (file vs database)
    media: tuple[str, ...] = ()  # media files that will be generated
    #: Values or files left out without refusing the dataset (a NULL file name, a tilt step
    #: that is not a number, files on disk the source does not list), each naming where.
    warnings: tuple[str, ...] = ()

    @property
    def actionable(self) -> bool:
        return self.action in ACTIONABLE

    def to_json(self) -> dict[str, Any]:
        return {
            "sid": self.sid,
            "action": str(self.action),
            "origin": self.origin,
            "folder": str(self.folder) if self.folder else None,
            "files": self.files,
            "bytes": self.bytes,
            "record_bytes": self.record_bytes,
            "transactions": self.transactions,
            "changes": list(self.changes),
            "reason": self.reason,
            "disagreements": _plain(self.disagreements),
            "media": list(self.media),
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class Plan:
    datasets: tuple[PlannedDataset, ...]
    pending: int  # unfinished journal operations that run() completes first
    total_bytes: int
    transactions: int
    payload_bytes: int
    fee: FeeEstimate

    def counts(self) -> dict[Action, int]:
        found = Counter(d.action for d in self.datasets)
        return {action: found[action] for action in Action}

    @property
    def actionable(self) -> tuple[PlannedDataset, ...]:
        return tuple(d for d in self.datasets if d.actionable)

    def to_json(self) -> dict[str, Any]:
        return {
            "counts": {str(k): v for k, v in self.counts().items()},
            "pending": self.pending,
            "total_bytes": self.total_bytes,
            "transactions": self.transactions,
            "payload_bytes": self.payload_bytes,
            "fee": str(self.fee.total),
            "fee_unit": self.fee.unit,
            "fee_basis": self.fee.basis,
            "warnings": sum(len(d.warnings) for d in self.datasets),
            "datasets": [d.to_json() for d in self.datasets],
        }


@dataclass(frozen=True)
class Summary:
    counts: dict[Action, int]  # done, per action
    failed: tuple[tuple[str, str], ...]  # (sid, reason): problems and failures
    recovered: int  # unfinished operations of an earlier run completed first
    bytes_added: int
    transactions: int
    seconds: float
    disagreements: int
    pushed: int = 0  # dataset DAGs pushed to (and pinned on) the kubo node, when one is set

    def to_json(self) -> dict[str, Any]:
        return {
            "counts": {str(k): v for k, v in self.counts.items()},
            "failed": [{"sid": sid, "reason": reason} for sid, reason in self.failed],
            "recovered": self.recovered,
            "bytes_added": self.bytes_added,
            "transactions": self.transactions,
            "seconds": round(self.seconds, 3),
            "disagreements": self.disagreements,
            "pushed": self.pushed,
        }
