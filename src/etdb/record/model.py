"""Typed model of an OIP 0.4.2 Research-Tomogram artifact (paper Table 1, reference §1).

The model mirrors the wire format: attribute names are the JSON keys real records use, fields
are declared in go-etdb's struct order (so :meth:`WireModel.to_wire` reproduces its key order),
and unknown keys at any level are kept (``extra="allow"``) because other labs add their own.

Scalar types follow the Go structs that decoded these records: strings must be strings,
``int64`` fields must be JSON integers, ``float64`` fields accept any finite number but keep an
integer as ``int`` so that ``-10`` re-encodes as ``-10``. Every field is optional at this level;
Table 1's mandatory fields are checked by :meth:`Artifact.require_complete`, which also accepts
an unsigned draft whose ``floAddress``/``timestamp``/``signature`` are filled in when signing.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Self

import pydantic
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, PlainValidator

from etdb.record.errors import ValidationError
from etdb.record.subtypes import PYRAMID_SUBTYPE

__all__ = ["Artifact", "Details", "File", "Info", "Storage", "WireModel"]


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return f"a {type(value).__name__}"


def _check_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise ValueError(f"expected a string, got {_describe(value)}")


def _check_int(value: Any) -> int:
    # Go's int64 fields reject 1.0 and booleans; so do we.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError(f"expected an integer, got {_describe(value)}")


def _check_number(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {_describe(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value!r}")
    return value  # an int stays an int: -10 must re-encode as -10, not -10.0


Str = Annotated[str, PlainValidator(_check_str)]
Int = Annotated[int, PlainValidator(_check_int)]
Number = Annotated[int | float, PlainValidator(_check_number)]


def _is_empty(value: Any) -> bool:
    """Go's ``omitempty``: "", 0, false, null and empty lists/objects are dropped."""
    if value is None or value is False or value == "":
        return True
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value == 0
    return isinstance(value, list | dict) and not value


class WireModel(BaseModel):
    """Base of every record object: keeps unknown keys and re-emits them after known ones."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    def to_wire(self) -> dict[str, Any]:
        """The JSON object go-etdb would write: struct order, empty known fields omitted."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = _wire_value(getattr(self, name))
            if not _is_empty(value):
                out[name] = value
        for key, value in (self.model_extra or {}).items():
            out[key] = copy.deepcopy(value)  # unknown keys are kept verbatim, even if empty
        return out

    @classmethod
    def from_wire(cls, obj: Any) -> Self:
        """Validate a decoded JSON object; errors name the field (``details.date``)."""
        if not isinstance(obj, Mapping):
            raise ValidationError(f"expected a JSON object, got {_describe(obj)}")
        try:
            return cls.model_validate(dict(obj))
        except pydantic.ValidationError as exc:
            raise _convert_error(exc) from None


def _wire_value(value: Any) -> Any:
    if isinstance(value, WireModel):
        return value.to_wire()
    if isinstance(value, list):
        return [_wire_value(item) for item in value]
    return copy.deepcopy(value)


