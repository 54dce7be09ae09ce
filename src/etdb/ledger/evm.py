"""EVM chains (Ethereum and its kin) as an etdb ledger.

Two carriers. ``mode=log`` (default): each payload is the calldata of a call to the etdb
registry (``evm_registry.py``), which emits it unchanged as an event log with the sender as
``topic1``; readers fetch logs with one ``eth_getLogs`` per range of blocks, filtered by the
registry's address and optionally by publisher, so a lab's records are found without
downloading every block. ``mode=calldata`` (fallback, no contract): each payload is the data
of a plain transaction to a ``sink`` address; readers scan full blocks.

Identifiers follow the rest of etdb: txids and block hashes are 64 lowercase hex characters
without ``0x`` (multipart references need exactly that); addresses are lowercase ``0x…``.
Every yielded block carries its real hash and parent hash (fetched in JSON-RPC batches), so
:func:`etdb.ledger.follow` detects reorganisations exactly as on other backends.

Sending: from a node-held account (``eth_sendTransaction``) or, when the environment holds a
private key (``ETDB_EVM_PRIVATE_KEY``), signed locally with eth-account (from web3:
``pip install 'etdb[evm]'``) as a legacy EIP-155 transaction at ``eth_gasPrice``.
URL options: ``evm_url.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from etdb.ledger.base import (
    Block,
    Closing,
    CorruptLedgerError,
    FeeEstimate,
    LedgerConfigError,
    LedgerError,
    PayloadTooLarge,
    Tip,
    TxRef,
    TxStatus,
    UnknownBlock,
    WalletError,
)
from etdb.ledger.evm_decode import (
    TOPIC,
    assemble,
    node_hash,
    payload_text,
    publisher_topic,
    txid_hex,
)
from etdb.ledger.evm_registry import INIT_CODE, RUNTIME, publish_gas
from etdb.ledger.evm_rpc import JsonRpc, RpcError
from etdb.ledger.evm_send import NodeAccount, Signer, local_signer, send_error
from etdb.ledger.evm_url import EvmOptions, parse, set_query
from etdb.ledger.follow import Cursor
from etdb.ledger.messages import scan_blocks

_CONSISTENCY_ATTEMPTS = 3  # re-reads of a range that changed under us (a reorg mid-read)
_GAS_MARGIN = 10  # percent over eth_estimateGas for the gas limit (unused gas is refunded)


class EvmLedger(Closing):
    """A ledger on an EVM chain, spoken to over JSON-RPC. See the module docstring."""

    def __init__(self, options: EvmOptions) -> None:
        self.options = options
        self.url = options.label
        self.max_payload = options.max_payload
        self.confirmations = options.confirmations
        self._rpc = JsonRpc(
            options.endpoint,
            label=options.label,
            headers=options.headers(),
            timeout=options.timeout,
            retries=options.retries,
            backoff=options.backoff,
            max_batch=options.batch,
        )
        self._log_range = options.log_range
        self._signer_cache: Signer | None = None
        self._chain: int | None = None
        self._checked = False
        self._gas_cache: dict[int, int] = {}

    # -- reading --------------------------------------------------------------------------------

    def tip(self) -> Tip:
        head = self._rpc.call("eth_getBlockByNumber", "latest", False)
        if head is None:
            raise CorruptLedgerError(f"{self.url}: the node has no latest block")
        return Tip(int(head["number"], 16), node_hash(head["hash"], "block hash"))

    def block_hash(self, height: int) -> str | None:
        if height < 0:
            return None
        head = self._rpc.call("eth_getBlockByNumber", hex(height), False)
        return None if head is None else node_hash(head["hash"], "block hash")

    def block(self, height: int) -> Block:
        got = list(self.blocks(height, height)) if height >= 0 else []
        if not got:
            raise UnknownBlock(f"{self.url}: no block at height {height} (beyond the tip?)")
        return got[0]

    def blocks(self, start: int, stop: int) -> Iterator[Block]:
        self._ready()
        start = max(start, 0)
        stop = min(stop, self.tip().height)
        height = start
        while height <= stop:
            end = min(stop, height + self._log_range - 1)
            try:
                got = self._range(height, end)
            except RpcError as exc:
                if exc.method != "eth_getLogs" or end == height:
                    raise
                # Providers cap eth_getLogs (block span, result count): ask for less.
                self._log_range = max(1, (end - height + 1) // 2)
                continue
            yield from got
            if len(got) < end - height + 1:
                return  # the chain got shorter while we read (a reorg): stop at its tip
            height = end + 1

    def start_cursor(self) -> Cursor:
        """A cursor just below ``start=`` (the registry's first block), to follow from there
        instead of from genesis; ``Cursor()`` when ``start`` is 0."""
        if self.options.start == 0:
            return Cursor()
        below = self.options.start - 1
        block_hash = self.block_hash(below)
        if block_hash is None:
            raise LedgerConfigError(f"{self.url}: start={self.options.start} is beyond the tip")
        return Cursor(below, block_hash, ((below, block_hash),))

    def _range(self, start: int, stop: int) -> list[Block]:
        """Blocks start..stop with their entries, consistent with each other (or fewer)."""
        full = self.options.mode == "calldata"
        heads = [("eth_getBlockByNumber", (hex(h), full)) for h in range(start, stop + 1)]
        for _ in range(_CONSISTENCY_ATTEMPTS):
            if full:
                blocks = assemble(
                    self._rpc.batch(heads),
                    start,
                    sink=self._sink(),
                    publishers=self.options.publishers,
                )
            else:  # one round trip: the logs of the whole range, then its headers
                logs, *got = self._rpc.batch(
                    [("eth_getLogs", (self._filter(start, stop),)), *heads]
                )
                blocks = assemble(got, start, logs)
            if blocks is not None:
                return blocks
        raise CorruptLedgerError(
            f"{self.url}: blocks {start}..{stop} read {_CONSISTENCY_ATTEMPTS} times never "
            "agreed (headers not linked by parent hash, or logs of unseen blocks): the chain "
            "kept changing (try again later) or the node serves a broken one"
        )

    def _filter(self, start: int, stop: int) -> dict[str, Any]:
        topics: list[Any] = [TOPIC]
        if self.options.publishers:
            topics.append([publisher_topic(a) for a in self.options.publishers])
        return {
            "address": self.options.contract,
            "topics": topics,
            "fromBlock": hex(start),
            "toBlock": hex(stop),
        }

    def transaction(self, txid: str) -> TxStatus | None:
        ref = "0x" + txid_hex(txid)
        receipt, number = self._rpc.batch(
            [("eth_getTransactionReceipt", (ref,)), ("eth_blockNumber", ())]
        )
        if receipt is None or receipt.get("blockNumber") is None:
            pending = self._rpc.call("eth_getTransactionByHash", ref)
            return None if pending is None else TxStatus(txid_hex(txid), 0)
        if receipt.get("status") == "0x0":
            raise LedgerError(
                f"{self.url}: transaction {txid_hex(txid)} failed on chain (status 0): its payload "
                "is not on the ledger; publish it again"
            )
        height = int(receipt["blockNumber"], 16)
        return TxStatus(
            txid_hex(txid),
            max(0, int(number, 16) - height + 1),
            height,
            node_hash(receipt["blockHash"], "block hash"),
        )

    def find_payload(
        self, payload: str, *, since_height: int, sender: str | None = None
    ) -> TxRef | None:
        """The transaction carrying exactly ``payload``: pending (the node's pending block and
        ``txpool_content`` where it has one), else in a block from ``since_height`` up (see
        :func:`etdb.ledger.messages.find_payload`). Pending ones are read first: a transaction
        mined meanwhile is then found in a block."""
        self._ready()
        target = self.options.contract if self.options.mode == "log" else self._sink()
        who = sender.lower() if sender else None
        for tx in self._pending_transactions():
            if not isinstance(tx, dict) or str(tx.get("to") or "").lower() != target:
                continue
            if who is not None and str(tx.get("from") or "").lower() != who:
                continue
            if payload_text(tx.get("input", tx.get("data"))) == payload:
                return TxRef(node_hash(tx["hash"], "txid"))
        return scan_blocks(self.blocks(since_height, self.tip().height), payload, who)

    def _pending_transactions(self) -> Iterator[Any]:
        # Nodes disagree on where sent-but-unmined transactions show: Hardhat and Geth fill
        # the "pending" block, Ganache leaves it empty but answers txpool_content.
        block = self._rpc.call("eth_getBlockByNumber", "pending", True) or {}
        yield from block.get("transactions") or ()
        try:
            pool = self._rpc.call("txpool_content") or {}
        except RpcError:
            return  # no such method on this node (or refused by the provider)
        for by_nonce in (pool.get("pending") or {}).values():
            yield from by_nonce.values()

    # -- writing --------------------------------------------------------------------------------

    def publish(self, payload: str) -> TxRef:
        data = payload.encode("utf-8")
        if len(data) > self.max_payload:
            raise PayloadTooLarge(
                f"{len(data)} payload bytes exceed max_payload={self.max_payload} of {self.url}"
            )
        if not data:
            raise ValueError("an empty payload carries no record")
        self._ready()
        target = self.options.contract if self.options.mode == "log" else self._sink()
        return TxRef(self._send(target, data))

    def _send(self, to: str | None, data: bytes) -> str:
        """Send one transaction (``to`` None: contract creation); its txid."""
        signer = self._signer()
        tx: dict[str, Any] = {"from": signer.address, "value": "0x0", "data": "0x" + data.hex()}
        if to is not None:
            tx["to"] = to
        try:
            gas = int(self._rpc.call("eth_estimateGas", tx), 16)
            tx["gas"] = hex(gas + gas * _GAS_MARGIN // 100)
            if self.options.gas_price_wei is not None:
                tx["gasPrice"] = hex(self.options.gas_price_wei)
            return node_hash(signer.send(self._rpc, tx, self._chain_id), "txid")
        except RpcError as exc:
            raise send_error(exc, signer.address, self.url) from exc

    def estimate_fee(self, payload_bytes: int, transactions: int = 1) -> FeeEstimate:
        if transactions <= 0:
            return FeeEstimate(Decimal(0), self.options.coin, 0, payload_bytes, "nothing to send")
        per_tx = -(-payload_bytes // transactions)  # gas is linear in size: the mean is exact
        gas, gas_basis = self._gas_per_tx(per_tx)
        if self.options.gas_price_wei is not None:
            price, price_basis = self.options.gas_price_wei, "configured gas_price"
        else:
            price, price_basis = int(self._rpc.call("eth_gasPrice"), 16), "eth_gasPrice"
        total = Decimal(gas * transactions * price) / Decimal(10**18)
        basis = (
            f"{gas} gas per transaction of {per_tx} bytes ({gas_basis}) x "
            f"{Decimal(price) / Decimal(10**9):f} gwei ({price_basis})"
        )
        return FeeEstimate(total, self.options.coin, transactions, payload_bytes, basis)

    def _gas_per_tx(self, size: int) -> tuple[int, str]:
        if size in self._gas_cache:
            return self._gas_cache[size], "eth_estimateGas on a sample"
        log = self.options.mode == "log"
        try:
            self._ready()
            tx: dict[str, Any] = {"data": "0x" + b"x".hex() * size, "value": "0x0"}
            tx["to"] = self.options.contract if log else self._sink()
            with contextlib.suppress(LedgerError):  # a reader without an account may ask too
                tx["from"] = self._signer().address
            gas = int(self._rpc.call("eth_estimateGas", tx), 16)
        except RpcError:
            # e.g. beyond the block gas limit: the schedule, with Prague's floor (the higher)
            return publish_gas(size, log=log), "gas schedule incl. EIP-7623 floor"
        self._gas_cache[size] = gas
        return gas, "eth_estimateGas on a sample"

    # -- set-up ---------------------------------------------------------------------------------

    def _ready(self) -> None:
        """Check once that the node serves the configured chain and the carrier is usable."""
        if self._checked:
            return
        chain = self._chain_id
        target = self.options.contract if self.options.mode == "log" else self._sink()
        code = str(self._rpc.call("eth_getCode", target, "latest")).lower()
        where = f"{self.url} (chain {chain})"
        if self.options.mode == "log" and code in ("0x", ""):
            raise LedgerConfigError(
                f"no contract at {target} on {where}: deploy a registry with "
                "`python -m etdb.ledger.evm deploy URL` and put its address in contract="
            )
        if self.options.mode == "log" and code != "0x" + RUNTIME.hex():
            raise LedgerConfigError(f"the contract at {target} on {where} is not an etdb registry")
        if self.options.mode == "calldata" and code not in ("0x", ""):
            raise LedgerConfigError(
                f"sink {target} on {where} has code, which could revert or act on records: "
                "use an address without code"
            )
        self._checked = True

    @property
    def _chain_id(self) -> int:
        if self._chain is None:
            chain = int(self._rpc.call("eth_chainId"), 16)
            if self.options.chain_id is not None and chain != self.options.chain_id:
                raise LedgerConfigError(
                    f"{self.url} serves chain {chain}, not chain_id={self.options.chain_id}"
                )
            self._chain = chain
        return self._chain

    def _signer(self) -> Signer:
        if self._signer_cache is None:
            signer: Signer = local_signer(self.options) or self._node_account()
            self._signer_cache = signer
            return signer
        return self._signer_cache

    def _node_account(self) -> NodeAccount:
        account = self.options.account
        if account is not None and account.startswith("0x"):
            return NodeAccount(account)
        index = int(account or 0)
        accounts = self._rpc.call("eth_accounts") or []
        if index >= len(accounts):
            raise WalletError(
                f"{self.url} holds {len(accounts)} account(s), so account={index} does not "
                f"exist: set {self.options.key_env} to a private key to sign locally"
            )
        return NodeAccount(str(accounts[index]).lower())

    def _sink(self) -> str:
        if self.options.sink is not None:
            return self.options.sink
        try:
            return self._signer().address  # by default, records go to the sender itself
        except LedgerError as exc:
            raise LedgerConfigError(f"mode=calldata needs sink=0x… to read: {exc}") from exc

    def close(self) -> None:
        self._rpc.close()


def open_evm(url: str, home: Path | None = None) -> EvmLedger:
    """The ``evm+http(s)://`` ledger a URL names (no network access until first use)."""
    del home  # an EVM ledger keeps no local state
    return EvmLedger(parse(url))


# -- registry deployment ----------------------------------------------------------------------


@dataclass(frozen=True)
class RegistryDeployment:
    address: str
    txid: str
    height: int
    gas_used: int
    ledger_url: str  # the given URL (without secrets) with contract= and start= set


def deploy(url: str, account: str | None = None, *, timeout: float = 300.0) -> RegistryDeployment:
    """Deploy a registry from ``account`` (or the URL's sender) and wait for it to be mined."""
    options = parse(
        url if account is None else set_query(url, account=account), need_contract=False
    )
    ledger = EvmLedger(options)
    try:
        txid = ledger._send(None, INIT_CODE)
        deadline = time.monotonic() + timeout
        while (receipt := ledger._rpc.call("eth_getTransactionReceipt", "0x" + txid)) is None:
            if time.monotonic() > deadline:
                raise LedgerError(f"registry deployment {txid} not mined after {timeout}s")
            time.sleep(0.5)
        if receipt.get("status") == "0x0" or not receipt.get("contractAddress"):
            raise LedgerError(f"registry deployment {txid} failed on chain: {receipt}")
        address = str(receipt["contractAddress"]).lower()
        height = int(receipt["blockNumber"], 16)
        deployed = EvmLedger(options.with_contract(address, height))
        try:
            deployed._ready()  # the code there really is the registry
        finally:
            deployed.close()
        return RegistryDeployment(address, txid, height, int(receipt["gasUsed"], 16), deployed.url)
    finally:
        ledger.close()


def deploy_registry(url: str, account: str | None = None) -> str:
    """Deploy a registry; its address (``0x…``, lowercase)."""
    return deploy(url, account).address


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m etdb.ledger.evm", description="Deploy the etdb registry contract."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("deploy", help="deploy a registry and print the ledger URL to use")
    cmd.add_argument("url", help="evm+http(s)://host:port[?account=…] (key: ETDB_EVM_PRIVATE_KEY)")
    cmd.add_argument("--account", help="0x address or eth_accounts index to deploy from")
    args = parser.parse_args(argv)
    try:
        done = deploy(args.url, args.account)
    except LedgerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"registry {done.address} deployed in block {done.height} by {done.txid}")
    print(f"gas used: {done.gas_used}")
    print(f"ledger URL: {done.ledger_url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["EvmLedger", "RegistryDeployment", "deploy", "deploy_registry", "open_evm"]
