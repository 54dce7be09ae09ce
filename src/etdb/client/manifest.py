"""``<dest>/metadata.json``: what a download selected and how far each file got.

It holds the records as the API returned them, one entry per file (its path under the
destination, the file's own CID from the record's DAG, size, status ``pending``/``done``/
``failed`` with the reason), and one entry per run with the peers' statistics. It is rewritten
whole after every change of status, to a temporary file that is fsynced and renamed over the
old one: a crash leaves either the previous manifest or the new one, never a torn one.

A file counts as downloaded only when its entry says ``done`` and ``verified`` (every leaf
was checked against its CID and the file's CID is the one its record's folder names) *and*
the file on disk still has the recorded size (a folder entry: its file count and their total
size); anything else is fetched again, resuming from its ``.part`` file.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

__all__ = ["MANIFEST", "FileEntry", "Manifest", "ManifestError"]

MANIFEST = "metadata.json"
VERSION = 1
Status = Literal["pending", "done", "failed"]


class ManifestError(ValueError):
    """``metadata.json`` exists but is not a manifest this version can continue."""


@dataclass
class FileEntry:
    record: str  # the record's txid
    fname: str  # path inside the record's folder (storage.files[].fname)
    path: str  # where it goes, relative to the destination (POSIX form)
    type: str  # file type (tiltseries, reconstruction...)
    size: int | None = None  # the record's fsize until the DAG says, then the DAG's size
    cid: str | None = None  # the file's own CID, resolved through verified blocks
    status: Status = "pending"
    verified: bool = False
    reason: str | None = None
    fetched: int = 0  # bytes fetched for this file, over all runs
    files: int | None = None  # a folder entry (an OME-Zarr pyramid): its file count; else None

    @property
    def key(self) -> tuple[str, str]:
        return (self.record, self.fname)

    def is_complete(self, dest: Path) -> bool:
        """Done, verified, and still on disk at its size (see the module docstring)."""
        if self.status != "done" or not self.verified or self.size is None:
            return False
        if self.files is not None:
            from etdb.client.folder import folder_complete

            return folder_complete(dest / self.path, self.size, self.files)
        try:
            return (dest / self.path).stat().st_size == self.size
        except OSError:
            return False


_ENTRY_FIELDS = {f.name for f in fields(FileEntry)}


@dataclass
class Manifest:
    dest: Path
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: list[FileEntry] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    selection: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.dest / MANIFEST

    @classmethod
    def load(cls, dest: Path) -> Manifest:
        """The destination's manifest, or an empty one if it has none yet."""
        path = dest / MANIFEST
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(dest)
        except OSError as exc:
            raise ManifestError(f"{path}: {exc.strerror or exc}") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ManifestError(f"{path}: not JSON ({exc}); move it away to start over") from None
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise ManifestError(
                f"{path}: not an etdb download manifest (version {VERSION}); "
                "choose another --dest or move it away"
            )
        try:
            files = [FileEntry(**{k: v for k, v in e.items() if k in _ENTRY_FIELDS})
                     for e in data.get("files", [])]  # fmt: skip
        except (TypeError, AttributeError) as exc:
            raise ManifestError(f"{path}: a file entry is malformed ({exc})") from None
        return cls(
            dest,
            records=dict(data.get("records") or {}),
            files=files,
            runs=list(data.get("runs") or []),
            selection=dict(data.get("selection") or {}),
        )

    def merge(
        self, records: dict[str, dict[str, Any]], planned: list[FileEntry]
    ) -> list[FileEntry]:
        """Take this run's selection: records replaced by the API's current answers; planned
        files keep what earlier runs learnt about them (status, CID, bytes) when they are the
        same file at the same path. Entries of files no longer selected stay, untouched.
        Returns the planned entries, as held by the manifest."""
        self.records.update(records)
        known = {e.key: e for e in self.files}
        chosen: list[FileEntry] = []
        for entry in planned:
            old = known.get(entry.key)
            if old is not None and old.path == entry.path:
                chosen.append(old)
                continue
            if old is not None:
                self.files.remove(old)
            self.files.append(entry)
            chosen.append(entry)
        return chosen

    def to_json(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "selection": self.selection,
            "files": [asdict(e) for e in self.files],
            "runs": self.runs,
            "records": self.records,
        }

    def save(self) -> None:
        """Write atomically: temporary file in the same folder, fsync, rename, fsync folder."""
        self.dest.mkdir(parents=True, exist_ok=True)
        data = json.dumps(self.to_json(), indent=1, ensure_ascii=False).encode()
        fd, tmp = tempfile.mkstemp(prefix=".metadata.", suffix=".tmp", dir=self.dest)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.dest, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
