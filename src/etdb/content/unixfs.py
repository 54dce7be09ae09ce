"""The UnixFS importer: files and folders to IPFS blocks with exactly kubo's CIDs.

``ipfs add`` semantics (kubo, boxo ``ipld/unixfs``; UnixFS spec https://specs.ipfs.tech/unixfs/):
fixed-size chunks (``chunker.py``), the balanced layout (``layout.py``), basic directories that
turn into HAMT shards past a size threshold (``hamt.py``), symlinks stored as UnixFS Symlink
nodes (not followed), hidden names skipped unless asked (everywhere, or inside folders named
with a ``hidden_in`` suffix: zarr v2's ``.zarray``/``.zattrs`` are data). Parameters come from
a ``Profile`` (``profiles.py``, IPIP-0499).

Every block goes to ``sink.put(cid, block)`` as soon as it exists, children before parents, so
a sink can stream them (a CAR writer, a blockstore). Without a sink only CIDs are computed and
no block of file data is ever assembled. Memory is a few chunks per file plus, for folders, the
links of the folders being walked; file data is never kept.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from etdb.content.chunker import Leaf, LeafHasher, iter_file_leaves, iter_leaves, two_cpus
from etdb.content.cid import CID, DAG_PB
from etdb.content.dagpb import PBLink, PBNode, UnixFSData, UnixFSType, encode_node, encode_unixfs
from etdb.content.hamt import build_hamt
from etdb.content.layout import BalancedBuilder, Link
from etdb.content.profiles import DEFAULT_PROFILE, PROFILES, Profile, get_profile

__all__ = [
    "PROFILES",
    "BlockSink",
    "ImportResult",
    "Importer",
    "ImporterError",
    "Profile",
    "add_path",
    "get_profile",
]

_DIR_DATA = encode_unixfs(UnixFSData(UnixFSType.DIRECTORY))  # 08 01


class BlockSink(Protocol):
    def put(self, cid: CID, block: bytes) -> None: ...


class ImporterError(ValueError):
    """The input cannot be imported (unsupported file type, name not UTF-8...)."""


@dataclass(frozen=True)
class ImportResult:
    cid: CID
    size: int  # cumulative Tsize, as a parent link would record it
    filesize: int  # file bytes; for a folder, the total of the file bytes under it
    blocks: int  # blocks produced (handed to the sink, or that would have been)


def _open_file(path: str | os.PathLike[str]) -> BinaryIO:
    # A seam for tests (unreadable files cannot be made when running as root).
    return open(path, "rb")


class _OverlayEntry:
    """An extra file or folder (``add_path(overlay=...)``), walked like a ``DirEntry``: it is
    linked under ``name`` though it lives at ``path`` (elsewhere on disk). A folder's own
    entries are then walked as those of a real folder."""

    __slots__ = ("folder", "name", "path")

    def __init__(self, name: str, path: str, folder: bool) -> None:
        self.name = name
        self.path = path
        self.folder = folder

    def is_dir(self, *, follow_symlinks: bool = True) -> bool:
        return self.folder

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        return os.stat(self.path)  # the file itself, even if the overlay path is a symlink


class _OverlayDir:
    """A folder made only of overlay files (overlay names with "/", e.g. ``AutoCaps/a.jpg``)."""

    __slots__ = ("entries", "name", "path")

    def __init__(self, name: str, path: str, entries: list[_Entry]) -> None:
        self.name = name
        self.path = path  # for messages only: nothing is read at it
        self.entries = sorted(entries, key=lambda e: e.name, reverse=True)

    def is_dir(self, *, follow_symlinks: bool = True) -> bool:
        return True


_Entry = os.DirEntry[str] | _OverlayEntry | _OverlayDir


@dataclass
class _Dir:
    """A folder being walked: its remaining entries and the links collected so far."""

    path: str
    name: str  # the name its parent links it under
    rel: str  # path inside the imported root, "/"-separated ("" for the root)
    pending: list[_Entry]  # in reverse name order
    links: list[tuple[bytes, str, CID, int]]  # (name bytes, name, cid, tsize)
    hidden: bool = False  # its hidden names are imported (and those of folders under it)
    filesize: int = 0
    blocks: int = 0


class Importer:
    """Imports streams, byte strings, files and folder trees under one profile.

    ``on_progress(n)`` is called with the number of file bytes consumed since the last call.
    ``on_entry(rel, result)`` is called by ``add_path`` for every file, symlink and folder it
    imports, children before their folder, in name order; ``rel`` is the entry's path inside
    the imported path, "/"-separated ("" for the path itself). It lets a caller list what was
    added (as ``ipfs add`` does) without a sink, so that ``--only-hash`` stays on the fast path.
    ``parallel=False`` keeps leaf hashing on the calling thread (for benchmarks and debugging).
    ``hidden_in``: folder-name suffixes (``".ome.zarr"``) inside which hidden names are
    imported even without ``hidden`` (formats whose dot files are data, as zarr v2's are).
    An Importer does one import at a time (not thread-safe); make one per thread.
    """

    def __init__(
        self,
        profile: Profile | str,
        sink: BlockSink | None = None,
        *,
        hidden: bool = False,
        on_progress: Callable[[int], None] | None = None,
        on_entry: Callable[[str, ImportResult], None] | None = None,
        parallel: bool = True,
        hidden_in: Collection[str] = (),
    ) -> None:
        self.profile = get_profile(profile) if isinstance(profile, str) else profile
        self.sink = sink
        self.hidden = hidden
        self.hidden_in = tuple(hidden_in)
        self.on_progress = on_progress
        self.on_entry = on_entry
        self.parallel = parallel
        p = self.profile
        self._leaf = LeafHasher(
            raw=p.raw_leaves, cid_version=p.cid_version, keep_blocks=sink is not None
        )
        self._blocks = 0

    # -- blocks -------------------------------------------------------------------------------

    def _emit_node(self, block: bytes) -> CID:
        """Hash a dag-pb node under the profile's CID version and hand it to the sink."""
        digest = hashlib.sha256(block).digest()
        cid = CID.v0(digest) if self.profile.cid_version == 0 else CID.v1(DAG_PB, digest)
        if self.sink is not None:
            self.sink.put(cid, block)
        self._blocks += 1
        return cid

    # -- files --------------------------------------------------------------------------------

    def _file(self, stream: BinaryIO, regular_size: int | None = None) -> ImportResult:
        """Import a file from ``stream``; ``regular_size``: it is a regular file we opened."""
        start = self._blocks
        builder = BalancedBuilder(self.profile.max_links, self._emit_node)
        sink = self.sink
        size = self.profile.chunk_size
        leaves: Iterator[Leaf]
        if self.parallel and regular_size is not None and regular_size >= 2 * size and two_cpus():
            # Big rounds when only hashing (leaves hold no data), small ones when a sink needs
            # the blocks: in-flight memory stays at a few chunks.
            batch = 64 if sink is None else 4
            leaves = iter_file_leaves(
                stream.fileno(), size, self._leaf, batch=batch, on_progress=self.on_progress
            )
        else:
            leaves = iter_leaves(
                stream, size, self._leaf, parallel=self.parallel, on_progress=self.on_progress
            )
        for leaf in leaves:
            if sink is not None:
                assert leaf.block is not None
                sink.put(leaf.cid, leaf.block)
            self._blocks += 1
            builder.add(Link(leaf.cid, leaf.tsize, leaf.filesize))
        root = builder.finish()
        return ImportResult(root.cid, root.tsize, root.filesize, self._blocks - start)

    def add_stream(self, stream: BinaryIO) -> ImportResult:
        """Import one file read from ``stream`` until its end (the stream is not closed)."""
        return self._file(stream)

    def add_bytes(self, data: bytes) -> ImportResult:
        return self._file(io.BytesIO(data))

    def _symlink(self, path: str) -> ImportResult:
        # boxo unixfs.SymlinkData: Type=Symlink, Data=target, no filesize; not followed.
        target = os.fsencode(os.readlink(path))
        block = encode_node(PBNode((), encode_unixfs(UnixFSData(UnixFSType.SYMLINK, data=target))))
        return ImportResult(self._emit_node(block), len(block), 0, 1)

    def _leaf_entry(self, path: str, mode: int) -> ImportResult:
        if stat.S_ISLNK(mode):
            return self._symlink(path)
        if stat.S_ISREG(mode):
            with _open_file(path) as f:
                return self._file(f, os.fstat(f.fileno()).st_size)
        raise ImporterError(f"cannot import {path!r}: not a regular file, folder or symlink")

    # -- folders ------------------------------------------------------------------------------

    def _directory(self, links: list[tuple[bytes, str, CID, int]]) -> tuple[CID, int, int]:
        """Emit a folder node (flat, or a HAMT shard when too big); return (cid, tsize, blocks)."""
        p = self.profile
        links.sort(key=lambda link: link[0])  # dag-pb: links sorted by name bytes
        node = PBNode(tuple(PBLink(cid, name, tsize) for _, name, cid, tsize in links), _DIR_DATA)
        block: bytes | None = None
        if p.hamt_estimate == "links":
            # boxo/js "links-bytes": Σ(len(name) + len(cid)), ignoring protobuf overhead.
            estimate = sum(len(nb) + len(bytes(cid)) for nb, _, cid, _ in links)
        else:
            block = encode_node(node)  # IPIP-0499 "block-bytes": the exact node size
            estimate = len(block)
        over = estimate >= p.hamt_threshold if p.hamt_inclusive else estimate > p.hamt_threshold
        if over:
            entries = [(name, cid, tsize) for _, name, cid, tsize in links]
            cid, tsize, count = build_hamt(entries, p.hamt_fanout, self._emit_node)
            return cid, tsize, count
        if block is None:
            block = encode_node(node)
        return self._emit_node(block), len(block) + sum(t for *_, t in links), 1

    def _keeps_hidden(self, parent: bool, name: str) -> bool:
        """Whether the folder ``name`` (in a folder keeping them if ``parent``) imports its
        hidden names."""
        return self.hidden or parent or name.endswith(self.hidden_in)

    def _entries(
        self, path: str, hidden: bool, overlay: Mapping[str, Path] | None = None
    ) -> list[_Entry]:
        with os.scandir(path) as it:
            entries: list[_Entry] = [e for e in it if hidden or not e.name.startswith(".")]
        if overlay:
            entries.extend(self._overlay_entries(path, overlay, {e.name for e in entries}))
        # Sorted, then reversed so that pop() takes them in name order cheaply.
        entries.sort(key=lambda e: e.name, reverse=True)
        return entries

    def _overlay_entries(
        self, root: str, overlay: Mapping[str, Path], taken: set[str]
    ) -> list[_Entry]:
        """Check the overlay before anything is imported: a bad entry must not leave a
        half-added folder behind it. A name with "/" lands in folders made of overlay entries
        only; their top-level name must not be a real entry either."""
        tree: dict[str, Any] = {}
        for name, source in overlay.items():
            parts = name.split("/")
            if any(not p or p in (".", "..") or "\0" in p for p in parts):
                raise ImporterError(f"overlay name {name!r} is not a relative file path")
            if any(p.startswith(".") for p in parts) and not self.hidden:
                raise ImporterError(f"overlay name {name!r} is hidden and would be skipped")
            if parts[0] in taken:
                raise ImporterError(f"overlay name {name!r} collides with {root}/{parts[0]}")
            mode = os.stat(source).st_mode
            if stat.S_ISDIR(mode):
                self._check_folder(name, os.fspath(source), self._keeps_hidden(False, parts[-1]))
            elif not stat.S_ISREG(mode):
                raise ImporterError(f"overlay {name!r}: {source} is not a regular file or folder")
            node = tree
            for part in parts[:-1]:
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    raise ImporterError(f"overlay name {name!r} needs {part!r} as a folder")
            if parts[-1] in node:
                raise ImporterError(f"overlay name {name!r} is given twice")
            node[parts[-1]] = (os.fspath(source), stat.S_ISDIR(mode))
        return self._overlay_tree(root, tree)

    def _check_folder(self, name: str, folder: str, hidden: bool) -> None:
        """An overlay folder holds regular files and folders only: a symlink in it is refused
        (it would be stored as a link to something outside the published tree)."""
        stack = [(folder, hidden)]
        while stack:
            path, keep = stack.pop()
            with os.scandir(path) as it:
                for e in it:
                    if e.name.startswith(".") and not keep:
                        continue
                    if e.is_dir(follow_symlinks=False):
                        stack.append((e.path, self._keeps_hidden(keep, e.name)))
                    elif not e.is_file(follow_symlinks=False):
                        raise ImporterError(
                            f"overlay {name!r}: {e.path} is not a regular file or folder"
                        )

    def _overlay_tree(self, path: str, tree: dict[str, Any]) -> list[_Entry]:
        return [
            _OverlayDir(name, f"{path}/{name}", self._overlay_tree(f"{path}/{name}", sub))
            if isinstance(sub, dict)
            else _OverlayEntry(name, *sub)
            for name, sub in tree.items()
        ]

    @staticmethod
    def _name_bytes(entry_path: str, name: str) -> bytes:
        try:
            return name.encode("utf-8")
        except UnicodeEncodeError:
            raise ImporterError(f"file name is not valid UTF-8: {entry_path!r}") from None

    def _tree(self, root: str, overlay: Mapping[str, Path] | None = None) -> ImportResult:
        # An explicit stack instead of recursion: nesting depth is bounded only by PATH_MAX.
        keep = self._keeps_hidden(False, os.path.basename(root.rstrip("/")))
        stack = [_Dir(root, "", "", self._entries(root, keep, overlay), [], keep)]
        on_entry = self.on_entry
        while True:
            top = stack[-1]
            if top.pending:
                entry = top.pending.pop()
                name_bytes = self._name_bytes(entry.path, entry.name)
                rel = f"{top.rel}/{entry.name}" if top.rel else entry.name
                keep = self._keeps_hidden(top.hidden, entry.name)
                if isinstance(entry, _OverlayDir):
                    stack.append(_Dir(entry.path, entry.name, rel, entry.entries, [], keep))
                    continue
                if entry.is_dir(follow_symlinks=False):
                    pending = self._entries(entry.path, keep)
                    stack.append(_Dir(entry.path, entry.name, rel, pending, [], keep))
                    continue
                mode = entry.stat(follow_symlinks=False).st_mode
                res = self._leaf_entry(entry.path, mode)
                if on_entry is not None:
                    on_entry(rel, res)
                top.links.append((name_bytes, entry.name, res.cid, res.size))
                top.filesize += res.filesize
                top.blocks += res.blocks
                continue
            stack.pop()
            cid, tsize, blocks = self._directory(top.links)
            result = ImportResult(cid, tsize, top.filesize, top.blocks + blocks)
            if on_entry is not None:
                on_entry(top.rel, result)
            if not stack:
                return result
            parent = stack[-1]
            parent.links.append((top.name.encode("utf-8"), top.name, cid, tsize))
            parent.filesize += result.filesize
            parent.blocks += result.blocks

    def add_path(
        self, path: str | os.PathLike[str], *, overlay: Mapping[str, Path] | None = None
    ) -> ImportResult:
        """Import a file, a symlink (as a Symlink node) or a folder tree (``ipfs add -r``).

        The path itself is always imported, even if its name is hidden; inside a folder,
        names starting with "." are skipped unless ``hidden=True`` (kubo ``--hidden``).

        ``overlay`` ({name: file or folder}) adds extra entries to a folder as if they were in
        it (same CIDs as a real folder holding them), so generated files (key images, movies,
        pyramids) need not be written into a lab's data folders. A name is a "/"-separated
        relative path (no "..", no empty parts); its first part must not collide with a real
        entry. Each value must be a regular file or a folder (a symlink to one is followed); a
        folder is imported as a tree under the same name rules as a real one and must hold
        only regular files and folders (a symlink in it is refused before anything is added).
        """
        path = os.fspath(path)
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            raise FileNotFoundError(2, "no such file or folder", path) from None
        if stat.S_ISDIR(mode):
            return self._tree(path, overlay)
        if overlay:
            raise ImporterError(f"cannot overlay files on {path!r}: not a folder")
        result = self._leaf_entry(path, mode)
        if self.on_entry is not None:
            self.on_entry("", result)
        return result


def add_path(
    path: str | os.PathLike[str],
    profile: str | Profile = DEFAULT_PROFILE,
    sink: BlockSink | None = None,
    **kw: object,
) -> ImportResult:
    """Import ``path`` with a fresh ``Importer`` (keywords as ``Importer``)."""
    return Importer(profile, sink, **kw).add_path(path)  # type: ignore[arg-type]
