"""Byte counts for people: the one rule the portal and the command line both print sizes by.

Decimal (SI) units, 1 kB = 1000 B, one decimal place: ``1536`` -> ``"1.5 KB"``. Decimal
because the paper and the original ETDB portal speak of "1-5 GB" datasets, file managers
(GNOME, macOS) count that way, and a size setting (``config.SIZE_UNITS``) reads ``KB``, ``MB``,
``GB`` as these same multiples, so a size copied from a page or a command means the same bytes.
Imports nothing of ours: every layer may use it.
"""

from __future__ import annotations

__all__ = ["BYTE_UNITS", "human_bytes"]

#: Units from bytes up, each 1000 times the one before.
BYTE_UNITS = ("B", "KB", "MB", "GB", "TB", "PB")


def human_bytes(n: int | float | None) -> str:
    """``1536`` -> ``"1.5 KB"``, ``999`` -> ``"999 B"``; None (size unknown) -> ``""``."""
    if n is None:
        return ""
    value = float(n)
    for unit in BYTE_UNITS[:-1]:
        if unit == "B" and abs(value) < 1000:
            return f"{int(value)} B"
        if round(abs(value), 1) < 1000:  # 999.96 KB would print as "1000.0 KB": one unit up
            return f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} {BYTE_UNITS[-1]}"
