"""The slice viewer's images: ``GET /slices/<cid>/<path>?z=N`` -> one section as a PNG.

``?z=`` is the section index (a tilt index for a tilt series; default: the middle, or the
least tilted image), ``?size=`` the longest side in pixels (default 1024, at most 2048), and
``?info=1`` answers the file's geometry as JSON instead (``nx, ny, nz, mode, voxel_size, kind,
default_z``, plus ``tilt_angles`` when the extended header or a ``.rawtlt`` beside the file gives
them). Only the header and the one section are read from the blockstore
(:mod:`etdb.mrc.sections`), so the first image of a 5 GB reconstruction costs what the first
image of a 50 MB one does.

Caching: a CID's bytes never change, so a rendered section never does either. Responses are
``immutable`` for a year under an ETag derived from the request (and :data:`RENDER_VERSION`,
bumped when the rendering changes); the server keeps recently rendered PNGs in an LRU bounded
in bytes (:class:`SliceCache`) and parsed headers in a small one, so scrubbing back and forth
through a volume re-renders nothing.

No portal-scope check: like the gateway (``/ipfs/``), slices are addressed by CID, not by
record; anyone holding the CID can fetch the bytes anyway, and the scope is a view, not access
control (``scope.py``).

Content is read through what the gateway reads through (``GatewayState.store()``): on a node
with upstream peers, a file it does not hold is read from them, verified (the section read
ahead as one stream), and their failures are 502/503/504 (``readthrough.UPSTREAM_ERRORS``).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from etdb.content import exporter
from etdb.content.blockstore import BlockGetter, FSBlockstore
from etdb.content.errors import (
    BlockNotFoundError,
    ContentError,
    InvalidPathError,
    NotADirError,
    NotAFileError,
    PathNotFoundError,
)
from etdb.content.readthrough import read_ahead, upstream_status, waiting_at_most
from etdb.mrc.display import render_section as render
from etdb.mrc.errors import MrcError
from etdb.mrc.png import encode_png
from etdb.mrc.sections import MrcLayout, read_layout, read_section

__all__ = [
    "DEFAULT_SIZE",
    "MAX_SIZE",
    "RENDER_VERSION",
    "SliceCache",
    "blockstore_of",
    "router",
    "slice_viewer",
    "viewable_files",
]

router = APIRouter()

DEFAULT_SIZE = 1024
MAX_SIZE = 2048
MIN_SIZE = 16
#: Part of every ETag: bump it when the rendering (contrast, filter, orientation) changes.
RENDER_VERSION = "1"
CACHE_BYTES = 64 << 20
LAYOUT_ENTRIES = 256
IMMUTABLE = f"public, max-age={365 * 24 * 3600}, immutable"
MAX_SIDECAR = 64 << 10  # a .rawtlt lists one angle per line: a few hundred bytes
#: Seconds the dataset page waits for a file's header from upstream peers before it lists the
#: file as not available (the fetch goes on: the next view has it).
PAGE_WAIT = 3.0
#: Record file subtypes the viewer shows (lower case), in the order it lists them.
VIEWABLE = {"reconstruction": 0, "tiltseries": 1}
MRC_SUFFIXES = (".mrc", ".rec", ".st", ".ali", ".preali", ".mrcs", ".map")
_TRUE = ("1", "true", "yes", "on", "")
_STORE_LOCK = threading.Lock()


class SliceCache:
    """A thread-safe LRU whose bound is the total size of its values (bytes), or a count."""

    def __init__(self, max_bytes: int = CACHE_BYTES, max_entries: int | None = None) -> None:
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.size = 0
        self.hits = self.misses = 0

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return item[0]

    def put(self, key: Hashable, value: Any, size: int) -> None:
        if size > self.max_bytes:
            return  # would evict everything else and then itself
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.size -= old[1]
            self._items[key] = (value, size)
            self.size += size
            while self.size > self.max_bytes or (
                self.max_entries is not None and len(self._items) > self.max_entries
            ):
                _, (_, dropped) = self._items.popitem(last=False)
                self.size -= dropped

    def __len__(self) -> int:
        return len(self._items)


def viewable_files(artifact: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The record's MRC reconstructions, then its tilt series: ``value`` (``<location>/<fname>``,
    the content path), ``label``, ``subtype``, ``fname``. Empty when there is nothing to show."""
    storage = artifact.get("storage") or {}
    location = str(storage.get("location") or "").strip("/")
    if not location:
        return []
    found: list[tuple[int, dict[str, Any]]] = []
    for entry in storage.get("files") or []:
        if not isinstance(entry, Mapping):
            continue
        fname = str(entry.get("fname") or "").strip("/")
        subtype = str(entry.get("subtype") or "")
        rank = VIEWABLE.get(subtype.lower())
        if rank is None or PurePosixPath(fname).suffix.lower() not in MRC_SUFFIXES:
            continue
        shown = str(entry.get("dname") or "") or PurePosixPath(fname).name
        kind = "reconstruction" if rank == 0 else "tilt series"
        found.append(
            (rank, {"value": f"{location}/{fname}", "label": f"{shown} ({kind})",
                    "subtype": subtype, "fname": fname})
        )  # fmt: skip
    return [f for _, f in sorted(found, key=lambda item: item[0])]


