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

import zarr

from etdb.client.errors import ClientError
from etdb.content.blockstore import BlockGetter
from etdb.content.zarr_store import UnixFSZarrStore
from etdb.mrc.ngff import NgffError, read_multiscales

__all__ = ["level_paths", "open_pyramid"]


def open_pyramid(getter: BlockGetter, root: str) -> zarr.Group:
    """The read-only zarr group of the pyramid folder at content path ``root``."""
    return zarr.open_group(UnixFSZarrStore(getter, root), mode="r", zarr_format=2)


def level_paths(group: zarr.Group) -> list[str]:
    """The group's level array names, finest first (its NGFF ``multiscales`` datasets)."""
    try:
        return read_multiscales(group.attrs.asdict()).paths
    except NgffError as exc:
        raise ClientError(f"the pyramid's .zattrs: {exc}") from None
