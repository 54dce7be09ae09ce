"""The file subtypes a record's ``storage.files[].subtype`` takes, and the type each one has.

One vocabulary for the publisher (which writes them), the portal (which labels and filters by
them) and the downloader (which chooses files by them). The subtype is go-etdb's spelling
(``tiltSeries``); readers compare case-insensitively, since historical records vary.
"""

from __future__ import annotations

__all__ = ["PYRAMID_SUBTYPE", "PYRAMID_TYPE", "SUBTYPES", "file_type", "is_pyramid"]

#: The subtypes, in the order ETDB lists a dataset's files.
SUBTYPES = (
    "tiltSeries",
    "reconstruction",
    "subvolume",
    "keymov",
    "keyimg",
    "preview",
    "zarr",
    "snapshot",
    "thumbnail",
    "other",
)
#: The OME-Zarr pyramid of a reconstruction (NGFF multiscales, ``<sid>.ome.zarr``): the one
#: subtype whose entry is a folder, listed once with its files' total size.
PYRAMID_SUBTYPE = "zarr"
#: Its ``type``: derived from the data for viewing, like a movie's preview.
PYRAMID_TYPE = "preview"
_TYPES = {"thumbnail": "image", PYRAMID_SUBTYPE: PYRAMID_TYPE}


def file_type(subtype: str) -> str:
    """The ``type`` that goes with ``subtype``: thumbnails are images, pyramids previews,
    every other file a part of the tomogram."""
    return _TYPES.get(subtype, "tomogram")


def is_pyramid(subtype: object) -> bool:
    """Whether a ``storage.files`` entry of this subtype is the pyramid, a folder entry (any
    case; anything but a string, as hostile JSON may hold, is not)."""
    return isinstance(subtype, str) and subtype.lower() == PYRAMID_SUBTYPE
