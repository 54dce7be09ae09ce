"""What changed in a dataset since it was last published, found cheaply.

A nightly run over a lab's whole catalogue (tens of terabytes) must not read the data to learn
that nothing changed. Two fingerprints, both kept in the publishing journal, answer it:

- the *content* fingerprint hashes the folder's listing from ``os.stat`` alone (relative path,
  size and ``mtime_ns`` of every file the importer would add, symlink targets, the generated
  media overlaid on it (each file of an overlaid pyramid), and the CID profile, since another
  profile gives other CIDs). Equal
  fingerprints mean the stored CID still describes the folder; the bytes are not read.
- the *record* fingerprint hashes the canonical unsigned artifact (the record without
  ``floAddress``, ``timestamp``, ``signature`` and ``metaSignature``, which change with every
  signing). Equal fingerprints mean the record on the ledger already says what the source says.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from etdb.publish.pyramids import is_folder_entry, tree_listing
from etdb.record import Artifact, diff

__all__ = [
    "SIGNING_KEYS",
    "changed_paths",
    "content_fingerprint",
    "record_fingerprint",
    "unsigned_wire",
]

#: Artifact keys that change with every signing and so never count as a change of the record.
SIGNING_KEYS = ("floAddress", "timestamp", "signature", "metaSignature")


def _listing(folder: Path) -> Iterable[tuple[str, str, int, int]]:
    """(kind, relative path, size, mtime_ns) of every entry the importer adds, any order.

    Skips what ``Importer`` skips (names starting with ".", except inside a folder entry such
    as a pyramid, whose dot files are data); symlinks are stored as links, so their target (not
    the file behind it) is what counts.
    """
    stack = [(folder, "")]
    while stack:
        path, rel = stack.pop()
        with os.scandir(path) as it:
            for entry in it:
                if entry.name.startswith("."):
                    continue
                sub = f"{rel}/{entry.name}" if rel else entry.name
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode) and is_folder_entry(entry.name):
                    files = tree_listing(Path(entry.path))
                    yield from (("f", f"{sub}/{inner}", size, t) for inner, size, t in files)
                elif stat.S_ISDIR(st.st_mode):
                    stack.append((Path(entry.path), sub))
                elif stat.S_ISLNK(st.st_mode):
                    yield "l", f"{sub}->{os.readlink(entry.path)}", 0, 0
                else:
                    yield "f", sub, st.st_size, st.st_mtime_ns


def content_fingerprint(
    folder: str | os.PathLike[str],
    *,
    profile: str,
    overlay: Mapping[str, Path] | None = None,
) -> str:
    """``sha256:<hex>`` of the folder's stat listing (see the module docstring).

    Raises OSError (FileNotFoundError for a missing folder) as ``os.scandir`` does.
    """
    rows = sorted(_listing(Path(folder)))
    for name, source in (overlay or {}).items():
        st = os.stat(source)
        if stat.S_ISDIR(st.st_mode):
            tree = sorted(tree_listing(Path(source)))
            rows.extend(("o", f"{name}/{rel}", size, t) for rel, size, t in tree)
        else:
            rows.append(("o", name, st.st_size, st.st_mtime_ns))
    h = hashlib.sha256(f"etdb-content-1\0{profile}\0".encode())
    for kind, rel, size, mtime in rows:
        h.update(f"{kind}\0{rel}\0{size}\0{mtime}\n".encode("utf-8", "surrogateescape"))
    return f"sha256:{h.hexdigest()}"


def unsigned_wire(artifact: Artifact | Mapping[str, Any]) -> dict[str, Any]:
    """The artifact's wire form without the keys signing sets."""
    wire = artifact.to_wire() if isinstance(artifact, Artifact) else dict(artifact)
    return {k: v for k, v in wire.items() if k not in SIGNING_KEYS}


def _canonical(value: Any) -> Any:
    # Go's JSON (the wire form) writes 60.0 as 60: a record read back from the ledger or the
    # catalog has the int where a freshly built one may have the float. Same record, same hash.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def record_fingerprint(artifact: Artifact | Mapping[str, Any]) -> str:
    """``sha256:<hex>`` of the canonical unsigned artifact (sorted keys, compact JSON)."""
    wire = _canonical(unsigned_wire(artifact))
    text = json.dumps(wire, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return f"sha256:{hashlib.sha256(text.encode()).hexdigest()}"


def _dotted(pointer: str) -> str:
    """``/storage/files/3/fsize`` -> ``storage.files[3].fsize``; ``/…/-`` (append) -> ``[+]``."""
    out = ""
    for raw in pointer.lstrip("/").split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if part.isdigit() or part == "-":
            out += f"[{'+' if part == '-' else part}]"
        else:
            out += f".{part}" if out else part
    return out


def changed_paths(
    old: Artifact | Mapping[str, Any], new: Artifact | Mapping[str, Any]
) -> tuple[str, ...]:
    """The record paths an edit from ``old`` to ``new`` changes, signing keys left out, e.g.
    ``("details.tiltStep", "storage.location")``."""
    ops = diff(_canonical(unsigned_wire(old)), _canonical(unsigned_wire(new)))
    return tuple(dict.fromkeys(_dotted(op["path"]) for op in ops))
