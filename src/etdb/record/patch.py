"""RFC 6902 JSON Patch for record edits (reference §4): apply, diff, and OIP "squashed" patches.

Edits on the ledger carry a patch of the artifact JSON. Newer oipd/js-oip use a plain RFC 6902
operation list with artifact-relative paths (oipd prepends ``/artifact`` itself); the 2018
daemon used a "squashed" object ``{remove:[paths], add:[{path,value}], ...}`` and js-oip's
variant keys values by path (``{add:{path:value}}``, ``{move:{from:path}}``).
:func:`normalize_patch` turns any of them into RFC 6902 operations.

Everything here raises only :class:`PatchError` on bad input.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from etdb.record.errors import PatchError

__all__ = ["apply_patch", "diff", "json_equal", "normalize_patch", "squash"]

_OPS = ("add", "remove", "replace", "move", "copy", "test")
_INDEX = re.compile(r"0|[1-9][0-9]*")
_ARTIFACT_PREFIX = "/artifact"


def json_equal(a: Any, b: Any) -> bool:
    """RFC 6902 equality: numbers by value, booleans are not numbers, objects unordered."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


# -- JSON pointers ----------------------------------------------------------------------------


def _tokens(pointer: Any) -> list[str]:
    if not isinstance(pointer, str):
        raise PatchError(f"a JSON pointer must be a string, got {type(pointer).__name__}")
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchError(f"JSON pointer {pointer!r} must be empty or start with '/'")
    tokens = pointer[1:].split("/")
    for token in tokens:
        if re.search(r"~(?![01])", token):
            raise PatchError(f"JSON pointer {pointer!r} has a '~' not followed by 0 or 1")
    return [t.replace("~1", "/").replace("~0", "~") for t in tokens]


def _index(container: list[Any], token: str, pointer: str, *, allow_end: bool) -> int:
    if allow_end and token == "-":
        return len(container)
    if not _INDEX.fullmatch(token):
        raise PatchError(f"{pointer!r}: {token!r} is not an array index")
    index = int(token)
    limit = len(container) if allow_end else len(container) - 1
    if index > limit:
        raise PatchError(f"{pointer!r}: index {index} is out of range (length {len(container)})")
    return index


def _child(node: Any, token: str, pointer: str) -> Any:
    if isinstance(node, dict):
        if token not in node:
            raise PatchError(f"{pointer!r}: no member {token!r}")
        return node[token]
    if isinstance(node, list):
        return node[_index(node, token, pointer, allow_end=False)]
    raise PatchError(f"{pointer!r}: cannot descend into a {_kind(node)}")


def _kind(node: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(node), "null" if node is None else "number"
    )


def _get(doc: Any, pointer: str) -> Any:
    node = doc
    for token in _tokens(pointer):
        node = _child(node, token, pointer)
    return node


def _parent(doc: Any, pointer: str) -> tuple[Any, str]:
    tokens = _tokens(pointer)
    node = doc
    for token in tokens[:-1]:
        node = _child(node, token, pointer)
    return node, tokens[-1]


# -- operations -------------------------------------------------------------------------------


def _add(doc: Any, pointer: str, value: Any) -> Any:
    if pointer == "":
        return value
    parent, token = _parent(doc, pointer)
    if isinstance(parent, dict):
        parent[token] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, token, pointer, allow_end=True), value)
    else:
        raise PatchError(f"{pointer!r}: cannot add a member to a {_kind(parent)}")
    return doc


def _remove(doc: Any, pointer: str) -> tuple[Any, Any]:
    if pointer == "":
        raise PatchError("cannot remove the whole document")
    parent, token = _parent(doc, pointer)
    if isinstance(parent, dict):
        if token not in parent:
            raise PatchError(f"{pointer!r}: no member {token!r} to remove")
        return doc, parent.pop(token)
    if isinstance(parent, list):
        return doc, parent.pop(_index(parent, token, pointer, allow_end=False))
    raise PatchError(f"{pointer!r}: cannot remove from a {_kind(parent)}")


def _replace(doc: Any, pointer: str, value: Any) -> Any:
    if pointer == "":
        return value
    parent, token = _parent(doc, pointer)
    if isinstance(parent, dict):
        if token not in parent:
            raise PatchError(f"{pointer!r}: no member {token!r} to replace")
        parent[token] = value  # in place, so the key keeps its position
    elif isinstance(parent, list):
        parent[_index(parent, token, pointer, allow_end=False)] = value
    else:
        raise PatchError(f"{pointer!r}: cannot replace inside a {_kind(parent)}")
    return doc


def _apply_one(doc: Any, op: Mapping[str, Any]) -> Any:
    name, path = op["op"], op["path"]
    if name == "add":
        return _add(doc, path, copy.deepcopy(op["value"]))
    if name == "remove":
        return _remove(doc, path)[0]
    if name == "replace":
        return _replace(doc, path, copy.deepcopy(op["value"]))
    if name == "test":
        if not json_equal(_get(doc, path), op["value"]):
            raise PatchError(f"test failed: {path!r} does not hold the expected value")
        return doc
    source = op["from"]
    if name == "move":
        if path != source and path.startswith(source + "/"):
            raise PatchError(f"cannot move {source!r} into its own child {path!r}")
        if path == source:
            _get(doc, source)
            return doc
        doc, value = _remove(doc, source)
        return _add(doc, path, value)
    return _add(doc, path, copy.deepcopy(_get(doc, source)))  # copy


