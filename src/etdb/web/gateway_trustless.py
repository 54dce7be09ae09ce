"""The trustless gateway: raw blocks and CAR streams a client verifies itself.

https://specs.ipfs.tech/http-gateways/trustless-gateway/ on the same ``/ipfs/<cid>[/<path>]``
routes as the path gateway (``gateway.py``), chosen by ``?format=raw|car`` (which wins) or by
``Accept: application/vnd.ipld.raw|car``. Any IPFS client (kubo, Helia, our own downloader)
can fetch from an etdb node this way and check every byte against its CID, so it need not
trust the node at all.

* ``raw``: the one block a CID names (``/ipfs/<cid>`` only: the spec allows no path; a path is
  a 400 pointing at ``format=car``). The identity probe ``/ipfs/bafkqaaa`` answers 200 empty.
* ``car``: a CARv1 of ``CID[/path]`` in DFS order (``order=dfs``), duplicates once or, asked
  ``dups=y``, every time; first the blocks the path walks through, so the client can verify
  the path, then ``dag-scope`` (``all`` default, ``entity``, ``block``) or the blocks covering
  ``entity-bytes=from:to``. It is streamed from the blockstore (``traversal.car_blocks``),
  never built in memory, and holds one of the gateway's stream slots while it is sent. Its
  work is bounded (``gateway_budget.py``): a ``dups=y`` CAR repeats blocks only up to a
  multiple of what it sent once, and a walk that reads without sending is ended.

Only what this node holds is answered: its blockstore and its peer cache (``GatewayState.held``),
never its upstream peers, whatever the ``peers`` setting says. These requests come from other
peers' fetchers, and reading through for them would let two nodes that are each other's
upstream bounce a request for a block neither holds back and forth for ever, and let any client
make this node fetch (amplify) arbitrary blocks from its peers. A block not held is a 404; the
peer asks its other sources.

Status codes follow the spec: a bad CID or parameter 400, a CAR variant we cannot produce 406,
a root or path not stored 404 (the path is resolved before the 200 is sent), ``Cache-Control:
only-if-cached`` with the root absent 412, a block lost mid-stream an aborted connection (a
truncated CAR the client detects). Every answer carries ``Vary: Accept``, the validators and
``Content-Disposition: attachment``; X-Content-Type-Options comes from the security middleware.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from fastapi import Request
from starlette.responses import Response

from etdb.api.errors import ApiError, BadParameter
from etdb.content.car import encode_header
from etdb.content.cid import CID, encode_varint
from etdb.content.errors import PathNotFoundError
from etdb.content.exporter import Kind, Node, load_node, lookup
from etdb.content.traversal import SCOPES, car_blocks, entity_range
from etdb.web.gateway_budget import ResponseBudget, limit_duplicates
from etdb.web.gateway_http import content_disposition, etag_matches
from etdb.web.gateway_stream import SlotStream, StreamSlots

if TYPE_CHECKING:
    from etdb.content.readthrough import BlockHolder

__all__ = [
    "CAR",
    "RAW",
    "RESPONDERS",
    "CarParams",
    "Wanted",
    "negotiate",
    "parse_entity_bytes",
    "serve_car",
    "serve_raw",
]

RAW = "application/vnd.ipld.raw"
CAR = "application/vnd.ipld.car"
IMMUTABLE = "public, max-age=29030400, immutable"
FORMAT_MEDIA = {"raw": RAW, "car": CAR}
#: Verifiable and other IPLD/IPFS types a trustless client may ask for that we do not make
#: (we store UnixFS only): asking for nothing else is answered 406, never with a file.
_NOT_MADE = ("application/vnd.ipld.", "application/vnd.ipfs.", "application/x-tar")
_FORMAT_NAMES = "raw, car"


@dataclass(frozen=True)
class Wanted:
    """A trustless response chosen by negotiation: its format and the Accept parameters of the
    matching media type (``version``/``order``/``dups`` for a CAR)."""

    format: Literal["raw", "car"]
    params: dict[str, str] = field(default_factory=dict)
    by_query: bool = False  # ?format= named it (else Content-Location names the query form)


# -- negotiation ------------------------------------------------------------------------------


def _media_ranges(accept: str) -> list[tuple[str, dict[str, str], float]]:
    """``Accept`` as (media type, parameters, q), highest q first, ties in header order."""
    out = []
    for item in accept.split(","):
        media, *raw_params = (p.strip() for p in item.split(";"))
        if not media:
            continue
        params: dict[str, str] = {}
        for p in raw_params:
            key, _, value = p.partition("=")
            params[key.strip().lower()] = value.strip().strip('"')
        try:
            q = float(params.pop("q", "1"))
        except ValueError:
            q = 1.0
        out.append((media.lower(), params, q))
    return sorted(out, key=lambda m: -m[2])


def negotiate(request: Request) -> Wanted | None:
    """The trustless format a request asks for, or None for the path gateway (a file or a
    listing). ``?format=`` takes precedence over ``Accept``, as the spec says."""
    fmt = request.query_params.get("format")
    ranges = _media_ranges(request.headers.get("accept", ""))
    if fmt is not None:
        if fmt not in FORMAT_MEDIA:
            raise BadParameter(
                "format", f"format={fmt} is not served by this gateway (it serves {_FORMAT_NAMES})"
            )
        media = FORMAT_MEDIA[fmt]
        params = next((p for m, p, q in ranges if m == media and q > 0), {})
        return Wanted(fmt, params, by_query=True)  # type: ignore[arg-type]
    refused: list[str] = []
    for media, params, q in ranges:
        if q <= 0:
            continue
        if media == RAW:
            return Wanted("raw", params)
        if media == CAR:
            problem = _car_variant_problem(params)
            if problem is None:
                return Wanted("car", params)
            refused.append(problem)
        elif media.startswith(_NOT_MADE):
            refused.append(f"{media} is not a format this gateway makes")
        else:
            return None  # text/html, */*, ...: the path gateway's file or listing
    if refused:
        raise ApiError(406, f"Accept: {'; '.join(refused)} (it serves {RAW} and {CAR})", "Accept")
    return None


def _car_variant_problem(params: dict[str, str]) -> str | None:
    for name, allowed in _CAR_VALUES.items():
        value = params.get(name)
        if value is not None and value not in allowed:
            return f"{CAR} with {name}={value} (supported: {', '.join(allowed)})"
    return None


_CAR_VALUES = {"version": ("1",), "order": ("dfs", "unk"), "dups": ("n", "y")}


# -- raw blocks -------------------------------------------------------------------------------


def _common_headers(request: Request, wanted: Wanted, tag: str, roots: list[CID]) -> dict[str, str]:
    headers = {
        "ETag": tag,
        "Cache-Control": IMMUTABLE,
        "Vary": "Accept",
        "X-Ipfs-Path": request.url.path,
        "X-Ipfs-Roots": ",".join(str(r) for r in roots),
    }
    if not wanted.by_query:  # the spec's SHOULD: the URL that names this variant by itself
        query = request.url.query
        headers["Content-Location"] = (
            f"{request.url.path}?{query + '&' if query else ''}format={wanted.format}"
        )
    return headers


def _only_if_cached(request: Request, store: BlockHolder, root: CID) -> None:
    if "only-if-cached" in request.headers.get("cache-control", "") and not store.has(root):
        raise ApiError(412, f"{root} is not stored on this server (only-if-cached)", "cid")


def serve_raw(
    request: Request,
    store: BlockHolder,
    slots: StreamSlots,
    root: CID,
    segments: list[str],
    wanted: Wanted,
) -> Response:
    """``application/vnd.ipld.raw``: the root block's bytes, verified as they are read."""
    if segments:
        raise BadParameter(
            "path",
            f"format=raw answers one block by its CID (/ipfs/{root}); "
            "ask for a path with format=car",
        )
    _only_if_cached(request, store, root)
    tag = f'"{root}.raw"'
    headers = _common_headers(request, wanted, tag, [root])
    if etag_matches(request.headers.get("if-none-match"), tag):
        return Response(status_code=304, headers=headers)
    block = store.get(root)  # BlockNotFoundError -> 404 in gateway.serve
    filename = request.query_params.get("filename") or f"{root}.bin"
    headers["Content-Disposition"] = content_disposition(filename, attachment=True)
    headers["Content-Length"] = str(len(block))
    body = b"" if request.method == "HEAD" else block
    return Response(body, headers=headers, media_type=RAW)


