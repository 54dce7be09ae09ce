"""Publishing ONE dataset folder: describe its files, add it, sign its record, put it on a ledger.

A dataset folder uses go-etdb's layout (reference §1), so records look like ETDB-Caltech's::

    rawdata/<name>.mrc           tomogram / tiltSeries      (software: acquisition)
    3dimage_<n>/<name>_full.rec  tomogram / reconstruction  (software: processing)
    AutoCaps/<name>.jpg          tomogram / snapshot
    keyimg_<sid>.jpg             tomogram / keyimg          image/jpeg
    keyimg_<sid>_s.jpg           image / thumbnail          image/jpeg
    keymov_<sid>.mp4             tomogram / keymov          video/mp4
    keymov_<sid>.flv             tomogram / keymov          video/x-flv  (legacy; see overlay)
    <sid>.ome.zarr/              preview / zarr             (a folder entry; see pyramids)

:func:`publish_dataset` runs the whole path a lab takes — and ``etdb demo`` takes the very same
one: add the folder to the blockstore, **sync the blocks**, build and validate the record, sign
it, publish it (multipart where the ledger's payload limit needs it). The sync comes first
because a record must never point at content that is not durably stored. The later publishing
pipeline wraps this with its journal (``sent``/``on_sent`` resume a half-sent multipart).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from typing import Any

from etdb.content.blockstore import Blockstore
from etdb.content.cid import CID
from etdb.content.profiles import Profile
from etdb.content.unixfs import Importer, ImportResult
from etdb.ledger.base import Ledger, TxRef
from etdb.ledger.messages import publish_message
from etdb.publish.pyramids import FOLDER_SUFFIXES, entry_size, is_folder_entry
from etdb.publish.source import ClassifyRule, SourceFile
from etdb.record import Artifact, Details, PrivateKey, RecordError, encode_publish, sign_artifact
from etdb.record.limits import DEFAULT_LIMITS, RecordLimits
from etdb.record.subtypes import PYRAMID_SUBTYPE, PYRAMID_TYPE, SUBTYPES, file_type
from etdb.record.wire import verify_publish

__all__ = [
    "DEFAULT_TAGS",
    "DatasetError",
    "PublishedDataset",
    "add_listed",
    "build_artifact",
    "classify",
    "describe_files",
    "publish_dataset",
    "regular_files",
]

DEFAULT_TAGS = ("etdb", "tomogram", "electron.tomography")
DEFAULT_DESCRIPTION = "Published with etdb"

_TILT_SERIES = {".mrc", ".st", ".mrcs"}
_VOLUMES = {".rec", ".mrc"}
_IMAGES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".gif": "image/gif"}
_MOVIES = {".mp4": "video/mp4", ".flv": "video/x-flv", ".webm": "video/webm"}
_SIDECARS = {".rawtlt", ".tlt", ".mdoc", ".xf", ".xtilt", ".fid", ".com", ".log"}

# Where each subtype goes in the file list (the order etdb-react's download table uses).
_ORDER = list(SUBTYPES)
# Software is stored per file (files[].software), as go-etdb did; every other Details field is
# taken from the metadata as it is.
_PER_FILE = ("swAcquisition", "swReconstruction")
_DETAILS = tuple(name for name in Details.model_fields if name not in _PER_FILE)
_NOTES = (
    ("scopeNotes", "Scope notes"),
    ("speciesNotes", "Species notes"),
    ("tiltSeriesNotes", "Tilt series notes"),
)
_OTHER_KEYS = ("title", "description", "tags", "fileNotes", *_PER_FILE, *(k for k, _ in _NOTES))


class DatasetError(ValueError):
    """The folder or its metadata cannot be published as it is; the message says why."""


@dataclass(frozen=True)
class PublishedDataset:
    cid: CID  # storage.location
    txids: tuple[str, ...]  # part 0 first; txids[0] is the record's id
    artifact: Artifact  # as signed and published
    flo_data: str  # the OIP message that went to the ledger (before any multipart split)


# -- files ------------------------------------------------------------------------------------


def classify(fname: str, sid: str | None = None) -> tuple[str, str, str | None]:
    """``(type, subtype, cType)`` of a file from its path inside the dataset folder."""
    path = PurePosixPath(fname)
    name, ext = path.name, path.suffix.lower()
    top = path.parts[0] if len(path.parts) > 1 else ""
    if is_folder_entry(name):
        return PYRAMID_TYPE, PYRAMID_SUBTYPE, None
    if ext in _SIDECARS:
        return "tomogram", "other", None
    if not top:
        stem = path.stem
        if name.startswith("keymov_") and ext in _MOVIES:
            return "tomogram", "keymov", _MOVIES[ext]
        if name.startswith("keyimg_") and ext in _IMAGES:
            # keyimg_<sid>.jpg is the key image even when the sid itself ends in "_s".
            if stem.endswith("_s") and stem != f"keyimg_{sid}":
                return "image", "thumbnail", _IMAGES[ext]
            return "tomogram", "keyimg", _IMAGES[ext]
    if top == "rawdata" and ext in _TILT_SERIES:
        return "tomogram", "tiltSeries", None
    if top.startswith("3dimage_") and ext in _VOLUMES:
        return "tomogram", "reconstruction", None
    if top == "AutoCaps" or top.startswith("file_"):
        if ext in _IMAGES:
            return "tomogram", "snapshot", _IMAGES[ext]
        if ext in _MOVIES:
            return "tomogram", "preview", _MOVIES[ext]
    return "tomogram", "other", _IMAGES.get(ext) or _MOVIES.get(ext)


def _typed(fname: str, subtype: str) -> tuple[str, str, str | None]:
    """``(type, subtype, cType)`` for a subtype chosen by the source: thumbnails are images,
    pyramids previews, everything else a tomogram part; cType from the extension as
    ``classify`` gives it."""
    if subtype not in SUBTYPES:
        raise DatasetError(
            f"{fname}: unknown file subtype {subtype!r} (one of {', '.join(SUBTYPES)})"
        )
    ext = PurePosixPath(fname).suffix.lower()
    return file_type(subtype), subtype, _IMAGES.get(ext) or _MOVIES.get(ext)


def regular_files(folder: Path) -> list[str]:
    """Regular files under ``folder`` as "/"-separated relative paths, skipping what the
    importer skips (names starting with ".") and symlinks (stored as links, not files); a
    folder entry (``*.ome.zarr``, ``etdb.publish.pyramids``) is one path, not walked."""
    found: list[str] = []
    for root, dirs, files in os.walk(folder):
        rel_root = Path(root).relative_to(folder)
        entries = [d for d in dirs if is_folder_entry(d) and not (Path(root) / d).is_symlink()]
        found.extend((rel_root / d).as_posix() for d in entries if not d.startswith("."))
        dirs[:] = [d for d in dirs if not d.startswith(".") and not is_folder_entry(d)]
        for name in files:
            p = Path(root) / name
            if not name.startswith(".") and not p.is_symlink() and p.is_file():
                found.append((rel_root / name).as_posix())
    return found


def describe_files(
    folder: str | os.PathLike[str],
    sid: str,
    *,
    acquisition_software: str | None = None,
    processing_software: str | None = None,
    files: Sequence[SourceFile] | None = None,
    rules: Sequence[ClassifyRule] = (),
    overlay: Mapping[str, Path] | None = None,
) -> list[dict[str, Any]]:
    """The ``storage.files`` entries for every file in ``folder``, sorted the way ETDB lists them.

    Every regular file is listed (plus the ``overlay`` files, top-level, as the importer adds
    them); a folder entry (a pyramid) is listed once, its ``fsize`` the total of its files.
    A file's subtype comes from the source's own ``files`` entry if it names one, else from
    the first matching ``rules`` entry, else from the go-etdb layout (:func:`classify`).
    A source file also gives ``fNotes``, ``dname`` and ``software``; one that is not in the
    folder is an error (the source and the disk disagree: publishing would lose it).
    ``software`` otherwise goes on tilt series (acquisition; only without a comma, as go-etdb
    did) and reconstructions (processing).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder")
    listed = {f.path: f for f in files or ()}
    sizes = {fname: entry_size(folder / fname) for fname in regular_files(folder)}
    for name, source in (overlay or {}).items():
        if name in sizes:
            raise DatasetError(f"{folder}: generated {name} would replace the folder's own file")
        sizes[name] = entry_size(Path(source))
    missing = sorted(set(listed) - set(sizes))
    if missing:
        raise DatasetError(
            f"{folder}: files the source lists are not in the folder: {', '.join(missing)}"
        )
    entries: list[dict[str, Any]] = []
    for fname, fsize in sizes.items():
        known = listed.get(fname)
        rule = next((r for r in rules if fnmatchcase(fname, r.pattern)), None)
        if known is not None and known.subtype:
            kind, subtype, ctype = _typed(fname, known.subtype)
        elif rule is not None:
            kind, subtype, ctype = _typed(fname, rule.subtype)
        else:
            kind, subtype, ctype = classify(fname, sid)
        entry: dict[str, Any] = {}
        if known is not None and known.software:
            entry["software"] = known.software
        elif subtype == "tiltSeries" and acquisition_software and "," not in acquisition_software:
            entry["software"] = acquisition_software
        elif subtype == "reconstruction" and processing_software:
            entry["software"] = processing_software
        entry |= {
            "dname": (known.display_name if known else None) or PurePosixPath(fname).name,
            "fname": fname,
            "fsize": fsize,
            "type": kind,
            "subtype": subtype,
        }
        if ctype:
            entry["cType"] = ctype
        if known is not None and known.notes:
            entry["fNotes"] = known.notes
        entries.append(entry)
    entries.sort(key=lambda e: (_ORDER.index(e["subtype"]), e["fname"]))
    return entries


