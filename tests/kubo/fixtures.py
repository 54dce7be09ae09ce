"""pytest fixtures for real kubo daemons (imported by ``tests/conftest.py``).

* ``kubo_bin``: the built ``ipfs`` binary (tests/kubo/build.py); skips where Go or the module
  proxy is missing, fails instead under ``ETDB_REQUIRE_EXTERNAL=1`` (CI).
* ``kubo_factory``: a function starting daemons (``kubo_factory(config={...})``), all stopped
  when the test module ends.
* ``kubo``: one daemon per test module; ``kubo_pair``: two daemons connected to each other,
  per test module. Content added by one test stays for the module's later tests.

Tests using them carry the ``kubo`` marker (``pytest -m kubo`` runs them alone).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import skip_or_fail
from tests.content.references import ReferenceUnavailable
from tests.kubo.build import install
from tests.kubo.daemon import KuboDaemon

KuboFactory = Callable[..., KuboDaemon]


@pytest.fixture(scope="session")
def kubo_bin() -> Path:
    try:
        return install()
    except ReferenceUnavailable as exc:
        skip_or_fail(f"kubo cannot be built here: {exc}")
        raise  # not reached: skip_or_fail raises


@pytest.fixture(scope="module")
def kubo_factory(kubo_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KuboFactory]:
    started: list[KuboDaemon] = []

    def start(config: dict[str, object] | None = None) -> KuboDaemon:
        repo = tmp_path_factory.mktemp("kubo-repo")
        daemon = KuboDaemon.start(kubo_bin, repo, config=config)
        started.append(daemon)
        return daemon

    try:
        yield start
    finally:
        for daemon in started:
            daemon.stop()


@pytest.fixture(scope="module")
def kubo(kubo_factory: KuboFactory) -> KuboDaemon:
    return kubo_factory()


@pytest.fixture(scope="module")
def kubo_pair(kubo_factory: KuboFactory) -> tuple[KuboDaemon, KuboDaemon]:
    first, second = kubo_factory(), kubo_factory()
    second.connect(first)
    return first, second
