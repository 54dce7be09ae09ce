"""OIP 0.4.2 codec: encode, sign and verify publish / edit / deactivate messages.

Encoding reproduces go-etdb byte for byte (reference §1): ``"json:"`` + compact Go JSON of
``{"oip042":{"publish":{"artifact":{…}}}}``, struct key order, ``omitempty``, signature last
(see :mod:`etdb.record.gojson` for Go's string and number formatting). Edits are written in
the newer oipd/js-oip form and deactivations in the 2018 form (reference §4); :func:`decode`
(from :mod:`etdb.record.decoding`) reads every form seen in the wild.
"""

from __future__ import annotations

import time
from typing import Any

from etdb.record import gojson
from etdb.record.decoding import decode
from etdb.record.errors import PatchError, RecordError, ValidationError
from etdb.record.messages import (
    Deactivate,
    Edit,
    Message,
    Publish,
    VerifyResult,
    check_signature,
)
from etdb.record.metasign import meta_signature
from etdb.record.model import Artifact
from etdb.record.patch import apply_patch, diff, normalize_patch, squash
from etdb.record.signing import (
    Network,
    PrivateKey,
    deactivate_preimage,
    edit_preimage,
    publish_preimage,
    sign_message,
)

__all__ = [
    "Deactivate",
    "Edit",
    "Message",
    "Publish",
    "VerifyResult",
    "apply_artifact_patch",
    "apply_edit",
    "check_signature",
    "decode",
    "encode",
    "encode_deactivate",
    "encode_edit",
    "encode_publish",
    "encode_unsigned_publish",
    "make_edit",
    "publish_envelope",
    "sign_artifact",
    "sign_deactivate",
    "sign_edit",
    "verify_deactivate",
    "verify_edit",
    "verify_publish",
]

JSON_PREFIX = "json:"


def _now() -> int:
    return int(time.time())


# -- publish ----------------------------------------------------------------------------------


def publish_envelope(artifact: Artifact) -> dict[str, Any]:
    """``{"oip042":{"publish":{"artifact":{…}}}}`` in go-etdb key order."""
    return {"oip042": {"publish": {"artifact": artifact.to_wire()}}}


def encode_publish(artifact: Artifact, *, check: bool = True) -> str:
    """The floData go-etdb would send for this (signed) artifact.

    With ``check`` (default) every mandatory field, the signature included, must be present.
    """
    if check:
        artifact.require_complete()
    return JSON_PREFIX + gojson.dumps(publish_envelope(artifact))


def encode_unsigned_publish(artifact: Artifact, *, check: bool = True) -> str:
    """The floData of a draft with any signature removed (what a signer reviews)."""
    unsigned = artifact.model_copy(update={"signature": None})
    if check:
        unsigned.require_complete(draft=True)
    return JSON_PREFIX + gojson.dumps(publish_envelope(unsigned))


def sign_artifact(
    artifact: Artifact,
    key: PrivateKey,
    *,
    timestamp: int | None = None,
    check: bool = True,
    meta: bool = False,
) -> Artifact:
    """A signed copy: fills ``floAddress`` (and ``timestamp`` if absent or given), signs.
    With ``meta``, also signs the metadata (``metaSignature``, :mod:`etdb.record.metasign`);
    any earlier ``metaSignature`` is dropped either way (it would no longer verify).

    Refuses (:class:`ValidationError`) if the artifact names another publisher address, or,
    with ``check``, if a mandatory field other than the signing ones is missing. Without
    ``storage`` the signed location is "" (as every OIP implementation does).
    """
    if artifact.floAddress and artifact.floAddress != key.address:
        raise ValidationError(
            f"floAddress {artifact.floAddress} is not the signing key's address {key.address}; "
            "refusing to sign for another publisher",
            ["floAddress"],
        )
    ts = timestamp if timestamp is not None else (artifact.timestamp or _now())
    unsigned = {"floAddress": key.address, "timestamp": ts, "signature": None}
    signed = artifact.model_copy(update={**unsigned, "metaSignature": None}, deep=True)
    if check:
        signed.require_complete(draft=True)
    signed.signature = sign_message(key, publish_preimage(signed.location, key.address, ts))
    if meta:
        signed.metaSignature = meta_signature(signed.to_wire(), key)
    return signed


def verify_publish(
    artifact: Artifact, *, require_complete: bool = True, network: Network | None = None
) -> VerifyResult:
    """Check ``signature`` over ``location-floAddress-timestamp`` (and mandatory fields)."""
    if require_complete:
        missing = artifact.missing_fields()
        if missing:
            noun = "field" if len(missing) == 1 else "fields"
            reason = f"missing mandatory {noun}: {', '.join(missing)}"
            return VerifyResult(False, artifact.floAddress, reason)
    if artifact.timestamp is None:
        return VerifyResult(False, artifact.floAddress, "no timestamp: nothing was signed")
    address = artifact.floAddress
    preimage = publish_preimage(artifact.location, address or "", artifact.timestamp)
    return check_signature("publish", address, [preimage], artifact.signature, network)


# -- edit -------------------------------------------------------------------------------------


