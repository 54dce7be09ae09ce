"""OME-Zarr pyramids in a dataset: folder entries of its record, and the one etdb makes.

A pyramid is a folder ``<name>.ome.zarr`` (:mod:`etdb.mrc.pyramid`): thousands of chunk files
that only make sense together. A record therefore lists it as ONE ``storage.files`` entry, a
*folder entry* (the only kind of entry that is a folder)::

    {"fname": "<sid>.ome.zarr", "fsize": <total bytes of its files>,
     "type": "preview", "subtype": "zarr", ...}

whether etdb generated it from the reconstruction (into the publish media area, overlaid like
the key movie: ``etdb.publish.overlay``) or the lab keeps its own in the dataset folder. Its
content is at ``/ipfs/<storage.location>/<fname>/``. Zarr v2 keeps its metadata in dot files
(``.zgroup``, ``.zattrs``, ``.zarray``): inside a folder entry hidden names are data, so the
importer is told to keep them there (:data:`FOLDER_SUFFIXES`, ``Importer(hidden_in=...)``), and
the sizes and the content fingerprint count them as the importer does.
"""

from __future__ import annotations

import glob
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

from etdb.mrc.errors import MrcError
from etdb.mrc.ngff import PYRAMID_SUFFIX
from etdb.publish.media import MediaError

__all__ = [
    "FOLDER_SUFFIXES",
    "entry_size",
    "is_folder_entry",
    "make_pyramid",
    "pyramid_name",
    "tree_listing",
]

#: Names of folders listed as one entry, whose hidden names are imported (zarr's dot files).
FOLDER_SUFFIXES = (PYRAMID_SUFFIX,)


def is_folder_entry(name: str) -> bool:
    """Whether a folder so named is one ``storage.files`` entry (not walked file by file)."""
    return name.endswith(FOLDER_SUFFIXES)


def pyramid_name(sid: str) -> str:
    """The generated pyramid's name in the dataset: ``<sid>.ome.zarr``."""
    return f"{sid}{PYRAMID_SUFFIX}"


def tree_listing(folder: Path) -> Iterator[tuple[str, int, int]]:
    """(relative path, size, mtime_ns) of every regular file under a folder entry, hidden names
    included, symlinks not followed (the importer stores them as links: no file bytes)."""
    stack = [(folder, "")]
    while stack:
        path, rel = stack.pop()
        with os.scandir(path) as it:
            for entry in it:
                sub = f"{rel}/{entry.name}" if rel else entry.name
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    stack.append((Path(entry.path), sub))
                elif stat.S_ISREG(st.st_mode):
                    yield sub, st.st_size, st.st_mtime_ns


def entry_size(path: Path) -> int:
    """A listed entry's ``fsize``: a file's size, or the total of a folder entry's files (what
    the importer reads: its folder's filesize)."""
    if path.is_dir():
        return sum(size for _, size, _ in tree_listing(path))
    return path.stat().st_size


def make_pyramid(reconstruction: Path, out: Path) -> Path:
    """Build the pyramid of ``reconstruction`` at ``out`` (atomically: a crash leaves no folder
    under that name, and the next run builds it again); MediaError if it cannot be made."""
    from etdb.mrc.pyramid import build_pyramid  # zarr is imported only when one is built

    out.parent.mkdir(parents=True, exist_ok=True)
    # What a killed build left beside it (build_pyramid's ".<name>.*.tmp"/".old" folders): the
    # journal's lock makes this run the only one building this dataset's media.
    name = glob.escape(out.name)
    for stale in (*out.parent.glob(f".{name}.*.tmp"), *out.parent.glob(f".{name}.*.old")):
        shutil.rmtree(stale, ignore_errors=True)
    try:
        return build_pyramid(reconstruction, out).path
    except (MrcError, OSError, ValueError) as exc:
        raise MediaError(f"{out.name}: cannot build it from {reconstruction}: {exc}") from exc
