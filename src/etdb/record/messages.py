"""The decoded OIP 0.4.2 messages (publish, edit, deactivate) and verification results."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from etdb.record.model import Artifact
from etdb.record.signing import (
    Network,
    SigningError,
    address_network,
    is_valid_address,
    recover_address,
    signature_problem,
    verify_message,
)

__all__ = ["Deactivate", "Edit", "Message", "Publish", "VerifyResult", "check_signature"]


@dataclass(frozen=True)
class Publish:
    """A publish: the artifact, the JSON text it came from, and any daemon metadata.

    ``shape`` says how it was wrapped: ``oip042`` (the on-chain envelope), ``oipd`` (an oipd
    ``{artifact, meta}`` document), ``oip042-artifact`` (2018 daemon / oip-js
    ``{oip042:{artifact}}``), ``malformed`` (``{oip042:{floAddress, ...}}``) or ``bare``.
    """

    artifact: Artifact
    raw_json: str
    meta: dict[str, Any] | None = None
    shape: str = "oip042"
    kind: ClassVar[str] = "publish"

    @property
    def txid(self) -> str | None:
        """The transaction id, when the input carried daemon metadata."""
        value = (self.meta or {}).get("txid")
        return value if isinstance(value, str) else None


@dataclass(frozen=True)
class Edit:
    """An edit of the artifact published in ``txid``; ``patch`` is normalized RFC 6902.

    ``legacy`` marks the 2018 mp-newdb form (``artifactID``, squashed patch, signature inside
    ``artifact``, preimage ``artifactID-publisher-timestamp``); otherwise the newer oipd/js-oip
    form (``txid``, signature beside ``artifact``, preimage ``txid-timestamp``).
    """

    txid: str
    timestamp: int
    patch: list[dict[str, Any]]
    signature: str | None = None
    legacy: bool = False
    raw_json: str = ""
    meta: dict[str, Any] | None = field(default=None, compare=False)
    kind: ClassVar[str] = "edit"


@dataclass(frozen=True)
class Deactivate:
    """A request to deactivate the artifact published in ``artifact_id``."""

    artifact_id: str
    timestamp: int | None
    signature: str | None = None
    raw_json: str = ""
    meta: dict[str, Any] | None = field(default=None, compare=False)
    kind: ClassVar[str] = "deactivate"


Message = Publish | Edit | Deactivate


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of a signature check: who signed (if known), whether it holds, and why."""

    valid: bool
    address: str | None
    reason: str
    kind: str = "publish"
    preimage: str | None = None


def _failure_reason(address: str, preimage: str, signature: str, network: Network | None) -> str:
    networks = (network,) if network is not None else None
    if not (is_valid_address(address, networks) if networks else is_valid_address(address)):
        return f"address {address!r} is not a valid address"
    try:
        signer = recover_address(preimage, signature, network or address_network(address))
    except SigningError as exc:
        return f"malformed signature: {exc}"
    return (
        f"bad signature: over the preimage {preimage!r} it recovers {signer}, not {address} "
        "(the signed fields differ, or another key signed)"
    )


def check_signature(
    kind: str,
    address: str | None,
    preimages: list[str],
    signature: str | None,
    network: Network | None = None,
) -> VerifyResult:
    """Whether ``signature`` by ``address`` signs any of ``preimages``, with a precise reason."""
    if not address:
        return VerifyResult(False, None, f"no publisher address to check the {kind} against", kind)
    if not signature:
        return VerifyResult(False, address, f"unsigned: the {kind} has no signature", kind)
    for preimage in preimages:
        if not verify_message(address, preimage, signature, network):
            continue
        # Canonical form is required of every signature (publish, edit, deactivate, multipart
        # part): otherwise one signature has several spellings that all verify, and a copy of
        # a record with another spelling (its metadata being unsigned, with another title or
        # file list) passes for a different signature. Safe for every OIP 0.4.2 record: FLO
        # Core >= 0.15 signs with libsecp256k1, which emits low S only, and base64 encoders
        # emit the standard text; the historical ETDB records are all canonical
        # (tests/record/test_conformance.py).
        problem = signature_problem(signature)
        if problem is not None:
            reason = f"non-canonical signature ({problem}): only the canonical form is accepted"
            return VerifyResult(False, address, reason, kind, preimage)
        return VerifyResult(True, address, f"signed by {address}", kind, preimage)
    reason = _failure_reason(address, preimages[0], signature, network)
    return VerifyResult(False, address, reason, kind, preimages[0])