# -- the record -------------------------------------------------------------------------------


def _unix_date(value: Any) -> int:
    if isinstance(value, bool):
        raise DatasetError(f"date: expected a date, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, datetime):
        return int((value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp())
    if isinstance(value, date):
        return int(datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp())
    if isinstance(value, str):
        try:
            return _unix_date(datetime.fromisoformat(value))
        except ValueError:
            pass
    raise DatasetError(f"date: expected unix seconds or an ISO date, got {value!r}")


def _art_notes(meta: Mapping[str, Any]) -> str | None:
    """go-etdb's artNotes: "Scope notes: …\\n" "Species notes: …\\n" "Tilt series notes: …\\n"."""
    if meta.get("artNotes"):
        return str(meta["artNotes"])
    parts = [f"{label}: {meta[key]}\n" for key, label in _NOTES if meta.get(key)]
    return "".join(parts) or None


def _tags(value: Any) -> str:
    """``info.tags``: the source's tags in its own order when they name every default tag
    (go-etdb's ``etdb,jensen.lab,tomogram,electron.tomography``), else the defaults first."""
    extra = [value] if isinstance(value, str) else list(value or [])
    tags = list(dict.fromkeys(t.strip() for item in extra for t in str(item).split(",")))
    tags = [t for t in tags if t]
    if set(DEFAULT_TAGS) <= set(tags):
        return ",".join(tags)
    return ",".join(dict.fromkeys([*DEFAULT_TAGS, *tags]))


def build_artifact(
    metadata: Mapping[str, Any],
    location: str,
    files: Sequence[Mapping[str, Any]],
    *,
    limits: RecordLimits = DEFAULT_LIMITS,
) -> Artifact:
    """An unsigned Research-Tomogram artifact in go-etdb's shape.

    ``metadata`` holds Table 1's ``details`` keys (``date`` may be unix seconds, an ISO date or
    a ``date``), plus ``title`` (default: the species), ``description``, extra ``tags``,
    ``scopeNotes``/``speciesNotes``/``tiltSeriesNotes`` (joined into ``artNotes`` as go-etdb
    did), ``swAcquisition``/``swReconstruction`` (per-file ``software`` where the file has
    none) and ``fileNotes`` ({fname: note} -> ``fNotes``). Unknown keys are refused: a typo
    must not silently drop a field from a permanent record. A record over ``limits`` (with
    room for the signature) is refused here, before anything is signed or sent: indexers
    would reject it.
    """
    unknown = sorted(set(metadata) - set(_DETAILS) - set(_OTHER_KEYS))
    if unknown:
        raise DatasetError(f"unknown metadata keys: {', '.join(unknown)}")
    try:
        CID.decode(location)
    except ValueError as exc:
        raise DatasetError(f"location {location!r} is not a CID: {exc}") from exc
    details = {k: metadata[k] for k in _DETAILS if metadata.get(k) not in (None, "")}
    if "date" not in details:
        raise DatasetError("metadata needs the acquisition date")
    details["date"] = _unix_date(details["date"])
    notes = _art_notes(metadata)
    if notes:
        details["artNotes"] = notes
    if not details.get("sid"):
        raise DatasetError("metadata needs the lab's tilt-series id (sid)")
    if details.get("tiltSingleDual", 1) not in (1, 2):
        raise DatasetError("tiltSingleDual must be 1 (single axis) or 2 (dual axis)")
    notes_by_file = dict(metadata.get("fileNotes") or {})
    software = {
        "tiltSeries": metadata.get("swAcquisition"),
        "reconstruction": metadata.get("swReconstruction"),
    }
    entries = []
    for f in files:
        entry = dict(f)
        sw = software.get(entry.get("subtype", ""))
        if sw and not entry.get("software") and "," not in str(sw):
            entry = {"software": sw, **entry}
        if entry.get("fname") in notes_by_file:
            entry["fNotes"] = str(notes_by_file.pop(entry["fname"]))
        entries.append(entry)
    if notes_by_file:
        raise DatasetError(f"fileNotes for files not in the dataset: {', '.join(notes_by_file)}")
    wire = {
        "type": "research",
        "subtype": "tomogram",
        "info": {
            "title": metadata.get("title") or str(details.get("speciesName", "")).strip(),
            "tags": _tags(metadata.get("tags")),
            "description": metadata.get("description") or DEFAULT_DESCRIPTION,
        },
        "details": details,
        "storage": {"network": "ipfs", "location": location, "files": entries},
    }
    try:
        artifact = Artifact.from_wire(wire).require_complete(draft=True)
    except RecordError as exc:
        raise DatasetError(f"invalid record: {exc}") from exc
    over = limits.problem(artifact.to_wire(), draft=True)
    if over is not None:
        raise DatasetError(f"the record is over the record limits: {over}")
    return artifact


# -- publishing -------------------------------------------------------------------------------


def publish_dataset(
    folder: str | os.PathLike[str],
    metadata: Mapping[str, Any],
    *,
    key: PrivateKey,
    ledger: Ledger,
    blockstore: Blockstore,
    profile: Profile | str,
    timestamp: int | None = None,
    sent: Sequence[TxRef] = (),
    on_sent: Callable[[int, TxRef], None] | None = None,
    source_files: Sequence[SourceFile] | None = None,
    rules: Sequence[ClassifyRule] = (),
    overlay: Mapping[str, Path] | None = None,
) -> PublishedDataset:
    """Add ``folder`` (with ``overlay`` files), then sign and publish its record; see the module
    docstring. ``source_files`` and ``rules`` classify files as in :func:`describe_files`."""
    folder = Path(folder)
    sid = str(metadata.get("sid") or "")
    files = describe_files(folder, sid, files=source_files, rules=rules, overlay=overlay)
    added = add_listed(folder, files, blockstore, profile, overlay=overlay)
    blockstore.sync()  # durable BEFORE anything on the ledger points at it

    artifact = build_artifact(metadata, str(added.cid), files)
    signed = sign_artifact(artifact, key, timestamp=timestamp or int(time.time()), meta=True)
    flo_data = encode_publish(signed)
    check = verify_publish(signed)
    if not check.valid:  # cannot happen unless signing is broken; never publish it if so
        raise DatasetError(f"signed record does not verify: {check.reason}")
    refs = publish_message(ledger, flo_data, key, sent=sent, on_sent=on_sent)
    return PublishedDataset(added.cid, tuple(r.txid for r in refs), signed, flo_data)


def add_listed(
    folder: Path,
    files: Sequence[Mapping[str, Any]],
    blockstore: Blockstore,
    profile: Profile | str,
    *,
    overlay: Mapping[str, Path] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Add ``folder`` (plus ``overlay``) to ``blockstore`` and check that what was read is what
    ``files`` (from :func:`describe_files`) lists; DatasetError if the folder changed. The
    caller syncs the blockstore before anything points at the result."""
    imported: dict[str, int] = {}

    def seen(rel: str, result: ImportResult) -> None:
        imported[rel] = result.filesize

    importer = Importer(
        profile, blockstore, on_entry=seen, on_progress=on_progress, hidden_in=FOLDER_SUFFIXES
    )
    try:
        added = importer.add_path(folder, overlay=overlay)
    except FileNotFoundError as exc:
        raise DatasetError(f"{folder} changed while it was being added: {exc}") from exc
    # The record lists what was stat'ed; the DAG holds what was read. They must agree, or the
    # folder changed underneath us and the record would describe other bytes.
    changed = [f["fname"] for f in files if imported.get(f["fname"]) != f["fsize"]]
    if changed or added.filesize != sum(f["fsize"] for f in files):
        raise DatasetError(f"{folder} changed while it was being added: {changed or 'sizes'}")
    return added
