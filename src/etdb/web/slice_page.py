"""The slice viewer's part of the dataset page: the files it lists, the axis, the plane shown.

``templates/_slice_viewer.html`` renders what :func:`slice_viewer` returns; the images
themselves come from the ``/slices/`` route (:mod:`etdb.web.slices`), whose caches and reads
this module shares.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from fastapi import HTTPException, Request

from etdb.content import exporter
from etdb.content.errors import ContentError
from etdb.content.readthrough import waiting_at_most
from etdb.mrc.errors import MrcError
from etdb.mrc.sections import MrcLayout, read_layout
from etdb.record.subtypes import is_pyramid
from etdb.web.planes import AXES, MRC_YZ_LIMIT, PYRAMID_SUFFIX, axis_length, parse_axis
from etdb.web.slice_store import (
    MAX_SIZE,
    PAGE_WAIT,
    SliceCache,
    blockstore_of,
    caches,
    slice_url,
    with_sidecar_angles,
)

__all__ = ["MRC_SUFFIXES", "VIEWABLE", "slice_viewer", "viewable_files"]

#: Record file subtypes the viewer shows (lower case), in the order it lists them.
VIEWABLE = {"reconstruction": 0, "tiltseries": 1}
MRC_SUFFIXES = (".mrc", ".rec", ".st", ".ali", ".preali", ".mrcs", ".map")


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
    twin too). The file, axis and plane come from the page's ``slice_file``, ``axis`` and
    ``index`` query parameters (``z`` too: older links), so the viewer works without
    JavaScript (its form reloads the page; ``shown_axis`` says which axis the index was
    for, so changing the axis starts at the middle). XZ/YZ planes of the record's first
    reconstruction come from its OME-Zarr pyramid when it has one, else from the MRC (YZ only
    up to ``MRC_YZ_LIMIT`` bytes). Headers are read through the layout cache, and a file this
    server does not hold (or, read through upstream peers, cannot get within ``PAGE_WAIT``
    seconds) is listed with ``available: false`` instead of failing the page.
    """
    files = viewable_files(artifact)
    if not files:
        return None
    pyramid = pyramid_value(artifact)
    _, layouts = caches(request)
    for entry in files:
        entry["available"] = False
        layout = cached_layout(request, layouts, entry["value"])
        entry["slice_url"] = slice_url(entry["value"])
        entry["plane_url"] = entry["slice_url"]
        if layout is not None:
            entry.update(available=True, nz=layout.nz, ny=layout.ny, nx=layout.nx,
                         default_z=layout.default_z, axes=["z", "y"])  # fmt: skip
            from_pyramid = pyramid is not None and entry is files[0] and layout.kind == "volume"
            if from_pyramid:
                entry["plane_url"] = slice_url(str(pyramid))
            if from_pyramid or layout.nz * layout.section_bytes <= MRC_YZ_LIMIT:
                entry["axes"].append("x")
        entry["info_url"] = entry["slice_url"] + "?info=1"
        entry["ipfs_url"] = "/ipfs/" + quote(entry["value"])
    params = request.query_params
    current = next((f for f in files if f["value"] == params.get("slice_file")), None)
    current = current or next((f for f in files if f["available"]), files[0])
    viewer: dict[str, Any] = {"files": files, "current": current["value"], "z": None,
                              "axes": AXES}  # fmt: skip
    if not current["available"]:
        return viewer
    axis = parse_axis(params.get("axis")) or "z"
    if axis not in current["axes"]:
        axis = "z"
    count = axis_length((current["nz"], current["ny"], current["nx"]), axis)
    default = current["default_z"] if axis == "z" else count // 2
    at = page_int(params.get("index") or params.get("z"))
    if at is None or parse_axis(params.get("shown_axis")) not in (axis, None):
        at = default
    at = min(max(at, 0), count - 1)
    base = current["slice_url"] if axis == "z" else current["plane_url"]
    query = f"z={at}" if axis == "z" else f"axis={axis}&index={at}"
    viewer.update(z=at, index=at, axis=axis, count=count, image_url=f"{base}?{query}",
                  download_url=f"{base}?{query}&size={MAX_SIZE}")  # fmt: skip
    return viewer


def page_int(text: str | None) -> int | None:
    try:
        return int(text or "")
    except ValueError:
        return None


def pyramid_value(artifact: Mapping[str, Any]) -> str | None:
    """``<location>/<fname>`` of the record's pyramid (its files entry with subtype zarr)."""
    storage = artifact.get("storage") or {}
    location = str(storage.get("location") or "").strip("/")
    for entry in storage.get("files") or []:
        if not isinstance(entry, Mapping) or not is_pyramid(entry.get("subtype")):
            continue
        fname = str(entry.get("fname") or "").strip("/")
        if location and fname.endswith(PYRAMID_SUFFIX) and ".." not in fname.split("/"):
            return f"{location}/{fname}"
    return None


def cached_layout(request: Request, layouts: SliceCache, value: str) -> MrcLayout | None:
    cid, _, path = value.partition("/")
    layout = layouts.get((cid, path))
    if layout is not None:
        return layout
    try:
        store = waiting_at_most(blockstore_of(request), PAGE_WAIT)
        with exporter.open_file(store, value) as reader:
            layout = read_layout(reader, reader.size, name=path or cid)
        layout = with_sidecar_angles(store, cid, path, layout)
    except (HTTPException, ContentError, MrcError):
        return None
    layouts.put((cid, path), layout, 1)
    return layout
