"""Decoding floData / OIP JSON into :mod:`etdb.record.messages` (re-exported by ``wire``).

Accepted inputs (reference §1, §4, §5, §10): ``json:``/``text:`` floData or bare JSON text;
the on-chain envelope ``{"oip042":{"publish"|"edit"|"deactivate":…}}`` in any key order; the
oipd document ``{artifact, meta}``; the 2018 daemon / oip-js ``{"oip042":{"artifact":…}}``;
the malformed ``{"oip042":{"floAddress":…}}`` oip-js had to special-case; both edit forms;
and, on request, a bare artifact object. Anything else raises :class:`WireFormatError` with
the reason; schema problems raise :class:`ValidationError`, bad patches :class:`PatchError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from etdb.record.errors import WireFormatError
from etdb.record.messages import Deactivate, Edit, Message, Publish
from etdb.record.model import Artifact
from etdb.record.multipart import MULTIPART_PREFIXES
from etdb.record.patch import normalize_patch

__all__ = ["MAX_DEPTH", "UNSAFE_TEXT", "decode", "loads", "text_problem"]

MAX_DEPTH = 64  # records are ~5 levels deep; this bounds recursion in everything downstream

#: The text rule, for every string of every message (keys too): no NUL or other C0 control
#: except tab, newline and carriage return (they are not text; PostgreSQL refuses NUL), and
#: no lone surrogate U+D800-U+DFFF (a JSON "\ud800" escape makes one; no UTF-8 text can carry
#: it, so every encoder, page and driver fails on it). Such text is refused, not cleaned:
#: signatures cover strings (the publish preimage's location and address; an etdb record's
#: metaSignature covers every field), and cleaning must never change what was signed. Honest
#: text never has them (ETDB-Caltech's historical records have none).
UNSAFE_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")
_ARTIFACT_KEYS = frozenset({"floAddress", "timestamp", "type", "info", "details", "storage"})


def _reject_constant(name: str) -> Any:
    raise WireFormatError(f"not valid JSON: {name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise WireFormatError(f"not valid JSON for OIP: number {text[:30]} is out of range")
    return value


def text_problem(text: str) -> str | None:
    """Why ``text`` breaks the text rule (:data:`UNSAFE_TEXT`), or None."""
    found = UNSAFE_TEXT.search(text)
    if found is None:
        return None
    char = ord(found.group())
    what = "a lone surrogate" if char >= 0xD800 else "a control character"
    return f"{what} (U+{char:04X}) at character {found.start()}"


def _check_tree(value: Any, check_text: bool) -> None:
    stack: list[tuple[Any, int, str]] = [(value, 1, "")]
    while stack:
        node, depth, path = stack.pop()
        if depth > MAX_DEPTH:
            raise WireFormatError(f"JSON nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, dict):
            for k, v in node.items():
                where = f"{path}.{k}" if path else k
                if check_text and (problem := text_problem(k)) is not None:
                    at = _short(path) or "the top"
                    raise WireFormatError(f"JSON key {_short(k)!r} at {at}: {problem}")
                stack.append((v, depth + 1, where))
        elif isinstance(node, list):
            stack.extend((v, depth + 1, f"{path}[{i}]") for i, v in enumerate(node))
        elif check_text and isinstance(node, str) and (problem := text_problem(node)):
            raise WireFormatError(f"{_short(path) or 'the JSON text'}: {problem}")


def _short(path: str) -> str:
    # Keys are as long as a hostile sender likes; a reason is stored and shown.
    return path if len(path) <= 120 else f"{path[:117]}..."


def loads(text: str | bytes, *, check_text: bool = True) -> Any:
    """Strict JSON: no NaN/Infinity, bounded nesting, the text rule (:data:`UNSAFE_TEXT`;
    ``check_text=False`` only to look at the shape of refused text); only
    :class:`WireFormatError` escapes."""
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except WireFormatError:
        raise
    except UnicodeDecodeError as exc:
        raise WireFormatError(f"not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    except RecursionError:
        raise WireFormatError(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # JSONDecodeError, or an integer with too many digits
        raise WireFormatError(f"not valid JSON: {exc}") from None
    _check_tree(value, check_text)
    return value


def _payload(text: str) -> str:
    s = text.strip()
    if not s:
        raise WireFormatError("empty floData")
    if s.startswith(("json:", "text:")):  # the 2018 daemon stripped both prefixes
        return s[5:]
    if s.startswith(MULTIPART_PREFIXES):
        raise WireFormatError(
            "this is one part of a multipart message (oip-mp); join all parts with "
            "etdb.record.multipart.join and decode the result"
        )
    if s.startswith(("p64:", "gp64:")):
        raise WireFormatError("protobuf OIP messages (p64:/gp64:) are not supported")
    if s.startswith("{"):
        return s
    raise WireFormatError(
        f"not an OIP 0.4.2 message: floData starts with {s[:24]!r}, "
        "expected the 'json:' prefix or a JSON object"
    )


def decode(
    data: str | bytes | Mapping[str, Any], *, strict: bool = True, bare_artifact: bool = False
) -> Message:
    """Decode floData, OIP JSON text or an already-parsed JSON object.

    ``strict`` requires a publish to carry every mandatory field (Table 1 plus the signature);
    pass ``strict=False`` for drafts and foreign records. ``bare_artifact`` also accepts a
    plain artifact object with no envelope.
    """
    if isinstance(data, Mapping):
        try:
            raw = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError, RecursionError) as exc:
            raise WireFormatError(f"not a JSON object: {exc}") from None
        obj = loads(raw)
    else:
        if isinstance(data, bytes):
            try:
                data = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise WireFormatError(f"floData is not UTF-8: {exc.reason}") from None
        if not isinstance(data, str):
            raise WireFormatError(f"cannot decode a {type(data).__name__}")
        raw = _payload(data)
        obj = loads(raw)
    if not isinstance(obj, dict):
        raise WireFormatError(f"an OIP message is a JSON object, got a JSON {_kind(obj)}")
    return _dispatch(obj, raw, strict=strict, bare_artifact=bare_artifact)


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return "boolean" if isinstance(value, bool) else "number"


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise WireFormatError(f"{where} must be a JSON object, got a JSON {_kind(value)}")
    return value


def _dispatch(obj: dict[str, Any], raw: str, *, strict: bool, bare_artifact: bool) -> Message:
    if "oip042" in obj:
        inner = _object(obj["oip042"], "'oip042'")
        # 2018 daemon results: {oip042:{artifact}, txid, publisher}
        daemon: dict[str, Any] = {
            k: obj[k] for k in ("txid", "publisher", "publisherName") if k in obj
        }
        return _dispatch_042(inner, raw, strict=strict, meta=daemon or None)
    if "artifact" in obj:  # oipd document {artifact, meta}
        meta = obj.get("meta") if isinstance(obj.get("meta"), dict) else None
        sig = (meta or {}).get("signature")
        return _publish(obj["artifact"], raw, "oipd", meta, sig, strict=strict)
    if any(verb in obj for verb in ("publish", "edit", "deactivate")):
        return _dispatch_042(obj, raw, strict=strict, meta=None)  # envelope without "oip042"
    if any(k in obj for k in ("oip-041", "alexandria-media", "media-data")):
        raise WireFormatError("an OIP 0.4.1 / alexandria-media record, not OIP 0.4.2")
    if bare_artifact and _ARTIFACT_KEYS & obj.keys():
        return _publish(obj, raw, "bare", None, None, strict=strict)
    keys = ", ".join(repr(k) for k in list(obj)[:6]) or "none"
    raise WireFormatError(
        f"not an OIP 0.4.2 message: no 'oip042' envelope (top-level keys: {keys})"
    )


def _dispatch_042(
    inner: dict[str, Any], raw: str, *, strict: bool, meta: dict[str, Any] | None
) -> Message:
    if "publish" in inner:
        pub = _object(inner["publish"], "'publish'")
        if "artifact" not in pub:
            raise WireFormatError("'publish' has no 'artifact' (only artifacts are supported)")
        return _publish(pub["artifact"], raw, "oip042", meta, pub.get("signature"), strict=strict)
    if "edit" in inner:
        return _edit(_object(inner["edit"], "'edit'"), raw, meta)
    if "deactivate" in inner:
        return _deactivate(_object(inner["deactivate"], "'deactivate'"), raw, meta)
    if "artifact" in inner:
        return _publish(
            inner["artifact"], raw, "oip042-artifact", meta, inner.get("signature"), strict=strict
        )
    if "floAddress" in inner:  # oip-js: "Returned info is Malformed!"
        return _publish(inner, raw, "malformed", meta, None, strict=strict)
    for verb in ("register", "transfer"):
        if verb in inner:
            raise WireFormatError(f"OIP 0.4.2 {verb!r} messages are not supported")
    keys = ", ".join(repr(k) for k in list(inner)[:6]) or "none"
    raise WireFormatError(f"'oip042' holds none of publish/edit/deactivate/artifact (keys: {keys})")


def _publish(
    art: Any,
    raw: str,
    shape: str,
    meta: dict[str, Any] | None,
    signature: Any,
    *,
    strict: bool,
) -> Publish:
    art = _object(art, "'artifact'")
    if signature is not None and "signature" not in art:
        art = {**art, "signature": signature}  # signature stored beside the artifact
    artifact = Artifact.from_wire(art)
    if strict:
        artifact.require_complete()
    return Publish(artifact=artifact, raw_json=raw, meta=meta, shape=shape)


def _signature(*candidates: Any) -> str | None:
    for value in candidates:
        if value is None:
            continue
        if not isinstance(value, str):
            raise WireFormatError(f"a signature must be a string, got a JSON {_kind(value)}")
        return value
    return None


def _edit(body: dict[str, Any], raw: str, meta: dict[str, Any] | None) -> Edit:
    art = _object(body.get("artifact", body), "'edit.artifact'")
    legacy = "artifactID" in art
    txid = art.get("artifactID") if legacy else art.get("txid")
    if not isinstance(txid, str) or not txid:
        raise WireFormatError("an edit needs the original record's 'txid' (2018: 'artifactID')")
    timestamp = art.get("timestamp")
    if not isinstance(timestamp, int) or isinstance(timestamp, bool):
        raise WireFormatError("an edit needs an integer 'timestamp'")
    if "patch" not in art:
        raise WireFormatError("an edit needs a 'patch'")
    patch = normalize_patch(art["patch"])
    beside = body.get("signature") if art is not body else None
    sig = _signature(beside, art.get("signature"), (meta or {}).get("signature"))
    return Edit(txid, timestamp, patch, sig, legacy, raw, meta)


def _deactivate(body: dict[str, Any], raw: str, meta: dict[str, Any] | None) -> Deactivate:
    art = _object(body.get("artifact", body), "'deactivate.artifact'")
    target = next((art[k] for k in ("artifactID", "txid", "reference") if k in art), None)
    if not isinstance(target, str) or not target:
        raise WireFormatError("a deactivate needs the record's 'artifactID' (or 'txid')")
    timestamp = art.get("timestamp")
    if timestamp is not None and (not isinstance(timestamp, int) or isinstance(timestamp, bool)):
        raise WireFormatError("a deactivate's 'timestamp' must be an integer")
    beside = body.get("signature") if art is not body else None
    sig = _signature(art.get("signature"), beside, (meta or {}).get("signature"))
    return Deactivate(target, timestamp, sig, raw, meta)
