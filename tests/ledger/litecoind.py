"""A throw-away Litecoin Core regtest node for tests and benchmarks (``/usr/bin/litecoind``).

    node = start_litecoind(tmp_path)          # running, wallet "w" with 50 mature LTC x 2
    ledger = open_ledger(node.ledger_url())   # btc+http://u:p@127.0.0.1:port/?wallet=w&...
    node.mine(1); node.fork(2); node.stop(); node.start(); node.close()

Everything listens on 127.0.0.1 only, on a free port, with a random RPC user and password.
The flags are those checked in ``shared/reference/ledger.md`` plus high mempool chain limits
(``-limitancestorcount`` ...) so a benchmark can publish thousands of payloads between blocks.
``close()`` -- or garbage collection, or interpreter exit -- always kills the process.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import socket
import subprocess
import time
import weakref
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from etdb.ledger.base import LedgerError, LedgerUnavailable
from etdb.ledger.rpc import Endpoint, RetryPolicy, RpcClient

LITECOIND = "litecoind"
WALLET = "w"
_START_TIMEOUT = 60.0


def litecoind_available() -> str | None:
    """None when litecoind can run here, else the reason (for a skip or a CI failure)."""
    if shutil.which(LITECOIND) is None:
        return "litecoind not installed (apt-get install litecoind)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LitecoindNode:
    """One regtest node: its process, datadir, credentials and a few chain-shaping helpers."""

    def __init__(
        self, datadir: Path, *, datacarriersize: int = 1100, extra_args: Sequence[str] = ()
    ) -> None:
        self.datadir = datadir
        self.port = _free_port()
        self.user = "etdb-" + secrets.token_hex(4)
        self.password = secrets.token_urlsafe(18)
        self.datacarriersize = datacarriersize
        self.extra_args = tuple(extra_args)
        self.process: subprocess.Popen[bytes] | None = None
        self.address = ""
        self._rpc: dict[str | None, RpcClient] = {}
        self._finalizer = weakref.finalize(self, _kill, [None])

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def args(self) -> list[str]:
        return [
            LITECOIND,
            "-regtest",
            "-server=1",
            "-listen=0",
            "-dnsseed=0",
            "-upnp=0",
            "-txindex=1",
            "-fallbackfee=0.0002",
            f"-datacarriersize={self.datacarriersize}",
            "-vbparams=mweb:-2:0",  # never active (mweb:0:1 activates it at height 432)
            "-limitancestorcount=10000",
            "-limitdescendantcount=10000",
            "-limitancestorsize=5000",  # kvB; -maxmempool must stay >= 40x this
            "-limitdescendantsize=5000",
            "-rpcbind=127.0.0.1",
            "-rpcallowip=127.0.0.1",
            f"-rpcport={self.port}",
            f"-rpcuser={self.user}",
            f"-rpcpassword={self.password}",
            f"-datadir={self.datadir}",
            "-printtoconsole=0",
            # Idle keep-alive RPC connections hold up a clean shutdown for this long (default
            # 30 s): open ledgers in a test would make every stop() slow.
            "-rpcservertimeout=2",
            *self.extra_args,
        ]

    def start(self) -> None:
        """Start (or restart, same datadir and port) and wait until RPC answers."""
        if self.running:
            return
        self.datadir.mkdir(parents=True, exist_ok=True)
        log = open(self.datadir / "litecoind.out", "ab")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen(
            self.args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        log.close()
        self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _kill, [self.process])
        self._wait_ready()
        if self.address:  # a restart: the wallet is not loaded automatically
            self._load_wallet()

    def stop(self) -> None:
        """Shut down cleanly (RPC ``stop``), killing the process if it does not exit."""
        process = self.process
        if process is None:
            return
        for client in self._rpc.values():
            client.close()
        self._rpc.clear()
        if process.poll() is None:
            with contextlib.suppress(LedgerError):
                self.call("stop")
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.process = None

    def close(self) -> None:
        try:
            self.stop()
        finally:
            if self.process is not None:
                _kill([self.process])
            self._finalizer()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"litecoind exited ({self.process.returncode}):\n{self.log_tail()}"
                )
            try:
                self.call("getblockchaininfo")
                return
            except LedgerUnavailable as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"litecoind did not answer:\n{self.log_tail()}") from exc
                time.sleep(0.1)

    def log_tail(self, lines: int = 30) -> str:
        text = ""
        for name in ("litecoind.out", "regtest/debug.log"):
            path = self.datadir / name
            if path.exists():
                text += "".join(path.read_text(errors="replace").splitlines(True)[-lines:])
        return text

    def _load_wallet(self) -> None:
        try:
            self.call("loadwallet", WALLET)
        except LedgerError as exc:
            if "already loaded" not in str(exc):
                raise

    def setup_wallet(self, blocks: int = 102) -> None:
        """Create wallet ``w`` and mine ``blocks`` to it (102: two mature 50-LTC coinbases)."""
        self.call("createwallet", WALLET)
        self.address = str(self.call("getnewaddress", wallet=True))
        self.mine(blocks)

    # -- RPC ----------------------------------------------------------------------------------

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rpc(self, wallet: str | None = WALLET) -> RpcClient:
        """A client for this node (wallet calls to ``/wallet/<wallet>``); reused, closed by stop."""
        client = self._rpc.get(wallet)
        if client is None:
            endpoint = Endpoint(self.rpc_url, self.user, self.password)
            policy = RetryPolicy(retries=0, timeout=120.0)  # fail fast: the test is in charge
            client = RpcClient(endpoint, safe_url=self.rpc_url, wallet=wallet, policy=policy)
            self._rpc[wallet] = client
        return client

    def call(self, method: str, *params: Any, wallet: bool = False) -> Any:
        return self.rpc().call(method, *params, wallet=wallet)

    @property
    def url(self) -> str:
        """The ledger URL with the test defaults (see :meth:`ledger_url`)."""
        return self.ledger_url()

    def ledger_url(self, *, password: str | None = None, **options: Any) -> str:
        """A ``btc+http`` ledger URL for this node; options override the test defaults."""
        query = {
            "wallet": WALLET,
            "coin": "LTC",
            "confirmations": 1,
            "datacarriersize": self.datacarriersize,
            "retries": 2,
            "backoff": 0.05,
            "timeout": 10,
            **options,
        }
        text = "&".join(f"{k}={v}" for k, v in query.items() if v is not None)
        secret = self.password if password is None else password
        return f"btc+http://{self.user}:{secret}@127.0.0.1:{self.port}/?{text}"

    # -- chain shaping ------------------------------------------------------------------------

    def mine(self, blocks: int = 1) -> list[str]:
        """Mine ``blocks`` blocks (with the mempool's transactions) to the wallet."""
        return [str(h) for h in self.call("generatetoaddress", blocks, self.address)]

    def mine_empty(self, blocks: int = 1, txs: Sequence[str] = ()) -> list[str]:
        """Mine blocks holding only a coinbase (the first also ``txs``, raw hex or txids)."""
        hashes = []
        for i in range(blocks):
            hashes.append(
                str(self.call("generateblock", self.address, list(txs) if i == 0 else [])["hash"])
            )
        return hashes

    def fork(self, depth: int) -> list[str]:
        """Replace the newest ``depth`` blocks by ``depth + 1`` blocks without their payloads.

        ``invalidateblock`` sends the orphaned transactions back to the mempool, where the next
        ``generatetoaddress`` would mine them again. So the new branch's first block carries
        one transaction that double-spends every outside input of the orphaned transactions:
        they (and their descendants) then conflict with the chain and leave the mempool, as
        in a real double-spend reorg.
        """
        tip = int(self.call("getblockcount"))
        orphaned = [
            self.call("getblock", self.call("getblockhash", h), 2)
            for h in range(tip - depth + 1, tip + 1)
        ]
        txs = [tx for block in orphaned for tx in block["tx"][1:]]
        self.call("invalidateblock", orphaned[0]["hash"])
        conflict = self._double_spend(txs) if txs else []
        hashes = self.mine_empty(depth + 1, conflict)
        back = set(self.call("getrawmempool")) & {tx["txid"] for tx in txs}
        if back:
            raise RuntimeError(f"fork: {len(back)} orphaned transactions still in the mempool")
        return hashes

    def _double_spend(self, txs: list[dict]) -> list[str]:
        inside = {tx["txid"] for tx in txs}
        roots = sorted(
            {(i["txid"], i["vout"]) for tx in txs for i in tx["vin"] if i["txid"] not in inside}
        )
        total = Decimal(0)
        for txid, n in roots:
            prev = self.call("getrawtransaction", txid, True)
            if (
                "blockhash" not in prev
                or self.call("getblockheader", prev["blockhash"])["confirmations"] < 1
            ):
                raise RuntimeError(f"fork: input {txid}:{n} is unconfirmed; mine before forking")
            total += Decimal(str(prev["vout"][n]["value"]))
        fee = Decimal("0.001")
        raw = self.call(
            "createrawtransaction",
            [{"txid": t, "vout": n} for t, n in roots],
            {self.address: total - fee},
        )
        signed = self.call("signrawtransactionwithwallet", raw, wallet=True)
        if not signed.get("complete"):
            raise RuntimeError(f"fork: cannot sign the double-spend: {signed.get('errors')}")
        return [str(signed["hex"])]


def start_litecoind(
    tmp_dir: Path, *, datacarriersize: int = 1100, extra_args: Sequence[str] = ()
) -> LitecoindNode:
    """A running regtest node in ``tmp_dir`` with a funded wallet ``w``."""
    node = LitecoindNode(Path(tmp_dir), datacarriersize=datacarriersize, extra_args=extra_args)
    try:
        node.start()
        node.setup_wallet()
    except BaseException:
        node.close()
        raise
    return node


def _kill(processes: list[subprocess.Popen[bytes] | None]) -> None:
    for process in processes:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
