"""Where a payload rides in a Bitcoin-family transaction: FLO's floData, or an OP_RETURN output.

Each carrier knows how to send one payload through the node's wallet, how to find it again in
a verbose transaction (``getblock <hash> 2``), the largest payload it carries, and how many
virtual bytes a carrying transaction takes (for fee estimates).

floData (FLO, as ETDB-Caltech used it)
    ``sendtoaddress <own address> <amount> "" "" <floData>``, exactly go-etdb's call
    (bitspill/dbet ``dbet/flo.go``). The limit, ``MAX_FLO_DATA_SIZE`` = 1040, applies to the
    C++ ``std::string`` flod keeps, i.e. to **UTF-8 bytes**, not characters -- the same unit as
    :func:`etdb.ledger.base.payload_size`. floData is serialized after nLockTime as a
    length-prefixed string (version >= 2 transactions), so it adds ``varint + n`` bytes.
    Coinbase floData (miners write some) is read like any other; its sender is None.

OP_RETURN (Bitcoin, Litecoin...)
    The payload is the data of one nulldata output (``createrawtransaction [] {"data": hex}``,
    funded, signed and sent by the wallet). The node's ``-datacarriersize`` limits the *whole*
    output script: OP_RETURN (1 byte) + the push opcode(s) (1, 2, 3 or 5 bytes) + the data, so
    Bitcoin Core's default of 83 leaves 80 payload bytes and 1100 leaves 1096.
    Reading: outputs of type ``nulldata``; the pushes after OP_RETURN are concatenated (a writer
    may split data over several pushes; ours never does); an output with a non-data opcode or
    whose bytes are not UTF-8 is not a payload; the first payload output of a transaction wins
    (an entry is one payload per transaction). Coinbase transactions are skipped: their nulldata
    outputs are witness or merge-mining commitments, never OIP records.
    OIP multipart headers take about 140 bytes, so multipart messages need a data-carrier
    limit of at least ~250 bytes; Bitcoin Core's default 83 only fits single small records.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any, Protocol

from etdb.ledger.base import LedgerConfigError, WalletError
from etdb.ledger.rpc import RpcClient
from etdb.ledger.rpc_errors import RPC_METHOD_NOT_FOUND, RPC_VERIFY_ALREADY_IN_CHAIN, RpcError
from etdb.record.multipart import FLO_DATA_LIMIT

#: Bitcoin Core's default -datacarriersize (script bytes): OP_RETURN + OP_PUSHDATA1 + 80.
DEFAULT_DATACARRIER_SIZE = 83
#: Below this a multipart part's header (~140 bytes) plus useful data cannot fit.
MULTIPART_MIN_PAYLOAD = 250

_OP_RETURN = 0x6A
_OP_PUSHDATA1, _OP_PUSHDATA2, _OP_PUSHDATA4 = 0x4C, 0x4D, 0x4E

# Serialized sizes (bytes; witness bytes count 1/4) of the parts of a one-input transaction.
_TX_OVERHEAD = 10  # version 4 + input count 1 + output count 1 + locktime 4
_SEGWIT_MARKER = 0.5  # marker + flag: 2 weight units
_P2PKH_INPUT = 148  # outpoint 36 + script 1+107 + sequence 4
_P2WPKH_INPUT = 68  # outpoint 36 + empty script 1 + sequence 4 + witness 108/4 (rounded)
_P2PKH_OUTPUT = 34  # value 8 + script 1+25
_P2WPKH_OUTPUT = 31  # value 8 + script 1+22


def compact_size_len(n: int) -> int:
    """Bytes of Bitcoin's CompactSize length prefix for ``n``."""
    return 1 if n < 0xFD else 3 if n <= 0xFFFF else 5 if n <= 0xFFFFFFFF else 9


def push_overhead(n: int) -> int:
    """Opcode bytes of the minimal push of ``n`` bytes (as Bitcoin Core's ``CScript <<``)."""
    return 1 if n <= 75 else 2 if n <= 0xFF else 3 if n <= 0xFFFF else 5


