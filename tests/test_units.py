"""`etdb.units.human_bytes`: the one way a size is printed, by the portal and by the commands."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import etdb
from etdb.units import human_bytes
from etdb.web.render import env

SRC = Path(etdb.__file__).parent


@pytest.mark.parametrize(
    "n, text",
    [
        (None, ""),
        (0, "0 B"),
        (999, "999 B"),
        (1000, "1.0 KB"),
        (1536, "1.5 KB"),
        (1_300_000, "1.3 MB"),
        (3_200_000_000, "3.2 GB"),
        (999_949_999, "999.9 MB"),
        (999_950_000, "1.0 GB"),  # never "1000.0 MB"
        (5 * 10**12, "5.0 TB"),
        (7 * 10**18, "7000.0 PB"),  # no unit above PB: the number grows
    ],
)
def test_sizes_are_decimal_with_one_place(n, text):
    assert human_bytes(n) == text


def test_the_portal_prints_sizes_with_it():
    assert env.filters["bytes"] is human_bytes


def test_no_other_size_formatter_in_the_source():
    """A module dividing by 1024 or 1000 in a loop over unit names is a second rule: there is
    none outside units.py (config.py parses sizes, which is not formatting)."""
    offenders = []
    for path in SRC.rglob("*.py"):
        if path.name == "units.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Tuple) and {"KB", "MB"} <= _strings(node):
                offenders.append(str(path.relative_to(SRC)))
            if isinstance(node, ast.Tuple) and {"KiB", "MiB"} <= _strings(node):
                offenders.append(str(path.relative_to(SRC)))
            if isinstance(node, ast.ImportFrom) and node.module == "rich.filesize":
                offenders.append(str(path.relative_to(SRC)))  # "kB", its own rounding
    assert offenders == []


def _strings(node: ast.Tuple) -> set[str]:
    return {e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
