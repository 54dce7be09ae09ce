"""What a source of datasets yields, whatever it reads.

A *source* is where a lab's catalogue of datasets lives: its internal database read through a
mapping file (``etdb.publish.sources.sql``), or a folder of dataset folders for labs without a
database (``etdb.publish.sources.folder``). The publishing pipeline only sees the types below:
one :class:`SourceDataset` per dataset the source knows (public or not, so that a dataset that
stops being public can be deactivated), or a :class:`DatasetProblem` for a row that cannot be
turned into one (the run reports it, skips it and goes on; nothing else is lost).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "KEY_MEDIA_FLAGS",
    "ClassifyRule",
    "DatasetProblem",
    "Source",
    "SourceDataset",
    "SourceError",
    "SourceFile",
]

#: A source's key-media flags (``SourceDataset.key_media``) and the subtypes each speaks for:
#: go-etdb's ``keyimg`` gave both the key image and its thumbnail.
KEY_MEDIA_FLAGS = {"keyimg": ("keyimg", "thumbnail"), "keymov": ("keymov",)}


class SourceError(Exception):
    """The source as a whole cannot be read: bad mapping file, unreachable database, a query
    that fails. The message names the mapping key / URL (password removed) and what to fix."""


@dataclass(frozen=True, slots=True)
class ClassifyRule:
    """Files whose dataset-relative path matches ``pattern`` (``fnmatch`` style, ``*`` also
    crosses ``/``; case-sensitive) get ``subtype``. Rules are tried in order; the first match
    wins; files no rule matches are classified by the go-etdb folder layout
    (``etdb.publish.dataset.classify``)."""

    pattern: str
    subtype: str


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A file the source itself lists for a dataset (e.g. the Caltech ``DataFile`` and
    ``ThreeDFile`` rows). Unless the source is the authority for files
    (:attr:`SourceDataset.files_only`), files in the folder that it does not list are still
    added and listed, classified by the rules."""

    path: str  # relative to the dataset folder, "/"-separated, no "..", no leading "/"
    subtype: str | None = None  # one of etdb.record.subtypes.SUBTYPES; None = classify by the rules
    notes: str | None = None  # -> files[].fNotes
    display_name: str | None = None  # -> files[].dname (the original file name)
    software: str | None = None  # -> files[].software
    #: Where the file is when it is not ``<folder>/<path>``: under ``root`` (a mapping's
    #: ``files.roots`` folder, e.g. ``<data root>/Caps``) at ``location`` (checked as ``path``);
    #: published at ``path`` all the same. The file must not leave ``root`` (no symlink out).
    root: Path | None = None
    location: str | None = None


@dataclass(frozen=True, slots=True)
class SourceDataset:
    """One dataset as the source describes it."""

    sid: str  # the lab's id (e.g. "rr2014-01-14-5"), unique within the source
    #: ``etdb.publish.dataset.build_artifact`` keys: Table 1 ``details`` (already of the record
    #: model's types: ints, floats, str; ``date`` as unix seconds, ISO text or a date), plus
    #: ``title``, ``description``, ``tags``, ``scopeNotes``/``speciesNotes``/
    #: ``tiltSeriesNotes``, ``swAcquisition``/``swReconstruction``, ``fileNotes``. Absent or
    #: NULL columns are simply missing keys.
    metadata: Mapping[str, Any]
    folder: Path  # the dataset's folder (absolute); it may be missing: the pipeline reports it
    public: bool = True
    files: tuple[SourceFile, ...] | None = None  # None: the source lists no files itself
    origin: str = ""  # where it came from, for messages, e.g. "TiltSeriesData id=42"
    extra: Mapping[str, Any] = field(default_factory=dict)  # source-specific, for reports only
    #: True: ``files`` is the whole file list (the source is the authority for files: files
    #: only on disk are reported, not published); False: the folder's files are added to it.
    files_only: bool = False
    #: Values left out without refusing the dataset (a NULL file name, a tilt step that is not
    #: a number), each naming table, row and column; the run report shows them.
    warnings: tuple[str, ...] = ()
    #: Whether the lab has a key image / key movie ({flag: bool}, flags of KEY_MEDIA_FLAGS),
    #: a flag absent where the source does not say (``etdb.publish.overlay`` honours them).
    key_media: Mapping[str, bool] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DatasetProblem:
    """A row that cannot become a dataset; ``sid`` is None where even that is unknown."""

    sid: str | None
    origin: str
    reason: str


@runtime_checkable
class Source(Protocol):
    #: Human-readable name: the mapping file and database URL with any password removed.
    name: str
    #: Classification rules from the mapping (may be empty).
    rules: tuple[ClassifyRule, ...]

    def datasets(
        self, only: Collection[str] | None = None
    ) -> Iterator[SourceDataset | DatasetProblem]:
        """Every dataset the source knows, public or not, in a stable order (by sid).

        ``only`` restricts to those sids (the source may filter in its query). Raises
        SourceError when the source as a whole fails; one bad row yields a DatasetProblem.
        """
        ...

    def close(self) -> None: ...