def opreturn_script_size(n: int) -> int:
    return 1 + push_overhead(n) + n


def max_opreturn_payload(datacarriersize: int) -> int:
    """The most payload bytes a nulldata script of at most ``datacarriersize`` bytes holds."""
    best = 0
    for overhead, cap in ((1, 75), (2, 0xFF), (3, 0xFFFF), (5, 0xFFFFFFFF)):
        n = min(cap, datacarriersize - 1 - overhead)
        if n >= 0 and push_overhead(n) == overhead:
            best = max(best, n)
    return best


def nulldata_payload(script: bytes) -> bytes | None:
    """The concatenated pushes after OP_RETURN, or None if ``script`` is not pure push data."""
    if not script or script[0] != _OP_RETURN:
        return None
    out, i = bytearray(), 1
    while i < len(script):
        op = script[i]
        i += 1
        if op == 0:  # OP_0 pushes nothing
            continue
        if op <= 75:
            size = op
        elif op in (_OP_PUSHDATA1, _OP_PUSHDATA2, _OP_PUSHDATA4):
            width = {_OP_PUSHDATA1: 1, _OP_PUSHDATA2: 2, _OP_PUSHDATA4: 4}[op]
            if i + width > len(script):
                return None
            size = int.from_bytes(script[i : i + width], "little")
            i += width
        else:  # OP_1NEGATE, OP_1..OP_16 (numbers) or any other opcode: not our data
            return None
        if i + size > len(script):
            return None
        out += script[i : i + size]
        i += size
    return bytes(out)


def _is_coinbase(tx: dict[str, Any]) -> bool:
    vin = tx.get("vin") or []
    return bool(vin) and "coinbase" in vin[0]


class Carrier(Protocol):
    name: str
    max_payload: int

    def payload(self, tx: dict[str, Any]) -> str | None:
        """The payload a verbose transaction carries, or None."""
        ...

    def tx_vsize(self, payload_bytes: int) -> int:
        """Virtual size of a typical one-input transaction carrying ``payload_bytes``."""
        ...

    def publish(self, payload: str) -> str:
        """Send ``payload`` (already size-checked); return the txid."""
        ...


class FloDataCarrier:
    """floData: go-etdb's ``sendtoaddress`` to the wallet's own address."""

    name = "floData"
    max_payload = FLO_DATA_LIMIT

    def __init__(
        self, rpc: RpcClient, *, amount: Decimal, address: str | None, flodata_arg: int = 5
    ) -> None:
        if flodata_arg not in (5, 9):
            raise LedgerConfigError("flodata_arg must be 5 (go-etdb's call) or 9 (see docs)")
        self._rpc = rpc
        self._amount = amount
        self._address = address
        self._flodata_arg = flodata_arg

    def address(self) -> str:
        # go-etdb sent every record to its own address; one new wallet address, then reused.
        if self._address is None:
            self._address = str(self._rpc.call("getnewaddress", wallet=True))
        return self._address

    def publish(self, payload: str) -> str:
        params: list[Any] = [self.address(), self._amount, "", ""]
        if self._flodata_arg == 9:
            # Flo Core builds whose sendtoaddress keeps Bitcoin Core 0.15's arguments 5-8
            # (subtractfeefromamount, replaceable, conf_target, estimate_mode) first.
            params += [False, None, None, None]
        # Not idempotent: a retried sendtoaddress after a lost reply would pay twice.
        return str(self._rpc.call("sendtoaddress", *params, payload, wallet=True, idempotent=False))

    def payload(self, tx: dict[str, Any]) -> str | None:
        data = tx.get("floData")
        return data if isinstance(data, str) and data else None

    def tx_vsize(self, payload_bytes: int) -> int:
        # Legacy (P2PKH) coins as ETDB's "F..." wallets: payment + change + floData string.
        return (
            _TX_OVERHEAD
            + _P2PKH_INPUT
            + 2 * _P2PKH_OUTPUT
            + compact_size_len(payload_bytes)
            + payload_bytes
        )


