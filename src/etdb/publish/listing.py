"""The files a dataset publishes when its source is the authority for them (``files_only``).

go-etdb published exactly the files the lab's database lists. Such a dataset is imported as an
empty folder with every listed file *overlaid* at its published path (``Importer.add_path``'s
overlay), so a file kept outside the dataset folder (a ``files.roots`` folder such as
``<data root>/Caps``) lands where the record says, and a file only on disk is not published
but reported. The go-etdb key media in the folder (``keyimg_<sid>.jpg``, its ``_s``
thumbnail, ``keymov_<sid>.*``) are taken beside the listed files, as go-etdb took them by the
keyimg/keymov flags: unless a flag says the lab has none (``SourceDataset.key_media``), then
they are stale, reported like any unlisted file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from etdb.publish.dataset import DatasetError, classify, regular_files
from etdb.publish.overlay import MEDIA_SUBTYPES, denied_subtypes
from etdb.publish.source import SourceDataset

__all__ = ["Listing", "dataset_listing"]

_SHOWN = 10  # unlisted files named in a warning; the rest are counted


@dataclass(frozen=True)
class Listing:
    files: dict[str, Path]  # published path -> the file on disk
    warnings: tuple[str, ...]  # files on disk that are not published


def _inside(base: Path, rel: str, what: str) -> Path:
    """``base/rel`` if it is a regular file that stays in ``base`` (no symlink out of it)."""
    path = base / rel
    real_base = base.resolve()
    real = path.resolve()
    if not real.is_relative_to(real_base):
        raise DatasetError(f"{what} {rel!r}: {path} leads out of {base} (a symlink)")
    if not real.is_file():
        raise DatasetError(f"{what} {rel!r}: {path} is not a file (listed by the source)")
    return real


def dataset_listing(ds: SourceDataset) -> Listing:
    """What ``ds`` publishes from disk; DatasetError for a listed file that is missing or
    leads out of its folder (publishing without it would say something false)."""
    files: dict[str, Path] = {}
    for f in ds.files or ():
        if f.root is not None:
            files[f.path] = _inside(f.root, f.location or f.path, "file")
        else:
            files[f.path] = _inside(ds.folder, f.path, "file")
    denied = denied_subtypes(ds.key_media)
    on_disk = sorted(regular_files(ds.folder))
    for name in on_disk:
        subtype = classify(name, ds.sid)[1]
        taken = subtype in MEDIA_SUBTYPES and subtype not in denied
        if "/" not in name and name not in files and taken:
            files[name] = _inside(ds.folder, name, "key media")
    unlisted = [n for n in on_disk if n not in files]
    warnings: tuple[str, ...] = ()
    if unlisted:
        shown = ", ".join(unlisted[:_SHOWN]) + (" …" if len(unlisted) > _SHOWN else "")
        warnings = (
            f"{ds.folder}: {len(unlisted)} files on disk are not in the source's file list "
            f"and are not published: {shown}",
        )
    return Listing(files, warnings)
