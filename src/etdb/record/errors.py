"""Errors raised while building, parsing, signing or verifying OIP records."""

from __future__ import annotations


class RecordError(ValueError):
    """A record (or one of its parts: signature, address, envelope) is invalid."""
