"""The decoded OIP 0.4.2 messages (publish, edit, deactivate) and verification results."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from etdb.record.model import Artifact

__all__ = ["Deactivate", "Edit", "Message", "Publish", "VerifyResult"]


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
