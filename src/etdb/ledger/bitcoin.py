"""Bitcoin-family chains over JSON-RPC: FLO with floData (as ETDB-Caltech), or OP_RETURN.

``flo+http://user:pass@host:7313/?wallet=w``   floData, go-etdb's ``sendtoaddress``
``btc+http://user:pass@host:8332/?wallet=w``   one OP_RETURN output per payload

Options (query string):

=================  ========================================================================
``wallet``         wallet to pay with (calls go to ``/wallet/<name>``); default: the node's
``confirmations``  depth before entries count; default 6 (about an hour on Bitcoin, 4 minutes
                   on FLO -- raise it on FLO for value at stake)
``coin``           unit of fee estimates; default FLO (flo+) or BTC (btc+), e.g. ``LTC``
``fee_rate``       coin per 1000 virtual bytes for estimates (and OP_RETURN funding); default:
                   the node's ``estimatesmartfee``, else 0.0002 (Bitcoin Core's long-time
                   ``-fallbackfee``; regtest and young nodes have no estimate)
``address``        (flo) address floData is sent to; default a new wallet address, reused
``amount``         (flo) coins sent to that address with each record; default 0.001
``flodata_arg``    (flo) floData's position in ``sendtoaddress``: 5 (go-etdb, default) or 9
``datacarriersize``(btc) the node's ``-datacarriersize`` (script bytes); default 83
``retries``, ``timeout``, ``backoff``, ``retry_for``, ``cookie``: see :mod:`etdb.ledger.rpc`
``batch``          0 to never send JSON-RPC batches
``chain_limit``    the node's ``-limitancestorcount`` (default 25): with every wallet coin at the
                   end of that many unconfirmed transactions, ``publish`` raises ChainTooLong
                   before sending (0: leave it to the node's refusal, the same error)
=================  ========================================================================

Blocks are read from the node's current best chain with ``getblock <hash> 2``; detecting
reorganisations is :func:`etdb.ledger.follow.follow`'s job. A block that leaves the best chain
between ``getblockhash`` and ``getblock`` is read again. An entry's ``sender`` is the address
that funded the first input, from the block itself or ``getrawtransaction`` (needs the node's
``-txindex=1``, as oipd's flod had; otherwise None).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from etdb.ledger.base import (
    Block,
    Closing,
    CorruptLedgerError,
    Entry,
    FeeEstimate,
    LedgerConfigError,
    LedgerError,
    LedgerUnavailable,
    PayloadTooLarge,
    Tip,
    TxRef,
    TxStatus,
    UnknownBlock,
    WalletError,
    payload_size,
)
from etdb.ledger.bitcoin_options import DEFAULTS, BitcoinOptions, parse_options
from etdb.ledger.carriers import (
    Carrier,
    FloDataCarrier,
    OpReturnCarrier,
    check_multipart_capable,
)
from etdb.ledger.chain_limit import check_room
from etdb.ledger.messages import scan_blocks
from etdb.ledger.rpc import BatchUnsupported, RpcClient, parse_retry_policy, split_url
from etdb.ledger.rpc_errors import RPC_INVALID_ADDRESS_OR_KEY, RPC_INVALID_PARAMETER, RpcError

#: Coin per kvB when the node cannot estimate (Bitcoin Core's -fallbackfee before 0.21).
FALLBACK_FEE_RATE = Decimal("0.0002")
#: estimatesmartfee's confirmation target for estimates (blocks).
FEE_TARGET_BLOCKS = 6
_HASHES_PER_BATCH = 100
_READ_ATTEMPTS = 3
_SATOSHI = Decimal("0.00000001")


def open_bitcoin(url: str, home: Path | None = None) -> BitcoinLedger:
    """The ledger a ``flo+http(s)://`` or ``btc+http(s)://`` URL names (``home`` is unused)."""
    family = url.split(":", 1)[0].lower().split("+", 1)[0]
    if family not in DEFAULTS:
        raise LedgerConfigError(f"not a Bitcoin-family ledger URL: {family}+...")
    endpoint, safe_url, raw = split_url(url, default_port=DEFAULTS[family][1])
    options = parse_options(family, raw)
    rpc = RpcClient(
        endpoint,
        safe_url=safe_url,
        wallet=raw.get("wallet") or None,
        policy=parse_retry_policy(raw),
    )
    carrier: Carrier
    if family == "flo":
        carrier = FloDataCarrier(
            rpc, amount=options.amount, address=options.address, flodata_arg=options.flodata_arg
        )
    else:
        carrier = OpReturnCarrier(
            rpc, datacarriersize=options.datacarriersize, fee_rate=options.fee_rate
        )
    return BitcoinLedger(rpc, carrier, options)


