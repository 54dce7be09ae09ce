"""Real EVM nodes from npm for the EVM ledger tests and ``bench/ledger.py``.

Engines, installed once into ``$ETDB_REFERENCE_CACHE/evm-node/<engine>`` (default cache
``~/.cache/etdb-test-references``) under a file lock, then started on 127.0.0.1 on a free port
with deterministic, unlocked, funded accounts and automining (each transaction its own block):

* ``ganache`` 7.9.2 (default): keeps its chain in a LevelDB folder, so :meth:`EvmNode.stop` /
  :meth:`EvmNode.start` is a real restart that keeps every block (the node-down test resumes
  from a cursor). Shanghai rules.
* ``hardhat`` 2.29.1 (EDR): Prague rules, EIP-7623's calldata floor included, so gas figures
  match today's mainnet. In memory only: a restart starts a new chain.

Reorganisations: :meth:`EvmNode.checkpoint` takes an ``evm_snapshot`` at the current height;
:meth:`EvmNode.fork` reverts to the checkpoint ``depth`` blocks below the tip and mines
``depth + 1`` empty blocks: same heights, other hashes, a longer chain — a real reorg as a
reader sees it. ``python -m tests.ledger.evm_node --install`` pre-installs both engines.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode


@dataclass(frozen=True)
class Engine:
    name: str
    package: str
    script: str  # the node CLI entry, relative to the install folder
    persistent: bool  # does a restart keep the chain?
    chain_id: int


ENGINES = {
    "ganache": Engine(
        "ganache", "ganache@7.9.2", "node_modules/ganache/dist/node/cli.js", True, 1337
    ),
    "hardhat": Engine(
        "hardhat", "hardhat@2.29.1", "node_modules/hardhat/internal/cli/cli.js", False, 31337
    ),
}
INSTALL_TIMEOUT = 900
START_TIMEOUT = 60.0
HARDHAT_CONFIG = "module.exports = { networks: { hardhat: { chainId: 31337 } } };\n"


class NodeUnavailable(RuntimeError):
    """An EVM node cannot be installed or started here."""


def cache_dir() -> Path:
    env = os.environ.get("ETDB_REFERENCE_CACHE")
    path = Path(env) if env else Path.home() / ".cache" / "etdb-test-references"
    path = path / "evm-node"
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def install(engine: str = "ganache") -> Path:
    """The folder holding ``engine`` installed from npm (installing it the first time)."""
    spec = ENGINES[engine]
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise NodeUnavailable("node and npm are needed to run an EVM node (apt-get install npm)")
    folder = cache_dir() / engine
    folder.mkdir(exist_ok=True)
    stamp = folder / "installed"
    with _locked(folder / "install.lock"):
        if stamp.exists() and stamp.read_text() == spec.package and (folder / spec.script).exists():
            return folder
        stamp.unlink(missing_ok=True)
        (folder / "package.json").write_text(
            json.dumps({"name": f"etdb-{engine}", "private": True})
        )
        if engine == "hardhat":
            (folder / "hardhat.config.js").write_text(HARDHAT_CONFIG)
        cmd = ["npm", "install", "--no-audit", "--no-fund", "--no-save", "--silent", spec.package]
        try:
            proc = subprocess.run(
                cmd, cwd=folder, capture_output=True, timeout=INSTALL_TIMEOUT, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise NodeUnavailable(f"npm install {spec.package} timed out") from exc
        if proc.returncode != 0 or not (folder / spec.script).exists():
            tail = (proc.stderr or proc.stdout).decode(errors="replace").strip()[-800:]
            raise NodeUnavailable(f"npm install {spec.package} failed ({proc.returncode}): {tail}")
        stamp.write_text(spec.package)
    return folder


@functools.cache
def _prepared(engine: str) -> Path | NodeUnavailable:
    try:
        return install(engine)
    except (NodeUnavailable, OSError) as exc:
        return exc if isinstance(exc, NodeUnavailable) else NodeUnavailable(f"{engine}: {exc}")


def evm_node_available(engine: str = "ganache") -> str | None:
    """None when ``engine`` can be started here; otherwise the reason it cannot."""
    got = _prepared(engine)
    return str(got) if isinstance(got, NodeUnavailable) else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class EvmNode:
    """One running node. ``url`` is plain ``http://``; :meth:`ledger_url` builds etdb's."""

    engine: Engine
    folder: Path  # the npm install
    data_dir: Path  # chain database (ganache) and the node's log
    port: int
    process: subprocess.Popen[bytes] | None = None
    _checkpoints: dict[int, str] = field(default_factory=dict)
    _w3: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def chain_id(self) -> int:
        return self.engine.chain_id

    def ledger_url(self, **options: object) -> str:
        query = urlencode({k: str(v) for k, v in options.items()}, safe=",")
        return f"evm+{self.url}" + (f"?{query}" if query else "")

    # -- JSON-RPC ----------------------------------------------------------------------------

    def rpc(self, method: str, *params: Any) -> Any:
        reply = self._post({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error'].get('message')}")
        return reply["result"]

    def _post(self, body: Any) -> Any:
        data = json.dumps(body).encode()
        req = urllib.request.Request(self.url, data, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as resp:
            return json.load(resp)

    @property
    def w3(self) -> Any:
        """A web3.Web3 on this node (web3 imported on first use)."""
        if self._w3 is None:
            from web3 import Web3

            self._w3 = Web3(Web3.HTTPProvider(self.url))
        return self._w3

    @functools.cached_property
    def accounts(self) -> list[str]:
        return [a.lower() for a in self.rpc("eth_accounts")]

    def height(self) -> int:
        return int(self.rpc("eth_blockNumber"), 16)

    def receipt(self, txid: str) -> dict:
        return self.rpc("eth_getTransactionReceipt", "0x" + txid.removeprefix("0x"))

    def send(self, tx: dict[str, Any]) -> str:
        """``eth_sendTransaction`` (from accounts[0] unless given); the txid without ``0x``."""
        return self.rpc("eth_sendTransaction", {"from": self.accounts[0], **tx})[2:]

    def fund(self, address: str, wei: int) -> None:
        self.send({"to": address, "value": hex(wei)})

    def deploy_registry(self, account: int = 0) -> str:
        from etdb.ledger.evm import deploy_registry

        return deploy_registry(self.ledger_url(), str(account))

    # -- blocks and reorganisations -----------------------------------------------------------

    def mine(self, blocks: int = 1) -> None:
        if self.engine.name == "ganache":
            self.rpc("evm_mine", {"blocks": blocks})
            return
        # Not hardhat_mine: its "reserved" blocks have a zero parentHash (the chain does not
        # hash-link, and the ledger rightly refuses it). One evm_mine per block, batched.
        for start in range(0, blocks, 500):
            calls = [
                {"jsonrpc": "2.0", "id": i, "method": "evm_mine", "params": []}
                for i in range(min(500, blocks - start))
            ]
            self._post(calls)

    def automine(self, on: bool) -> None:
        """Mine each transaction at once (on), or leave them pending until :meth:`mine`."""
        if self.engine.name == "hardhat":
            self.rpc("evm_setAutomine", on)
        else:
            self.rpc("miner_start" if on else "miner_stop")

    def snapshot(self) -> str:
        return self.rpc("evm_snapshot")

    def revert(self, snapshot: str) -> bool:
        return bool(self.rpc("evm_revert", snapshot))

    def checkpoint(self) -> None:
        """Remember a snapshot at the current height, for :meth:`fork`."""
        self._checkpoints[self.height()] = self.snapshot()

    def fork(self, depth: int) -> None:
        """Replace the newest ``depth`` blocks by ``depth + 1`` empty ones."""
        target = self.height() - depth
        snapshot = self._checkpoints.get(target)
        if snapshot is None:
            raise RuntimeError(f"no checkpoint at height {target}: checkpoint() after each block")
        if not self.revert(snapshot):
            raise RuntimeError(f"evm_revert {snapshot} (height {target}) failed")
        # A revert consumes its snapshot and every later one.
        self._checkpoints = {h: s for h, s in self._checkpoints.items() if h < target}
        self.rpc("evm_increaseTime", 1)  # other timestamps: other hashes even for empty blocks
        self.mine(depth + 1)

    # -- process ----------------------------------------------------------------------------

    def _command(self) -> list[str]:
        script = str(self.folder / self.engine.script)
        if self.engine.name == "hardhat":
            return ["node", script, "node", "--hostname", "127.0.0.1", "--port", str(self.port)]
        return [
            "node",
            script,
            "--server.host=127.0.0.1",
            f"--server.port={self.port}",
            f"--chain.chainId={self.engine.chain_id}",
            "--wallet.deterministic",
            "--wallet.totalAccounts=10",
            f"--database.dbPath={self.data_dir / 'chain'}",
            "--logging.quiet",
        ]

    def start(self) -> None:
        """Start (or restart) the node on the same port; ganache keeps its chain."""
        if self.process is not None and self.process.poll() is None:
            return
        (self.data_dir / "chain").mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "HARDHAT_DISABLE_TELEMETRY_PROMPT": "true"}
        log = open(self.data_dir / "node.log", "ab")  # noqa: SIM115 - the child keeps it
        self.process = subprocess.Popen(
            self._command(),
            cwd=self.folder,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # Ctrl-C in the test run must not hit the node first
        )
        log.close()
        self._checkpoints.clear()  # snapshots do not survive a restart
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                tail = (self.data_dir / "node.log").read_text(errors="replace")[-800:]
                raise NodeUnavailable(f"{self.engine.package} exited: {tail}")
            try:
                self.rpc("eth_chainId")
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise NodeUnavailable(f"{self.engine.package} did not answer") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop the node (SIGINT: ganache flushes its database), killing it if it hangs."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def close(self) -> None:
        self.stop()


def start_evm_node(tmp_dir: Path, engine: str = "ganache") -> EvmNode:
    """Install (once) and start ``engine`` with its data in ``tmp_dir``; NodeUnavailable if
    that is impossible here. The caller stops it (``close()``)."""
    got = _prepared(engine)
    if isinstance(got, NodeUnavailable):
        raise got
    tmp_dir.mkdir(parents=True, exist_ok=True)
    node = EvmNode(ENGINES[engine], got, tmp_dir, _free_port())
    node.start()
    return node


def node_or_skip(tmp_dir: Path, engine: str = "ganache") -> EvmNode:
    """For fixtures: a started node, or skip (laptop) / fail (CI) saying why not."""
    from tests.conftest import skip_or_fail

    try:
        return start_evm_node(tmp_dir, engine)
    except NodeUnavailable as exc:
        skip_or_fail(f"EVM node {engine} unavailable: {exc}")
        raise  # unreachable: skip_or_fail raises


def main() -> int:
    if sys.argv[1:] != ["--install"]:
        print("usage: python -m tests.ledger.evm_node --install", file=sys.stderr)
        return 2
    failed = 0
    for engine in ENGINES:
        reason = evm_node_available(engine)
        failed += reason is not None
        print(f"{engine}: {reason or 'ready in ' + str(cache_dir() / engine)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
