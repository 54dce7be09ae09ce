"""A UnixFS file or tree as a tar stream, in the exact format kubo's ``ipfs get`` writes.

kubo (``core/commands/get.go`` over boxo ``files.TarWriter`` and Go's ``archive/tar``) sends
``/api/v0/get`` as tar: the root entry is named after the last segment of the requested path,
then every entry below it in depth-first pre-order, in directory order; directories have mode
0755, files 0644, symlinks 0777 (or the permissions stored in UnixFS), uid/gid 0, no user
names. Two formats, chosen as Go's writer chooses them (:class:`TarFormat`):

* ``PAX`` (kubo's transport, ``archive=false``): every entry carries a PAX extended header
  ``<dir>/PaxHeaders.0/<name>`` with its ``mtime`` to the nanosecond, plus ``path``,
  ``linkpath`` and ``size`` records when those do not fit a USTAR field;
* ``USTAR`` (``archive=true``): times rounded to the second, long names split into the USTAR
  prefix; an entry USTAR cannot hold (a non-ASCII or unsplittable name, a file of 8 GiB or
  more) falls back to PAX, as Go's writer does.

A stored UnixFS ``mtime`` is used; without one an entry is stamped with the time the stream
began (kubo stamps "now" too, so two downloads never match to the byte; only the times differ).

A DAG is anyone's, and a tar is extracted by tools that trust it, so (the rules of
``export_tree`` for ``etdb get``, applied to names inside an archive):

* every entry name must pass :func:`etdb.content.export_tree.check_name` (no ``/``, ``.``,
  ``..``, NUL) and hold no control character and no ``..`` between backslashes, else the
  stream stops with :class:`UnsafeExportError`; a path longer than :data:`MAX_PATH` bytes
  stops it too (no extractor could create it, and it bounds the depth walked);
* a symlink is kept only when its target is relative, has no ``..`` component and no control
  character: every link then resolves downward, inside the archive, however links chain.
  Others are left out (as ``tar`` and ``etdb get`` do), so no member path ever leads outside;
* a file's data is exactly the size its header declares, or the stream stops: fewer or more
  bytes would shift every later header (a forged member inside a file).

Memory is bounded: one directory listing per level (at most :data:`MAX_PATH` / 2 levels) and
the leaf being copied; file bytes are never gathered.
"""

from __future__ import annotations

import functools
import logging
import posixpath
import re
import time
from collections.abc import Callable, Iterable, Iterator
from enum import Enum

from etdb.content.blockstore import BlockGetter
from etdb.content.dagpb import UnixFSData
from etdb.content.errors import InvalidNodeError, UnsafeExportError
from etdb.content.export_tree import check_name
from etdb.content.exporter import iter_file, iter_links, load_node, read_symlink
from etdb.content.nodes import Kind, Node

__all__ = [
    "MAX_PATH",
    "TarFormat",
    "check_member",
    "entry_mode",
    "tar_stream",
    "unixfs_mtime",
    "unsafe_target",
]

log = logging.getLogger(__name__)

BLOCK = 512
#: Longest member path (Linux's PATH_MAX); also bounds how deep a walk may go.
MAX_PATH = 4096
_NAME, _PREFIX = 100, 155
_DEFAULT_MODES = {Kind.DIRECTORY: 0o755, Kind.SYMLINK: 0o777}  # anything else: 0o644
_TYPEFLAGS = {Kind.DIRECTORY: b"5", Kind.SYMLINK: b"2"}  # anything else: b"0" (a file)
#: C0 controls, DEL and C1 controls: never in a member name or link target.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_INT64 = 1 << 63


#: A file's bytes, given its node.
FileReader = Callable[[Node], Iterable[bytes | memoryview]]


class TarFormat(Enum):
    PAX = "pax"  # kubo's transport format (archive=false)
    USTAR = "ustar"  # archive=true: USTAR, PAX only where USTAR cannot hold an entry


def tar_stream(
    store: BlockGetter,
    root: Node,
    name: str,
    fmt: TarFormat = TarFormat.PAX,
    *,
    now_ns: int | None = None,
    read_file: FileReader | None = None,
) -> Iterator[bytes | memoryview]:
    """The tar of ``root`` (file, directory or symlink) named ``name``, piece by piece.

    ``read_file(node)`` gives a file's bytes (default: ``iter_file`` over ``store``; a server
    passes one that reads ahead from its upstream peers)."""
    now = time.time_ns() if now_ns is None else now_ns
    read = read_file or functools.partial(iter_file, store)
    check_member(name)
    for path, node in _entries(store, root, name):
        if node.kind == Kind.SYMLINK:
            target = read_symlink(store, node)
            problem = unsafe_target(target)
            if problem is not None:
                log.info("tar of %s: symlink %r left out: %s", root.cid, path, problem)
                continue
            yield _header(path, node, 0, target, fmt, now)
        elif node.kind == Kind.DIRECTORY:
            yield _header(path, node, 0, "", fmt, now)
        else:
            size = node.size or 0
            yield _header(path, node, size, "", fmt, now)
            yield from _file_data(read(node), node, size)
    yield bytes(2 * BLOCK)  # end of archive; Go pads no further


