"""The one error this package raises."""

from __future__ import annotations

from pathlib import Path

__all__ = ["MrcMetaError"]


class MrcMetaError(ValueError):
    """A file (MRC or sidecar) whose metadata cannot be read; the message names the file and,
    for text sidecars, the line."""

    def __init__(self, path: Path | str, message: str) -> None:
        self.path = Path(path)
        self.reason = message
        super().__init__(f"{self.path}: {message}")
