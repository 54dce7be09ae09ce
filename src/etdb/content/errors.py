"""Typed errors of the content layer (blockstore, exporter, CAR).

Everything derives from ``ContentError`` so a command can turn any of them into a one-line
message with ``errors_as_exit(ContentError)``. Messages always name the CID (and the path or
offset where one exists): a user hit by corruption must be able to find the bad block.
"""

from __future__ import annotations

from pathlib import Path

from etdb.content.cid import CID


class ContentError(Exception):
    """Base class of every error raised while storing or reading content."""


class BlockNotFoundError(ContentError):
    """The block is not in the store."""

    def __init__(self, cid: CID, detail: str = "") -> None:
        self.cid = cid
        super().__init__(f"block {cid} not found" + (f" ({detail})" if detail else ""))


class CorruptBlockError(ContentError):
    """A stored block no longer hashes to its CID (bit rot, a truncated write, tampering)."""

    def __init__(self, cid: CID, path: Path | str | None = None) -> None:
        self.cid = cid
        self.path = path
        where = f" at {path}" if path is not None else ""
        super().__init__(f"corrupt block {cid}{where}: its content does not match its hash")


class BlockMismatchError(ContentError):
    """Someone asked to store bytes under a CID they do not hash to."""

    def __init__(self, cid: CID) -> None:
        self.cid = cid
        super().__init__(f"refusing to store block: its bytes do not hash to {cid}")


class InvalidNodeError(ContentError):
    """A block decodes, but not as the UnixFS node its place in the DAG requires."""

    def __init__(self, cid: CID, reason: str) -> None:
        self.cid = cid
        super().__init__(f"invalid UnixFS node {cid}: {reason}")


class PathNotFoundError(ContentError):
    """A ``CID/path`` names an entry that does not exist."""


class InvalidPathError(ContentError):
    """A ``CID/path`` string is malformed (bad CID, ``..`` segment, ...)."""


class NotAFileError(ContentError):
    """File bytes were asked of a directory (or of a symlink)."""


class NotADirError(ContentError):
    """A directory listing was asked of something that is not a directory."""


class UnsafeExportError(ContentError):
    """Writing a DAG to disk would escape the destination or clobber existing data."""


class CARError(ContentError):
    """A CAR stream is malformed, truncated, too large, or holds a block that fails its hash."""
