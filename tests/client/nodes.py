"""Real etdb nodes for client tests: data folders made by `etdb demo`, `etdb serve` processes
on free loopback ports, and `etdb` commands run as subprocesses in a node's data folder."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ETDB = (sys.executable, "-c", "from etdb.cli import main; main()")
START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETDB_")}
    env["ETDB_HOME"] = str(home)
    return env


def run_etdb(home: Path, *args: str, timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
    """Run ``etdb ARGS`` with ``home`` as its data folder; never raises on a non-zero exit."""
    return subprocess.run(
        [*ETDB, *args],
        env=node_env(home),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def make_demo_home(home: Path, datasets: int = 2) -> dict[str, Any]:
    """A data folder holding ``datasets`` published, indexed demo datasets; returns the
    `etdb demo --json` report (records with their sid, cid, record id, files)."""
    home.mkdir(parents=True, exist_ok=True)
    done = run_etdb(home, "demo", "--no-serve", "--datasets", str(datasets), "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def copy_home(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest)
    return dest


@dataclass
class Node:
    """One `etdb serve --no-index` process over ``home``."""

    home: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Node:
        log = open(self.home / "serve.log", "ab")  # noqa: SIM115 - the process owns it
        self.proc = subprocess.Popen(
            [*ETDB, "serve", "--no-index", "--port", str(self.port)],
            env=node_env(self.home),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"etdb serve exited: {(self.home / 'serve.log').read_text()}")
            try:
                if httpx.get(f"{self.url}/api/v1/status", timeout=2.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"etdb serve on {self.url} did not answer in {START_TIMEOUT} s")

    def kill(self) -> None:
        """SIGKILL: the node vanishes mid-transfer, as a crashed or unplugged server does."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