def slice_viewer(request: Request, artifact: Mapping[str, Any]) -> dict[str, Any] | None:
    """What ``templates/_slice_viewer.html`` shows for a record (None: no MRC file to show).

    The dataset page passes it as ``slice_viewer`` (it is plain JSON, fit for the page's
    twin too). The file and section come from the page's ``slice_file`` and ``z`` query
    parameters, so the viewer works without JavaScript (its form reloads the page); headers
    are read through the layout cache, and a file this server does not hold (or, read through
    upstream peers, cannot get within ``PAGE_WAIT`` seconds) is listed with
    ``available: false`` instead of failing the page.
    """
    files = viewable_files(artifact)
    if not files:
        return None
    _, layouts = _caches(request)
    for entry in files:
        entry["available"] = False
        layout = _cached_layout(request, layouts, entry["value"])
        if layout is not None:
            entry.update(available=True, nz=layout.nz, default_z=layout.default_z)
        entry["slice_url"] = _url(entry["value"])
        entry["info_url"] = entry["slice_url"] + "?info=1"
        entry["ipfs_url"] = "/ipfs/" + quote(entry["value"])
    wanted = request.query_params.get("slice_file")
    current = next((f for f in files if f["value"] == wanted), None)
    current = current or next((f for f in files if f["available"]), files[0])
    z = None
    if current["available"]:
        try:
            z = int(request.query_params.get("z", ""))
        except ValueError:
            z = None
        z = current["default_z"] if z is None else min(max(z, 0), current["nz"] - 1)
    viewer: dict[str, Any] = {"files": files, "current": current["value"], "z": z}
    if z is not None:
        viewer["image_url"] = f"{_url(current['value'])}?z={z}"
        viewer["download_url"] = f"{_url(current['value'])}?z={z}&size={MAX_SIZE}"
    return viewer


def _url(value: str) -> str:
    return "/slices/" + quote(value)


def _cached_layout(request: Request, layouts: SliceCache, value: str) -> MrcLayout | None:
    cid, _, path = value.partition("/")
    layout = layouts.get((cid, path))
    if layout is not None:
        return layout
    try:
        store = waiting_at_most(blockstore_of(request), PAGE_WAIT)
        with exporter.open_file(store, value) as reader:
            layout = read_layout(reader, reader.size, name=path or cid)
        layout = _with_sidecar_angles(store, cid, path, layout)
    except (HTTPException, ContentError, MrcError):
        return None
    layouts.put((cid, path), layout, 1)
    return layout


def blockstore_of(request: Request) -> BlockGetter:
    """What slices are read through: ``extra["blockstore"]`` if a part (or a test) set one,
    else the gateway's ``store()`` (its blockstore, or its read-through when it has peers),
    else the settings' folder, opened once (read-only: a server never creates a blockstore)."""
    extra: dict[str, Any] = request.app.state.etdb.extra
    store = extra.get("blockstore")
    state = extra.get("gateway_state")
    if store is None and state is not None:  # one handle per folder, one read-through per app
        store = state.store()
    if store is None:
        with _STORE_LOCK:
            store = extra.get("blockstore")
            if store is None:
                path = request.app.state.etdb.settings.blockstore_path
                try:
                    store = FSBlockstore(path, create=False)
                except ContentError:
                    raise HTTPException(404, "this server holds no content") from None
                extra["blockstore"] = store
    return store


def _caches(request: Request) -> tuple[SliceCache, SliceCache]:
    extra: dict[str, Any] = request.app.state.etdb.extra
    images = extra.setdefault("slice_cache", SliceCache(CACHE_BYTES))
    layouts = extra.setdefault("slice_layouts", SliceCache(1 << 62, LAYOUT_ENTRIES))
    return images, layouts


# -- the route ----------------------------------------------------------------------------------


