"""Pushing a DAG from the local blockstore to a kubo node: a streamed CAR into its ``dag import``.

:func:`push` streams the DAG under one root CID as a CARv1 (``car.car_chunks`` over
``traversal.car_blocks``: one block in memory at a time, whatever the dataset's size) in a
chunked multipart body to ``POST /api/v0/dag/import?pin-roots=true&stats=true`` of a
:class:`~etdb.content.kubo_api.KuboApi`. The push counts only when kubo reports the root pinned
(``Root.PinErrorMsg`` empty) and as many blocks imported as were sent (``Stats.BlockCount``),
and ``pin/ls?arg=<root>&type=recursive`` then lists it.

``dag import`` is idempotent, so pushing again after an interruption is always safe; a cut
stream pins nothing (the blocks kubo stored stay unpinned, for its GC). Every failure is a
:class:`KuboError` (kubo's side) or a ``BlockNotFoundError`` naming the missing block (ours).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from etdb.content.blockstore import Blockstore
from etdb.content.car import car_chunks
from etdb.content.cid import CID, DAG_PB, CIDError
from etdb.content.dagpb import DagPBError, decode_node
from etdb.content.errors import BlockNotFoundError, ContentError, InvalidNodeError
from etdb.content.kubo_api import KuboApi, KuboError, quoted, refusal, same_cid
from etdb.content.traversal import car_blocks

__all__ = [
    "KuboError",
    "PushResult",
    "declared_size",
    "first_missing_block",
    "push",
    "push_all",
    "root_cid",
]


@dataclass(frozen=True)
class PushResult:
    """One DAG pinned on one kubo node (``node``: its peer ID; ``api``: printable)."""

    root: str
    node: str
    api: str
    blocks: int
    bytes: int  # block bytes (the CAR adds a few per block)
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "node": self.node,
            "api": self.api,
            "blocks": self.blocks,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
        }


def root_cid(text: str | CID) -> CID:
    """A dataset's root CID from its text; ValueError for anything else (a path included)."""
    if isinstance(text, CID):
        return text
    try:
        return CID.decode(text.strip())
    except (CIDError, AttributeError):
        raise ValueError(f"{text!r} is not a CID (a push takes a root CID, no path)") from None


def first_missing_block(store: Blockstore, root: CID) -> CID | None:
    """The first block of the DAG under ``root`` the store lacks (None: it has them all).

    dag-pb blocks are read (their links lead on), others only looked up: with raw leaves
    (CIDv1 profiles) that reads a small fraction of the data, with dag-pb leaves (CIDv0) all.
    """
    seen: set[CID] = set()
    stack = [root]
    while stack:
        cid = stack.pop()
        if cid in seen or cid.is_identity:
            continue
        seen.add(cid)
        if cid.codec != DAG_PB:
            if not store.has(cid):
                return cid
            continue
        try:
            block = store.get(cid)
        except BlockNotFoundError:
            return cid
        try:
            stack.extend(link.cid for link in reversed(decode_node(block).links))
        except DagPBError as exc:
            raise InvalidNodeError(cid, str(exc)) from None
    return None


def declared_size(store: Blockstore, root: CID) -> int | None:
    """The DAG's size as its root block declares it (its links' ``Tsize`` and itself), for a
    progress bar only: the links say so, nothing checks it. None if the root is not dag-pb."""
    if root.codec != DAG_PB:
        return None
    block = store.get(root)
    try:
        links = decode_node(block).links
    except DagPBError as exc:
        raise InvalidNodeError(root, str(exc)) from None
    return len(block) + sum(link.tsize or 0 for link in links)


class _Sent:
    """What the body handed to the connection so far."""

    def __init__(self) -> None:
        self.blocks = 0
        self.bytes = 0


