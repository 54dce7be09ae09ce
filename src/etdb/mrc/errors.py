"""The one error this package raises: a file (MRC or sidecar) that cannot be read or shown."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["MrcError"]


class MrcError(ValueError):
    """A file whose header, extended header, data or sidecar cannot be read (or shown); the
    message starts with the file's path or name and, for text sidecars, names the line."""

    def __init__(self, where: str | os.PathLike[str], reason: str) -> None:
        self.path = Path(where)
        self.name = str(where)
        self.reason = reason
        super().__init__(f"{where}: {reason}")
