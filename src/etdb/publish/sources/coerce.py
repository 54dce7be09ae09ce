"""Turning values read from a lab's database or catalog into record metadata.

The type a value must have follows the record field it goes to (``etdb.record.model.Details``):
integers for ``date`` (unix seconds), ``NCBItaxID`` and ``tiltSingleDual``; floats for the
numeric acquisition fields; strings, kept verbatim, for everything else. Databases hand us
DATE/DATETIME objects, ``Decimal``, bytes, and numbers typed into text columns ("2.0 deg"), so
each coercion accepts what a lab database plausibly holds and refuses the rest with a message
that names the field and quotes the value. NULL never reaches these functions: it means "no
value" and the key is simply left out.
"""

from __future__ import annotations

import math
import re
import types
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import PurePosixPath
from typing import Annotated, Any, Union, get_args, get_origin

from etdb.record.model import Details

__all__ = [
    "FLOAT_FIELDS",
    "INT_FIELDS",
    "METADATA_KEYS",
    "STR_FIELDS",
    "CoerceError",
    "coerce_field",
    "coerce_key_media_flag",
    "coerce_public",
    "dataset_path",
    "describe",
]


class CoerceError(ValueError):
    """A value cannot be turned into what its field needs; the message names the field."""


def _kind(annotation: Any) -> str:
    members = get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) else ()
    # Unwrap Annotated[int, PlainValidator(...)] and friends to the plain types.
    args = {get_args(m)[0] if get_origin(m) is Annotated else m for m in members}
    args |= {a for m in args for a in get_args(m)}  # Number is Annotated[int | float, ...]
    if float in args:
        return "float"
    if int in args:
        return "int"
    return "str"


_DETAIL_KINDS = {name: _kind(f.annotation) for name, f in Details.model_fields.items()}
#: Record fields that take an integer (``date`` is unix seconds).
INT_FIELDS = frozenset(k for k, v in _DETAIL_KINDS.items() if v == "int")
#: Record fields that take a number (stored as a float).
FLOAT_FIELDS = frozenset(k for k, v in _DETAIL_KINDS.items() if v == "float")
# The keys etdb.publish.dataset.build_artifact takes besides the Details fields.
_TEXT_KEYS = ("title", "description", "scopeNotes", "speciesNotes", "tiltSeriesNotes")
#: Fields that take text, kept exactly as read.
STR_FIELDS = frozenset([*(k for k, v in _DETAIL_KINDS.items() if v == "str"), *_TEXT_KEYS])
#: Every metadata key a source may fill in (``build_artifact``'s keys).
METADATA_KEYS = frozenset([*_DETAIL_KINDS, *_TEXT_KEYS, "tags", "fileNotes"])

# go-etdb read tilt_step with ^[0-9.]+ ; we also take a sign and an exponent ("-60", "1e3").
_LEADING_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_INTEGER = re.compile(r"[-+]?\d+")
_TRUE = {"1", "true", "yes", "y", "t", "on"}
_FALSE = {"0", "false", "no", "n", "f", "off", ""}


def describe(value: Any) -> str:
    """A value as it appears in messages: repr, shortened."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _text(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return value
    return value


def _to_int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise CoerceError(f"{name}: {describe(value)} is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float | Decimal) and math.isfinite(value) and value == int(value):
        return int(value)
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return int(value.strip())
    raise CoerceError(f"{name}: {describe(value)} is not an integer")


def _to_float(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise CoerceError(f"{name}: {describe(value)} is not a number")
    number: float | None = None
    if isinstance(value, int | float | Decimal):
        number = float(value)
    elif isinstance(value, str):
        # The leading number, as go-etdb read tilt_step ("2.0 deg" -> 2.0).
        match = _LEADING_NUMBER.match(value.strip())
        number = float(match.group()) if match else None
    if number is None or not math.isfinite(number):
        raise CoerceError(f"{name}: {describe(value)} is not a number")
    return number


def _to_unix(name: str, value: Any) -> int:
    """DATE/DATETIME (naive = UTC), unix seconds, or ISO text -> unix seconds."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return int(aware.timestamp())
    if isinstance(value, date):
        return int(datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp())
    if isinstance(value, str):
        text = value.strip()
        if _INTEGER.fullmatch(text):
            return int(text)
        try:
            return _to_unix(name, datetime.fromisoformat(text))
        except ValueError:
            pass
        raise CoerceError(f"{name}: {describe(value)} is not a date (ISO text or unix seconds)")
    try:
        return _to_int(name, value)
    except CoerceError:
        raise CoerceError(f"{name}: {describe(value)} is not a date") from None


