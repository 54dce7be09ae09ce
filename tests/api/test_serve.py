"""`etdb serve` end to end: a real process on a loopback port, a real local ledger with signed
records, the indexer catching up (and following new blocks), then SIGTERM -> exit 0."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from etdb.ledger.local import open_local
from etdb.record import Artifact, PrivateKey, encode_publish, sign_artifact
from tests.index.records import file_set, make_artifact

KEY = PrivateKey(bytes(31) + b"\x07")
SPECIES = ("Caulobacter crescentus", "Vibrio cholerae", "Treponema primitia")
TIMEOUT = 30.0
ETDB = (sys.executable, "-c", "from etdb.cli import main; main()")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def publish(ledger_path: Path, species: str, n: int) -> str:
    art = make_artifact(
        publisher=None,
        species=species,
        title=f"{species} {n}",
        sid=f"sv2020-01-0{n}-1",
        timestamp=1_600_000_000 + n,
        files=file_set("tiltSeries", "thumbnail", stem=f"sv2020-01-0{n}-1"),
    )
    signed = sign_artifact(Artifact.from_wire(art), KEY)
    with open_local(f"local://{ledger_path}") as ledger:
        return ledger.publish(encode_publish(signed)).txid


def wait_for(predicate: Any, what: str) -> Any:
    deadline = time.monotonic() + TIMEOUT
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except httpx.TransportError as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


@pytest.fixture(params=[1, 2], ids=["1 worker", "2 workers"])
def server(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], str, Path, list[str]]]:
    home, ledger_path = tmp_path / "home", tmp_path / "ledger.sqlite3"
    home.mkdir()
    txids = [publish(ledger_path, species, n) for n, species in enumerate(SPECIES)]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETDB_") or k == "ETDB_SHARED"}
    env["ETDB_HOME"] = str(home)
    proc = subprocess.Popen(
        [
            *ETDB,
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--ledger",
            f"local://{ledger_path}",
            "--catalog",
            f"sqlite:///{tmp_path / 'catalog.sqlite3'}",
            "--workers",
            str(request.param),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        yield proc, f"http://127.0.0.1:{port}", ledger_path, txids
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_indexes_serves_and_stops_on_sigterm(server) -> None:  # type: ignore[no-untyped-def]
    proc, base, ledger_path, txids = server
    with httpx.Client(base_url=base, timeout=5) as http:

        def indexed(n: int) -> dict[str, Any] | None:
            if proc.poll() is not None:
                raise AssertionError(f"etdb serve exited: {proc.stdout.read().decode()}")
            body = http.get("/api/v1/status").json()
            return body if body["records"] == n else None

        status = wait_for(lambda: indexed(3), "the three records to be indexed")
        assert status["indexer"] == "running" and status["lag"] == 0
        assert status["ledger_tip"] == status["indexed_height"] == 2

        hits = http.get("/api/v1/records", params={"q": "vibrio"}).json()["items"]
        assert [h["id"] for h in hits] == [txids[1]]
        record = http.get(f"/api/v1/records/{txids[0][:8]}").json()
        assert record["summary"]["species"] == "Caulobacter crescentus"
        assert record["provenance"]["signature_valid"] is True
        assert record["provenance"]["publisher"] == KEY.address

        # a block published while serving is picked up by the background indexer
        new = publish(ledger_path, "Bdellovibrio bacteriovorus", 7)
        wait_for(lambda: indexed(4), "the new record to be indexed")
        assert http.get(f"/api/v1/records/{new}").status_code == 200

    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    assert time.monotonic() - started < 10
    output = proc.stdout.read().decode()
    assert "indexing and serving on http://127.0.0.1:" in output


def test_serve_bad_port_and_catalog(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETDB_")}
    env["ETDB_HOME"] = str(tmp_path)
    bad = subprocess.run(
        [*ETDB, "serve", "--port", "70000"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "out of range" in bad.stderr
    wrong = subprocess.run(
        [*ETDB, "serve", "--no-index", "--catalog", "mysql://u:secret@db/x"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert wrong.returncode == 2 and "unsupported database" in wrong.stderr
    assert "Traceback" not in wrong.stderr and "secret" not in wrong.stderr


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_function_ready_and_stop(tmp_path: Path, workers: int) -> None:
    """What the demo calls: serve() in a thread, `ready` once listening, `stop` to end it."""
    from etdb.api import serve
    from etdb.config import Settings

    ledger_path = tmp_path / "ledger.sqlite3"
    publish(ledger_path, SPECIES[0], 1)
    settings = Settings(home=tmp_path, ledger=f"local://{ledger_path}")
    ready, stop = threading.Event(), threading.Event()
    port = free_port()
    thread = threading.Thread(
        target=serve,
        args=(settings,),
        kwargs=dict(host="127.0.0.1", port=port, ready=ready, stop=stop, workers=workers),
        daemon=True,
    )
    thread.start()
    assert ready.wait(TIMEOUT)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
        wait_for(lambda: http.get("/api/v1/status").json()["records"] == 1, "indexing")
    stop.set()
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/api/v1/status", timeout=2)


def test_indexer_failure_shows_in_state_and_is_retried(tmp_path: Path) -> None:
    """A catalog built from another ledger: the indexer fails, says so, and keeps retrying
    with growing waits instead of ending its thread."""
    from etdb.api.server import IndexerThread
    from etdb.config import Settings
    from etdb.index.catalog import open_catalog

    first, second = tmp_path / "a.sqlite3", tmp_path / "b.sqlite3"
    publish(first, SPECIES[0], 1)
    publish(second, SPECIES[1], 2)
    catalog_url = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    settings = Settings(home=tmp_path)
    catalog = open_catalog(catalog_url)  # created first, as serve() does
    indexer = IndexerThread(settings, catalog_url, f"local://{first}", poll=0.1)
    indexer.start()
    wait_for(lambda: catalog.summary().records == 1, "the first ledger to be indexed")
    catalog.close()
    indexer.stop()
    assert indexer.state == "stopped"

    other = IndexerThread(
        settings, catalog_url, f"local://{second}", poll=0.1, backoff_start=0.01, backoff_cap=0.04
    )
    other.start()
    wait_for(lambda: other.current.failures >= 4, "four failures in a row")
    assert other.is_alive() and other.state == "failed"
    assert other.current.error.startswith("LedgerMismatch: this catalog was built from")
    assert other.current.next_retry is not None
    other.stop()
    assert not other.is_alive() and other.state == "stopped"


def test_backoff_doubles_up_to_the_cap() -> None:
    from etdb.api.background import backoff

    assert [backoff(n, 1.0, 60.0) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff(10**6, 1.0, 60.0) == 60  # no overflow however long it fails
