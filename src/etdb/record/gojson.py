"""Compact JSON, byte-identical to what go-etdb's Go ``encoding/json`` produced (2018, Go 1.10).

Why not ``json.dumps``: records are re-encoded and compared with what is on the ledger, and
Go differs from Python in three ways that matter here:

* Strings: UTF-8 is kept as is (not ``\\uXXXX``), but ``<``, ``>`` and ``&`` become
  ``\\u003c``, ``\\u003e``, ``\\u0026`` (HTML-safe escaping), U+2028/U+2029 become
  ``\\u2028``/``\\u2029``, control characters other than ``\\n \\r \\t`` become ``\\u00XX``
  with lowercase hex (Go 1.22 later added ``\\b``/``\\f``; go-etdb predates that), and text
  that is not valid Unicode (a lone surrogate in Python) becomes ``\\ufffd``.
* Floats: the shortest representation that round-trips, in plain notation (``100``, not
  ``100.0``) unless the magnitude is below 1e-6 or at least 1e21, then ``1e+21``/``1e-7``.
* NaN and infinities are an error, as in Go.

Object keys keep the order they have in the mapping (callers order them like Go structs).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from etdb.record.errors import WireFormatError

__all__ = ["dumps", "format_float"]

_SPECIAL = re.compile('["\\\\\x00-\x1f<>&\u2028\u2029\ud800-\udfff]')
_SHORT = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(match: re.Match[str]) -> str:
    ch = match.group(0)
    short = _SHORT.get(ch)
    if short is not None:
        return short
    code = ord(ch)
    if 0xD800 <= code <= 0xDFFF:
        return "\\ufffd"  # Go replaces invalid UTF-8 with U+FFFD, escaped
    return f"\\u{code:04x}"


def _string(text: str) -> str:
    return '"' + _SPECIAL.sub(_escape_char, text) + '"'


def format_float(value: float) -> str:
    """Go's ``encoding/json`` formatting of a float64."""
    if not math.isfinite(value):
        raise WireFormatError(f"cannot encode {value!r} as JSON (Go rejects NaN and infinities)")
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    # repr() is the shortest round-tripping form, as is Go's strconv precision -1.
    dec = Decimal(repr(value)).normalize()
    magnitude = abs(value)
    if 1e-6 <= magnitude < 1e21:
        return format(dec, "f")
    sign, digits, exponent = dec.as_tuple()
    assert isinstance(exponent, int)  # finite
    text = "".join(map(str, digits))
    mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
    exp10 = exponent + len(text) - 1
    # Go prints at least two exponent digits, then trims "e-07" to "e-7" (but not "e+21").
    exp_text = f"-{-exp10}" if exp10 < 0 else f"+{exp10:02d}"
    return ("-" if sign else "") + mantissa + "e" + exp_text


def _encode(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_string(value))
    elif isinstance(value, int):
        try:
            out.append(str(int(value)))
        except ValueError:  # more digits than sys.get_int_max_str_digits()
            raise WireFormatError("cannot encode an integer this large") from None
    elif isinstance(value, float):
        out.append(format_float(value))
    elif isinstance(value, Mapping):
        out.append("{")
        first = True
        for key, item in value.items():
            if not isinstance(key, str):
                raise WireFormatError(
                    f"cannot encode a JSON object key of type {type(key).__name__}"
                )
            if not first:
                out.append(",")
            first = False
            out.append(_string(key))
            out.append(":")
            _encode(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:
        raise WireFormatError(f"cannot encode a value of type {type(value).__name__} as JSON")


def dumps(value: Any) -> str:
    """Compact JSON text of ``value`` exactly as Go's ``json.Marshal`` writes it."""
    out: list[str] = []
    try:
        _encode(value, out)
    except RecursionError:
        raise WireFormatError("cannot encode JSON nested this deeply") from None
    return "".join(out)
