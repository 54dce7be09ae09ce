"""Where a downloaded file goes under the destination folder: ``--layout`` templates.

The default, ``{species}/{sid}/{name}``, groups datasets by species as a reader browses them,
and gives each dataset its own folder: two datasets of one species routinely carry files of
the same name (``keyimg.jpg``), and one folder per species would make them collide. Every
value is made a safe single path segment (``{path}``: safe segments), so a record can never
place a file outside the destination whatever its text says.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

__all__ = ["DEFAULT_LAYOUT", "PLACEHOLDERS", "Layout", "LayoutError"]

DEFAULT_LAYOUT = "{species}/{sid}/{name}"
#: placeholder -> what it is (``etdb download --help`` and docs/downloading.md show these).
PLACEHOLDERS: dict[str, str] = {
    "species": "species name ('unknown species' when absent)",
    "sid": "the lab's dataset id (the record id's first 16 characters when absent)",
    "id": "the record's txid",
    "publisher": "the publisher's address",
    "lab": "lab ('unknown lab' when absent)",
    "microscopist": "microscopist ('unknown microscopist' when absent)",
    "date": "acquisition date YYYY-MM-DD ('undated' when absent)",
    "type": "file type (tiltseries, reconstruction, keyimg...)",
    "name": "the file's display name (dname, else the last part of fname)",
    "path": "the file's path inside the record's folder (fname), folders kept",
}
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\]")


class LayoutError(ValueError):
    """A ``--layout`` template is malformed, or places two files at one path."""


def _segment(value: str) -> str:
    """One safe path segment: no separators or control characters, never ``.``/``..``."""
    cleaned = _UNSAFE.sub("_", value).strip()
    return "_" if cleaned in ("", ".", "..") else cleaned


@dataclass(frozen=True, slots=True)
class Layout:
    template: str = DEFAULT_LAYOUT

    def __post_init__(self) -> None:
        try:
            parsed = list(string.Formatter().parse(self.template))
        except ValueError as exc:
            raise LayoutError(f"--layout {self.template!r}: {exc}") from None
        fields = [f for _, f, _, _ in parsed if f is not None]
        unknown = [f for f in fields if f not in PLACEHOLDERS]
        if unknown:
            raise LayoutError(
                f"--layout {self.template!r}: unknown placeholder {{{unknown[0]}}}; use "
                + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
            )
        if "name" not in fields and "path" not in fields:
            raise LayoutError(f"--layout {self.template!r}: needs {{name}} or {{path}}")
        if self.template.startswith("/"):
            raise LayoutError(f"--layout {self.template!r}: must be relative to --dest")

    def path(self, record: Mapping[str, Any], file: Mapping[str, Any], kind: str) -> str:
        """The file's path relative to the destination (POSIX form), from a full record."""
        summary = record.get("summary") or {}
        details = (record.get("artifact") or {}).get("details") or {}
        txid = str(summary.get("id") or "")
        fname = str(file.get("fname") or "")
        values = {
            "species": _text(details.get("speciesName")) or "unknown species",
            "sid": _text(details.get("sid")) or txid[:16],
            "id": txid,
            "publisher": _text(summary.get("publisher")) or "unknown publisher",
            "lab": _text(details.get("lab")) or "unknown lab",
            "microscopist": _text(details.get("microscopist")) or "unknown microscopist",
            "date": _date(details.get("date")),
            "type": kind,
            "name": _text(file.get("dname")) or fname.rsplit("/", 1)[-1],
            "path": "\0".join(_segment(p) for p in fname.split("/") if p),
        }
        safe = {k: _segment(v) if k != "path" else v for k, v in values.items()}
        # "/" in the template separates folders; "\0" in {path} stands for its own separators
        # (a "/" inside any value was already replaced, so it cannot add a folder).
        formatted = self.template.format(**safe)
        parts = [_segment(p) for part in formatted.split("/") for p in part.split("\0") if p]
        return str(PurePosixPath(*parts)) if parts else "_"


def _text(value: Any) -> str:
    return " ".join(value.split()) if isinstance(value, str) else ""


def _date(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d")
        except (OverflowError, OSError, ValueError):
            pass
    return "undated"
