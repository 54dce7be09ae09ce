"""Judging one ledger payload: what kind of message it is, and whether it may enter the catalog.

Everything here is pure: no store, no ledger. The indexer (``indexer.py``) looks up what a
judgement needs (the record an edit targets, its latest edit) and passes it in; the
functions answer with the value to store or a :class:`Rejected` carrying the precise reason.
They never raise on bad input: whatever the record package cannot read becomes a rejection,
including an unexpected exception from it (a bug there must not stop the indexer for good on
one odd transaction).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from etdb.index.store import RecordState
from etdb.record import (
    Artifact,
    Deactivate,
    Edit,
    Message,
    Publish,
    RecordError,
    apply_patch,
    decode,
    verify_deactivate,
    verify_edit,
    verify_publish,
)
from etdb.record.decoding import loads
from etdb.record.limits import DEFAULT_LIMITS, RecordLimits
from etdb.record.signing import edit_preimage

Kind = Literal["publish", "edit", "deactivate", "multipart", "unknown"]

#: The longest payload excerpt a rejection keeps.
EXCERPT_CHARS = 200

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Rejected:
    """Why a payload (or a part, or a joined multipart) does not enter the catalog."""

    kind: Kind
    reason: str


def excerpt(payload: str) -> str:
    return payload[:EXCERPT_CHARS]


def guarded(kind: Kind, fn: Callable[[], T]) -> T | Rejected:
    """``fn()``, with any error from reading untrusted data turned into a rejection."""
    try:
        return fn()
    except RecordError as exc:
        return Rejected(kind, str(exc) or type(exc).__name__)
    except (ValueError, TypeError, KeyError, IndexError, RecursionError, OverflowError) as exc:
        # Not one of the record package's typed errors: a gap in its input checks. The
        # payload is still just bad input to us; say what happened instead of crashing.
        return Rejected(kind, f"unreadable {kind} message ({type(exc).__name__}: {exc})")


# -- classification ---------------------------------------------------------------------------


def guess_kind(text: str) -> Kind:
    """The message kind an undecodable payload was meant to be, for the rejection's ``kind``."""
    body = text.strip()
    if body.startswith(("json:", "text:")):
        body = body[5:]
    try:
        obj: Any = loads(body, check_text=False)  # only its shape: text it refuses is fine here
    except RecordError:
        return "unknown"
    if isinstance(obj, dict) and isinstance(obj.get("oip042"), dict):
        obj = obj["oip042"]
    if not isinstance(obj, dict):
        return "unknown"
    for verb in ("publish", "edit", "deactivate"):
        if verb in obj:
            return verb
    return "publish" if "artifact" in obj or "floAddress" in obj else "unknown"


def read_message(text: str) -> Message | Rejected:
    """Decode a whole (single or joined multipart) message; a publish must be complete."""
    result = guarded("unknown", lambda: decode(text, strict=True))
    if isinstance(result, Rejected):
        return Rejected(guess_kind(text), result.reason)
    return result


# -- publish, edit, deactivate ----------------------------------------------------------------


def published_form(message: Publish) -> dict[str, Any]:
    """The artifact object as the ledger carried it: key order, spellings (the 2018
    ``NBCItaxID``) and unknown keys as published, a signature sent beside it moved inside (as
    :func:`decode` reads it). Edits patch this document, as oipd patched its stored JSON.
    Shapes other than the on-chain envelope (oipd documents...) get the model's wire form."""
    if message.shape == "oip042":
        try:
            # decode() checked this very text (JSON, depth, numbers): the plain parser will do.
            obj = json.loads(message.raw_json)
            body = obj.get("oip042", obj)["publish"]
            art = dict(body["artifact"])
        except (ValueError, KeyError, TypeError, AttributeError):
            return message.artifact.to_wire()  # not the shape decode said: keep what it read
        if "signature" not in art and body.get("signature") is not None:
            art["signature"] = body["signature"]
        return art
    return message.artifact.to_wire()


def check_publish(
    message: Publish,
    publishers: frozenset[str] | None,
    limits: RecordLimits = DEFAULT_LIMITS,
) -> Rejected | None:
    """Allow-list, limits (on the message and the document stored, :func:`published_form`),
    then signature and mandatory fields (replays are the indexer's to find)."""
    address = message.artifact.floAddress or ""
    if publishers is not None and address not in publishers:
        return Rejected("publish", f"publisher {address or '(none)'} not in the allow-list")
    over = limits.payload_problem(message.raw_json) or guarded(
        "publish", lambda: limits.problem(published_form(message))
    )
    if isinstance(over, Rejected):
        return over
    if over is not None:
        return Rejected("publish", f"over the record limits: {over}")
    result = guarded("publish", lambda: verify_publish(message.artifact))
    if isinstance(result, Rejected):
        return result
    return None if result.valid else Rejected("publish", result.reason)


