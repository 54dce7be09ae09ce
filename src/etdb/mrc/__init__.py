"""MRC files: headers, extended headers, sidecars, section reads, 8-bit display, pyramids.

Below ``publish`` and ``web``, beside ``content``; imports only the standard library, numpy,
mrcfile and (for pyramids) zarr and numcodecs. Modules:

* :mod:`.header`: the 1024-byte header, the one mode table and byte-order rule, sizes checked;
* :mod:`.extended`: FEI1/FEI2 tables and SerialEM's SERI (:mod:`.serialem`), strict for
  publishing, lenient for the viewer's tilt labels;
* :mod:`.sidecars`: SerialEM ``.mdoc`` and IMOD ``.rawtlt``/``.tlt`` files;
* :mod:`.facts`: one file's acquisition facts from all of the above (publishing);
* :mod:`.sections`: one section from any seekable stream, bounded (the slice viewer);
* :mod:`.volume`: a file's data memory-mapped with mrcfile (key images and movies);
* :mod:`.display`: downsampling and the one contrast rule to 8 bits; :mod:`.png`;
* :mod:`.pyramid`: a volume as a multiscale OME-Zarr pyramid, streamed, deterministic, atomic;
  :mod:`.ngff`: its NGFF 0.4 metadata, written and read back from hostile sources.

Every refusal is an :class:`MrcError` naming the file.
"""

from etdb.mrc.errors import MrcError

__all__ = ["MrcError"]