def unsafe_target(target: str) -> str | None:
    """Why a symlink target may not go into an archive, or None."""
    if not target:
        return "empty target"
    if target.startswith(("/", "\\")) or re.match(r"[A-Za-z]:([/\\]|$)", target):
        return "absolute target"
    if ".." in re.split(r"[/\\]", target):
        return "target climbs with '..'"
    if _CONTROL.search(target):
        return "control character in target"
    return None


def entry_mode(node: Node) -> int:
    """Permission bits: UnixFS ``mode`` when stored (rwx only: a hostile DAG sets no setuid,
    setgid or sticky bit on anyone's disk), else kubo's default for the kind."""
    stored = (node.unixfs.mode or 0) & 0o7777 if node.unixfs is not None else 0
    if stored:
        return stored & 0o777
    return _DEFAULT_MODES.get(node.kind, 0o644)


def unixfs_mtime(data: UnixFSData | None) -> tuple[int, int] | None:
    """UnixFS ``mtime`` as (seconds, nanoseconds), or None where boxo sees none (absent,
    nanoseconds outside 1..999999999, seconds outside int64)."""
    stored = data.mtime if data is not None else None
    if stored is None:
        return None
    seconds, nanos = stored
    if not -_INT64 <= seconds < _INT64:
        return None
    if nanos is None:
        return seconds, 0
    if not 1 <= nanos <= 999_999_999:
        return None
    return seconds, nanos


# -- the walk -----------------------------------------------------------------------------------


def _entries(store: BlockGetter, root: Node, name: str) -> Iterator[tuple[str, Node]]:
    """(member path, node) in depth-first pre-order, directories in their listing order.
    Iterative: a hostile DAG can nest deeper than Python's recursion limit."""
    yield name, root
    if root.kind != Kind.DIRECTORY:
        return
    stack = [(name, root, iter_links(store, root))]
    while stack:
        path, directory, links = stack[-1]
        entry = next(links, None)
        if entry is None:
            stack.pop()
            continue
        child_name, link = entry
        check_name(child_name, directory.cid)
        child_path = f"{path}/{child_name}"
        check_member(child_name, f"directory {directory.cid}", child_path)
        child = load_node(store, link.cid)
        yield child_path, child
        if child.kind == Kind.DIRECTORY:
            stack.append((child_path, child, iter_links(store, child)))


def check_member(name: str, where: str = "the requested path", path: str | None = None) -> None:
    """Refuse a member name (or path) no archive may hold: see the module docstring."""
    if _CONTROL.search(name) or ".." in name.split("\\") or not name:
        raise UnsafeExportError(f"{where} has an unsafe entry name {name!r}")
    if len((path or name).encode("utf-8")) > MAX_PATH:
        raise UnsafeExportError(f"{where}: member path longer than {MAX_PATH} bytes")


def _file_data(
    pieces: Iterable[bytes | memoryview], node: Node, size: int
) -> Iterator[bytes | memoryview]:
    """The file's bytes, exactly ``size`` of them, then zeros to the next block boundary."""
    sent = 0
    for piece in pieces:
        sent += len(piece)
        if sent > size:
            raise InvalidNodeError(node.cid, f"file holds more than the {size} bytes it declares")
        yield piece
    if sent != size:
        raise InvalidNodeError(node.cid, f"file holds {sent} bytes, declares {size}")
    if size % BLOCK:
        yield bytes(BLOCK - size % BLOCK)


# -- headers, as Go's archive/tar writes them ---------------------------------------------------


def _header(path: str, node: Node, size: int, target: str, fmt: TarFormat, now: int) -> bytes:
    stored = unixfs_mtime(node.unixfs)
    seconds, nanos = stored if stored is not None else divmod(now, 1_000_000_000)
    if fmt is TarFormat.USTAR and nanos:  # Go rounds to the second unless PAX was asked for
        seconds, nanos = seconds + (nanos >= 500_000_000), 0
    fields = _Fields(path, target, size, entry_mode(node), seconds, _TYPEFLAGS.get(node.kind, b"0"))
    records: dict[str, str] = {}
    ustar_ok = True
    if not _fits_field(path, _NAME):
        records["path"] = path
        ustar_ok = _split_ustar(path) is not None
    if not _fits_field(target, _NAME):
        records["linkpath"] = target
        ustar_ok = False
    if not _fits_octal(12, size):
        records["size"] = str(size)
        ustar_ok = False
    if not _fits_octal(12, seconds) or (fmt is TarFormat.PAX and nanos):
        records["mtime"] = _pax_time(seconds, nanos)
        ustar_ok = ustar_ok and _fits_octal(12, seconds)
    if fmt is TarFormat.USTAR and ustar_ok:
        return fields.ustar()
    return _pax_extension(path, records) + fields.pax()


