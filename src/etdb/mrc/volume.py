"""A file's MRC data as a read-only memory map, checked first, for reading section by section.

Key images and movies are made from reconstructions of many GB, so the volume is never loaded:
``mrcfile.mmap`` (permissive, so slightly non-conforming files from old software still open)
maps it, and callers read the sections they need. The header is checked by
:func:`etdb.mrc.header.read_raw_header` before mrcfile sees the file: a corrupt header can
announce a 2 GB extended header, which mrcfile would try to read into memory.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mrcfile
import numpy as np

from etdb.mrc.errors import MrcError
from etdb.mrc.header import image_type, read_raw_header

__all__ = ["open_volume"]


@contextmanager
def open_volume(path: str | os.PathLike[str]) -> Iterator[np.ndarray]:
    """The MRC data as a read-only memory map of shape ``(z, y, x)`` (an image is one section;
    of a stack of volumes, the first). MrcError naming the file if it cannot be shown."""
    path = Path(path)
    raw = read_raw_header(path)
    image_type(raw, path)  # refuses what is not a grayscale image
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            mrc = mrcfile.mmap(path, mode="r", permissive=True)
        except (OSError, ValueError) as exc:
            raise MrcError(path, f"cannot open as MRC: {exc}") from exc
    with mrc:
        data = mrc.data
        if data is None:
            why = "; ".join(dict.fromkeys(str(w.message) for w in caught)) or "no data block"
            raise MrcError(path, f"not a readable MRC file ({why})")
        if data.ndim not in (2, 3, 4) or data.size == 0:
            raise MrcError(path, f"unsupported MRC data (mode {raw.mode}, shape {data.shape})")
        if data.ndim == 2:
            data = data[np.newaxis]
        elif data.ndim == 4:  # a volume stack: show its first volume
            data = data[0]
        yield data
