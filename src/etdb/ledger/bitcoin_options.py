"""The options of a ``flo+`` / ``btc+`` ledger URL (its query string), checked and typed.

What each option means is listed in :mod:`etdb.ledger.bitcoin`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from etdb.ledger.base import LedgerConfigError
from etdb.ledger.carriers import DEFAULT_DATACARRIER_SIZE
from etdb.ledger.chain_limit import DEFAULT_CHAIN_LIMIT

DEFAULT_CONFIRMATIONS = 6
DEFAULT_FLO_AMOUNT = Decimal("0.001")

_RPC_OPTIONS = {"retries", "timeout", "backoff", "retry_for", "cookie"}
_COMMON = {"wallet", "confirmations", "coin", "fee_rate", "batch", "chain_limit"} | _RPC_OPTIONS
_KNOWN = {
    "flo": _COMMON | {"address", "amount", "flodata_arg"},
    "btc": _COMMON | {"datacarriersize"},
}
DEFAULTS = {"flo": ("FLO", 7313), "btc": ("BTC", 8332)}


@dataclass(frozen=True, slots=True)
class BitcoinOptions:
    family: str  # "flo" or "btc"
    coin: str
    confirmations: int
    fee_rate: Decimal | None
    batch: bool
    address: str | None = None
    amount: Decimal = DEFAULT_FLO_AMOUNT
    flodata_arg: int = 5
    datacarriersize: int = DEFAULT_DATACARRIER_SIZE
    chain_limit: int = DEFAULT_CHAIN_LIMIT


def parse_options(family: str, options: Mapping[str, str]) -> BitcoinOptions:
    unknown = sorted(set(options) - _KNOWN[family])
    if unknown:
        raise LedgerConfigError(
            f"unknown option(s) {', '.join(unknown)} for {family}+ ledgers "
            f"(known: {', '.join(sorted(_KNOWN[family]))})"
        )

    def integer(key: str, default: int, minimum: int) -> int:
        try:
            value = int(options.get(key, default))
        except ValueError:
            raise LedgerConfigError(f"option {key}={options[key]!r} is not an integer") from None
        if value < minimum:
            raise LedgerConfigError(f"option {key} must be at least {minimum}")
        return value

    def amount(key: str) -> Decimal | None:
        if key not in options:
            return None
        try:
            value = Decimal(options[key])
        except InvalidOperation:
            raise LedgerConfigError(f"option {key}={options[key]!r} is not a number") from None
        if not value.is_finite() or value <= 0:
            raise LedgerConfigError(f"option {key} must be a positive amount")
        return value

    return BitcoinOptions(
        family=family,
        coin=(options.get("coin") or DEFAULTS[family][0]).upper(),
        confirmations=integer("confirmations", DEFAULT_CONFIRMATIONS, 1),
        fee_rate=amount("fee_rate"),
        batch=options.get("batch", "1") not in ("0", "false", "no"),
        address=options.get("address") or None,
        amount=amount("amount") or DEFAULT_FLO_AMOUNT,
        flodata_arg=integer("flodata_arg", 5, 5),
        datacarriersize=integer("datacarriersize", DEFAULT_DATACARRIER_SIZE, 3),
        chain_limit=integer("chain_limit", DEFAULT_CHAIN_LIMIT, 0),
    )