def push(
    kubo: KuboApi,
    store: Blockstore,
    root: str | CID,
    *,
    check_first: bool = True,
    on_block: Callable[[int], None] | None = None,
) -> PushResult:
    """Stream the DAG under ``root`` into ``kubo`` and check that it is pinned there.

    ``check_first``: find every block locally before sending anything (a missing one is a
    BlockNotFoundError naming it; :func:`first_missing_block` says what that costs). Without
    it, a block found missing mid-stream cuts the stream (kubo pins nothing) and raises the
    same error. ``on_block(n)`` is told each block's size as it goes out.
    """
    cid = root_cid(root)
    node = kubo.peer_id()  # unreachable, or not kubo: said before anything is read
    if check_first:
        missing = first_missing_block(store, cid)
        if missing is not None:
            detail = f"in the DAG of {cid}: not all of it is in the local blockstore; nothing sent"
            raise BlockNotFoundError(missing, detail)
    started = time.monotonic()
    sent = _Sent()
    boundary = uuid.uuid4().hex
    body = _multipart(boundary, cid, _counted(car_blocks(store, cid), sent, on_block))
    try:
        status, raw = kubo.post_stream(
            "dag/import",
            {"pin-roots": "true", "stats": "true"},
            body,
            f"multipart/form-data; boundary={boundary}",
        )
    except BlockNotFoundError as exc:  # raised by the body: the stream was cut there
        detail = f"in the DAG of {cid}, after {sent.blocks} blocks sent; kubo pinned nothing"
        raise BlockNotFoundError(exc.cid, detail) from None
    except httpx.HTTPError as exc:
        what = "timed out" if isinstance(exc, httpx.TimeoutException) else "was cut"
        raise KuboError(
            f"push of {cid} to {kubo.shown} {what} after {sent.blocks} blocks "
            f"({quoted(str(exc)) or type(exc).__name__}); nothing counts as pushed: run again"
        ) from None
    if status != 200:
        raise KuboError(f"{kubo.shown} refused the push of {cid}: {refusal(status, raw)}")
    _check_import(_ndjson(raw, kubo.shown), cid, sent, kubo.shown)
    if not kubo.pinned(cid):
        raise KuboError(f"{kubo.shown} reported {cid} imported but does not list it pinned")
    return PushResult(str(cid), node, kubo.shown, sent.blocks, sent.bytes,
                      time.monotonic() - started)  # fmt: skip


def push_all(
    kubo: KuboApi,
    store: Blockstore,
    roots: list[CID],
    *,
    on_start: Callable[[CID], Callable[[int], None] | None] | None = None,
) -> tuple[list[PushResult], list[tuple[str, str]]]:
    """Push each root (each checked locally first), going on past one that fails; the pushes
    done and the (root, reason) of those that failed. ``on_start(root)`` may return the
    ``on_block`` of that push. A node that cannot be reached fails them all at once."""
    kubo.peer_id()  # KuboError here: no push can work
    done: list[PushResult] = []
    failed: list[tuple[str, str]] = []
    for root in roots:
        on_block = on_start(root) if on_start is not None else None
        try:
            done.append(push(kubo, store, root, on_block=on_block))
        except (ContentError, ValueError) as exc:
            failed.append((str(root), str(exc)))
    return done, failed


def _counted(
    blocks: Iterator[tuple[CID, bytes]], sent: _Sent, on_block: Callable[[int], None] | None
) -> Iterator[tuple[CID, bytes]]:
    for cid, block in blocks:
        yield cid, block
        sent.blocks += 1
        sent.bytes += len(block)
        if on_block is not None:
            on_block(len(block))


def _multipart(boundary: str, root: CID, blocks: Iterator[tuple[CID, bytes]]) -> Iterator[bytes]:
    """A one-part ``multipart/form-data`` body: the CAR as the file kubo's command reads."""
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{root}.car"'
        "\r\nContent-Type: application/octet-stream\r\n\r\n"
    ).encode("ascii")
    yield from car_chunks([root], blocks)
    yield f"\r\n--{boundary}--\r\n".encode("ascii")


def _ndjson(raw: bytes, shown: str) -> list[Any]:
    try:
        return [json.loads(line) for line in raw.splitlines() if line.strip()]
    except (ValueError, RecursionError):  # RecursionError: nested past what json decodes
        raise KuboError(f"{shown} answered dag/import with something that is not JSON") from None


def _check_import(answer: list[Any], root: CID, sent: _Sent, shown: str) -> None:
    """kubo's NDJSON: a ``Root`` per CAR root (its pin error, if any), then ``Stats``; an
    error object among them (``{"Message": ..., "Type": "error"}``) fails the push."""
    for line in answer:
        if isinstance(line, dict) and line.get("Type") == "error":
            said = quoted(str(line.get("Message")))
            raise KuboError(f"{shown} reported an error importing {root}: {said}")
    roots = [_field(a, "Root") for a in answer]
    mine = [r for r in roots if same_cid(_field(r, "Cid").get("/"), root)]
    if not mine:
        raise KuboError(f"{shown} did not report {root} among the roots it imported")
    error = mine[0].get("PinErrorMsg")
    if error:
        raise KuboError(f"{shown} imported {root} but could not pin it: {quoted(str(error))}")
    counts = [_field(a, "Stats").get("BlockCount") for a in answer]
    count = next((c for c in counts if c is not None), None)
    if count != sent.blocks:
        raise KuboError(f"{shown} imported {count!r} blocks of {root}, not the {sent.blocks} sent")


def _field(value: Any, name: str) -> dict[str, Any]:
    """``value[name]`` if both are JSON objects, else an empty one (kubo's answer is input)."""
    found = value.get(name) if isinstance(value, dict) else None
    return found if isinstance(found, dict) else {}
