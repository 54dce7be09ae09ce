"""Signed metadata (``metaSignature``, etdb-meta-v1) and record identity.

OIP 0.4.2's signature covers only ``location-floAddress-timestamp``: title, details and the
file list are not signed, so anyone can re-publish a record with other metadata under the
same signature. Records etdb publishes therefore carry one more artifact key,
``metaSignature``: a FLO message signature, by the publisher's key, over

    "etdb-meta-v1:" + canonical JSON of the artifact without "signature" and "metaSignature"

The canonical JSON (:func:`canonical_json`, the one place this rule is written) follows
RFC 8785 (JCS): object members sorted by their UTF-16 code units, no whitespace, strings as
JSON with only the mandatory escapes (``"``, ``\\``, control characters; ``\\b \\f \\n \\r \\t``
short forms, others ``\\u00xx``), UTF-8, numbers in ECMAScript's shortest round-trip form
(``1.0`` -> ``1``, ``1e-7``, ``1e+21``). One deviation: integers are written exactly in
decimal, however large (JCS would round them through a double); an oipd-era artifact holds
no integer above 2^53 that anyone signs, and exactness keeps the rule simple to reimplement.

To verify by hand: remove both signature keys from the artifact object, serialise the rest
as above, prefix ``etdb-meta-v1:`` and check the result with any FLO ``verifymessage`` against
``floAddress``. Readers that predate it (oipd, go-etdb) ignore the unknown key.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from etdb.record.signing import (
    PrivateKey,
    SigningError,
    publish_preimage,
    sign_message,
    signature_problem,
    verify_message,
)

__all__ = [
    "META_DOMAIN",
    "META_KEY",
    "MetaCheck",
    "canonical_json",
    "check_meta",
    "meta_message",
    "meta_signature",
    "record_identity",
]

#: The artifact key holding the metadata signature.
META_KEY = "metaSignature"
#: Prefix of the signed message: a signature made for this can never pass for another kind.
META_DOMAIN = "etdb-meta-v1:"
#: Keys left out of what the metadata signature covers (the signatures themselves).
UNSIGNED_KEYS = frozenset({"signature", META_KEY})

MetaStatus = Literal["signed", "location", "invalid"]

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r"}
_ESCAPES["\t"] = "\\t"


def _string(text: str) -> str:
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif char < " ":
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _float(value: float) -> str:
    """ECMAScript Number.prototype.toString (ECMA-262 Number::toString) of a finite double."""
    if not math.isfinite(value):
        raise SigningError(f"metadata cannot hold the number {value!r} (not finite)")
    if value == 0:
        return "0"
    if value < 0:
        return "-" + _float(-value)
    # Shortest round-trip digits (repr), as value = 0.digits * 10**n (ECMA-262's k and n).
    _, digit_tuple, exponent = Decimal(repr(value)).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    n = len(digits) + int(exponent)
    k = len(digits)
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * -n + digits
    e = n - 1
    sign = "+" if e >= 0 else "-"
    head = digits[0] + ("." + digits[1:] if k > 1 else "")
    return f"{head}e{sign}{abs(e)}"


def canonical_json(value: Any) -> str:
    """The etdb-meta-v1 canonical JSON text of a JSON value (see the module docstring)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(canonical_json(v) for v in value) + "]"
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise SigningError("metadata object keys must be strings")
        keys = sorted(value, key=lambda k: k.encode("utf-16-be"))
        return "{" + ",".join(_string(k) + ":" + canonical_json(value[k]) for k in keys) + "}"
    raise SigningError(f"metadata cannot hold a {type(value).__name__}")


def meta_message(artifact: dict[str, Any]) -> str:
    """The text a metadata signature signs, for an artifact in wire form."""
    body = {k: v for k, v in artifact.items() if k not in UNSIGNED_KEYS}
    return META_DOMAIN + canonical_json(body)


def meta_signature(artifact: dict[str, Any], key: PrivateKey) -> str:
    """The ``metaSignature`` of a (location-signed) artifact in wire form."""
    return sign_message(key, meta_message(artifact))


@dataclass(frozen=True, slots=True)
class MetaCheck:
    """Whether an artifact's metadata is signed: ``signed`` (a valid metaSignature),
    ``location`` (none: only the OIP signature, over location, address and time) or
    ``invalid`` (a metaSignature that does not verify, or is not canonical)."""

    status: MetaStatus
    reason: str

    @property
    def signed(self) -> bool:
        return self.status == "signed"


LOCATION_ONLY = (
    "location only (title, details and file list are not covered by the publisher's signature)"
)


def check_meta(artifact: dict[str, Any], address: str) -> MetaCheck:
    """Check the ``metaSignature`` of an artifact (wire form, as published) for ``address``.

    Never raises on hostile input: anything unreadable is ``invalid`` with its reason."""
    if META_KEY not in artifact:
        return MetaCheck("location", LOCATION_ONLY)
    signature = artifact[META_KEY]
    if not isinstance(signature, str):
        return MetaCheck("invalid", "metaSignature is not a string")
    problem = signature_problem(signature)
    if problem is not None:
        return MetaCheck("invalid", f"metaSignature: non-canonical signature ({problem})")
    try:
        message = meta_message(artifact)
    except (SigningError, RecursionError) as exc:
        return MetaCheck("invalid", f"metaSignature: the artifact cannot be canonicalised: {exc}")
    if not verify_message(address, message, signature):
        return MetaCheck(
            "invalid",
            f"metaSignature does not verify for {address}: title, details or files were "
            "changed after signing, or another key signed",
        )
    return MetaCheck("signed", f"metadata signed by {address}")


# -- identity ---------------------------------------------------------------------------------


def record_identity(artifact: dict[str, Any]) -> str:
    """A published record's identity: SHA-256 (hex) of what its OIP signature covers,
    ``location-floAddress-timestamp`` (:func:`~etdb.record.signing.publish_preimage`).

    Two publishes with one identity are copies of one record, whatever their signatures'
    spelling and whatever their (unsigned) metadata says. Hashed so that a catalog can index
    it whatever the location's length. Never raises: an artifact whose fields have odd types
    (never one that verified) gets the identity of their canonical JSON instead."""
    storage = artifact.get("storage")
    location = (storage.get("location") if isinstance(storage, dict) else None) or ""
    address = artifact.get("floAddress") or ""
    timestamp = artifact.get("timestamp")
    if isinstance(location, str) and isinstance(address, str) and type(timestamp) is int:
        preimage = publish_preimage(location, address, timestamp)
    else:
        preimage = repr((location, address, timestamp))
    return hashlib.sha256(preimage.encode("utf-8", "surrogatepass")).hexdigest()
