"""Bounds on what one record may hold: text lengths, files, sizes, bytes, nesting.

A public ledger is written by anyone, so every record is bounded before it enters a catalog:
the indexer rejects a record over :class:`RecordLimits` with the reason
(``index/validate.py``), and ``etdb publish`` refuses to build one (``publish/dataset.py``).
The limits change what a catalog holds, so the indexer stores them with its settings and a
catalog built with other limits asks for a rebuild (``index/identity.py``).

The defaults are generous for real labs. ETDB-Caltech's rr2014-01-14-5 (the historical record
in ``tests/data/conformance``) is 2.5 KB of JSON: a 25-character title, 250 characters of
notes, 10 files (~170 bytes each), a 3.2 GB tilt series, 3.9 GB in all, nesting depth 5.

Integers are bounded by what both catalog backends store (64-bit) and sizes by what
JavaScript clients such as etdb-react read exactly (2^53 - 1): a record can never overflow a
column, and its sizes are exact wherever they are shown.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from etdb.record.decoding import MAX_DEPTH, text_problem
from etdb.record.model import Artifact, Details, File, Info, Storage

__all__ = [
    "DEFAULT_LIMITS",
    "INT64_MAX",
    "NOTES_FIELDS",
    "SIGNING_ALLOWANCE",
    "RecordLimits",
    "record_bytes",
]

#: The largest integer both catalog backends store (SQLite INTEGER, PostgreSQL bigint).
INT64_MAX = 2**63 - 1
#: The largest integer a JavaScript number holds exactly (Number.MAX_SAFE_INTEGER).
JS_SAFE_MAX = 2**53 - 1

#: Free text a lab writes (paragraphs): bounded by ``max_notes``. Every other string of the
#: model is a name or a short line (title, tags, species, file names...): ``max_text``.
#: Strings under keys the model does not know are bounded by ``max_notes``.
NOTES_FIELDS = frozenset({"info.description", "details.artNotes", "storage.files.fNotes"})

#: What signing adds to a draft: ``floAddress``, ``timestamp``, ``signature``, a
#: ``metaSignature`` and the ``json:{"oip042":{"publish":{"artifact":...}}}`` envelope (about
#: 330 bytes), with room to spare. A draft must fit in ``max_payload_bytes`` less this.
SIGNING_ALLOWANCE = 512

#: The model's keys by the dotted path of their object (list items add no segment): a string
#: under one of them is a name or short text (``max_text``) unless it is in NOTES_FIELDS.
_KNOWN_KEYS: dict[str, frozenset[str]] = {
    path: frozenset(model.model_fields)
    for path, model in (
        ("", Artifact),
        ("info", Info),
        ("details", Details),
        ("storage", Storage),
        ("storage.files", File),
    )
}


@dataclass(frozen=True, slots=True)
class RecordLimits:
    """The bounds one record must keep (each a positive integer)."""

    #: Characters in a name or short text field (title, tags, species, fname, dname...).
    max_text: int = 1_024
    #: Characters in a free-text field (description, artNotes, fNotes, unknown keys).
    max_notes: int = 16_384
    #: Entries in ``storage.files``.
    max_files: int = 1_000
    #: One file's ``fsize`` in bytes (16 TiB).
    max_file_size: int = 2**44
    #: The sum of a record's ``fsize`` values in bytes (1 PiB).
    max_total_size: int = 2**50
    #: UTF-8 bytes of the message as published (all multipart parts joined) and of the
    #: record it stores (compact JSON); ~1,000 files' worth, ~260 FLO transactions.
    max_payload_bytes: int = 262_144
    #: Nesting of the artifact object (the artifact is level 1, a file's field level 5).
    max_depth: int = 16

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{f.name} must be a positive integer, got {value!r}")
        if self.max_depth > MAX_DEPTH:
            raise ValueError(f"max_depth must be at most {MAX_DEPTH} (the JSON decoder's bound)")
        for name in ("max_file_size", "max_total_size"):
            if getattr(self, name) > JS_SAFE_MAX:
                raise ValueError(f"{name} must be at most 2^53 - 1 = {JS_SAFE_MAX}")

    def to_json(self) -> dict[str, int]:
        return asdict(self)

    # -- checks -------------------------------------------------------------------------------

    def problem(self, document: Mapping[str, Any], *, draft: bool = False) -> str | None:
        """Why the artifact ``document`` (wire form) breaks a limit or the text rule
        (``decoding.UNSAFE_TEXT``), or None. A ``draft`` is not signed yet: it must leave
        room for what signing adds (:data:`SIGNING_ALLOWANCE`)."""
        for check in (self._shape_problem, self._files_problem):
            found = check(document)
            if found is not None:
                return found
        budget = self.max_payload_bytes - (SIGNING_ALLOWANCE if draft else 0)
        size = record_bytes(document)
        if size > budget:
            room = " once signed" if draft else ""
            return (
                f"the record is {size:,} bytes of JSON{room}, over the limit of "
                f"{self.max_payload_bytes:,} (record_max_payload_bytes)"
            )
        return None

    def payload_problem(self, text: str) -> str | None:
        """Why a message (all its multipart parts joined) is too large, or None."""
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > self.max_payload_bytes:
            return (
                f"the message is {size:,} bytes, over the limit of {self.max_payload_bytes:,} "
                "(record_max_payload_bytes)"
            )
        return None

    @staticmethod
    def integer_problem(name: str, value: int | None) -> str | None:
        """Why an integer outside the record (an edit's timestamp) cannot be stored, or None."""
        if value is not None and not -INT64_MAX <= value <= INT64_MAX:
            return f"{name} {value} is beyond what a catalog stores (64-bit integers)"
        return None

    def _shape_problem(self, document: Mapping[str, Any]) -> str | None:
        for parent, name, depth, value in _walk(document):
            if depth > self.max_depth:
                where = _where(parent, name)
                return f"{where}: nested deeper than {self.max_depth} levels (record_max_depth)"
            if isinstance(value, str):
                limit, key = self._text_limit(parent, name)
                if len(value) > limit:
                    where = _where(parent, name)
                    return (
                        f"{where}: {len(value):,} characters, over the limit of {limit:,} ({key})"
                    )
                if (unsafe := text_problem(value)) is not None:
                    return f"{_where(parent, name)}: {unsafe}"
            elif isinstance(value, int) and not isinstance(value, bool):
                if not -INT64_MAX <= value <= INT64_MAX:
                    return self.integer_problem(_where(parent, name), value)
            elif isinstance(value, Mapping):
                for k in value:
                    if len(k) > self.max_text:
                        where = _where(parent, name)
                        return f"{where}: a key of {len(k):,} characters (record_max_text)"
                    if (unsafe := text_problem(k)) is not None:
                        return f"{_where(parent, name)}: a key with {unsafe}"
        return None

    def _text_limit(self, parent: str, name: str) -> tuple[int, str]:
        known = _KNOWN_KEYS.get(parent)
        if known is None or name not in known or f"{parent}.{name}" in NOTES_FIELDS:
            return self.max_notes, "record_max_notes"
        return self.max_text, "record_max_text"

    def _files_problem(self, document: Mapping[str, Any]) -> str | None:
        storage = document.get("storage")
        files = storage.get("files") if isinstance(storage, Mapping) else None
        if not isinstance(files, list):
            return None
        if len(files) > self.max_files:
            return (
                f"storage.files: {len(files):,} files, over the limit of {self.max_files:,} "
                "(record_max_files)"
            )
        total = 0
        for i, f in enumerate(files):
            size = f.get("fsize") if isinstance(f, Mapping) else None
            if not isinstance(size, int) or isinstance(size, bool):
                continue  # not a size: the model's checks say so
            if not 0 <= size <= self.max_file_size:
                return (
                    f"storage.files[{i}].fsize: {size} is not a size from 0 to "
                    f"{self.max_file_size:,} bytes (record_max_file_size)"
                )
            total += size
        if total > self.max_total_size:
            return (
                f"storage.files: {total:,} bytes in all, over the limit of "
                f"{self.max_total_size:,} (record_max_total_size)"
            )
        return None


DEFAULT_LIMITS = RecordLimits()


def record_bytes(document: Mapping[str, Any]) -> int:
    """UTF-8 bytes of ``document`` as compact JSON (how the ledger carries it)."""
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    return len(text.encode("utf-8", "surrogatepass"))


def _walk(document: Mapping[str, Any]) -> Iterator[tuple[str, str, int, Any]]:
    """(parent's dotted path, key, depth, value) of every node, list items under their list's
    path and key; the root ("", "") is level 1. Paths are joined once per object, not per
    leaf: this runs for every record indexed."""
    stack: list[tuple[str, str, int, Any]] = [("", "", 1, document)]
    while stack:
        parent, name, depth, node = stack.pop()
        yield parent, name, depth, node
        if isinstance(node, Mapping):
            path = f"{parent}.{name}" if parent else name
            stack.extend((path, str(k), depth + 1, v) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((parent, name, depth + 1, v) for v in node)


def _where(parent: str, name: str) -> str:
    """A node's dotted path for a reason, cut short (keys are as long as a sender likes)."""
    path = f"{parent}.{name}" if parent else name
    return (path if len(path) <= 120 else f"{path[:117]}...") or "the artifact"
