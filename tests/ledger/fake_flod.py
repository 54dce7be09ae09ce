"""A small fake flod (FLO Core 0.15) answering over real HTTP (``rpcserver.RpcServer``).

No FLO node can be installed on these machines, so the floData carrier is tested against this
stand-in. Its answers copy the shapes of Bitcoin Core 0.15 JSON-RPC plus FLO's ``floData``,
from these public sources:

* bitspill/flod ``flojson/chainsvrresults.go``: ``TxRawResult`` (getrawtransaction and
  getblock verbose transactions) = Bitcoin Core 0.15's fields plus ``floData`` (JSON key
  ``"floData"``); ``GetBlockVerboseResult``; ``ScriptPubKeyResult`` with ``addresses``.
* floblockchain/flo ``src/rpc/rawtransaction.cpp``: the getrawtransaction help lists the
  FLO data field next to vin/vout; the "No such mempool or blockchain transaction. Use
  gettransaction for wallet transactions." message (RPC -5); ``src/core_write.cpp``
  ``TxToUniv`` field order (txid, hash, version, size, vsize, locktime, vin, vout, ...).
* ihyf/node_json_rpc ``tests/test_socket.js``: captured flosight answers for FLO mainnet
  transactions (July 2019): ``"version": 2``, ``"locktime": 0``, ``"floData": ""`` on plain
  payments, non-ASCII floData (``"mc测试转账"``), P2PKH ``"F..."`` addresses. :data:`REAL_TXS`
  re-shapes four of them into flod RPC form (flosight's extra ``addr``/``valueSat`` dropped).
* bitspill/dbet ``dbet/flo.go``: go-etdb's ``sendtoaddress <addr> <amount> "" "" <floData>``.

Heights and block hashes here are synthetic; transaction ids, addresses, scripts, amounts and
floData of :data:`REAL_TXS` are the real mainnet ones.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from tests.ledger.rpcserver import Fault, RpcServer

#: ETDB-Caltech's publisher address (shared/reference/oip_etdb.md §2): the fake wallet's.
WALLET_ADDRESS = "FTSTq8xx8yWUKJA5E3bgXLzZqqG9V6dvnr"
_P2PKH_HEX = "76a914{}88ac"


def _out(value: str, n: int, address: str, h160: str) -> dict[str, Any]:
    return {
        "value": Decimal(value),
        "n": n,
        "scriptPubKey": {
            "asm": f"OP_DUP OP_HASH160 {h160} OP_EQUALVERIFY OP_CHECKSIG",
            "hex": _P2PKH_HEX.format(h160),
            "reqSigs": 1,
            "type": "pubkeyhash",
            "addresses": [address],
        },
    }


def _tx(txid: str, vin: list[dict], vout: list[dict], flo_data: str, size: int) -> dict[str, Any]:
    return {
        "txid": txid,
        "hash": txid,
        "version": 2,
        "size": size,
        "vsize": size,
        "locktime": 0,
        "vin": vin,
        "vout": vout,
        "floData": flo_data,
    }


def _in(txid: str, vout: int, sig: str = "") -> dict[str, Any]:
    return {
        "txid": txid,
        "vout": vout,
        "scriptSig": {"asm": "", "hex": sig},
        "sequence": 4294967295,
    }


_FB = ("FBjBWwd4Bm8MAYdJqqLB2pvDXzP1AomBXK", "40b1a4a6fc7c8b88ef2a1beac1fe3de118e8d088")

#: Four FLO mainnet transactions (ihyf/node_json_rpc tests/test_socket.js), in flod RPC shape.
REAL_TXS = [
    # A payment with empty floData; its output 0 funds the next transaction.
    _tx(
        "8e1dbd180632912587aafc5d9b37970515130fdec350edf06be7910aba2d7c17",
        [_in("129408e54f56ddb687fdb0031f56e7c92ea6f7653704e306732426247615df9e", 1)],
        [
            _out("10.00000000", 0, *_FB),
            _out(
                "6047.88480561",
                1,
                "FJaz2YNvRNAmV957fm7DSA2H5WJio8EGCs",
                "8bed9ad8f7b1db1c89149284f9f60e485d82f1a6",
            ),
        ],
        "",
        227,
    ),
    # Non-ASCII floData; spends the transaction above, in the same block: sender FBjBWwd4...
    _tx(
        "faba08a674e956696bfa339d414ced885506cf9f468203a7354b8e66b5004b02",
        [_in("8e1dbd180632912587aafc5d9b37970515130fdec350edf06be7910aba2d7c17", 0)],
        [
            _out(
                "0.10000000",
                0,
                "FSsoZwi4KkqjNmfmbnPnVzvrNBWmj7Yhsx",
                "e6dcf3bd6ce83b1cd8318d57c49ff276379a0135",
            ),
            _out("9.89997740", 1, *_FB),
        ],
        "mc测试转账",
        241,
    ),
    # ASCII floData whose funding transaction this node does not know: sender unknown.
    _tx(
        "594e2a69dbb35ba7a7bc95dfbea7b1084e68aa26dd230e215666d9af1b39481f",
        [_in("32c798ec80812b94edb1227a760ebe2c1a3c282b6abca533ac9bc81837c8aaa3", 1)],
        [
            _out(
                "0.10000000",
                0,
                "FFzgFX8nj743byU5cnWCdv1neHAo6DrSoy",
                "6f805f2b4152713ce79475830f707946da7b76fc",
            ),
            _out("17.16111030", 1, *_FB),
        ],
        "Hi Joseph, i am mc from china.",
        257,
    ),
    _tx(
        "da242cb4038bcfefb35de59131d96d4cbaa862e9e2dcc9b0ca2fa898f4deeef7",
        [_in("594e2a69dbb35ba7a7bc95dfbea7b1084e68aa26dd230e215666d9af1b39481f", 1)],
        [
            _out(
                "1.20000000",
                0,
                "FKXpmwKdTnMrQQBVhBRLpMbQy7PqiicYgV",
                "964cc27f77366fcd03166c0127f004ac126a0268",
            ),
            _out("15.96108770", 1, *_FB),
        ],
        "",
        226,
    ),
]

_WALLET_H160 = "f0" * 20


class FakeFlod:
    """Chain, mempool, txindex and a one-address wallet, served on ``self.server.url``."""

    def __init__(self, *, user: str = "flo", password: str = "flo-secret") -> None:
        self._counter = itertools.count(1)
        self.blocks: list[dict[str, Any]] = []
        self.mempool: list[dict[str, Any]] = []
        self.index: dict[str, tuple[dict[str, Any], str | None]] = {}  # txid -> (tx, block hash)
        self.feerate: Decimal | None = None  # None: estimatesmartfee has no estimate
        self.before_getblock: Callable[[], None] | None = None  # one-shot hook (race tests)
        self.getnewaddress_calls = 0
        self._mine([])  # genesis
        funding = self._coinbase(Decimal(100), WALLET_ADDRESS)
        self._coin = (funding["txid"], 0, Decimal(100))
        self._mine([funding, *REAL_TXS[:2]])
        self._mine(REAL_TXS[2:])
        self.server = RpcServer(self.handle, user=user, password=password)

    # -- test controls ------------------------------------------------------------------------

    @property
    def height(self) -> int:
        return len(self.blocks) - 1

    def url(self, *, password: str | None = None, **options: Any) -> str:
        query = {
            "wallet": "etdb",
            "confirmations": 1,
            "retries": 2,
            "backoff": 0.01,
            "timeout": 2,
            **options,
        }
        secret = self.server.password if password is None else password
        text = "&".join(f"{k}={v}" for k, v in query.items())
        return f"flo+http://{self.server.user}:{secret}@127.0.0.1:{self.server.port}/?{text}"

    def mine(self, blocks: int = 1) -> None:
        for _ in range(blocks):
            txs, self.mempool = self.mempool, []
            self._mine(txs)

    def reorg(self, height: int, new_blocks: int) -> None:
        """Drop blocks from ``height`` on (their transactions back to the mempool, as a node
        does) and mine ``new_blocks`` blocks without them: a longer branch."""
        orphaned = self.blocks[height:]
        del self.blocks[height:]
        for block in orphaned:
            self.mempool.extend(tx for tx in block["tx"][1:])
        for _ in range(new_blocks):
            self._mine([])

    def close(self) -> None:
        self.server.stop()

    # -- chain internals ----------------------------------------------------------------------

    def _hash(self, label: str) -> str:
        return hashlib.sha256(f"{label}-{next(self._counter)}".encode()).hexdigest()

    def _coinbase(self, value: Decimal, address: str) -> dict[str, Any]:
        tx = _tx(
            self._hash("cb"),
            [{"coinbase": "03a1b2c3", "sequence": 4294967295}],
            [_out(str(value), 0, address, _WALLET_H160)],
            "",
            120,
        )
        return tx

    def _mine(self, txs: list[dict[str, Any]]) -> None:
        parent = self.blocks[-1]["hash"] if self.blocks else None
        block_hash = self._hash("block")
        coinbase = self._coinbase(Decimal("1.5625"), "FMinerxxxxxxxxxxxxxxxxxxxxxxxxxxxx")
        block = {
            "hash": block_hash,
            "height": len(self.blocks),
            "time": 1_562_247_071 + 40 * len(self.blocks),
            "tx": [coinbase, *txs],
        }
        if parent:
            block["previousblockhash"] = parent
        self.blocks.append(block)
        for tx in block["tx"]:
            self.index[tx["txid"]] = (tx, block_hash)

    def _block(self, block_hash: str) -> dict[str, Any] | None:
        for block in self.blocks:
            if block["hash"] == block_hash:
                return block
        return None

    def _confirmations(self, block_hash: str | None) -> int:
        block = self._block(block_hash) if block_hash else None
        return self.height - block["height"] + 1 if block else 0

    def _stale_block(self, block_hash: str) -> dict[str, Any] | None:
        for _tx, bh in self.index.values():
            if bh == block_hash:
                return {"hash": block_hash, "stale": True}
        return None

    # -- RPC ----------------------------------------------------------------------------------

    def handle(self, method: str, params: list[Any], path: str) -> Any:
        handler = getattr(self, "rpc_" + method, None)
        if handler is None:
            raise Fault(-32601, "Method not found")
        return handler(*params)

    def rpc_getblockchaininfo(self) -> dict[str, Any]:
        tip = self.blocks[-1]
        return {
            "chain": "main",
            "blocks": self.height,
            "headers": self.height,
            "bestblockhash": tip["hash"],
            "pruned": False,
        }

    def rpc_getblockcount(self) -> int:
        return self.height

    def rpc_getblockhash(self, height: int) -> str:
        if not 0 <= height <= self.height:
            raise Fault(-8, "Block height out of range")
        return str(self.blocks[height]["hash"])

    def rpc_getblockheader(self, block_hash: str, verbose: bool = True) -> dict[str, Any]:
        block = self._block(block_hash)
        if block is None:
            raise Fault(-5, "Block not found")
        return {
            "hash": block_hash,
            "confirmations": self._confirmations(block_hash),
            "height": block["height"],
            "time": block["time"],
        }

    def rpc_getblock(self, block_hash: str, verbosity: int = 1) -> dict[str, Any]:
        if self.before_getblock is not None:
            hook, self.before_getblock = self.before_getblock, None
            hook()
        block = self._block(block_hash)
        if block is None:
            if self._stale_block(block_hash) is None:
                raise Fault(-5, "Block not found")
            # Still on disk, no longer on the best chain (what a node answers after a reorg).
            return {"hash": block_hash, "confirmations": -1, "height": -1, "time": 0, "tx": []}
        out = {k: v for k, v in block.items() if k != "tx"}
        out["confirmations"] = self._confirmations(block_hash)
        out["tx"] = block["tx"] if verbosity >= 2 else [tx["txid"] for tx in block["tx"]]
        return out

    def rpc_getrawmempool(self, verbose: bool = False) -> list[str]:
        return [tx["txid"] for tx in self.mempool]

    def rpc_getrawtransaction(self, txid: str, verbose: bool = False) -> Any:
        for tx in self.mempool:
            if tx["txid"] == txid:
                return dict(tx)
        if txid not in self.index:
            raise Fault(
                -5,
                "No such mempool or blockchain transaction. Use gettransaction for wallet transactions.",
            )
        tx, block_hash = self.index[txid]
        out = dict(tx)
        out.update(blockhash=block_hash, confirmations=self._confirmations(block_hash))
        return out

    def rpc_getnewaddress(self, *args: Any) -> str:
        self.getnewaddress_calls += 1
        return WALLET_ADDRESS

    def rpc_sendtoaddress(
        self, address: str, amount: Any, comment: str = "", to: str = "", *rest: Any
    ) -> str:
        flo_data = rest[-1] if rest and isinstance(rest[-1], str) else ""
        if len(flo_data.encode()) > 1040:
            raise Fault(-26, "flo-data too large")
        value = Decimal(str(amount))
        prev_txid, prev_n, prev_value = self._coin
        change = prev_value - value - Decimal("0.0001")
        if change < 0:
            raise Fault(-6, "Insufficient funds")
        txid = self._hash("tx")
        tx = _tx(
            txid,
            [_in(prev_txid, prev_n, "47304402")],
            [
                _out(str(value), 0, address, _WALLET_H160),
                _out(str(change), 1, WALLET_ADDRESS, _WALLET_H160),
            ],
            flo_data,
            226 + len(flo_data.encode()),
        )
        self.mempool.append(tx)
        self.index[txid] = (tx, None)
        self._coin = (txid, 1, change)
        return txid

    def rpc_gettransaction(self, txid: str, *args: Any) -> dict[str, Any]:
        if txid not in self.index:
            raise Fault(-5, "Invalid or non-wallet transaction id")
        _, block_hash = self.index[txid]
        out: dict[str, Any] = {"txid": txid, "confirmations": self._confirmations(block_hash)}
        if block_hash:
            out["blockhash"] = block_hash
        return out

    def rpc_estimatesmartfee(self, target: int, mode: str = "CONSERVATIVE") -> dict[str, Any]:
        if self.feerate is None:
            return {"errors": ["Insufficient data or no feerate found"], "blocks": 0}
        return {"feerate": self.feerate, "blocks": target}

    def rpc_getnetworkinfo(self) -> dict[str, Any]:
        return {"version": 150000, "subversion": "/FLO:0.15.2/", "relayfee": Decimal("0.00001")}
