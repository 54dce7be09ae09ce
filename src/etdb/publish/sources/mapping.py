"""Mapping files: how a lab's database becomes Research-Tomogram metadata (TOML).

A mapping file names the database, the SQL that lists datasets (one row each, public or not),
the SQL that lists their files, and how result columns fill record fields; see
``docs/publishing.md`` ("Sources and mapping files") and the packaged ``caltech.toml``. It is
parsed strictly: an unknown key is an error naming the key and the file, because a typo would
otherwise silently leave a field out of a permanent record.
"""

from __future__ import annotations

import difflib
import os
import string
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from etdb.publish.source import ClassifyRule, SourceError
from etdb.publish.sources.coerce import METADATA_KEYS, CoerceError, coerce_field, dataset_path
from etdb.record.subtypes import SUBTYPES

__all__ = [
    "DatabaseSpec",
    "DatasetsSpec",
    "FieldSpec",
    "FileKind",
    "FilesSpec",
    "LoadedMapping",
    "MappingFile",
    "Template",
    "load_mapping",
    "packaged_mapping",
    "packaged_mappings",
    "redact",
]


class Template:
    """``str.format`` text whose ``{placeholders}`` are result columns (``{sid}`` always is).

    Placeholders are plain names (``{id}``, ``{id:05d}``): attribute and index lookups would
    let a mapping file reach into Python objects.
    """

    def __init__(self, text: str) -> None:
        names: list[str] = []
        try:
            for _, name, _, _ in string.Formatter().parse(text):
                if name is None:
                    continue
                if not name or name.isdigit() or "." in name or "[" in name:
                    raise ValueError(f"placeholder {{{name}}} must be a column name")
                names.append(name)
        except ValueError as exc:
            raise ValueError(f"bad template {text!r}: {exc}") from None
        self.text = text
        self.names = tuple(dict.fromkeys(names))

    def render(self, values: dict[str, Any]) -> str | None:
        """The text, or None when a placeholder's value is NULL."""
        if any(values.get(n) is None for n in self.names):
            return None
        return self.text.format_map(values)

    def __repr__(self) -> str:
        return f"Template({self.text!r})"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_template(text: str | None) -> str | None:
    if text is not None:
        Template(text)
    return text


class DatabaseSpec(_Spec):
    #: SQLAlchemy URL: mysql+pymysql://, postgresql+psycopg:// (postgresql://), sqlite:///...
    url: str | None = None
    #: Environment variable holding the URL (used when set; ``url`` is the fallback).
    url_env: str | None = None
    #: Environment variable holding the password (for a URL without one); never printed.
    #: Unset: connect without a password (a database that needs none).
    password_env: str | None = None


class DatasetsSpec(_Spec):
    query: str  # one row per dataset, public or not; column names unique
    sid: str = "sid"  # column with the lab's dataset id
    public: str | None = None  # column saying whether it is public (absent: all are)
    root: str | None = None  # where dataset folders are; relative: to the mapping file
    folder: str = "{sid}"  # template; relative: to root
    origin: str | None = None  # template naming the row in messages, e.g. "TiltSeriesData id={id}"
    #: Columns with the lab's key image / key movie flags (Caltech ``TiltSeriesData.keyimg``,
    #: ``keymov``: 1..4 = has one); absent: the folder alone says (``etdb.publish.overlay``).
    keyimg: str | None = None
    keymov: str | None = None

    @field_validator("folder", "origin")
    @classmethod
    def _templates(cls, v: str | None) -> str | None:
        return _check_template(v)


class FileKind(_Spec):
    path: str  # template of the path inside the dataset folder, e.g. "3dimage_{id}/{filename}"
    subtype: str | None = None  # None: classify by the rules / folder layout
    #: The file is not in the dataset folder but under this ``files.roots`` entry, at
    #: ``location`` (a template; default: ``path``); it is published at ``path``.
    root: str | None = None
    location: str | None = None

    @field_validator("path", "location")
    @classmethod
    def _path(cls, v: str | None) -> str | None:
        return _check_template(v)

    @field_validator("subtype")
    @classmethod
    def _subtype(cls, v: str | None) -> str | None:
        return _check_subtype(v) if v is not None else v


class FilesSpec(_Spec):
    #: Files of many datasets at once: either it uses the list bind parameter ``:sids``
    #: (``WHERE t.tiltseriesID IN :sids``), or it is filtered on its ``sid`` column.
    query: str
    sid: str = "sid"  # column with the dataset's sid
    kind: str  # template choosing the entry of ``kinds``, e.g. "{source_table}:{class}"
    kinds: dict[str, FileKind]
    notes: str | None = None  # column -> files[].fNotes
    display_name: str | None = None  # column -> files[].dname
    software: str | None = None  # column -> files[].software
    origin: str | None = None  # template naming the row in messages
    #: "folder": the dataset folder's files are published, the query adds what it knows about
    #: them; "database": only the files the query lists are (go-etdb's way; files only on disk
    #: are reported, not published).
    authority: Literal["folder", "database"] = "folder"
    #: Named folders outside the dataset folders, relative to the data root (datasets.root or
    #: --data-root), e.g. {caps = "Caps"}; a kind's ``root`` names one.
    roots: dict[str, str] = Field(default_factory=dict)

    @field_validator("kind", "origin")
    @classmethod
    def _templates(cls, v: str | None) -> str | None:
        return _check_template(v)

    @field_validator("roots")
    @classmethod
    def _roots(cls, roots: dict[str, str]) -> dict[str, str]:
        for name, folder in roots.items():
            try:
                dataset_path(folder, what=f"files.roots.{name}")
            except CoerceError as exc:
                raise ValueError(str(exc)) from None
        return roots

    @model_validator(mode="after")
    def _kind_roots(self) -> FilesSpec:
        for name, kind in self.kinds.items():
            if kind.root is not None and kind.root not in self.roots:
                known = ", ".join(self.roots) or "none"
                raise ValueError(f"kinds.{name}.root: no files.roots entry {kind.root!r} ({known})")
            if kind.location is not None and kind.root is None:
                raise ValueError(f"kinds.{name}.location needs a root")
        return self