def _moves_forward(
    kind: Kind, record_id: str, timestamp: int | None, last_edit: int | None
) -> Rejected | None:
    # Edit and deactivate signatures cover only (record, [publisher,] timestamp), not what
    # the message does. Requiring each to be newer than the record's latest edit stops a
    # signature from being reused with another patch, or a legacy edit's signature (same
    # preimage as a deactivation's) from being replayed as a deactivation.
    if last_edit is not None and timestamp is not None and timestamp <= last_edit:
        return Rejected(
            kind,
            f"{kind} timestamp {timestamp} is not after the latest edit of record {record_id} "
            f"({last_edit}): a replayed or out-of-order {kind}",
        )
    return None


def _active(kind: Kind, record_id: str, state: RecordState | None) -> RecordState | Rejected:
    if state is None:
        return Rejected(kind, f"{kind} of unknown record {record_id}")
    if state.deactivated:
        return Rejected(kind, f"{kind} of record {record_id}, which is deactivated")
    return state


def check_edit(
    edit: Edit,
    state: RecordState | None,
    last_edit: int | None,
    limits: RecordLimits = DEFAULT_LIMITS,
) -> dict[str, Any] | Rejected:
    """The record's artifact document after ``edit`` (the stored document, patched), or why
    the edit is refused.

    The edit must be signed by the record's original publisher; a modern-form edit must sign
    the modern preimage (``txid-timestamp``), not merely the legacy one, which is also a
    deactivation's. The patched artifact must still be a complete, validly signed record
    (newer oipd's rule): an edit that changes the location or timestamp re-signs the record,
    so a record's signature always vouches for the data it points to. ``floAddress`` may not
    change (that would be a transfer, which OIP 0.4.2 leaves unimplemented). The edit message
    and the patched document must keep ``limits``, as a publish must.
    """
    active = _active("edit", edit.txid, state)
    if isinstance(active, Rejected):
        return active
    late = _moves_forward("edit", edit.txid, edit.timestamp, last_edit)
    if late is not None:
        return late
    over = limits.payload_problem(edit.raw_json) or limits.integer_problem(
        "the edit's timestamp", edit.timestamp
    )
    if over is not None:
        return Rejected("edit", f"over the record limits: {over}")
    signed = guarded("edit", lambda: verify_edit(edit, active.publisher))
    if isinstance(signed, Rejected):
        return signed
    if not signed.valid:
        return Rejected("edit", signed.reason)
    if not edit.legacy and signed.preimage != edit_preimage(edit.txid, edit.timestamp):
        return Rejected(
            "edit",
            "the edit's signature covers the legacy preimage (artifactID-publisher-timestamp, "
            "a deactivation's) but the edit is in the newer form, which signs txid-timestamp",
        )
    document = guarded("edit", lambda: apply_patch(active.artifact, edit.patch))
    if isinstance(document, Rejected):
        return document
    patched = guarded("edit", lambda: Artifact.from_wire(document))
    if isinstance(patched, Rejected):
        return Rejected("edit", f"the patched artifact is invalid: {patched.reason}")
    artifact: dict[str, Any] = document  # from_wire took it: an artifact object
    still_over = guarded("edit", lambda: limits.problem(document))
    if isinstance(still_over, Rejected):
        return still_over
    if still_over is not None:
        return Rejected("edit", f"the edited record is over the record limits: {still_over}")
    if patched.floAddress != active.publisher:
        return Rejected(
            "edit",
            f"the edit changes floAddress from {active.publisher} to {patched.floAddress}: "
            "records cannot change hands by an edit",
        )
    result = guarded("edit", lambda: verify_publish(patched))
    if isinstance(result, Rejected):
        return result
    if not result.valid:
        return Rejected("edit", f"the edited record is not valid: {result.reason}")
    return artifact


def check_deactivate(
    message: Deactivate, state: RecordState | None, last_edit: int | None
) -> int | Rejected:
    """The deactivation's timestamp if it may apply: it must target an active record and be
    signed by the record's original publisher."""
    active = _active("deactivate", message.artifact_id, state)
    if isinstance(active, Rejected):
        return active
    if message.timestamp is None:
        return Rejected("deactivate", "the deactivation has no timestamp: nothing was signed")
    late = _moves_forward("deactivate", message.artifact_id, message.timestamp, last_edit)
    if late is not None:
        return late
    result = guarded("deactivate", lambda: verify_deactivate(message, active.publisher))
    if isinstance(result, Rejected):
        return result
    return message.timestamp if result.valid else Rejected("deactivate", result.reason)