def _to_str(name: str, value: Any) -> str:
    if isinstance(value, str):
        return value  # verbatim: no stripping, no normalisation
    if isinstance(value, bool | bytes):
        raise CoerceError(f"{name}: {describe(value)} is not text")
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return str(int(value)) if value.is_integer() else repr(value)
    raise CoerceError(f"{name}: {describe(value)} is not text")


def _to_tags(value: Any) -> str | list[str]:
    if isinstance(value, list | tuple) and all(isinstance(t, str) for t in value):
        return list(value)
    return _to_str("tags", value)


def _to_file_notes(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise CoerceError(f"fileNotes: expected a table of path = note, got {describe(value)}")
    notes: dict[str, str] = {}
    for path, note in value.items():
        notes[dataset_path(str(path), what="fileNotes")] = _to_str(f"fileNotes.{path}", note)
    return notes


def coerce_field(name: str, value: Any) -> Any | None:
    """``value`` as metadata key ``name`` needs it; None when there is no value.

    Blank text in a numeric or date field counts as no value (go-etdb dropped zero values);
    text fields keep even blank strings, verbatim.
    """
    value = _text(value)
    if value is None:
        return None
    if name not in STR_FIELDS and isinstance(value, str) and not value.strip():
        return None
    if name == "date":
        return _to_unix(name, value)
    if name in INT_FIELDS:
        return _to_int(name, value)
    if name in FLOAT_FIELDS:
        return _to_float(name, value)
    if name == "tags":
        return _to_tags(value)
    if name == "fileNotes":
        return _to_file_notes(value)
    if name in STR_FIELDS:
        return _to_str(name, value)
    raise CoerceError(f"{name}: not a record field")


def coerce_public(value: Any) -> bool:
    """A "public" flag: booleans, 0/1, and yes/no/true/false text; NULL is not public."""
    value = _text(value)
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | Decimal) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise CoerceError(f"public: {describe(value)} is not a yes/no value")


def coerce_key_media_flag(name: str, value: Any) -> bool:
    """A key image / key movie flag as go-etdb read it: 1..4 has one; 0, NULL or any other
    number has none."""
    value = _text(value)
    if value is None or isinstance(value, bool):
        return bool(value)
    try:
        number = int(value) if not isinstance(value, str) else int(value.strip())
    except (TypeError, ValueError, OverflowError):
        raise CoerceError(f"{name}: {describe(value)} is not a number") from None
    return 0 < number <= 4


def dataset_path(path: str, *, what: str = "file path") -> str:
    """A path inside a dataset folder, "/"-separated; refuses escapes out of the folder.

    A record's ``fname`` is joined to its location by every reader, so "..", absolute paths and
    backslashes (a Windows separator that POSIX keeps in names) are refused, not normalised.
    """
    if not isinstance(path, str) or not path.strip():
        raise CoerceError(f"{what}: empty path")
    if "\\" in path or "\x00" in path:
        raise CoerceError(f"{what} {path!r}: backslashes and NUL are not allowed")
    if path.startswith("/") or re.match(r"[A-Za-z]:", path):
        raise CoerceError(f"{what} {path!r}: must be relative to the dataset folder")
    parts = [p for p in PurePosixPath(path).parts if p != "."]
    if ".." in parts:
        raise CoerceError(f"{what} {path!r}: '..' is not allowed")
    if not parts:
        raise CoerceError(f"{what} {path!r}: names no file")
    return "/".join(parts)