# -- CAR streams ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CarParams:
    """What a CAR request asks for, parameters parsed and checked."""

    scope: Literal["all", "entity", "block"] = "all"
    entity_bytes: tuple[int, int | None] | None = None
    dups: bool = False

    @property
    def content_type(self) -> str:
        return f"{CAR}; version=1; order=dfs; dups={'y' if self.dups else 'n'}"


def parse_entity_bytes(text: str) -> tuple[int, int | None]:
    """``from:to`` (inclusive; ``to`` may be ``*``; either may be negative, from the end)."""
    first, sep, last = text.partition(":")
    try:
        start = int(first)
        end = None if last == "*" else int(last)
    except ValueError:
        start, end, sep = 0, None, ""
    if not sep:
        raise BadParameter("entity-bytes", f"entity-bytes={text}: expected from:to or from:*")
    if end is not None and (start >= 0) == (end >= 0) and start > end:
        raise BadParameter("entity-bytes", f"entity-bytes={text}: from is after to")
    return start, end


def car_params(request: Request, wanted: Wanted) -> CarParams:
    """``dag-scope``, ``entity-bytes`` and the CAR variant (URL ``car-*`` parameters win over
    the Accept parameters)."""
    query = request.query_params
    variant = dict(wanted.params)
    for name in _CAR_VALUES:
        if f"car-{name}" in query:
            variant[name] = query[f"car-{name}"]
    for name, allowed in _CAR_VALUES.items():
        value = variant.get(name)
        if value is not None and value not in allowed:
            where = f"car-{name}" if f"car-{name}" in query else "Accept"
            raise BadParameter(where, f"{name}={value} is not supported ({', '.join(allowed)})")
    scope = query.get("dag-scope", "all")
    if scope not in SCOPES:
        raise BadParameter("dag-scope", f"dag-scope={scope}: expected one of {', '.join(SCOPES)}")
    entity = query.get("entity-bytes")
    entity_bytes = parse_entity_bytes(entity) if entity is not None else None
    if entity_bytes is not None:
        scope = "entity"  # the spec: entity-bytes implies dag-scope=entity
    return CarParams(scope, entity_bytes, variant.get("dups") == "y")  # type: ignore[arg-type]


