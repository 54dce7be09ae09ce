"""A record's OME-Zarr pyramid as zarr arrays, every byte read through the verified fetch path.

A record lists its pyramid as the ``storage.files`` entry with subtype ``zarr`` (a folder,
``<sid>.ome.zarr``: NGFF 0.4 multiscales on zarr v2). :func:`open_pyramid` opens that folder
with :class:`etdb.content.zarr_store.UnixFSZarrStore` over the client's
:class:`~etdb.content.fetch.BlockFetcher`: a chunk zarr asks for costs the blocks of that one
file, each hashed against its CID before use (a peer that lies is dropped and the block asked
of another; with no honest peer left the read fails, it never returns wrong values). Nothing
is written to disk unless the client has a block cache.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import zarr

from etdb.client.errors import ClientError
from etdb.content.blockstore import BlockGetter
from etdb.content.zarr_store import UnixFSZarrStore

__all__ = ["PYRAMID_SUBTYPE", "level_paths", "open_pyramid", "pyramid_fname"]

PYRAMID_SUBTYPE = "zarr"


def pyramid_fname(files: list[Any]) -> str:
    """The ``fname`` of the pyramid among a record's file entries (objects or wire dicts)."""
    for entry in files:
        get = entry.get if isinstance(entry, Mapping) else lambda k, e=entry: getattr(e, k, None)
        if str(get("subtype") or "").lower() == PYRAMID_SUBTYPE and get("fname"):
            return str(get("fname")).strip("/")
    raise ClientError("the record lists no OME-Zarr pyramid (no files entry with subtype zarr)")


def open_pyramid(getter: BlockGetter, root: str) -> zarr.Group:
    """The read-only zarr group of the pyramid folder at content path ``root``."""
    return zarr.open_group(UnixFSZarrStore(getter, root), mode="r", zarr_format=2)


def level_paths(group: zarr.Group) -> list[str]:
    """The group's level array names, finest first (its NGFF ``multiscales`` datasets)."""
    attrs: Any = group.attrs.asdict()  # hostile JSON: every step below may fail
    try:
        datasets = attrs["multiscales"][0]["datasets"]
        paths = [str(d["path"]) for d in datasets]
    except (KeyError, IndexError, TypeError) as exc:
        raise ClientError(f"the pyramid's .zattrs holds no NGFF multiscales: {exc}") from None
    if not paths:
        raise ClientError("the pyramid lists no levels")
    return paths