class FieldSpec(_Spec):
    """One record field: a column (a bare string in the file), a constant, or a template."""

    column: str | None = None
    value: str | int | float | bool | list[str] | None = None
    template: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _bare_column(cls, data: Any) -> Any:
        return {"column": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _exactly_one(self) -> FieldSpec:
        given = [k for k in ("column", "value", "template") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of column, value, template")
        _check_template(self.template)
        return self


class RuleSpec(_Spec):
    pattern: str
    subtype: str

    @field_validator("subtype")
    @classmethod
    def _subtype(cls, v: str) -> str:
        return _check_subtype(v)


class MappingFile(_Spec):
    description: str | None = None
    database: DatabaseSpec = Field(default_factory=DatabaseSpec)
    datasets: DatasetsSpec
    fields: dict[str, FieldSpec] = Field(default_factory=dict)
    files: FilesSpec | None = None
    classify: list[RuleSpec] = Field(default_factory=list)

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, fields: dict[str, FieldSpec]) -> dict[str, FieldSpec]:
        allowed = METADATA_KEYS - {"sid", "fileNotes"}
        for name, spec in fields.items():
            if name not in allowed:
                close = difflib.get_close_matches(name, sorted(allowed), n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                why = "comes from datasets.sid" if name == "sid" else "is not a record field"
                raise ValueError(f"{name!r} {why}{hint}")
            if spec.value is not None:
                try:
                    coerce_field(name, spec.value)
                except CoerceError as exc:
                    raise ValueError(str(exc)) from None
        return fields


def _check_subtype(v: str) -> str:
    if v not in SUBTYPES:
        raise ValueError(f"unknown subtype {v!r} (one of {', '.join(SUBTYPES)})")
    return v


@dataclass(frozen=True)
class LoadedMapping:
    """A parsed mapping file and where it came from."""

    spec: MappingFile
    path: str  # as shown in messages: the file, or "caltech (packaged)"
    directory: Path  # relative paths in the mapping are relative to this

    @property
    def rules(self) -> tuple[ClassifyRule, ...]:
        return tuple(ClassifyRule(r.pattern, r.subtype) for r in self.spec.classify)

    def database_url(self, override: str | None = None) -> URL:
        """The URL to connect with (password filled in from ``password_env``)."""
        db = self.spec.database
        text, origin = override, "the url option"
        if text is None and db.url_env and os.environ.get(db.url_env):
            text, origin = os.environ[db.url_env], f"${db.url_env}"
        if text is None:
            text, origin = db.url, f"{self.path}: database.url"
        if not text:
            env = f" or set ${db.url_env}" if db.url_env else ""
            raise SourceError(f"{self.path}: no database URL: give database.url{env}")
        try:
            url = make_url(text)
        except ArgumentError:
            raise SourceError(f"{origin}: not a database URL: {redact_text(text)}") from None
        # The plain names pick drivers that are not installed; use the ones etdb ships with.
        driver = {"postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql"}
        url = url.set(drivername=driver.get(url.drivername, url.drivername))
        if url.password is None and db.password_env:
            password = os.environ.get(db.password_env)
            if password is not None:  # unset: a database that needs no password
                url = url.set(password=password)
        if url.get_backend_name() == "sqlite" and override is None:
            path = url.database or ""
            if path and path != ":memory:" and not Path(path).is_absolute():
                url = url.set(database=str(self.directory / path))
        return url


def redact(url: URL) -> str:
    """The URL as it may be printed: any password replaced by ``***``."""
    return url.render_as_string(hide_password=True)


def redact_text(text: str) -> str:
    try:
        return redact(make_url(text))
    except ArgumentError:
        return "<unparseable URL>"


def packaged_mappings() -> list[str]:
    """Names of the mapping files shipped with etdb (``caltech``...)."""
    folder = resources.files("etdb.publish").joinpath("mappings")
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def packaged_mapping(name: str) -> LoadedMapping:
    folder = resources.files("etdb.publish").joinpath("mappings")
    entry = folder.joinpath(f"{name}.toml")
    if not entry.is_file():
        known = ", ".join(packaged_mappings()) or "none"
        raise SourceError(f"no packaged mapping named {name!r} (packaged: {known})")
    return _parse(entry.read_text(encoding="utf-8"), f"{name} (packaged)", Path(str(folder)))


def load_mapping(path: str | os.PathLike[str]) -> LoadedMapping:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"{path}: cannot read the mapping file: {exc}") from None
    return _parse(text, str(path), path.resolve().parent)


def _parse(text: str, where: str, directory: Path) -> LoadedMapping:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SourceError(f"{where}: not valid TOML: {exc}") from None
    try:
        spec = MappingFile.model_validate(data)
    except pydantic.ValidationError as exc:
        raise SourceError(f"{where}: {_first_error(exc)}") from None
    return LoadedMapping(spec, where, directory)


def _first_error(exc: pydantic.ValidationError) -> str:
    errors = exc.errors(include_url=False)
    err = errors[0]
    # Drop the union-member names pydantic adds to locations ("str", "function-after[...]").
    loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    elif err["type"] == "missing":
        msg = "missing key"
    else:
        msg = str(err["msg"]).removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return f"{loc}: {msg}{more}" if loc else f"{msg}{more}"