def resolve_roots(store: BlockHolder, root: CID, segments: list[str]) -> list[Node]:
    """The node of each step of ``root/segments`` (what X-Ipfs-Roots lists); raises
    PathNotFoundError / BlockNotFoundError before anything is sent."""
    nodes = [load_node(store, root)]
    for i, name in enumerate(segments):
        node = nodes[-1]
        if node.kind != Kind.DIRECTORY:
            walked = "/".join([str(root), *segments[:i]])
            raise PathNotFoundError(f"{walked} is a {node.kind}, cannot look up {name!r} in it")
        child = lookup(store, node, name)
        if child is None:
            raise PathNotFoundError(f"no entry {name!r} in {'/'.join([str(root), *segments[:i]])}")
        nodes.append(load_node(store, child))
    return nodes


def serve_car(
    request: Request,
    store: BlockHolder,
    slots: StreamSlots,
    root: CID,
    segments: list[str],
    wanted: Wanted,
) -> Response:
    """``application/vnd.ipld.car``: the path's blocks, then the requested scope, streamed."""
    params = car_params(request, wanted)
    _only_if_cached(request, store, root)
    nodes = resolve_roots(store, root, segments)
    target = nodes[-1]
    if params.entity_bytes is not None and target.is_file:
        size = target.size or 0
        start, end = entity_range(size, *params.entity_bytes)
        if size > 0 and start >= end:
            first, last = params.entity_bytes
            raise BadParameter(
                "entity-bytes",
                f"entity-bytes={first}:{'*' if last is None else last} selects no byte "
                f"of this {size}-byte file",
            )
    tag = _car_etag(root, segments, params)
    headers = _common_headers(request, wanted, tag, [n.cid for n in nodes])
    headers["Accept-Ranges"] = "none"  # entity-bytes is the verifiable range request
    if etag_matches(request.headers.get("if-none-match"), tag):
        return Response(status_code=304, headers=headers)
    filename = request.query_params.get("filename") or f"{root}.car"
    headers["Content-Disposition"] = content_disposition(filename, attachment=True)
    headers["Content-Type"] = params.content_type
    path = "/".join([str(root), *segments])
    budget = ResponseBudget()
    blocks = car_blocks(
        budget.guard(store),
        path,
        scope=params.scope,
        entity_bytes=params.entity_bytes,
        dups=params.dups,
    )
    if params.dups:
        blocks = limit_duplicates(blocks)
    return CarStream(root, blocks, headers, slots, head=request.method == "HEAD", budget=budget)


def _car_etag(root: CID, segments: list[str], params: CarParams) -> str:
    """Unique per path, scope, byte range and duplicates policy (the spec's MUST), and stable:
    the same request always streams the same bytes."""
    key = "\x00".join([*segments, params.scope, repr(params.entity_bytes), "dfs", str(params.dups)])
    return f'"{root}.car.{hashlib.sha256(key.encode()).hexdigest()[:16]}"'


def _car_pieces(root: CID, blocks: Iterator[tuple[CID, bytes]]) -> Iterator[bytes]:
    """The CAR's bytes: header, then a length-prefixed section per block."""
    header = encode_header([root])
    yield encode_varint(len(header))
    yield header
    for cid, block in blocks:
        raw = bytes(cid)
        yield encode_varint(len(raw) + len(block))
        yield raw
        yield block


class CarStream(SlotStream):
    """A 200 whose body is a CAR, sent as it is read; ``head=True`` sends the headers only.

    A :class:`SlotStream`: one stream slot while sending (429 when none is free), and a block
    that goes missing or fails its hash mid-stream, or a spent budget, aborts the connection,
    so the client sees a truncated CAR rather than a complete-looking one. ``blocks`` must read
    through ``budget.guard`` so that a disconnect stops them.
    """

    def __init__(
        self,
        root: CID,
        blocks: Iterator[tuple[CID, bytes]],
        headers: dict[str, str],
        slots: StreamSlots,
        *,
        head: bool = False,
        budget: ResponseBudget | None = None,
    ) -> None:
        super().__init__(status=200, headers=headers.items(), slots=slots, head=head, budget=budget)
        self.root = root
        self.blocks = blocks

    def pieces(self) -> Iterator[bytes]:
        return _car_pieces(self.root, self.blocks)


Responder = Callable[[Request, "BlockHolder", StreamSlots, CID, list[str], Wanted], Response]
#: ``format`` -> responder, installed into ``gateway.FORMATS``.
RESPONDERS: dict[str, Responder] = {"raw": serve_raw, "car": serve_car}