@router.api_route("/slices/{cid}", methods=["GET", "HEAD"], include_in_schema=False)
@router.api_route("/slices/{cid}/{path:path}", methods=["GET", "HEAD"], include_in_schema=False)
def slice_image(
    request: Request,
    cid: str,
    path: str = "",
    z: str | None = None,
    size: str | None = None,
    info: str | None = None,
) -> Response:
    # A sync endpoint on purpose: FastAPI runs it in its thread pool, so reading blocks and
    # rendering (numpy and zlib release the GIL) never stall the event loop.
    want_info = info is not None and info.strip().lower() in _TRUE
    z_index = None if z is None or z == "" else _integer("z", z)
    side = DEFAULT_SIZE if size is None or size == "" else _integer("size", size)
    if not MIN_SIZE <= side <= MAX_SIZE:
        raise HTTPException(400, f"size: must be between {MIN_SIZE} and {MAX_SIZE}, not {side}")
    path = path.strip("/")
    what = "info" if want_info else f"z={'mid' if z_index is None else z_index}&size={side}"
    tag = _etag(cid, path, what)
    headers = {"ETag": tag, "Cache-Control": IMMUTABLE}
    if _matches(request.headers.get("if-none-match"), tag):
        return Response(status_code=304, headers=headers)

    images, layouts = _caches(request)
    name = path or cid
    layout: MrcLayout | None = layouts.get((cid, path))
    png: bytes | None = None
    if layout is not None and not want_info:
        index = _section(layout, z_index, name)
        png = images.get((cid, path, index, side))
    if png is None:
        with _content_errors(name):
            store = blockstore_of(request)
            with exporter.open_file(store, f"{cid}/{path}" if path else cid) as reader:
                if layout is None:
                    layout = read_layout(reader, reader.size, name=name)
                    layout = _with_sidecar_angles(store, cid, path, layout)
                    layouts.put((cid, path), layout, 1)
                if want_info:
                    return JSONResponse({**layout.info(), "file": name}, headers=headers)
                index = _section(layout, z_index, name)
                png = encode_png(render(_read_section(store, reader, layout, index, name), side))
        images.put((cid, path, index, side), png, len(png))
    assert layout is not None  # a cached picture is only looked up with its layout
    headers["Content-Disposition"] = f'inline; filename="{_png_name(name, index)}"'
    if layout.tilt_angles:
        headers["X-Tilt-Angle"] = f"{layout.tilt_angles[index]:g}"
    return Response(png, media_type="image/png", headers=headers)


def _read_section(
    store: BlockGetter, reader: exporter.UnixFSFileReader, layout: MrcLayout, z: int, name: str
) -> Any:
    """Section ``z``'s pixels, its bytes read ahead as one range (over the network: one stream,
    not a round trip per leaf)."""
    start = layout.section_offset(z)
    with (
        read_ahead(store, reader.node, start, start + layout.section_bytes) as ahead,
        exporter.UnixFSFileReader(ahead, reader.node) as section_reader,
    ):
        return read_section(section_reader, layout, z, name=name)


def _section(layout: MrcLayout, z: int | None, name: str) -> int:
    if z is None:
        return layout.default_z
    if not 0 <= z < layout.nz:
        raise HTTPException(
            400, f"{name}: z {z} is out of range: the file has sections 0 to {layout.nz - 1}"
        )
    return z


@contextmanager
def _content_errors(name: str) -> Iterator[None]:
    """Content and format errors as HTTP errors that name the file."""
    try:
        yield
    except MrcError as exc:
        raise HTTPException(400, str(exc)) from None
    except (BlockNotFoundError, PathNotFoundError) as exc:
        raise HTTPException(404, f"{name}: {exc}") from None
    except (InvalidPathError, NotAFileError, NotADirError) as exc:
        raise HTTPException(400, f"{name}: {exc}") from None
    except ContentError as exc:  # upstream failures; corrupt or inconsistent blocks: ours
        raise HTTPException(upstream_status(exc) or 500, f"{name}: {exc}") from None


def _integer(name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise HTTPException(400, f"{name}: must be an integer, not {text[:40]!r}") from None


def _etag(cid: str, path: str, what: str) -> str:
    digest = hashlib.sha256(f"{cid}/{path}?{what}".encode()).hexdigest()[:32]
    return f'"slice{RENDER_VERSION}-{digest}"'


def _matches(header: str | None, tag: str) -> bool:
    if not header:
        return False
    wanted = {t.strip().removeprefix("W/") for t in header.split(",")}
    return "*" in wanted or tag in wanted


def _png_name(name: str, z: int) -> str:
    stem = PurePosixPath(name).stem or "slice"
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in stem)
    return f"{safe}_z{z}.png"


def _with_sidecar_angles(store: BlockGetter, cid: str, path: str, layout: MrcLayout) -> MrcLayout:
    """Tilt angles from ``<stem>.rawtlt`` beside a tilt series (IMOD's convention) when its
    header has none. Only a label: a missing or unreadable sidecar changes nothing."""
    if layout.tilt_angles or layout.kind != "tilt series" or not path:
        return layout
    sidecar = str(PurePosixPath(path).with_suffix(".rawtlt"))
    try:
        data = exporter.read_range(store, f"{cid}/{sidecar}", 0, MAX_SIDECAR + 1)
        if len(data) > MAX_SIDECAR:
            return layout
        text = data.decode("ascii")
        angles = tuple(round(float(line), 2) for line in text.split() if line)
    except (ContentError, ValueError):
        return layout
    if len(angles) != layout.nz or not all(abs(a) <= 90 for a in angles):
        return layout
    return layout.with_tilt_angles(angles)