class BitcoinLedger(Closing):
    """The :class:`~etdb.ledger.base.Ledger` of a Bitcoin-family node."""

    def __init__(self, rpc: RpcClient, carrier: Carrier, options: BitcoinOptions) -> None:
        self.url = rpc.safe_url
        self.max_payload = carrier.max_payload
        self.confirmations = options.confirmations
        self.carrier = carrier
        self.options = options
        self._rpc = rpc
        self._batch = options.batch
        self._txindex = True  # until the node says otherwise

    def __repr__(self) -> str:
        return f"BitcoinLedger({self.url!r}, carrier={self.carrier.name})"

    # -- reading ------------------------------------------------------------------------------

    def tip(self) -> Tip:
        # One call, so height and hash always belong together.
        info = self._rpc.call("getblockchaininfo")
        return Tip(int(info["blocks"]), str(info["bestblockhash"]))

    def block_hash(self, height: int) -> str | None:
        if height < 0:
            return None
        try:
            return str(self._rpc.call("getblockhash", height))
        except RpcError as exc:
            if exc.code == RPC_INVALID_PARAMETER:  # "Block height out of range"
                return None
            raise

    def block(self, height: int) -> Block:
        block_hash = self.block_hash(height)
        if block_hash is None:
            raise UnknownBlock(f"no block at height {height} on {self.url} (tip is lower)")
        return self._read_block(height, block_hash)

    def blocks(self, start: int, stop: int) -> Iterator[Block]:
        start = max(start, 0)
        stop = min(stop, self.tip().height)
        height = start
        while height <= stop:
            chunk = list(range(height, min(stop, height + _HASHES_PER_BATCH - 1) + 1))
            hashes = self._hashes(chunk)
            for h, block_hash in zip(chunk, hashes, strict=False):
                try:
                    block = self._read_block(h, block_hash)
                except UnknownBlock:
                    return  # a reorg shortened the chain under us: stop at its new tip
                yield block
            if len(hashes) < len(chunk):
                return  # the chain got shorter while we read: stop at its new tip
            height = chunk[-1] + 1

    def _calls(self, method: str, params: list[list[Any]]) -> list[Any]:
        """Results of several read-only calls (a batch where the node takes one), errors in
        place of results."""
        if self._batch and len(params) > 1:
            try:
                return self._rpc.batch([(method, p) for p in params], strict=False)
            except BatchUnsupported:
                self._batch = False  # one call each from now on
        results: list[Any] = []
        for p in params:
            try:
                results.append(self._rpc.call(method, *p))
            except RpcError as exc:
                results.append(exc)
        return results

    def _hashes(self, heights: list[int]) -> list[str]:
        """Hashes of consecutive ``heights`` up to the first one beyond the tip."""
        out = []
        for result in self._calls("getblockhash", [[h] for h in heights]):
            if isinstance(result, RpcError) and result.code == RPC_INVALID_PARAMETER:
                break  # "Block height out of range"
            if isinstance(result, LedgerError):
                raise result
            out.append(str(result))
        return out

    def _read_block(self, height: int, block_hash: str) -> Block:
        for _ in range(_READ_ATTEMPTS):
            try:
                raw = self._rpc.call("getblock", block_hash, 2)
            except RpcError as exc:
                if exc.code != RPC_INVALID_ADDRESS_OR_KEY:  # "Block not found"
                    raise
                raw = None
            if raw is not None and raw.get("confirmations", 0) >= 1 and raw.get("height") == height:
                return self._to_block(raw)
            # The block left the best chain between getblockhash and getblock: ask again.
            again = self.block_hash(height)
            if again is None:
                raise UnknownBlock(f"no block at height {height} on {self.url} any more (reorg)")
            block_hash = again
        raise LedgerUnavailable(f"the chain on {self.url} kept changing at height {height}")

    def _to_block(self, raw: dict[str, Any]) -> Block:
        height, block_hash = int(raw["height"]), str(raw["hash"])
        parent, time = str(raw.get("previousblockhash", "")), int(raw["time"])
        txs = raw.get("tx") or []
        if txs and not isinstance(txs[0], dict):
            raise CorruptLedgerError(
                f"{self.url} ignores getblock verbosity 2 (needs Bitcoin Core 0.15 or later)"
            )
        found = [(i, tx, p) for i, tx in enumerate(txs) if (p := self.carrier.payload(tx))]
        senders = self._senders(txs, [tx for _, tx, _ in found])
        entries = tuple(
            Entry(height, block_hash, parent, time, str(tx["txid"]), i, senders[tx["txid"]], p)
            for i, tx, p in found
        )
        return Block(height, block_hash, parent, time, entries)

    def _senders(
        self, block_txs: list[dict[str, Any]], carrying: list[dict[str, Any]]
    ) -> dict[str, str | None]:
        """Address funding each carrying tx's first input (only these: keeps scans cheap)."""
        in_block = {tx["txid"]: tx for tx in block_txs}
        senders: dict[str, str | None] = {}
        wanted: dict[str, list[tuple[str, int]]] = {}  # prevout txid -> [(tx, vout)]
        for tx in carrying:
            senders[tx["txid"]] = None
            vin = (tx.get("vin") or [{}])[0]
            if "coinbase" in vin or "txid" not in vin:
                continue
            if "prevout" in vin:  # Bitcoin Core 25+ verbosity 3 inlines it
                senders[tx["txid"]] = _address(vin["prevout"].get("scriptPubKey", {}))
            elif vin["txid"] in in_block:  # spends an earlier tx of this block (a chain of parts)
                senders[tx["txid"]] = _output_address(in_block[vin["txid"]], int(vin["vout"]))
            else:
                wanted.setdefault(vin["txid"], []).append((tx["txid"], int(vin["vout"])))
        for prev_txid, prev in zip(wanted, self._lookup_txs(list(wanted)), strict=True):
            for txid, n in wanted[prev_txid]:
                senders[txid] = _output_address(prev, n) if prev else None
        return senders

    def _lookup_txs(self, txids: list[str]) -> list[dict[str, Any] | None]:
        if not txids or not self._txindex:
            return [None] * len(txids)
        out: list[dict[str, Any] | None] = []
        for result in self._calls("getrawtransaction", [[t, True] for t in txids]):
            if isinstance(result, RpcError) and "txindex" in result.rpc_message.lower():
                self._txindex = False  # no index on this node: stop asking
            elif isinstance(result, LedgerError) and not isinstance(result, RpcError):
                raise result
            out.append(result if isinstance(result, dict) else None)
        return out

    def transaction(self, txid: str) -> TxStatus | None:
        try:
            tx = self._rpc.call("getrawtransaction", txid, True)
        except RpcError as exc:
            if exc.code not in (RPC_INVALID_ADDRESS_OR_KEY, RPC_INVALID_PARAMETER):
                raise
            return self._wallet_transaction(txid)
        return self._status(txid, tx.get("confirmations", 0), tx.get("blockhash"))

    def _wallet_transaction(self, txid: str) -> TxStatus | None:
        # Without -txindex, a confirmed transaction of our own wallet is still known there.
        try:
            tx = self._rpc.call("gettransaction", txid, wallet=True)
        except (RpcError, WalletError):
            return None
        return self._status(txid, tx.get("confirmations", 0), tx.get("blockhash"))

    def _status(self, txid: str, confirmations: int, block_hash: str | None) -> TxStatus:
        # 0: in the mempool; <0 (wallet: conflicted) or a stale block hash: not in a block now.
        if int(confirmations) < 1 or not block_hash:
            return TxStatus(txid, 0)
        height = int(self._rpc.call("getblockheader", block_hash)["height"])
        return TxStatus(txid, int(confirmations), height, str(block_hash))

    def find_payload(
        self, payload: str, *, since_height: int, sender: str | None = None
    ) -> TxRef | None:
        """The transaction carrying exactly ``payload``: in the mempool, else in a block from
        ``since_height`` up (see :func:`etdb.ledger.messages.find_payload`). The mempool is
        read first: a transaction mined meanwhile is then in a block when those are read."""
        pool = [str(t) for t in self._rpc.call("getrawmempool")]
        txs = self._calls("getrawtransaction", [[t, True] for t in pool])
        for tx in txs:  # errors in place: those left the mempool since (mined or dropped)
            if isinstance(tx, dict) and self.carrier.payload(tx) == payload:
                found = self._senders([], [tx])[str(tx["txid"])] if sender else None
                if found is None or found == sender:
                    return TxRef(str(tx["txid"]))
        return scan_blocks(self.blocks(since_height, self.tip().height), payload, sender)

    # -- writing ------------------------------------------------------------------------------

    def publish(self, payload: str) -> TxRef:
        size = payload_size(payload)
        if size == 0:
            raise LedgerError("nothing to publish: the payload is empty")
        if size > self.max_payload:
            hint = check_multipart_capable(self.carrier)
            raise PayloadTooLarge(
                f"payload is {size} bytes (UTF-8); {self.carrier.name} on {self.url} carries at "
                f"most {self.max_payload} per transaction -- send larger messages multipart"
                + (f"; {hint}" if hint else "")
            )
        check_room(self._rpc, self.options.chain_limit)  # before the wallet builds anything
        return TxRef(self.carrier.publish(payload))

    def estimate_fee(self, payload_bytes: int, transactions: int = 1) -> FeeEstimate:
        coin = self.options.coin
        if transactions < 1:
            return FeeEstimate(Decimal(0), coin, 0, payload_bytes, "nothing to send")
        rate, basis = self._fee_rate()
        # Spread the bytes over the transactions as evenly as the caller's plan would.
        each, extra = divmod(payload_bytes, transactions)
        total = extra * self._fee(rate, each + 1) + (transactions - extra) * self._fee(rate, each)
        return FeeEstimate(total, coin, transactions, payload_bytes, basis)

    def _fee(self, rate: Decimal, payload_bytes: int) -> Decimal:
        vsize = self.carrier.tx_vsize(payload_bytes)
        sats = math.ceil(rate * vsize / 1000 / _SATOSHI)  # nodes round fees up to a satoshi
        return Decimal(sats) * _SATOSHI

    def _fee_rate(self) -> tuple[Decimal, str]:
        coin = self.options.coin
        if self.options.fee_rate is not None:
            rate = self.options.fee_rate
            return rate, f"configured rate (?fee_rate=) {rate} {coin}/kvB"
        estimate = self._rpc.call("estimatesmartfee", FEE_TARGET_BLOCKS)
        rate = (
            Decimal(str(estimate.get("feerate", 0))) if isinstance(estimate, dict) else Decimal(0)
        )
        if rate > 0:
            return rate, f"node estimate (estimatesmartfee {FEE_TARGET_BLOCKS}) {rate} {coin}/kvB"
        relay = Decimal(str(self._rpc.call("getnetworkinfo").get("relayfee", 0)))
        rate = max(FALLBACK_FEE_RATE, relay)
        return rate, (
            f"fallback rate {rate} {coin}/kvB: the node has no fee estimate "
            "(regtest, or too few recent blocks); set ?fee_rate= to choose"
        )

    def close(self) -> None:
        self._rpc.close()


def _address(script: Mapping[str, Any]) -> str | None:
    # Bitcoin Core 22+ says "address"; 0.21 and flod 0.15 say "addresses": [...].
    if script.get("address"):
        return str(script["address"])
    addresses = script.get("addresses") or []
    return str(addresses[0]) if addresses else None


def _output_address(tx: Mapping[str, Any], n: int) -> str | None:
    for out in tx.get("vout", ()):
        if int(out.get("n", -1)) == n:
            return _address(out.get("scriptPubKey") or {})
    return None
