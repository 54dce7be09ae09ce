"""``/tomogram/<id>/viewer``: a dataset's OME-Zarr pyramid opened in Neuroglancer.

The route reads the pyramid's metadata (``.zattrs``, level 0's ``.zarray``: two small files,
through the same store the gateway and the slice viewer read) and redirects (303) to the
client this node serves (``/static/neuroglancer/``, :mod:`etdb.web.viewer_client`) with the
viewer's state in the URL fragment (``#!<json>``, Neuroglancer's own link format, so the
address bar is a shareable link). The state has:

- one image layer whose source is ``zarr2://<this site>/ipfs/<location>/<fname>/``: the
  record's ``storage.files`` entry of subtype ``zarr``, read through this node's path gateway
  (Range requests, immutable caching), so no request leaves the node. The site URL is
  :func:`etdb.web.render.site_url`, the rule ``etdb download --server`` uses;
- layout ``4panel`` (XY, XZ, YZ sections and a 3-D view), the position at the volume's centre,
  a zoom that fits the volume, the voxel size from the pyramid's scale (Å);
- contrast: the pyramid's ``omero`` window (etdb.mrc.display's one contrast rule, written by
  the pyramid builder) as the default shader's ``normalized`` range.

A record without a pyramid (or one this node does not hold) answers 404 with a page saying so;
the dataset page shows no 3-D link for it. The JSON twin (``/tomogram/<id>/viewer.json``)
answers ``{"url", "state"}`` instead of redirecting. Every byte read is hostile: both files are
size-bounded, ``.zattrs`` parsed by :func:`etdb.mrc.ngff.loads_multiscales` (validated,
``NgffError``), the axes must be ``x``, ``y``, ``z`` in a known unit.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException

from etdb.content import exporter
from etdb.content.blockstore import BlockGetter
from etdb.content.errors import BlockNotFoundError, ContentError, PathNotFoundError
from etdb.content.nodes import Kind
from etdb.index.query import AmbiguousId
from etdb.mrc.ngff import NgffError, loads_multiscales
from etdb.record import Artifact, RecordError
from etdb.web.dataset import find_dataset
from etdb.web.dataset_view import file_url, pyramid_of
from etdb.web.render import JSON_SUFFIX, page, site_url, twin, wants_json
from etdb.web.viewer_client import CLIENT_PATH

__all__ = ["MAX_METADATA", "Pyramid", "read_pyramid", "router", "viewer_state"]

router = APIRouter()

#: Most bytes read of ``.zattrs`` or ``.zarray`` (real ones are well under 4 KiB).
MAX_METADATA = 64 << 10
#: Largest axis length believed (zarr allows more; a tomogram has a few thousand voxels).
MAX_AXIS = 1 << 20
#: Screen pixels the volume's longest axis spans at most in one panel at the opening zoom
#: (:func:`opening_zoom`).
FIT_PIXELS = 400
NO_PYRAMID = (
    "this dataset has no OME-Zarr pyramid, so no 3-D view; "
    "its sections are in the slice viewer on the dataset page"
)
#: NGFF space units understood, in metres (Neuroglancer's dimensions are SI units).
UNITS = {"angstrom": 1e-10, "nanometer": 1e-9, "micrometer": 1e-6}


@dataclass(frozen=True)
class Pyramid:
    """What the viewer state needs of a pyramid: level 0's shape and voxel size in metres
    (z, y, x), the display window (None: let the viewer choose)."""

    shape: tuple[int, int, int]
    voxel: tuple[float, float, float]
    window: tuple[float, float] | None


@twin(router, "/tomogram/{id}/viewer")
def viewer(request: Request, id: str) -> Response:
    wanted = id.lower()
    try:
        detail = find_dataset(request, wanted)
    except AmbiguousId as exc:
        message = (
            f"{wanted!r} is the start of {len(exc.matches)} dataset ids; open /tomogram/{wanted}"
        )
        raise HTTPException(409, message) from None
    try:
        artifact = Artifact.from_wire(detail.artifact)
    except RecordError:
        artifact = Artifact()
    entry = pyramid_of(artifact)
    try:
        if entry is None or not entry.fname:
            raise HTTPException(404, NO_PYRAMID)
        root = f"{artifact.location}/{entry.fname.strip('/')}"
        pyramid = read_pyramid(_store(request), root)
    except HTTPException as exc:
        return _unavailable(request, detail.summary.id, exc)
    source = f"zarr2://{site_url(request)}{file_url(artifact.location, entry.fname)}/"
    name = (artifact.details.sid if artifact.details else None) or detail.summary.id[:12]
    state = viewer_state(source, pyramid, name=name)
    url = CLIENT_PATH + "#!" + quote(json.dumps(state, separators=(",", ":")), safe="")
    if wants_json(request) or request.url.path.endswith(JSON_SUFFIX):
        return JSONResponse({"url": url, "state": state}, headers={"Cache-Control": "no-cache"})
    # 303, not cached for long: an edit of the record may change its pyramid.
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-cache"})


def _unavailable(request: Request, id: str, exc: HTTPException) -> Response:
    """The page saying why there is no 3-D view, with the way back to the slice viewer."""
    data = {"error": {"status": exc.status_code, "message": exc.detail, "path": request.url.path}}
    context = {"data": data, "message": exc.detail, "dataset_href": f"/tomogram/{id}"}
    return page(request, "viewer_unavailable.html", context, status=exc.status_code)


def _store(request: Request) -> BlockGetter:
    """What the gateway reads content through (its blockstore, or its read-through)."""
    state = request.app.state.etdb.extra.get("gateway_state")
    store = state.store() if state is not None else None
    if store is None:
        raise HTTPException(404, "this server holds no content, so no dataset's pyramid")
    return store


def read_pyramid(store: BlockGetter, root: str) -> Pyramid:
    """The pyramid at ``root`` (``CID/path``) in ``store``: 404 if it is not held here, 502 if
    its metadata is not a pyramid Neuroglancer could open."""
    try:
        multiscales = loads_multiscales(_read(store, f"{root}/.zattrs"))
        level = multiscales.levels[0]
        zarray = json.loads(_read(store, f"{root}/{level.path}/.zarray"))
        order = [multiscales.axes.index(axis) for axis in ("z", "y", "x")]
        shape = _shape(zarray, order)
        voxel = tuple(level.scale[i] * _metres(multiscales.units[i]) for i in order)
    except (BlockNotFoundError, PathNotFoundError) as exc:
        raise HTTPException(
            404, f"this server does not hold the dataset's pyramid ({exc})"
        ) from None
    except (NgffError, ContentError, ValueError, RecursionError) as exc:
        raise HTTPException(502, f"the dataset's pyramid is not readable: {exc}") from None
    window = multiscales.window
    return Pyramid(shape, (voxel[0], voxel[1], voxel[2]),
                   (window.start, window.end) if window is not None else None)  # fmt: skip


def _read(store: BlockGetter, path: str) -> bytes:
    node = exporter.resolve_node(store, path)
    if node.kind not in (Kind.FILE, Kind.RAW) or (node.size or 0) > MAX_METADATA:
        raise ValueError(f"{path.rsplit('/', 1)[-1]} is not a metadata file of at most "
                         f"{MAX_METADATA} bytes")  # fmt: skip
    return exporter.read_range(store, path, 0, MAX_METADATA)


def _metres(unit: str | None) -> float:
    """One ``unit`` (an NGFF space unit; none means Å, what etdb writes) in metres."""
    if (unit or "angstrom") not in UNITS:
        raise ValueError(f"axis unit {unit!r:.40} is not one of {', '.join(UNITS)}")
    return UNITS[unit or "angstrom"]


def _shape(zarray: Any, order: list[int]) -> tuple[int, int, int]:
    """Level 0's shape as (z, y, x); ``order`` says where each is in the array's axes."""
    shape = zarray.get("shape") if isinstance(zarray, Mapping) else None
    if (
        not isinstance(shape, list)
        or len(shape) != 3
        or not all(type(n) is int and 1 <= n <= MAX_AXIS for n in shape)
    ):
        raise ValueError("level 0's .zarray has no 3-D shape of positive lengths")
    return (shape[order[0]], shape[order[1]], shape[order[2]])


def opening_zoom(extent: float) -> float:
    """Finest voxels per screen pixel at the opening, for a volume ``extent`` voxels long: a
    small one fills :data:`FIT_PIXELS`; a larger one snaps up to a power of two, so one voxel of
    a pyramid level is one screen pixel and its longest side spans between half of
    ``FIT_PIXELS`` and all of it. Neuroglancer then draws that level crisp from few chunks: a
    2 GiB volume opens from ~30 chunks instead of ~130, its view at full detail in about half
    the time (bench/viewer.py); scrolling in refines to the finer levels."""
    fit = extent / FIT_PIXELS
    if fit <= 1:
        return max(fit, 1e-3)
    return float(2 ** math.ceil(math.log2(fit)))


def viewer_state(source: str, pyramid: Pyramid, *, name: str) -> dict[str, Any]:
    """Neuroglancer's state: the layer, ``4panel`` layout, centred, at the opening zoom,
    windowed."""
    nz, ny, nx = pyramid.shape
    vz, vy, vx = pyramid.voxel
    finest = min(vz, vy, vx)
    # Zoom: global units (the finest voxel) per screen pixel so the longest side fits a panel.
    extent = max(nx * vx, ny * vy, nz * vz) / finest
    layer: dict[str, Any] = {"type": "image", "source": source, "name": name}
    if pyramid.window is not None:
        lo, hi = pyramid.window
        layer["shaderControls"] = {"normalized": {"range": [lo, hi]}}
    return {
        "dimensions": {
            "x": [vx, "m"],
            "y": [vy, "m"],
            "z": [vz, "m"],
        },
        "position": [nx / 2, ny / 2, nz / 2],
        "crossSectionScale": opening_zoom(extent),
        "projectionScale": extent * 1.5,
        "layers": [layer],
        "layout": "4panel",
    }
