"""Errors raised while building, parsing, signing or verifying OIP records.

Every decoder in :mod:`etdb.record` raises only :class:`RecordError` subclasses, so callers
(indexer, CLI) can treat any malformed ledger data with one ``except RecordError``.
"""

from __future__ import annotations


class RecordError(ValueError):
    """A record (or one of its parts: signature, address, envelope) is invalid."""


class WireFormatError(RecordError):
    """floData or JSON that cannot be decoded (bad prefix, bad JSON, unknown envelope)."""


class ValidationError(RecordError):
    """A record decodes but breaks the Research-Tomogram schema.

    ``fields`` names the offending fields as dotted paths, e.g. ``details.speciesName`` or
    ``storage.files[2].fname``.
    """

    def __init__(self, message: str, fields: tuple[str, ...] | list[str] = ()) -> None:
        super().__init__(message)
        self.fields: tuple[str, ...] = tuple(fields)

    @property
    def field(self) -> str | None:
        """The first offending field, if any."""
        return self.fields[0] if self.fields else None


class PatchError(RecordError):
    """An edit patch (RFC 6902 or OIP "squashed") is malformed or does not apply."""


class MultipartError(RecordError):
    """An ``oip-mp(...)`` part is malformed, badly signed, or parts cannot be joined."""
