"""Rows of a lab database's queries made into datasets: fields, flags, folder, files, warnings.

:class:`DatasetBuilder` knows nothing of connections: :class:`~etdb.publish.sources.sql.SqlSource`
reads the rows (one dataset row and its file rows, as plain Python values keyed by mapping
names) and hands them here. A value that would publish something false makes the dataset a
:class:`DatasetProblem`; a value that can simply be left out (a tilt step of ``-``, a file row
without a file name) is left out and named in the dataset's warnings.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from etdb.publish.source import KEY_MEDIA_FLAGS, DatasetProblem, SourceDataset, SourceFile
from etdb.publish.sources.coerce import (
    FLOAT_FIELDS,
    CoerceError,
    coerce_field,
    coerce_key_media_flag,
    coerce_public,
    dataset_path,
)
from etdb.publish.sources.mapping import LoadedMapping, Template

__all__ = ["DatasetBuilder"]


class DatasetBuilder:
    """Turns one dataset row and its file rows into a :class:`SourceDataset` (or a problem)."""

    def __init__(self, mapping: LoadedMapping, root: Path) -> None:
        self.mapping = mapping
        spec = mapping.spec.datasets
        self._root = root
        files = mapping.spec.files
        self._roots = {n: root / f for n, f in (files.roots if files else {}).items()}
        self._folder = Template(spec.folder)
        self._origin = Template(spec.origin) if spec.origin else None
        self._templates = {
            k: Template(f.template) for k, f in mapping.spec.fields.items() if f.template
        }

    def template_names(self) -> set[str]:
        """The dataset columns the folder, origin and field templates use."""
        names: set[str] = set()
        for tpl in [self._folder, self._origin, *self._templates.values()]:
            names.update(tpl.names if tpl else ())
        return names

    def dataset(
        self, sid: str, row: Mapping[str, Any], file_rows: list[dict[str, Any]] | None
    ) -> SourceDataset | DatasetProblem:
        origin = (self._origin.render(dict(row)) if self._origin else None) or f"sid={sid}"
        problems: list[str] = []
        warnings: list[str] = []
        metadata: dict[str, Any] = {"sid": sid}
        for key, spec in self.mapping.spec.fields.items():
            if spec.column is not None:
                raw, via = row[spec.column], f" (column {spec.column})"
            elif spec.template is not None:
                raw, via = self._templates[key].render(dict(row)), f" (template {spec.template!r})"
            else:
                raw, via = spec.value, ""
            try:
                value = coerce_field(key, raw)
            except CoerceError as exc:
                if key in FLOAT_FIELDS and isinstance(raw, str) and spec.column is not None:
                    # Free text without a number ("-", "n/a"): nothing false is published.
                    warnings.append(f"{origin}: column {spec.column} {raw!r}: {key} left out")
                else:
                    problems.append(f"{exc}{via}")
                continue
            if value is not None:
                metadata[key] = value
        public = True
        if "public" in row:
            try:
                public = coerce_public(row["public"])
            except CoerceError as exc:
                problems.append(f"{exc} (column {self.mapping.spec.datasets.public})")
        key_media = self._key_media(row, problems)
        folder = self._dataset_folder(row, problems)
        files = None
        if self.mapping.spec.files is not None:
            files = self._files(file_rows or [], problems, warnings)
        if problems or folder is None:
            return DatasetProblem(sid, origin, "; ".join(problems))
        files_spec = self.mapping.spec.files
        return SourceDataset(
            sid,
            metadata,
            folder,
            public,
            files,
            origin,
            key_media=key_media,
            files_only=files_spec is not None and files_spec.authority == "database",
            warnings=tuple(warnings),
        )

    def _key_media(self, row: Mapping[str, Any], problems: list[str]) -> dict[str, bool]:
        """The lab's key image / key movie flags the mapping names columns for."""
        flags: dict[str, bool] = {}
        for flag in KEY_MEDIA_FLAGS:
            column = getattr(self.mapping.spec.datasets, flag)
            if column is not None:
                try:
                    flags[flag] = coerce_key_media_flag(flag, row[flag])
                except CoerceError as exc:
                    problems.append(f"{exc} (column {column})")
        return flags

    def _dataset_folder(self, row: Mapping[str, Any], problems: list[str]) -> Path | None:
        text = self._folder.render(dict(row))
        if text is None:
            needs = ", ".join(n for n in self._folder.names if row.get(n) is None)
            problems.append(f"folder: {self._folder.text!r} needs {needs}, which is NULL")
            return None
        if ".." in PurePosixPath(text).parts or "\\" in text:
            problems.append(f"folder {text!r}: '..' and backslashes are not allowed")
            return None
        return self._root / text  # an absolute template replaces the root

    def _files(
        self, rows: list[dict[str, Any]], problems: list[str], warnings: list[str]
    ) -> tuple[SourceFile, ...]:
        spec = self.mapping.spec.files
        assert spec is not None
        kind_tpl = Template(spec.kind)
        origin_tpl = Template(spec.origin) if spec.origin else None
        by_path: dict[str, SourceFile] = {}
        for row in rows:
            where = (origin_tpl.render(row) if origin_tpl else None) or "a files row"
            kind = kind_tpl.render(row)
            entry = spec.kinds.get(kind) if kind is not None else None
            if entry is None:
                known = ", ".join(spec.kinds)
                problems.append(f"{where}: unknown file kind {kind!r} (files.kinds has {known})")
                continue
            templates = [Template(entry.path), Template(entry.location or entry.path)]
            blank = [n for t in templates for n in t.names if _blank(row.get(n))]
            if blank:  # a row without a file name names no file: skip it, say so
                cols = ", ".join(dict.fromkeys(blank))
                warnings.append(f"{where}: column {cols} is NULL or blank: row skipped")
                continue
            try:
                path = dataset_path(templates[0].render(row) or "")
                location = None
                if entry.root is not None:
                    location = dataset_path(templates[1].render(row) or "", what="location")
            except CoerceError as exc:
                problems.append(f"{where}: {exc}")
                continue
            file = SourceFile(
                path,
                entry.subtype,
                notes=_text_or_none(row, spec.notes),
                display_name=_text_or_none(row, spec.display_name),
                software=_text_or_none(row, spec.software),
                root=self._roots[entry.root] if entry.root is not None else None,
                location=location,
            )
            if by_path.setdefault(path, file) != file:
                problems.append(f"{where}: {path!r} is listed twice, differently")
        return tuple(sorted(by_path.values(), key=lambda f: f.path))


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _text_or_none(row: Mapping[str, Any], column: str | None) -> str | None:
    value = row.get(column) if column else None
    return None if value is None else str(value)
