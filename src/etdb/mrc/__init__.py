"""MRC files: headers, extended headers, sidecars, section reads and 8-bit display.

Below ``publish`` and ``web``, beside ``content``; imports only the standard library, numpy and
mrcfile. Modules:

* :mod:`.header`: the 1024-byte header, the one mode table and byte-order rule, sizes checked;
* :mod:`.extended`: FEI1/FEI2 tables and SerialEM's SERI (:mod:`.serialem`), strict for
  publishing, lenient for the viewer's tilt labels;
* :mod:`.sidecars`: SerialEM ``.mdoc`` and IMOD ``.rawtlt``/``.tlt`` files;
* :mod:`.facts`: one file's acquisition facts from all of the above (publishing);
* :mod:`.sections`: one section from any seekable stream, bounded (the slice viewer);
* :mod:`.volume`: a file's data memory-mapped with mrcfile (key images and movies);
* :mod:`.display`: downsampling and the one contrast rule to 8 bits; :mod:`.png`.

Every refusal is an :class:`MrcError` naming the file.
"""

from etdb.mrc.errors import MrcError

__all__ = ["MrcError"]