def sign_edit(
    original_txid: str, patch: Any, key: PrivateKey, *, timestamp: int | None = None
) -> Edit:
    """A signed edit (newer oipd form, preimage ``txid-timestamp``)."""
    ts = _now() if timestamp is None else timestamp
    ops = normalize_patch(patch)
    signature = sign_message(key, edit_preimage(original_txid, ts))
    return Edit(original_txid, ts, ops, signature)


def make_edit(
    original_txid: str,
    old: Artifact,
    new: Artifact,
    key: PrivateKey,
    *,
    timestamp: int | None = None,
    meta: bool = False,
) -> tuple[Edit, Artifact]:
    """Edit turning ``old`` into ``new``: re-signs ``new`` at the edit's timestamp (oipd
    re-checks the patched record's signature) and returns (signed edit, patched artifact).
    With ``meta`` the patched record's ``metaSignature`` is re-made (the patch replaces it)."""
    if old.floAddress and old.floAddress != key.address:
        raise ValidationError(
            f"only the publisher {old.floAddress} may edit this record, not {key.address}",
            ["floAddress"],
        )
    ts = _now() if timestamp is None else timestamp
    patched = sign_artifact(new, key, timestamp=ts, meta=meta)
    ops = diff(old.to_wire(), patched.to_wire())
    return sign_edit(original_txid, ops, key, timestamp=ts), patched


def encode_edit(edit: Edit) -> str:
    """floData of a signed edit, in the form it was made in (newer form unless ``legacy``)."""
    if not edit.signature:
        raise ValidationError("the edit is unsigned", ["signature"])
    ops = normalize_patch(edit.patch)  # validated, members in canonical order
    if edit.legacy:
        body: dict[str, Any] = {
            "artifact": {
                "artifactID": edit.txid,
                "timestamp": edit.timestamp,
                "patch": squash(ops),
                "signature": edit.signature,
            }
        }
    else:
        body = {
            "artifact": {"txid": edit.txid, "timestamp": edit.timestamp, "patch": ops},
            "signature": edit.signature,
        }
    return JSON_PREFIX + gojson.dumps({"oip042": {"edit": body}})


def verify_edit(edit: Edit, publisher: str, *, network: Network | None = None) -> VerifyResult:
    """Check an edit against the original record's publisher address.

    Both preimages bind the record txid and the edit timestamp, so either form is accepted.
    """
    modern = edit_preimage(edit.txid, edit.timestamp)
    legacy = deactivate_preimage(edit.txid, publisher, edit.timestamp)
    preimages = [legacy, modern] if edit.legacy else [modern, legacy]
    return check_signature("edit", publisher, preimages, edit.signature, network)


def apply_artifact_patch(artifact: Artifact, patch: Any) -> Artifact:
    """Apply a patch (paths relative to the artifact; ``/artifact/…`` tolerated)."""
    result = apply_patch(artifact.to_wire(), patch)
    try:
        return Artifact.from_wire(result)
    except RecordError as exc:
        raise PatchError(f"the patched artifact is invalid: {exc}") from None


def apply_edit(artifact: Artifact, edit: Edit) -> Artifact:
    """The artifact after ``edit``; check it with :func:`verify_publish` as oipd does."""
    return apply_artifact_patch(artifact, edit.patch)


# -- deactivate -------------------------------------------------------------------------------


def sign_deactivate(
    artifact_id: str, key: PrivateKey, *, timestamp: int | None = None
) -> Deactivate:
    """A signed deactivation (preimage ``artifactID-publisher-timestamp``)."""
    ts = _now() if timestamp is None else timestamp
    signature = sign_message(key, deactivate_preimage(artifact_id, key.address, ts))
    return Deactivate(artifact_id, ts, signature)


def encode_deactivate(deactivate: Deactivate) -> str:
    """floData ``{"oip042":{"deactivate":{"artifact":{artifactID,timestamp,signature}}}}``."""
    if deactivate.timestamp is None or not deactivate.signature:
        raise ValidationError("the deactivation is unsigned", ["signature"])
    body = {
        "artifactID": deactivate.artifact_id,
        "timestamp": deactivate.timestamp,
        "signature": deactivate.signature,
    }
    return JSON_PREFIX + gojson.dumps({"oip042": {"deactivate": {"artifact": body}}})


def verify_deactivate(
    deactivate: Deactivate, publisher: str, *, network: Network | None = None
) -> VerifyResult:
    """Check a deactivation against the original record's publisher address."""
    if deactivate.timestamp is None:
        return VerifyResult(False, publisher, "no timestamp: nothing was signed", "deactivate")
    preimage = deactivate_preimage(deactivate.artifact_id, publisher, deactivate.timestamp)
    return check_signature("deactivate", publisher, [preimage], deactivate.signature, network)


def encode(message: Message) -> str:
    """floData of any decoded message (a publish is re-encoded in go-etdb form)."""
    if isinstance(message, Publish):
        return encode_publish(message.artifact, check=False)
    if isinstance(message, Edit):
        return encode_edit(message)
    return encode_deactivate(message)