class _Fields:
    """One member's header fields, packed into a 512-byte block (Go's ``templateV7Plus``)."""

    def __init__(self, name: str, link: str, size: int, mode: int, mtime: int, flag: bytes):
        self.name, self.link, self.size = name, link, size
        self.mode, self.mtime, self.flag = mode, mtime, flag

    def ustar(self) -> bytes:
        prefix, name = _split_ustar(self.name) or ("", self.name)
        return self._block(name.encode("ascii"), self.link.encode("ascii"), prefix.encode())

    def pax(self) -> bytes:
        return self._block(_ascii(self.name), _ascii(self.link), b"")

    def _block(self, name: bytes, link: bytes, prefix: bytes) -> bytes:
        block = bytearray(BLOCK)
        _put(block, 0, 100, name)
        _put_octal(block, 100, 8, self.mode)
        _put_octal(block, 108, 8, 0)  # uid
        _put_octal(block, 116, 8, 0)  # gid
        _put_octal(block, 124, 12, self.size)
        _put_octal(block, 136, 12, self.mtime)
        block[156:157] = self.flag
        _put(block, 157, 100, link)
        _put_octal(block, 329, 8, 0)  # devmajor
        _put_octal(block, 337, 8, 0)  # devminor
        _put(block, 345, _PREFIX, prefix)
        return _finish(block)


def _pax_extension(path: str, records: dict[str, str]) -> bytes:
    """The ``x`` header and its records (none: no extension, as Go writes none)."""
    if not records:
        return b""
    data = "".join(_pax_record(key, records[key]) for key in sorted(records)).encode("utf-8")
    directory, base = posixpath.split(path)
    block = bytearray(BLOCK)
    _put(block, 0, 100, _ascii(posixpath.join(directory, "PaxHeaders.0", base))[:100].rstrip(b"/"))
    for offset, width in ((100, 8), (108, 8), (116, 8), (136, 12)):  # mode, uid, gid, mtime
        _put_octal(block, offset, width, 0)
    _put_octal(block, 124, 12, len(data))
    block[156:157] = b"x"
    padding = bytes(-len(data) % BLOCK)
    return _finish(block) + data + padding


def _pax_record(key: str, value: str) -> str:
    """``"<length> <key>=<value>\\n"``, the length counting itself (Go's formatPAXRecord)."""
    size = len(key.encode()) + len(value.encode()) + 3
    size += len(str(size))
    record = f"{size} {key}={value}\n"
    if len(record.encode()) != size:
        record = f"{len(record.encode())} {key}={value}\n"
    return record


def _pax_time(seconds: int, nanos: int) -> str:
    if nanos == 0:
        return str(seconds)
    sign = ""
    if seconds < 0:  # Go's correction: -1.25 is written "-1.25", not "-2.75"
        sign, seconds, nanos = "-", -(seconds + 1), 1_000_000_000 - nanos
    return f"{sign}{seconds}.{nanos:09d}".rstrip("0")


def _split_ustar(name: str) -> tuple[str, str] | None:
    """Go's splitUSTARPath: (prefix, name) at a slash, each part fitting its field, or None."""
    length = len(name)
    if length <= _NAME or not name.isascii():
        return None
    if length > _PREFIX + 1:
        length = _PREFIX + 1
    elif name[length - 1] == "/":
        length -= 1
    cut = name.rfind("/", 0, length)
    suffix = len(name) - cut - 1
    if cut <= 0 or suffix > _NAME or suffix == 0 or cut > _PREFIX:
        return None
    return name[:cut], name[cut + 1 :]


def _fits_field(text: str, width: int) -> bool:
    return text.isascii() and len(text) <= width


def _fits_octal(width: int, value: int) -> bool:
    return 0 <= value < 1 << (3 * (width - 1))


def _ascii(text: str) -> bytes:
    """Go's toASCII: non-ASCII characters (and NUL) dropped."""
    return "".join(c for c in text if c < "\x80" and c != "\0").encode("ascii")


def _put(block: bytearray, offset: int, width: int, value: bytes) -> None:
    """Go's formatString: truncated to the field, NUL-terminated when shorter; a truncated
    name never ends in '/' (some readers would take a file for a directory)."""
    field = value[:width]
    block[offset : offset + len(field)] = field
    if len(value) > width and field.endswith(b"/"):
        keep = len(value[: width - 1].rstrip(b"/"))
        block[offset + keep] = 0


def _put_octal(block: bytearray, offset: int, width: int, value: int) -> None:
    """Zero-padded octal and a NUL; a value that does not fit is written as 0 (Go's last
    resort; the PAX record then holds it)."""
    if not _fits_octal(width, value):
        value = 0
    _put(block, offset, width, f"{value:0{width - 1}o}".encode())


def _finish(block: bytearray) -> bytes:
    """USTAR/PAX magic and version, then the checksum (six octal digits, NUL, space)."""
    block[257:265] = b"ustar\x0000"
    block[148:156] = b" " * 8
    block[148:155] = f"{sum(block):06o}\0".encode()
    return bytes(block)
