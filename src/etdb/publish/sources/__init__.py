"""Where ``etdb publish`` finds datasets: a lab database through a mapping file, or a folder.

:func:`open_source` turns what the user typed into a :class:`~etdb.publish.source.Source`:

- a mapping file (``lab.toml``) or the name of a packaged one (``caltech``) -> :class:`SqlSource`;
- a folder of dataset folders, or a ``catalog.csv``/``catalog.yaml`` -> :class:`FolderSource`.
"""

from __future__ import annotations

from pathlib import Path

from etdb.publish.source import Source, SourceError
from etdb.publish.sources.folder import FolderSource
from etdb.publish.sources.mapping import load_mapping, packaged_mapping, packaged_mappings
from etdb.publish.sources.sql import SqlSource

__all__ = ["FolderSource", "SqlSource", "open_source", "packaged_mappings"]


def open_source(spec: str, *, base: Path | None = None, url: str | None = None) -> Source:
    """The source ``spec`` names.

    ``spec``: a mapping file, a packaged mapping name, a folder or a catalog file. ``url``
    replaces the mapping's database URL. ``base`` is where the dataset folders are: it replaces
    the mapping's ``datasets.root`` (dataset folders of a folder source are found in it already).
    """
    path = Path(spec)
    if path.is_dir() or (path.is_file() and path.suffix.lower() in (".csv", ".yaml", ".yml")):
        if url is not None:
            raise SourceError(f"{spec}: a folder source has no database URL to replace")
        return FolderSource(path)
    if path.is_file():
        return SqlSource(load_mapping(path), url=url, base=base)
    if path.suffix == "" and "/" not in spec and "\\" not in spec:
        return SqlSource(packaged_mapping(spec), url=url, base=base)
    raise SourceError(
        f"{spec}: no such mapping file or folder "
        f"(packaged mappings: {', '.join(packaged_mappings()) or 'none'})"
    )
