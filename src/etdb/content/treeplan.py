"""A UnixFS folder's download plan: every file under it, its safe relative path and its CID.

``plan_tree`` walks a folder (plain or HAMT-sharded) through any ``BlockGetter`` (the
downloader's verifying ``BlockFetcher``) and lists the files a download writes, so a record's
folder entry (an OME-Zarr pyramid: thousands of small chunk files) is fetched as a set of files
(``etdb.client.folder``), each verified as ``filefetch`` verifies one.

A DAG is hostile input: entry names are checked as ``etdb get`` checks them
(:func:`etdb.content.export_tree.safe_links`), a name listed twice in one folder is refused, a
tree holds at most ``MAX_TREE_FILES`` files and folders and nests at most ``MAX_DEPTH`` levels,
and a symlink is refused (a download writes files and folders; ``etdb get`` exports links).
Raw children are listed without a fetch (their link's Tsize is the size they claim, used for
progress only: the block itself is verified when it arrives); each folder's dag-pb children
are fetched together (``get_many``) to learn what they are.
"""

from __future__ import annotations

from dataclasses import dataclass

from etdb.content.blockstore import BlockGetter
from etdb.content.cid import CID, RAW
from etdb.content.errors import InvalidNodeError, NotADirError, UnsafeExportError
from etdb.content.export_tree import safe_links
from etdb.content.exporter import MAX_DEPTH, Kind, Node, resolve_node
from etdb.content.fileplan import load_nodes

__all__ = ["MAX_TREE_FILES", "TreeFile", "TreePlan", "plan_tree"]

#: Files and folders one folder plan lists at most: a 4 GB volume's pyramid in 64^3 chunks has
#: about 20,000; a DAG naming more than this is refused before memory fills.
MAX_TREE_FILES = 1 << 20


@dataclass(frozen=True, slots=True)
class TreeFile:
    """A file of the tree: ``path`` relative to the folder (POSIX, checked names), its CID,
    whether it is one raw block, and the size its DAG declares."""

    path: str
    cid: CID
    size: int

    @property
    def raw(self) -> bool:
        return self.cid.codec == RAW


@dataclass(frozen=True)
class TreePlan:
    """The folder's CID, its files in walk order and its sub-folders (parents first)."""

    cid: CID
    files: tuple[TreeFile, ...]
    folders: tuple[str, ...]

    @property
    def size(self) -> int:
        """The files' declared bytes (a raw link's Tsize, a dag-pb root's filesize)."""
        return sum(f.size for f in self.files)


def plan_tree(getter: BlockGetter, path: str | CID) -> TreePlan:
    """List the files under the folder at ``CID[/path]`` (see the module docstring)."""
    root = resolve_node(getter, path)
    if root.kind != Kind.DIRECTORY:
        raise NotADirError(f"{path} is a {root.kind}, not a folder")
    files: list[TreeFile] = []
    folders: list[str] = []
    stack: list[tuple[Node, str, int]] = [(root, "", 0)]
    while stack:
        directory, prefix, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InvalidNodeError(root.cid, f"folders nested deeper than {MAX_DEPTH}")
        links: dict[CID, list[str]] = {}
        for n, (name, link) in enumerate(safe_links(getter, directory), 1):
            if len(files) + len(folders) + n > MAX_TREE_FILES:
                raise InvalidNodeError(root.cid, f"more than {MAX_TREE_FILES} entries")
            if link.cid.codec == RAW:
                files.append(TreeFile(prefix + name, link.cid, max(link.tsize or 0, 0)))
            else:
                links.setdefault(link.cid, []).append(prefix + name)
        for child in load_nodes(getter, list(links)):
            for where in links[child.cid]:
                if child.kind == Kind.DIRECTORY:
                    folders.append(where)
                    stack.append((child, where + "/", depth + 1))
                elif child.is_file:
                    files.append(TreeFile(where, child.cid, child.size or 0))
                else:
                    raise UnsafeExportError(
                        f"{root.cid}/{where} is a {child.kind}: a download writes files and "
                        "folders only (etdb get exports links)"
                    )
    folders.sort(key=lambda f: f.count("/"))
    return TreePlan(root.cid, tuple(files), tuple(folders))
