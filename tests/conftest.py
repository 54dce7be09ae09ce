"""Shared test fixtures.

External components (the shared conformance data, kubo, the JS importer, database servers...)
are optional on a laptop: tests that need them skip with a clear reason. CI sets
``ETDB_REQUIRE_EXTERNAL=1`` (see ``.ci/run``), which turns every such skip into a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def require_external() -> bool:
    return os.environ.get("ETDB_REQUIRE_EXTERNAL", "") not in ("", "0", "false", "no")


def skip_or_fail(reason: str) -> None:
    """Skip (laptop) or fail (CI) because an external component is missing."""
    if require_external():
        pytest.fail(f"required external component missing (ETDB_REQUIRE_EXTERNAL=1): {reason}")
    pytest.skip(reason)


def shared_dir() -> Path | None:
    """The project's read-only ../shared folder (paper, conformance data), if present."""
    env = os.environ.get("ETDB_SHARED")
    candidates = [Path(env)] if env else []
    candidates.append(REPO_ROOT.parent / "shared")
    for c in candidates:
        if (c / "conformance").is_dir():
            return c
    return None


#: The historical ETDB records the tests use, kept in the repo (public ledger data).
TEST_CONFORMANCE = REPO_ROOT / "tests" / "data" / "conformance"


@pytest.fixture
def conformance_dir() -> Path:
    """The real historical records: the repo's copy (``tests/data``), which a test run checks
    against ``../shared/conformance`` where that is present, so the two cannot drift apart."""
    shared = shared_dir()
    if shared is not None:
        for original in sorted((shared / "conformance").rglob("*.json")):
            copy = TEST_CONFORMANCE / original.relative_to(shared / "conformance")
            if copy.exists() and copy.read_bytes() != original.read_bytes():
                pytest.fail(f"{copy} differs from {original}: copy the shared one again")
    return TEST_CONFORMANCE


@pytest.fixture
def etdb_home(tmp_path, monkeypatch) -> Path:
    """A fresh, empty ETDB_HOME for tests that touch settings, keys or the blockstore."""
    home = tmp_path / "etdb-home"
    home.mkdir()
    monkeypatch.setenv("ETDB_HOME", str(home))
    for name in list(os.environ):
        if name.startswith("ETDB_") and name not in (
            "ETDB_HOME",
            "ETDB_REQUIRE_EXTERNAL",
            "ETDB_SHARED",
            "ETDB_REFERENCE_CACHE",
        ):
            monkeypatch.delenv(name, raising=False)
    return home


# Real kubo daemons (tests/kubo/fixtures.py), for every test package.
from tests.kubo.fixtures import kubo, kubo_bin, kubo_factory, kubo_pair  # noqa: E402, F401
