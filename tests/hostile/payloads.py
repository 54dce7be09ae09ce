"""Validly signed hostile OIP payloads, drawn by hypothesis, for ``test_signed_payloads.py``.

Each ``draw_*`` function takes hypothesis' ``data`` (``st.data()``) and returns floData text.
Publishes carry a real signature by one of :data:`KEYS` over the artifact's own location,
address and timestamp, so whatever else the artifact holds (huge or odd numbers, lone
surrogates, NUL, RTL overrides, long strings, deep nesting, unknown and duplicated keys, wrong
types) reaches the indexer's later checks, the catalog and the pages. Edits, deactivations and
multipart parts are signed the same way; :func:`malleate` derives the signature variants a
relayer can make of a signed text without the key (non-canonical base64, high-S twins, other
header bytes).

JSON that ``json.dumps`` cannot write (duplicated keys, nesting past the decoder's limit) is
spliced in as raw text: a value ``raw(text)`` is replaced after dumping (:func:`dumps`).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import re
from typing import Any

from hypothesis import strategies as st

from etdb.record.metasign import META_KEY, meta_signature
from etdb.record.signing import (
    CURVE_ORDER,
    PrivateKey,
    SigningError,
    deactivate_preimage,
    edit_preimage,
    publish_preimage,
    sign_message,
)
from tests.index.records import BASE, REAL_FILES

#: The signers: most messages by the first, the others for foreign edits and mixed parts.
KEYS = tuple(PrivateKey(bytes([0x40 + i]) * 32) for i in range(3))
_ADDRESSES = {key: key.address for key in KEYS}  # PrivateKey.address hashes on every call


def address(key: PrivateKey) -> str:
    return _ADDRESSES.get(key) or key.address


T0 = 1_600_000_000

# -- hostile values ---------------------------------------------------------------------------

INT64_MAX = 2**63 - 1
NUMBERS: tuple[Any, ...] = (
    INT64_MAX, -(2**63), 2**63, 2**64, 10**30, -(10**20), -1, 0, 1, 1.5, -0.0, 1e308,
    1e-300, 2.0**63, True, False, None, "55", "", [], {}, [1, 2], {"a": 1},
)  # fmt: skip
TEXTS: tuple[str, ...] = (
    "\ud800",  # lone high surrogate (sent as the JSON escape)
    "a\udfffb",
    "x\x00y",  # NUL
    "\u202eevil\u202c.exe",  # RTL override
    "\u200f\u200e\u2066\u2069",
    "\ufeff\u200b",
    "e\u0301" * 200,  # combining marks
    "<script>alert(1)</script>",
    "{{ 7*7 }}",
    "Müller \U0001f9ec 細菌",
    "   ",
    "%s%n",
    "\r\n\t",
    "../../etc/passwd",
)
LONG_SIZES = (1_000, 10_000, 40_000)
DEPTHS = (5, 40, 63, 64, 65, 300)
FIELDS: dict[str, tuple[str, ...]] = {
    "details": (*BASE["details"], "emdb", "roles", "swAcquisition", "swReconstruction"),
    "info": ("title", "description", "tags", "year"),
    "storage": ("location", "network", "files"),
    "top": ("type", "subtype", "timestamp", "floAddress", "signature", "info", "details"),
    "file": ("fname", "fsize", "subtype", "type", "dname", "cType", "fNotes", "software"),
}
UNKNOWN_KEYS = ("zzUnknown", "", "__proto__", "constructor", "a" * 300, "\u202ekey", "k\x00")


def raw(text: str) -> dict[str, str]:
    """A value to be written as this JSON text itself (see :func:`dumps`)."""
    return {"@raw": text}


def dumps(value: Any, *, ascii_only: bool) -> str:
    """``json.dumps`` with every ``raw(text)`` spliced in as ``text``; lone surrogates can
    only travel as escapes (the ledger stores UTF-8), so they force ``ascii_only``."""
    spliced: list[str] = []

    def swap(node: Any) -> Any:
        if isinstance(node, dict):
            if set(node) == {"@raw"}:
                spliced.append(node["@raw"])
                return f"@@RAW{len(spliced) - 1}@@"
            return {k: swap(v) for k, v in node.items()}
        if isinstance(node, list):
            return [swap(v) for v in node]
        return node

    swapped = swap(value)
    text = json.dumps(swapped, ensure_ascii=ascii_only)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(swapped, ensure_ascii=True)
    for i, piece in enumerate(spliced):
        text = text.replace(f'"@@RAW{i}@@"', piece)
    return text


def hostile_text(data: Any) -> str:
    choice = data.draw(st.integers(0, 3), label="text kind")
    if choice == 0:
        return data.draw(st.sampled_from(TEXTS), label="text")
    if choice == 1:
        size = data.draw(st.sampled_from(LONG_SIZES), label="long text")
        return data.draw(st.sampled_from(("x", "é", "\u202e", "ab ")), label="unit") * size
    return data.draw(st.text(max_size=30), label="random text")


def nested(depth: int) -> dict[str, str]:
    return raw("[" * depth + "1" + "]" * depth)


def hostile_value(data: Any) -> Any:
    choice = data.draw(st.integers(0, 4), label="value kind")
    if choice <= 1:
        return data.draw(st.sampled_from(NUMBERS), label="number")
    if choice == 2:
        return hostile_text(data)
    if choice == 3:
        return nested(data.draw(st.sampled_from(DEPTHS), label="depth"))
    return data.draw(st.integers(-(2**70), 2**70) | st.floats(allow_nan=False), label="num")


# -- publishes --------------------------------------------------------------------------------


def base_artifact(key: PrivateKey, n: int) -> dict[str, Any]:
    """Record ``n`` of a scenario: the real rr2014-01-14-5 record, made unique, unsigned."""
    art = copy.deepcopy(BASE)
    art["floAddress"] = address(key)
    art["timestamp"] = T0 + n
    art["info"]["title"] = f"record {n}"
    art["details"]["sid"] = f"hx2020-01-01-{n}"
    art["storage"]["location"] = f"bafyhostile{n:08d}"
    art["storage"]["files"] = copy.deepcopy(REAL_FILES[: 1 + n % len(REAL_FILES)])
    return art


def _section(art: dict[str, Any], name: str) -> dict[str, Any] | None:
    if name == "top":
        return art
    if name == "file":
        files = art.get("storage", {}).get("files")
        return (
            files[0] if isinstance(files, list) and files and isinstance(files[0], dict) else None
        )
    node = art.get(name)
    return node if isinstance(node, dict) else None


def mutate(data: Any, art: dict[str, Any]) -> None:
    """One hostile change to ``art``, in place."""
    what = data.draw(st.integers(0, 7), label="mutation")
    section_name = data.draw(st.sampled_from(tuple(FIELDS)), label="section")
    section = _section(art, section_name)
    if section is None:
        return
    if what <= 2:
        section[data.draw(st.sampled_from(FIELDS[section_name]), label="field")] = hostile_value(
            data
        )
    elif what == 3:
        section.pop(data.draw(st.sampled_from(FIELDS[section_name]), label="drop"), None)
    elif what == 4:
        section[data.draw(st.sampled_from(UNKNOWN_KEYS), label="key")] = hostile_value(data)
    elif what == 5:  # a duplicated key: two values for one name in the same object
        name = data.draw(st.sampled_from(FIELDS[section_name]), label="dup")
        value = json.dumps(hostile_text(data))
        section[f"{name}@dup"] = raw(f'{json.dumps(section.get(name, 1))}, "{name}": {value}')
    elif what == 6:  # sizes at the int64 edge, on many files (facet sums)
        files = [dict(f, fsize=INT64_MAX) for f in REAL_FILES]
        art.setdefault("storage", {})["files"] = files * data.draw(st.integers(1, 3))
    else:
        section[data.draw(st.sampled_from(FIELDS[section_name]), label="text field")] = (
            hostile_text(data)
        )


def _fix_duplicates(text: str) -> str:
    # ``"name@dup": <raw>`` -> ``"name": <old>, "name": <new>``; done after dumping so the
    # object keeps both members.
    return re.sub(r'"([^"@]*)@dup": ', r'"\1": ', text)


def _signable(value: Any) -> bool:
    """Whether ``value`` is text a signature can cover (lone surrogates cannot be signed)."""
    try:
        return isinstance(value, str) and value.encode("utf-8") is not None
    except UnicodeEncodeError:
        return False


def sign_publish(art: dict[str, Any], key: PrivateKey, signed: tuple[str, str, int]) -> None:
    """Sign ``(location, address, timestamp)`` (what the artifact says, where it can)."""
    art["signature"] = sign_message(key, publish_preimage(*signed))


def add_meta_signature(art: dict[str, Any], key: PrivateKey) -> None:
    """Sign the metadata too (etdb's own records), where the artifact as sent is what the
    dict holds: not with spliced raw JSON, not with text no signature can cover."""
    if "@raw" in repr(art) or "@dup" in repr(art):
        return
    with contextlib.suppress(SigningError, TypeError, ValueError):
        art[META_KEY] = meta_signature(art, key)


def draw_publish(data: Any, key: PrivateKey, n: int) -> tuple[str, bool]:
    """A validly signed publish of record ``n`` with 0-4 hostile changes; (text, whether it
    has none: edits and deactivations aim at those most, to reach what follows them)."""
    art = base_artifact(key, n)
    changes = data.draw(st.integers(0, 4), label="mutations")
    for _ in range(changes):
        mutate(data, art)
    storage = art.get("storage")
    location = storage.get("location") if isinstance(storage, dict) else ""
    stamp, publisher = art.get("timestamp"), art.get("floAddress")
    if not (_signable(location) and _signable(publisher)) or type(stamp) is not int:
        # Unsignable as it stands: sign what record n said (the signature will not check).
        location, stamp, publisher = f"bafyhostile{n:08d}", T0 + n, address(key)
    sign_publish(art, key, (location, publisher, stamp))
    if data.draw(st.integers(0, 2), label="metaSignature") == 0:
        add_meta_signature(art, key)
    envelope = {"oip042": {"publish": {"artifact": art}}}
    if data.draw(st.booleans(), label="signature beside"):
        envelope = {"oip042": {"publish": {"artifact": art, "signature": art.pop("signature")}}}
    prefix = data.draw(st.sampled_from(("json:", "json:", "", " json:")), label="prefix")
    text = prefix + _fix_duplicates(dumps(envelope, ascii_only=data.draw(st.booleans())))
    return text, changes == 0


# -- edits and deactivations ------------------------------------------------------------------

PATHS = (
    "/info/title", "/details/tiltMin", "/details/speciesName", "/storage/files/0/fsize",
    "/storage/files/-", "/details/zzUnknown", "/artifact/info/title", "/info", "/floAddress",
    "/storage/files/99999999999999999999", "/storage/files/01", "", "/", "/details/~2",
    "/storage/location", "/timestamp", "/signature",
)  # fmt: skip


def hostile_op(data: Any) -> Any:
    kind = data.draw(st.integers(0, 6), label="op kind")
    path = data.draw(st.sampled_from(PATHS), label="path")
    if kind <= 2:
        op = data.draw(st.sampled_from(("replace", "add")), label="op")
        return {"op": op, "path": path, "value": hostile_value(data)}
    if kind == 3:
        return {"op": "remove", "path": path}
    if kind == 4:
        op = data.draw(st.sampled_from(("move", "copy")), label="op")
        return {"op": op, "from": path, "path": data.draw(st.sampled_from(PATHS))}
    if kind == 5:
        return {"op": "test", "path": path, "value": hostile_value(data)}
    return data.draw(
        st.sampled_from(({"op": "frob", "path": "/x"}, {"path": "/x"}, 7, None, {"op": "add"})),
        label="odd op",
    )


def resign_ops(key: PrivateKey, location: str, stamp: int) -> list[dict[str, Any]]:
    """The ops that move a record and re-sign it (what etdb's own edits do)."""
    signature = sign_message(key, publish_preimage(location, address(key), stamp))
    return [
        {"op": "replace", "path": "/storage/location", "value": location},
        {"op": "replace", "path": "/timestamp", "value": stamp},
        {"op": "replace", "path": "/signature", "value": signature},
    ]


def draw_edit(data: Any, record_id: str, key: PrivateKey, stamp: int) -> str:
    """An edit of ``record_id`` signed by ``key`` at ``stamp`` (valid or hostile patch)."""
    # Half the edits are what a lab sends (a new title, odd as it may be; a move, re-signed),
    # the other half add hostile operations to that.
    hostile = data.draw(st.integers(0, 3), label="hostile ops") - 1
    ops: Any = [hostile_op(data) for _ in range(max(hostile, 0))]
    if data.draw(st.booleans(), label="retitle"):
        ops.insert(0, {"op": "replace", "path": "/info/title", "value": hostile_text(data)})
    if not ops or data.draw(st.booleans(), label="moves"):
        ops += resign_ops(key, f"bafymoved{stamp}", stamp)
    if data.draw(st.integers(0, 9), label="patch shape") == 9:
        ops = data.draw(st.sampled_from(({"add": ops}, "[", ops and ops[0], 5)), label="odd")
    target = record_id.upper() if data.draw(st.integers(0, 9), label="case") == 9 else record_id
    legacy = data.draw(st.integers(0, 5), label="legacy") == 5
    preimage = (
        deactivate_preimage(target, address(key), stamp) if legacy else edit_preimage(target, stamp)
    )
    signature = sign_message(key, preimage)
    if legacy:
        body = {"artifact": {"artifactID": target, "timestamp": stamp, "patch": ops,
                             "signature": signature}}  # fmt: skip
    else:
        body = {"artifact": {"txid": target, "timestamp": stamp, "patch": ops},
                "signature": signature}  # fmt: skip
    return "json:" + dumps({"oip042": {"edit": body}}, ascii_only=True)


def draw_deactivate(data: Any, record_id: str, key: PrivateKey, stamp: int) -> str:
    target = record_id.upper() if data.draw(st.integers(0, 9), label="case") == 9 else record_id
    signature = sign_message(key, deactivate_preimage(target, address(key), stamp))
    body: dict[str, Any] = {"artifactID": target, "timestamp": stamp, "signature": signature}
    if data.draw(st.integers(0, 9), label="odd stamp") == 9:
        body["timestamp"] = data.draw(st.sampled_from(NUMBERS), label="stamp")
    return "json:" + dumps({"oip042": {"deactivate": {"artifact": body}}}, ascii_only=True)


# -- signature malleations ---------------------------------------------------------------------

#: A base64 compact signature (65 bytes -> 88 characters) inside any text.
SIGNATURE = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{86}[AEIMQUYcgkosw048]=")
_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
MALLEATIONS = ("padding bits", "low bit", "high-S twin", "uncompressed header", "p2sh header")


def malleated_signature(signature: str, how: str) -> str:
    """What anyone can make of a signature without the key (some still verify)."""
    if how == "padding bits":  # same 65 bytes: the last character's two unused bits set
        last = _B64.index(signature[86])
        return signature[:86] + _B64[last | 1] + "="
    if how == "low bit":
        return signature[:40] + _B64[_B64.index(signature[40]) ^ 1] + signature[41:]
    raw_sig = bytearray(base64.b64decode(signature))
    header = raw_sig[0]
    if how == "high-S twin":  # (r, n - s) with the other recovery id: verifies too
        s = int.from_bytes(raw_sig[33:], "big")
        raw_sig[33:] = (CURVE_ORDER - s).to_bytes(32, "big")
        raw_sig[0] = 31 + ((header - 31) ^ 1) if 31 <= header <= 34 else header
    elif how == "uncompressed header":
        raw_sig[0] = header - 4 if header >= 31 else header
    else:
        raw_sig[0] = header + 4 if header <= 34 else header
    return base64.b64encode(bytes(raw_sig)).decode("ascii")


def malleate(data: Any, text: str) -> str | None:
    """``text`` with one of its signatures malleated, or None if it carries none."""
    found = list(SIGNATURE.finditer(text))
    if not found:
        return None
    match = found[data.draw(st.integers(0, len(found) - 1), label="which signature")]
    how = data.draw(st.sampled_from(MALLEATIONS), label="malleation")
    return text[: match.start()] + malleated_signature(match.group(), how) + text[match.end() :]
