"""A folder of dataset folders as a source, for labs without a database.

Two layouts (``docs/publishing.md``, "Sources and mapping files"):

- every dataset folder holds a ``dataset.toml`` with its metadata (``build_artifact`` keys,
  plus optional ``sid`` (default: the folder's name), ``public`` (default true) and a
  ``[[files]]`` list of ``path``/``subtype``/``notes``/``display_name``/``software``);
- or one ``catalog.csv`` / ``catalog.yaml`` (``.yml``) at the top, one row or entry per dataset;
  its ``folder`` column is the dataset folder, relative to the catalog.

Values get the same coercions as database columns (``etdb.publish.sources.coerce``). A bad
file, row or entry yields a :class:`DatasetProblem` naming the file and line; the rest goes on.
"""

from __future__ import annotations

import csv
import difflib
import tomllib
from collections import Counter
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from etdb.publish.source import (
    ClassifyRule,
    DatasetProblem,
    SourceDataset,
    SourceError,
    SourceFile,
)
from etdb.publish.sources.coerce import (
    METADATA_KEYS,
    CoerceError,
    coerce_field,
    coerce_public,
    dataset_path,
    describe,
)
from etdb.record.subtypes import SUBTYPES

__all__ = ["CATALOG_NAMES", "DATASET_FILE", "FolderSource"]

DATASET_FILE = "dataset.toml"
CATALOG_NAMES = ("catalog.csv", "catalog.yaml", "catalog.yml")
_FILE_KEYS = ("path", "subtype", "notes", "display_name", "software")
_KNOWN = METADATA_KEYS | {"public", "files"}


class FolderSource:
    """Datasets from ``root``: dataset folders with ``dataset.toml``, or a catalog file."""

    def __init__(self, root: str | Path) -> None:
        root = Path(root).resolve()
        if root.is_file():
            self.catalog: Path | None = root
        elif root.is_dir():
            found = [root / n for n in CATALOG_NAMES if (root / n).is_file()]
            if len(found) > 1:
                names = " and ".join(p.name for p in found)
                raise SourceError(f"{root}: has {names}; keep one catalog")
            self.catalog = found[0] if found else None
        else:
            raise SourceError(f"{root}: no such folder or catalog file")
        if self.catalog is not None and self.catalog.suffix.lower() not in (
            ".csv",
            ".yaml",
            ".yml",
        ):
            raise SourceError(f"{self.catalog}: a catalog is a .csv, .yaml or .yml file")
        self.root = self.catalog.parent if self.catalog else root
        self.name = str(self.catalog or self.root)
        self.rules: tuple[ClassifyRule, ...] = ()

    def close(self) -> None:
        pass

    def datasets(
        self, only: Collection[str] | None = None
    ) -> Iterator[SourceDataset | DatasetProblem]:
        if self.catalog is None:
            found = list(self._dataset_folders())
        elif self.catalog.suffix.lower() == ".csv":
            found = list(self._csv_rows(self.catalog))
        else:
            found = list(self._yaml_entries(self.catalog))
        counts = Counter(item.sid for item in found if isinstance(item, SourceDataset))
        wanted = None if only is None else {str(s) for s in only}
        found.sort(key=lambda item: (item.sid or "", item.origin))
        for item in found:
            if wanted is not None and item.sid not in wanted:
                continue
            if isinstance(item, SourceDataset) and counts[item.sid] > 1:
                yield DatasetProblem(item.sid, item.origin, "another dataset has the same sid")
            else:
                yield item

    # -- layouts --------------------------------------------------------------------------

    def _dataset_folders(self) -> Iterator[SourceDataset | DatasetProblem]:
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir()):
            if folder.name.startswith("."):
                continue
            path = folder / DATASET_FILE
            if not path.is_file():
                yield DatasetProblem(folder.name, str(folder), f"no {DATASET_FILE}")
                continue
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
                yield DatasetProblem(folder.name, str(path), f"not valid TOML: {exc}")
                continue
            yield _dataset(data, folder, str(path), default_sid=folder.name)

    def _csv_rows(self, path: Path) -> Iterator[SourceDataset | DatasetProblem]:
        try:
            with path.open(encoding="utf-8-sig", newline="") as f:
                reader = csv.DictReader(f)
                header = [h.strip() for h in reader.fieldnames or []]
                _check_header(header, path)
                reader.fieldnames = header
                for row in reader:
                    origin = f"{path}, line {reader.line_num}"
                    if None in row:
                        yield DatasetProblem(
                            _sid_hint(row), origin, f"{len(row[None])} more cells than the header"
                        )
                        continue
                    # An empty cell is no value, whatever the column.
                    data = {k: v for k, v in row.items() if v not in (None, "")}
                    yield self._catalog_entry(data, origin)
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise SourceError(f"{path}: cannot read the catalog: {exc}") from None

    def _yaml_entries(self, path: Path) -> Iterator[SourceDataset | DatasetProblem]:
        try:
            text = path.read_text(encoding="utf-8")
            node = yaml.compose(text, Loader=yaml.SafeLoader)
            data = yaml.safe_load(text)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise SourceError(f"{path}: cannot read the catalog: {exc}") from None
        if isinstance(data, Mapping) and set(data) == {"datasets"}:
            data = data["datasets"]
            node = next(v for k, v in node.value if k.value == "datasets")  # type: ignore[union-attr]
        if data is None:
            return
        if not isinstance(data, list):
            raise SourceError(f"{path}: expected a list of datasets (or datasets: [...])")
        for entry, item_node in zip(data, node.value, strict=True):  # type: ignore[union-attr]
            origin = f"{path}, line {item_node.start_mark.line + 1}"
            if not isinstance(entry, Mapping):
                yield DatasetProblem(None, origin, f"expected a mapping, got {describe(entry)}")
                continue
            yield self._catalog_entry(dict(entry), origin)

    def _catalog_entry(self, data: dict[str, Any], origin: str) -> SourceDataset | DatasetProblem:
        where = data.pop("folder", None)
        try:
            if where is None:
                raise CoerceError("folder: missing (the dataset folder, relative to the catalog)")
            rel = dataset_path(str(where), what="folder")
        except CoerceError as exc:
            return DatasetProblem(_sid_hint(data), origin, str(exc))
        folder = self.root / rel
        return _dataset(data, folder, origin, default_sid=folder.name)