class OpReturnCarrier:
    """One nulldata output, funded, signed and broadcast through the wallet."""

    name = "OP_RETURN"

    def __init__(
        self,
        rpc: RpcClient,
        *,
        datacarriersize: int = DEFAULT_DATACARRIER_SIZE,
        fee_rate: Decimal | None = None,
    ) -> None:
        if datacarriersize < 3:
            raise LedgerConfigError("datacarriersize must be at least 3 (OP_RETURN + a push)")
        self._rpc = rpc
        self.datacarriersize = datacarriersize
        self.max_payload = max_opreturn_payload(datacarriersize)
        self._fee_rate = fee_rate

    def publish(self, payload: str) -> str:
        rpc = self._rpc
        raw = rpc.call("createrawtransaction", [], {"data": payload.encode("utf-8").hex()})
        options: dict[str, Any] = {}
        if self._fee_rate is not None:
            options["feeRate"] = self._fee_rate  # coin per kvB, as ?fee_rate=
        funded = rpc.call("fundrawtransaction", raw, options, wallet=True)
        signed = self._sign(str(funded["hex"]))
        try:
            # Safe to retry: the same signed transaction can only be accepted once.
            return str(rpc.call("sendrawtransaction", signed))
        except RpcError as exc:
            if exc.code != RPC_VERIFY_ALREADY_IN_CHAIN:
                raise
            return str(rpc.call("decoderawtransaction", signed)["txid"])

    def _sign(self, tx_hex: str) -> str:
        try:
            result = self._rpc.call("signrawtransactionwithwallet", tx_hex, wallet=True)
        except RpcError as exc:
            if exc.code != RPC_METHOD_NOT_FOUND:
                raise
            # Nodes older than Bitcoin Core 0.17 (flod 0.15) only have the old name.
            result = self._rpc.call("signrawtransaction", tx_hex, wallet=True)
        if not result.get("complete"):
            errors = "; ".join(str(e.get("error")) for e in result.get("errors", []))
            raise WalletError(
                f"the wallet could not sign the transaction: {errors or 'incomplete'}"
            )
        return str(result["hex"])

    def payload(self, tx: dict[str, Any]) -> str | None:
        if _is_coinbase(tx):
            return None
        for out in tx.get("vout", ()):
            script = out.get("scriptPubKey") or {}
            if script.get("type") != "nulldata":
                continue
            try:
                data = nulldata_payload(bytes.fromhex(str(script.get("hex", ""))))
                text = data.decode("utf-8") if data else None
            except (ValueError, UnicodeDecodeError):
                continue
            if text:
                return text
        return None

    def tx_vsize(self, payload_bytes: int) -> int:
        # One P2WPKH input, P2WPKH change, and the nulldata output (value 8 + script).
        script = opreturn_script_size(payload_bytes)
        out = 8 + compact_size_len(script) + script
        return math.ceil(_TX_OVERHEAD + _SEGWIT_MARKER + _P2WPKH_INPUT + _P2WPKH_OUTPUT + out)


def check_multipart_capable(carrier: Carrier) -> str | None:
    """A warning when messages needing multipart cannot be sent on this carrier, else None."""
    if carrier.max_payload < MULTIPART_MIN_PAYLOAD:
        return (
            f"{carrier.name} carries at most {carrier.max_payload} bytes per transaction; OIP "
            f"multipart headers take ~140 bytes, so records over {carrier.max_payload} bytes "
            f"need a data-carrier limit of at least {MULTIPART_MIN_PAYLOAD} bytes "
            "(node option -datacarriersize, ledger option ?datacarriersize=)"
        )
    return None


__all__ = [
    "DEFAULT_DATACARRIER_SIZE",
    "MULTIPART_MIN_PAYLOAD",
    "Carrier",
    "FloDataCarrier",
    "OpReturnCarrier",
    "check_multipart_capable",
    "compact_size_len",
    "max_opreturn_payload",
    "nulldata_payload",
    "opreturn_script_size",
    "push_overhead",
]