def _convert_error(exc: pydantic.ValidationError) -> ValidationError:
    problems: list[tuple[str, str]] = []
    for err in exc.errors(include_url=False):
        path = ""
        for part in err["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        if err["type"] in ("model_type", "model_attributes_type", "dict_type"):
            msg = f"expected a JSON object, got {_describe(err['input'])}"
        elif err["type"] == "list_type":
            msg = f"expected a JSON array, got {_describe(err['input'])}"
        else:
            msg = str(err["msg"]).removeprefix("Value error, ")
        problems.append((path, msg))
    path, msg = problems[0]
    more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
    where = f"{path}: " if path else ""
    return ValidationError(f"{where}{msg}{more}", [p for p, _ in problems if p])


class Info(WireModel):
    title: Str | None = None
    tags: Str | None = None
    description: Str | None = None


class Details(WireModel):
    """``details`` of a Research-Tomogram (mp-newdb ``TomogramDetails`` order)."""

    date: Int | None = None  # acquisition date, unix seconds
    # go-etdb spelled it NBCItaxID before commit 4411ade; read both, write the right one.
    NCBItaxID: Int | None = Field(
        default=None, validation_alias=AliasChoices("NCBItaxID", "NBCItaxID")
    )
    artNotes: Str | None = None
    scopeName: Str | None = None
    roles: Str | None = None
    speciesName: Str | None = None
    strain: Str | None = None
    tiltSingleDual: Int | None = None  # 1 single axis, 2 dual axis
    defocus: Number | None = None  # µm
    dosage: Number | None = None  # e/Å²
    tiltConstant: Number | None = None  # 1 constant increment, 0 other (dropped when 0)
    tiltMin: Number | None = None
    tiltMax: Number | None = None
    tiltStep: Number | None = None
    magnification: Number | None = None
    emdb: Str | None = None
    microscopist: Str | None = None
    institution: Str | None = None
    lab: Str | None = None
    sid: Str | None = None  # the lab's tilt-series id, e.g. rr2014-01-14-5
    # Table 1 lists these; go-etdb stored software per file instead (files[].software).
    swAcquisition: Str | None = None
    swReconstruction: Str | None = None

    @property
    def acquired_at(self) -> datetime | None:
        """``date`` as an aware UTC datetime."""
        return _utc(self.date)


class File(WireModel):
    """One entry of ``storage.files``; ``fname`` is relative to ``storage.location``."""

    software: Str | None = None
    dname: Str | None = None  # display name (original filename)
    fname: Str | None = None
    fsize: Int | None = None
    type: Str | None = None
    subtype: Str | None = None
    cType: Str | None = None
    fNotes: Str | None = None

    @property
    def display_name(self) -> str:
        return self.dname or (self.fname or "").rsplit("/", 1)[-1]


class Storage(WireModel):
    network: Str | None = None
    location: Str | None = None  # an IPFS directory CID
    files: list[File] | None = None


# Table 1 mandatory fields (files[].fname is checked per file).
_MANDATORY: tuple[tuple[str, ...], ...] = (
    ("floAddress",),
    ("timestamp",),
    ("type",),
    ("info", "title"),
    ("details", "date"),
    ("details", "speciesName"),
    ("storage", "network"),
    ("storage", "location"),
    ("signature",),
)
# Filled in by signing, so a draft may lack them.
_SIGNING_FIELDS = frozenset({"floAddress", "timestamp", "signature"})


def _utc(seconds: int | None) -> datetime | None:
    if seconds is None:
        return None
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


class Artifact(WireModel):
    """An OIP 0.4.2 artifact as published on the ledger (the object under ``artifact``)."""

    floAddress: Str | None = None
    timestamp: Int | None = None  # publication time, unix seconds
    type: Str | None = None
    subtype: Str | None = None
    info: Info | None = None
    details: Details | None = None
    storage: Storage | None = None
    payment: dict[str, Any] | None = None
    signature: Str | None = None
    # etdb's signature over the metadata too (record/metasign.py); oipd-era readers ignore it.
    metaSignature: Str | None = None

    def to_wire(self) -> dict[str, Any]:
        out = super().to_wire()
        # The signature is the artifact's last key, after any unknown ones (mp-newdb c1a3462);
        # a metaSignature (never in go-etdb's records) comes after it.
        for key in ("signature", "metaSignature"):
            if key in out:
                out[key] = out.pop(key)
        return out

    # -- completeness -------------------------------------------------------------------

    def missing_fields(self, *, draft: bool = False) -> list[str]:
        """Mandatory fields that are absent or empty; a draft may lack the signing fields."""
        missing: list[str] = []
        for path in _MANDATORY:
            if draft and path[0] in _SIGNING_FIELDS:
                continue
            value: Any = self
            for name in path:
                value = getattr(value, name, None) if value is not None else None
            if _is_empty(value):
                missing.append(".".join(path))
        for i, f in enumerate(self.files):
            if not f.fname:
                missing.append(f"storage.files[{i}].fname")
        return missing

    def require_complete(self, *, draft: bool = False) -> Self:
        """Raise :class:`ValidationError` naming every missing mandatory field."""
        missing = self.missing_fields(draft=draft)
        if missing:
            noun = "field" if len(missing) == 1 else "fields"
            raise ValidationError(f"missing mandatory {noun}: {', '.join(missing)}", missing)
        if self.timestamp is not None and self.timestamp < 0:
            raise ValidationError("timestamp must not be negative", ["timestamp"])
        return self

    # -- convenience accessors ----------------------------------------------------------

    @property
    def location(self) -> str:
        """``storage.location``, or "" (which is also what the signature covers then)."""
        return (self.storage.location if self.storage else None) or ""

    @property
    def files(self) -> list[File]:
        return list(self.storage.files or []) if self.storage else []

    @property
    def published_at(self) -> datetime | None:
        return _utc(self.timestamp)

    def files_of(self, subtype: str, type: str | None = None) -> list[File]:
        """Files by subtype (and optionally type), case-insensitively: "tiltSeries", "keymov"…"""
        want_sub, want_type = subtype.lower(), type.lower() if type else None
        return [
            f
            for f in self.files
            if (f.subtype or "").lower() == want_sub
            and (want_type is None or (f.type or "").lower() == want_type)
        ]

    @property
    def tilt_series(self) -> File | None:
        found = self.files_of("tiltSeries")
        return found[0] if found else None

    @property
    def reconstruction(self) -> File | None:
        found = self.files_of("reconstruction")
        return found[0] if found else None

    @property
    def pyramid(self) -> File | None:
        """The OME-Zarr pyramid: the first entry of subtype ``zarr`` naming its folder."""
        return next((f for f in self.files_of(PYRAMID_SUBTYPE) if f.fname), None)

    @property
    def software_acquisition(self) -> str | None:
        """``details.swAcquisition``, else the tilt series file's ``software`` (go-etdb)."""
        if self.details and self.details.swAcquisition:
            return self.details.swAcquisition
        ts = self.tilt_series
        return ts.software if ts and ts.software else None

    @property
    def software_reconstruction(self) -> str | None:
        if self.details and self.details.swReconstruction:
            return self.details.swReconstruction
        rec = self.reconstruction
        return rec.software if rec and rec.software else None

    def path_of(self, file: File) -> str:
        """``<location>/<fname>``: the content path a gateway serves the file under."""
        return f"{self.location}/{file.fname or ''}"
