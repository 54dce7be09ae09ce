"""The slice viewer's images: ``GET /slices/<cid>/<path>?axis=&index=`` -> one plane, a PNG.

``?axis=`` is the axis held fixed: ``z`` (default) an XY section, ``y`` an XZ plane, ``x`` a YZ
plane (``xy``/``xz``/``yz`` are accepted too); ``?index=`` the plane (default: the middle; for
XY, the least tilted image of a tilt series). ``?z=N`` is ``?axis=z&index=N`` (older links keep
their address and ETag). ``?size=`` is the longest side in pixels (default 1024, at most 2048),
and ``?info=1`` answers the file's geometry as JSON instead (``nx, ny, nz, mode, voxel_size,
kind, default_z``, plus ``tilt_angles`` when the extended header or a ``.rawtlt`` beside the
file gives them). The path is an MRC file, or an OME-Zarr pyramid folder (``*.ome.zarr``):
:mod:`etdb.web.planes` says what each reads (an MRC's YZ plane only up to 512 MiB: 409 past
it). XZ/YZ pictures are stretched to the voxels' proportions (z spacing over x or y spacing,
from the header or the pyramid's scales); ``X-Voxel-Aspect`` says by how much ("1": square
pixels, or a ratio beyond 8 shown unstretched). Only the header and what the plane needs are
read from the blockstore, so the first image of a 5 GB reconstruction costs what the first
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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import PurePosixPath

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from etdb.content import exporter
from etdb.content.errors import (
    BlockNotFoundError,
    ContentError,
    InvalidPathError,
    NotADirError,
    NotAFileError,
    PathNotFoundError,
)
from etdb.content.readthrough import upstream_status
from etdb.mrc.errors import MrcError
from etdb.mrc.png import encode_png
from etdb.mrc.sections import MrcLayout, read_layout
from etdb.web.planes import (
    AXES,
    PYRAMID_SUFFIX,
    Plane,
    PlaneRefused,
    Pyramid,
    axis_length,
    mrc_plane,
    open_pyramid,
    parse_axis,
    render_plane,
)
from etdb.web.slice_page import slice_viewer
from etdb.web.slice_store import (
    CACHE_BYTES,
    IMMUTABLE,
    MAX_SIZE,
    SliceCache,
    blockstore_of,
    caches,
    with_sidecar_angles,
)

__all__ = [
    "CACHE_BYTES",
    "DEFAULT_SIZE",
    "MAX_SIZE",
    "RENDER_VERSION",
    "SliceCache",
    "blockstore_of",
    "router",
    "slice_viewer",
]

router = APIRouter()

DEFAULT_SIZE = 1024
MIN_SIZE = 16
#: Part of every ETag: bump it when the rendering (contrast, filter, orientation) changes.
RENDER_VERSION = "1"
_TRUE = ("1", "true", "yes", "on", "")


# -- the route ----------------------------------------------------------------------------------


@router.api_route("/slices/{cid}", methods=["GET", "HEAD"], include_in_schema=False)
@router.api_route("/slices/{cid}/{path:path}", methods=["GET", "HEAD"], include_in_schema=False)
def slice_image(
    request: Request,
    cid: str,
    path: str = "",
    z: str | None = None,
    axis: str | None = None,
    index: str | None = None,
    size: str | None = None,
    info: str | None = None,
) -> Response:
    # A sync endpoint on purpose: FastAPI runs it in its thread pool, so reading blocks and
    # rendering (numpy and zlib release the GIL) never stall the event loop.
    want_info = info is not None and info.strip().lower() in _TRUE
    fixed = parse_axis(axis)
    if fixed is None:
        raise HTTPException(400, f"axis: must be z, y or x (XY, XZ, YZ), not {str(axis)[:40]!r}")
    given, named = (index, "index") if index not in (None, "") else (z, "z")
    at = None if given is None or given == "" else _integer(named, given)
    side = DEFAULT_SIZE if size is None or size == "" else _integer("size", size)
    if not MIN_SIZE <= side <= MAX_SIZE:
        raise HTTPException(400, f"size: must be between {MIN_SIZE} and {MAX_SIZE}, not {side}")
    path = path.strip("/")
    pyramid = path.endswith(PYRAMID_SUFFIX)
    shown = "mid" if at is None else at
    if want_info:
        what = "info"
    elif fixed == "z" and not pyramid:  # the ETag old ?z= links were served with
        what = f"z={shown}&size={side}"
    else:
        what = f"axis={fixed}&index={shown}&size={side}"
    tag = _etag(cid, path, what)
    headers = {"ETag": tag, "Cache-Control": IMMUTABLE}
    if _matches(request.headers.get("if-none-match"), tag):
        return Response(status_code=304, headers=headers)
    name = path or cid
    with _content_errors(name):
        if pyramid:
            return _pyramid_response(request, cid, path, fixed, at, side, want_info, headers)
        return _mrc_response(request, cid, path, fixed, at, side, want_info, headers)


def _mrc_response(
    request: Request, cid: str, path: str, axis: str, at: int | None, side: int, want_info: bool,
    headers: dict[str, str],
) -> Response:  # fmt: skip
    images, layouts = caches(request)
    name = path or cid
    layout: MrcLayout | None = layouts.get((cid, path))
    png: bytes | None = None
    aspect = "1"
    if layout is not None and not want_info:
        index = _index(layout.nz, layout.ny, layout.nx, axis, at, layout.default_z, name)
        png, aspect = images.get((cid, path, axis, index, side)) or (None, "1")
    if png is None:
        store = blockstore_of(request)
        with exporter.open_file(store, f"{cid}/{path}" if path else cid) as reader:
            if layout is None:
                layout = read_layout(reader, reader.size, name=name)
                layout = with_sidecar_angles(store, cid, path, layout)
                layouts.put((cid, path), layout, 1)
            if want_info:
                return JSONResponse({**layout.info(), "file": name}, headers=headers)
            index = _index(layout.nz, layout.ny, layout.nx, axis, at, layout.default_z, name)
            plane = mrc_plane(store, reader, layout, axis, index, name)
        png, aspect = _render(plane, side)
        images.put((cid, path, axis, index, side), (png, aspect), len(png))
    assert layout is not None  # a cached picture is only looked up with its layout
    if axis == "z" and layout.tilt_angles:
        headers["X-Tilt-Angle"] = f"{layout.tilt_angles[index]:g}"
    return _png(png, aspect, name, axis, index, headers)


def _pyramid_response(
    request: Request, cid: str, path: str, axis: str, at: int | None, side: int, want_info: bool,
    headers: dict[str, str],
) -> Response:  # fmt: skip
    images, layouts = caches(request)
    name = path or cid
    pyramid: Pyramid | None = layouts.get((cid, path))
    if pyramid is None:
        pyramid = open_pyramid(blockstore_of(request), f"{cid}/{path}", name)
        layouts.put((cid, path), pyramid, 1)
    if want_info:
        return JSONResponse({**pyramid.info(), "file": name}, headers=headers)
    nz, ny, nx = pyramid.shape
    index = _index(nz, ny, nx, axis, at, nz // 2, name)
    cached = images.get((cid, path, axis, index, side))
    if cached is None:
        cached = _render(pyramid.plane(axis, index, side, name), side)
        images.put((cid, path, axis, index, side), cached, len(cached[0]))
    return _png(cached[0], cached[1], name, axis, index, headers)


def _render(plane: Plane, side: int) -> tuple[bytes, str]:
    """The PNG and the X-Voxel-Aspect it is shown with (row/column spacing; "1": square)."""
    pixels, stretched = render_plane(plane, side)
    return encode_png(pixels), f"{plane.aspect:.4g}" if stretched else "1"


def _png(
    png: bytes, aspect: str, name: str, axis: str, index: int, headers: dict[str, str]
) -> Response:
    headers["Content-Disposition"] = f'inline; filename="{_png_name(name, axis, index)}"'
    headers["X-Voxel-Aspect"] = aspect
    return Response(png, media_type="image/png", headers=headers)


def _index(nz: int, ny: int, nx: int, axis: str, at: int | None, default_z: int, name: str) -> int:
    """The plane asked for (default: the middle; for XY, the viewer's default section)."""
    count = axis_length((nz, ny, nx), axis)
    if at is None:
        return default_z if axis == "z" else count // 2
    if not 0 <= at < count:
        planes = "sections" if axis == "z" else f"{AXES[axis]} planes"
        raise HTTPException(
            400, f"{name}: {axis} {at} is out of range: the file has {planes} 0 to {count - 1}"
        )
    return at


@contextmanager
def _content_errors(name: str) -> Iterator[None]:
    """Content and format errors as HTTP errors that name the file."""
    try:
        yield
    except PlaneRefused as exc:
        raise HTTPException(409, str(exc)) from None
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


def _png_name(name: str, axis: str, index: int) -> str:
    stem = PurePosixPath(name.removesuffix(PYRAMID_SUFFIX)).stem or "slice"
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in stem)
    return f"{safe}_{axis}{index}.png"
