"""HTTP details of the path gateway: byte ranges, content types, validators, dispositions.

Pure functions over header values, kept apart from the routes so that each rule of RFC 9110
(ranges §14, conditional requests §13) is one small piece to read and test. The gateway module
wires them to the blockstore.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

__all__ = [
    "ACTIVE_TYPES",
    "ByteRange",
    "RangeNotSatisfiable",
    "content_disposition",
    "content_type_of",
    "etag_matches",
    "parse_range",
]

#: By file extension. Tomography formats (MRC and IMOD's names for it) are opaque bytes.
CONTENT_TYPES: dict[str, str] = {
    "mrc": "application/octet-stream",
    "mrcs": "application/octet-stream",
    "rec": "application/octet-stream",
    "st": "application/octet-stream",
    "ali": "application/octet-stream",
    "map": "application/octet-stream",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "webp": "image/webp",
    "tif": "image/tiff",
    "tiff": "image/tiff",
    "mp4": "video/mp4",
    "m4v": "video/mp4",
    "webm": "video/webm",
    "ogv": "video/ogg",
    "flv": "video/x-flv",
    "json": "application/json",
    "txt": "text/plain; charset=utf-8",
    "log": "text/plain; charset=utf-8",
    "md": "text/markdown; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
    "tsv": "text/tab-separated-values; charset=utf-8",
    "pdf": "application/pdf",
    "zip": "application/zip",
    "gz": "application/gzip",
    "tgz": "application/gzip",
    "car": "application/vnd.ipld.car",
}
DEFAULT_TYPE = "application/octet-stream"
#: Formats a browser would run or render as a document with the gateway's origin. They are
#: served as their text, never as what they claim to be: see ``content_type_of``.
ACTIVE_TYPES = frozenset({"html", "htm", "xhtml", "xht", "shtml", "svg", "svgz", "xml", "xsl"})
PLAIN_TEXT = "text/plain; charset=utf-8"


def content_type_of(name: str) -> str:
    """The Content-Type for a file called ``name``.

    Dataset HTML/SVG/XML is answered as ``text/plain``: the portal and the files share one
    origin, and a published file is data anyone could have written. As text (with ``nosniff``,
    sent on every response) a person can still read it in the browser, and the bytes, length
    and ETag stay exactly the stored file's; ``Content-Disposition: attachment`` would also be
    safe but forces a download for what is usually a README. The sandbox CSP on ``/ipfs/`` is
    the second wall.
    """
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if ext in ACTIVE_TYPES:
        return PLAIN_TEXT
    return CONTENT_TYPES.get(ext, DEFAULT_TYPE)


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Bytes ``[start, end)`` of a file of ``size`` bytes."""

    start: int
    end: int
    size: int

    @property
    def length(self) -> int:
        return self.end - self.start

    @property
    def content_range(self) -> str:
        return f"bytes {self.start}-{self.end - 1}/{self.size}"


class RangeNotSatisfiable(ValueError):
    """A well-formed range that selects no byte of the file (answer 416)."""

    def __init__(self, size: int) -> None:
        super().__init__(f"the range selects no byte of this {size}-byte file")
        self.size = size


_SPEC = re.compile(r"(\d*)-(\d*)")


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one range a ``Range`` header asks for; None means "send the whole file".

    RFC 9110 §14.2 lets a server ignore a Range header, so malformed ones, units other than
    bytes and multi-range requests (a multipart/byteranges body no browser or video player
    needs) are answered with the full file. A single range starting at or past the end raises
    :class:`RangeNotSatisfiable`.
    """
    if not header:
        return None
    unit, sep, spec = header.partition("=")
    if not sep or unit.strip().lower() != "bytes" or "," in spec:
        return None
    match = _SPEC.fullmatch(spec.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first:
        if not last:
            return None  # "bytes=-": no number at all
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(size)
        return ByteRange(max(size - suffix, 0), size, size)
    start = int(first)
    end = int(last) + 1 if last else size
    if last and end <= start:
        return None  # last-pos before first-pos: invalid syntax, ignored
    if start >= size:
        raise RangeNotSatisfiable(size)
    return ByteRange(start, min(end, size), size)


def etag_matches(header: str | None, tag: str) -> bool:
    """If-None-Match against our strong ``tag`` (weak comparison, §13.1.2); "*" matches."""
    if not header:
        return False
    wanted = {t.strip().removeprefix("W/") for t in header.split(",")}
    return "*" in wanted or tag in wanted


def if_range_allows(header: str | None, tag: str) -> bool:
    """Whether an ``If-Range`` precondition lets the Range apply (§13.1.5).

    Only a strong entity tag equal to ours does; our responses carry no Last-Modified, so an
    HTTP date can never be current: the full file is sent, which is always correct.
    """
    if header is None:
        return True
    return header.strip() == tag


_UNSAFE_ASCII = re.compile(r'[^\x20-\x7e]|["\\]')


def content_disposition(filename: str, *, attachment: bool) -> str:
    """``inline|attachment; filename="..."; filename*=UTF-8''...`` (RFC 6266 / 8187).

    The ASCII fallback drops quotes, backslashes and control characters; the UTF-8 form carries
    the name exactly, percent-encoded, so no client parses a header another way than we meant.
    """
    name = filename.replace("/", "_").replace("\\", "_")
    fallback = _UNSAFE_ASCII.sub("_", name) or "download"
    kind = "attachment" if attachment else "inline"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"