def _check_header(header: list[str], path: Path) -> None:
    if "folder" not in header:
        raise SourceError(f"{path}: the header has no 'folder' column")
    for name in header:
        if name == "files" or name not in _KNOWN | {"folder"}:
            raise SourceError(f"{path}: column {name!r}: {_unknown_key(name)}")
    dupes = [h for h, n in Counter(header).items() if n > 1]
    if dupes:
        raise SourceError(f"{path}: column {dupes[0]!r} appears twice")


def _unknown_key(key: str) -> str:
    if key == "files":
        return "a CSV catalog cannot list files; use dataset.toml or catalog.yaml"
    close = difflib.get_close_matches(key, sorted(_KNOWN), n=1)
    return "not a metadata key" + (f" (did you mean {close[0]}?)" if close else "")


def _sid_hint(data: Mapping[Any, Any]) -> str | None:
    sid = data.get("sid")
    return str(sid) if isinstance(sid, str | int) else None


def _dataset(
    data: Mapping[str, Any], folder: Path, origin: str, *, default_sid: str
) -> SourceDataset | DatasetProblem:
    """One dataset from a TOML table, CSV row or YAML entry (keys as in build_artifact)."""
    problems: list[str] = []
    sid = data.get("sid", default_sid)
    if not isinstance(sid, str | int) or isinstance(sid, bool) or not str(sid).strip():
        problems.append(f"sid: {describe(sid)} is not an id")
    sid = str(sid)
    metadata: dict[str, Any] = {"sid": sid}
    public = True
    files: tuple[SourceFile, ...] | None = None
    for key, raw in data.items():
        try:
            if key == "sid":
                continue
            if key == "public":
                public = coerce_public(raw)
            elif key == "files":
                files = _files(raw)
            elif key in METADATA_KEYS:
                value = coerce_field(key, raw)
                if value is not None:
                    metadata[key] = value
            else:
                raise CoerceError(f"{key}: {_unknown_key(key)}")
        except CoerceError as exc:
            problems.append(str(exc))
    if problems:
        return DatasetProblem(sid, origin, "; ".join(problems))
    return SourceDataset(sid, metadata, folder, public, files, origin)


def _files(raw: Any) -> tuple[SourceFile, ...]:
    if not isinstance(raw, list):
        raise CoerceError(f"files: expected a list of tables, got {describe(raw)}")
    files: dict[str, SourceFile] = {}
    for i, entry in enumerate(raw, 1):
        where = f"files[{i}]"
        if not isinstance(entry, Mapping):
            raise CoerceError(f"{where}: expected a table, got {describe(entry)}")
        unknown = sorted(set(entry) - set(_FILE_KEYS))
        if unknown:
            raise CoerceError(f"{where}.{unknown[0]}: unknown key (keys: {', '.join(_FILE_KEYS)})")
        for key in _FILE_KEYS[1:]:
            if entry.get(key) is not None and not isinstance(entry[key], str):
                raise CoerceError(f"{where}.{key}: {describe(entry[key])} is not text")
        subtype = entry.get("subtype")
        if subtype is not None and subtype not in SUBTYPES:
            raise CoerceError(f"{where}.subtype: unknown subtype {subtype!r}")
        path = dataset_path(entry.get("path") or "", what=f"{where}.path")
        if path in files:
            raise CoerceError(f"{where}.path: {path!r} is listed twice")
        files[path] = SourceFile(
            path,
            subtype,
            notes=entry.get("notes"),
            display_name=entry.get("display_name"),
            software=entry.get("software"),
        )
    return tuple(sorted(files.values(), key=lambda f: f.path))