def _check_op(op: Any, i: int) -> dict[str, Any]:
    if not isinstance(op, Mapping):
        raise PatchError(f"patch operation {i} is not an object")
    name = op.get("op")
    if name not in _OPS:
        raise PatchError(f"patch operation {i}: unknown op {name!r} (expected one of {_OPS})")
    needed = ["path"] + (["value"] if name in ("add", "replace", "test") else [])
    needed += ["from"] if name in ("move", "copy") else []
    for key in needed:
        if key not in op:
            raise PatchError(f"patch operation {i} ({name}) lacks {key!r}")
    for key in ("path", "from"):
        if key in needed:
            _tokens(op[key])  # validates syntax early, with the operation number in context
    # Canonical member order; other members are ignored, as RFC 6902 allows.
    return {k: op[k] for k in ("op", "from", "path", "value") if k in needed or k == "op"}


def _strip_prefix(op: dict[str, Any], doc: Any) -> dict[str, Any]:
    # Tolerate oipd-style paths ("/artifact/...") unless the document itself has "artifact".
    if isinstance(doc, dict) and "artifact" in doc:
        return op
    for key in ("path", "from"):
        value = op.get(key)
        if isinstance(value, str) and (
            value == _ARTIFACT_PREFIX or value.startswith(_ARTIFACT_PREFIX + "/")
        ):
            op[key] = value[len(_ARTIFACT_PREFIX) :]
    return op


def apply_patch(doc: Any, patch: Any, *, strip_artifact_prefix: bool = True) -> Any:
    """Apply an RFC 6902 (or squashed) patch to a JSON value; the input is not modified."""
    ops = normalize_patch(patch)
    try:
        result = copy.deepcopy(doc)
        for op in ops:
            if strip_artifact_prefix:
                op = _strip_prefix(op, result)
            result = _apply_one(result, op)
    except RecursionError:
        raise PatchError("document nested too deeply to patch") from None
    return result


# -- squashed patches -------------------------------------------------------------------------


def normalize_patch(patch: Any) -> list[dict[str, Any]]:
    """RFC 6902 operations from a list, a squashed object, or JSON text of either."""
    if isinstance(patch, str | bytes):
        try:
            patch = json.loads(patch)
        except (ValueError, RecursionError):
            raise PatchError("patch is a string but not JSON text") from None
    if isinstance(patch, Mapping):
        patch = _unsquash(patch)
    if not isinstance(patch, Sequence) or isinstance(patch, str | bytes):
        raise PatchError(f"a patch must be a list of operations, got {type(patch).__name__}")
    return [_check_op(op, i) for i, op in enumerate(patch)]


def _unsquash(squashed: Mapping[Any, Any]) -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = []
    for name, entries in squashed.items():
        if name not in _OPS:
            raise PatchError(f"squashed patch has unknown operation {name!r}")
        if name == "remove":
            if not isinstance(entries, list):
                raise PatchError("squashed patch: 'remove' must be a list of paths")
            ops.extend({"op": "remove", "path": path} for path in entries)
        elif isinstance(entries, list):  # mp-newdb: [{path, value}] / [{from, path}]
            for entry in entries:
                if not isinstance(entry, Mapping):
                    raise PatchError(f"squashed patch: {name!r} entries must be objects")
                ops.append({**entry, "op": name})
        elif isinstance(entries, Mapping):  # js-oip: {path: value} / {from: path}
            for key, value in entries.items():
                if name in ("move", "copy"):
                    ops.append({"op": name, "from": key, "path": value})
                else:
                    ops.append({"op": name, "path": key, "value": value})
        else:
            raise PatchError(f"squashed patch: {name!r} must be a list or an object")
    return ops


def squash(ops: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """The 2018 (mp-newdb) squashed form. Note it applies removes first, then adds, …"""
    out: dict[str, list[Any]] = {}
    for op in normalize_patch(list(ops)):
        name = op.pop("op")
        out.setdefault(name, []).append(op["path"] if name == "remove" else op)
    return {name: out[name] for name in _OPS if name in out}


# -- diff -------------------------------------------------------------------------------------


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _same(a: Any, b: Any) -> bool:
    # Stricter than json_equal: 1 and 1.0 encode differently, so a change between them counts.
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


def diff(old: Any, new: Any, path: str = "") -> list[dict[str, Any]]:
    """A small RFC 6902 patch turning ``old`` into ``new`` (apply_patch(old, p) == new)."""
    if _same(old, new):
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        ops: list[dict[str, Any]] = []
        for key in old:
            sub = f"{path}/{_escape(key)}"
            if key not in new:
                ops.append({"op": "remove", "path": sub})
            else:
                ops.extend(diff(old[key], new[key], sub))
        ops.extend(
            {"op": "add", "path": f"{path}/{_escape(k)}", "value": copy.deepcopy(v)}
            for k, v in new.items()
            if k not in old
        )
        return ops
    if isinstance(old, list) and isinstance(new, list):
        common = min(len(old), len(new))
        ops = []
        for i in range(common):
            ops.extend(diff(old[i], new[i], f"{path}/{i}"))
        # Trailing removals from the end so earlier indexes stay valid.
        ops.extend(
            {"op": "remove", "path": f"{path}/{i}"} for i in range(len(old) - 1, common - 1, -1)
        )
        ops.extend(
            {"op": "add", "path": f"{path}/-", "value": copy.deepcopy(v)} for v in new[common:]
        )
        return ops
    return [{"op": "replace", "path": path, "value": copy.deepcopy(new)}]
