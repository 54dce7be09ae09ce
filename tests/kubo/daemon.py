"""A real kubo daemon for tests: its own repo, loopback only, no bootstrap peers, no mDNS.

``KuboDaemon.start`` initialises a repo with kubo's ``test`` profile (API, gateway and swarm on
127.0.0.1 with ports the kernel picks, empty bootstrap list, mDNS and AutoTLS off, LAN DHT over
loopback), runs ``ipfs daemon`` with its output in ``daemon.log`` in the repo, and waits for
"Daemon is ready", reading the RPC and gateway addresses from the same log. ``cli`` runs the
``ipfs`` command against it (kubo's CLI finds the running daemon through the repo's ``api``
file); ``connect`` dials another daemon, after which bitswap moves blocks between them.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

START_TIMEOUT = 90.0
CLI_TIMEOUT = 300.0
_LISTEN = re.compile(r"^(RPC API|Gateway) server listening on /ip4/127\.0\.0\.1/tcp/(\d+)", re.M)


class KuboError(RuntimeError):
    """The kubo daemon did not start, or an ``ipfs`` command failed (stderr attached)."""


@dataclass
class KuboDaemon:
    binary: Path
    repo: Path
    process: subprocess.Popen[bytes] | None = None
    api_port: int = 0
    gateway_port: int = 0
    peer_id: str = ""
    _log: Path = field(init=False)

    def __post_init__(self) -> None:
        self._log = self.repo / "daemon.log"

    @property
    def api_url(self) -> str:
        """The RPC API's base URL (``.../api/v0/...`` below it), as ``ipfs-api`` takes it."""
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def gateway_url(self) -> str:
        """The gateway's base URL: path gateway and trustless gateway (``/ipfs/<cid>``)."""
        return f"http://127.0.0.1:{self.gateway_port}"

    @classmethod
    def start(
        cls, binary: Path, repo: Path, *, config: dict[str, object] | None = None
    ) -> KuboDaemon:
        """Initialise ``repo`` and start a daemon on it; ``config``: extra ``ipfs config --json``
        settings (key -> JSON value) applied before the daemon starts."""
        daemon = cls(binary, repo)
        repo.mkdir(parents=True, exist_ok=True)
        daemon.cli("init", "--profile=test", "--empty-repo")
        for key, value in (config or {}).items():
            daemon.cli("config", "--json", key, json.dumps(value))
        daemon.restart()
        return daemon

    def restart(self) -> None:
        """Run ``ipfs daemon`` on this repo (again, after ``stop`` or a kill: same peer ID and
        blocks, new ports), and wait until it is ready."""
        self.stop()
        with open(self._log, "wb") as log:
            self.process = subprocess.Popen(
                [str(self.binary), "daemon", "--enable-gc=false"],
                env=self._env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_ready()
            self.peer_id = json.loads(self.cli("id").stdout)["ID"]
        except BaseException:
            self.stop()
            raise

    def _env(self) -> dict[str, str]:
        # No telemetry plugin phoning home, no colour codes in the log we parse.
        return {**os.environ, "IPFS_PATH": str(self.repo), "IPFS_TELEMETRY": "off", "TERM": "dumb"}

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        assert self.process is not None
        while time.monotonic() < deadline:
            text = self._log.read_text(errors="replace")
            if self.process.poll() is not None:
                raise KuboError(f"ipfs daemon exited {self.process.returncode}: {text[-1500:]}")
            if "Daemon is ready" in text:
                ports = {kind: int(port) for kind, port in _LISTEN.findall(text)}
                if "RPC API" not in ports or "Gateway" not in ports:
                    raise KuboError(f"ipfs daemon: no loopback API/gateway address in {text!r}")
                self.api_port, self.gateway_port = ports["RPC API"], ports["Gateway"]
                return
            time.sleep(0.1)
        raise KuboError(
            f"ipfs daemon not ready after {START_TIMEOUT}s: {self._log.read_text()[-1500:]}"
        )

    def cli(
        self, *args: str, input: bytes | None = None, timeout: float = CLI_TIMEOUT
    ) -> subprocess.CompletedProcess[bytes]:
        """Run ``ipfs ARGS`` on this repo (through the daemon when it runs); KuboError if it fails."""
        proc = subprocess.run(
            [str(self.binary), *args],
            env=self._env(),
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip()[-1500:]
            raise KuboError(f"ipfs {' '.join(args[:3])} exited {proc.returncode}: {err}")
        return proc

    def swarm_address(self) -> str:
        """This daemon's loopback TCP address, ``/ip4/127.0.0.1/tcp/N/p2p/<id>``."""
        for addr in json.loads(self.cli("id").stdout)["Addresses"] or []:
            if addr.startswith("/ip4/127.0.0.1/tcp/") and "/p2p/" in addr:
                return addr
        raise KuboError("kubo daemon has no loopback TCP swarm address")

    def connect(self, other: KuboDaemon) -> None:
        """Dial ``other`` (bitswap then exchanges blocks between the two)."""
        self.cli("swarm", "connect", other.swarm_address())

    def stop(self) -> None:
        """Shut the daemon down (SIGTERM, then SIGKILL after 20 s); the repo stays for inspection."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)
        except ProcessLookupError:
            pass
