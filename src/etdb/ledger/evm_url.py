"""The ``evm+http(s)://`` ledger URL: parsing, validation, and a copy safe to print.

``evm+https://[user:password@]host[:port][/path]?option=value&...``

==================  ==========================================================================
``contract=0x…``    the etdb registry (``mode=log``, the default); deploy one with
                    ``python -m etdb.ledger.evm deploy URL``
``mode=``           ``log`` (registry event logs, found through the node's log index) or
                    ``calldata`` (plain transactions to ``sink``; readers scan every block)
``sink=0x…``        calldata mode: the address transactions go to (default: the sender's own)
``account=``        ``0x…`` address or index into the node's ``eth_accounts`` (default 0), used
                    when no private key is given; with a key, must match it if set
``key_env=``        the environment variable holding a hex private key to sign locally with
                    (default ``ETDB_EVM_PRIVATE_KEY``); keys never go in the URL
``publisher=0x…``   only read records sent by these addresses (comma-separated): topic1 filter
``confirmations=``  how deep a block must be before its records count (default 1)
``start=N``         first height that can hold records (the registry's deployment block)
``chain_id=N``      refuse to work if the node serves another chain
``gas_price=``      gas price in gwei (default: the node's ``eth_gasPrice``)
``max_payload=N``   payload bytes per transaction (default 24,000; see ``DEFAULT_MAX_PAYLOAD``)
``coin=``           unit fees are reported in (default ``ETH``)
``timeout=``,       seconds per HTTP request (30), retries after a transport failure (3),
``retries=``,       first back-off in seconds, doubled each retry (0.25)
``backoff=``
``batch=N``         JSON-RPC calls per HTTP batch (100); ``log_range=N`` blocks per
                    ``eth_getLogs`` (500, halved automatically when a provider refuses)
==================  ==========================================================================

An extra header (``Authorization: Bearer …``, ``X-Api-Key: …``) comes from the environment
variable ``ETDB_EVM_AUTH_HEADER`` as ``Name: value``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from etdb.ledger.base import LedgerConfigError
from etdb.ledger.urls import redact

#: 24,000 bytes: ~1M gas even with Prague's calldata floor (3% of a 30M-gas block) and far
#: below geth's 128 KiB transaction-size policy, so one part fits every mainstream chain and
#: mempool; larger OIP messages go multipart. Raise it (``max_payload=``) on a private chain.
DEFAULT_MAX_PAYLOAD = 24_000
KEY_ENV = "ETDB_EVM_PRIVATE_KEY"
AUTH_HEADER_ENV = "ETDB_EVM_AUTH_HEADER"

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_OPTIONS = {
    "contract", "mode", "sink", "account", "key_env", "publisher", "confirmations", "start",
    "chain_id", "gas_price", "max_payload", "coin", "timeout", "retries", "backoff", "batch",
    "log_range",
}  # fmt: skip
_SECRET_OPTIONS = {"key", "private_key", "privkey", "secret", "password", "mnemonic"}


@dataclass(frozen=True)
class EvmOptions:
    endpoint: str  # http(s) URL for the node, credentials included: never print it
    label: str  # the ledger URL without secrets
    mode: str = "log"
    contract: str | None = None
    sink: str | None = None
    account: str | None = None
    key_env: str = KEY_ENV
    publishers: tuple[str, ...] = ()
    confirmations: int = 1
    start: int = 0
    chain_id: int | None = None
    gas_price_wei: int | None = None
    max_payload: int = DEFAULT_MAX_PAYLOAD
    coin: str = "ETH"
    timeout: float = 30.0
    retries: int = 3
    backoff: float = 0.25
    batch: int = 100
    log_range: int = 500

    def headers(self) -> dict[str, str]:
        raw = os.environ.get(AUTH_HEADER_ENV, "").strip()
        if not raw:
            return {}
        name, sep, value = raw.partition(":")
        if not sep or not name.strip():
            raise LedgerConfigError(f"{AUTH_HEADER_ENV} must look like 'Name: value'")
        return {name.strip(): value.strip()}

    def with_contract(self, contract: str, start: int) -> EvmOptions:
        label = set_query(self.label, contract=contract, start=str(start))
        return replace(self, contract=contract, start=start, label=label)


def address(value: str, what: str) -> str:
    if not _ADDRESS.fullmatch(value):
        raise LedgerConfigError(f"{what} must be a 0x-prefixed 20-byte hex address, not {value!r}")
    return value.lower()


_Number = TypeVar("_Number", int, float, Decimal)
_Default = TypeVar("_Default")


def _number(
    opts: dict[str, str],
    name: str,
    cast: Callable[[str], _Number],
    default: _Default,
    minimum: _Number | None = None,
) -> _Number | _Default:
    if name not in opts:
        return default
    try:
        value = cast(opts[name])
    except (ValueError, InvalidOperation):
        raise LedgerConfigError(f"option {name}={opts[name]!r} is not a number") from None
    if minimum is not None and value < minimum:
        raise LedgerConfigError(f"option {name} must be at least {minimum}")
    return value


def set_query(url: str, **values: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in values]
    query += list(values.items())
    return urlunsplit(parts._replace(query=urlencode(query, safe=",")))


def parse(url: str, *, need_contract: bool = True) -> EvmOptions:
    """Options of an ``evm+http(s)://`` URL; LedgerConfigError on anything wrong or unknown."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("evm+http", "evm+https") or not parts.hostname:
        raise LedgerConfigError(f"not an evm+http(s):// ledger URL: {redact(url)}")
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    opts = dict(pairs)
    label = redact(url)
    if len(opts) != len(pairs):
        raise LedgerConfigError(f"an option is repeated in {label}")
    secret = _SECRET_OPTIONS & opts.keys()
    if secret:
        raise LedgerConfigError(
            f"option {sorted(secret)[0]!r} would put a secret in the ledger URL; give a private "
            f"key through the environment ({KEY_ENV}, or the variable key_env= names)"
        )
    unknown = opts.keys() - _OPTIONS
    if unknown:
        raise LedgerConfigError(f"unknown option(s) {sorted(unknown)} in {label}")
    mode = opts.get("mode", "log")
    if mode not in ("log", "calldata"):
        raise LedgerConfigError(f"mode must be log or calldata, not {mode!r}")
    contract = address(opts["contract"], "contract") if "contract" in opts else None
    if mode == "log" and contract is None and need_contract:
        raise LedgerConfigError(
            f"{label}: mode=log needs contract=0x… (deploy a registry with "
            "`python -m etdb.ledger.evm deploy URL`) or use mode=calldata"
        )
    account = opts.get("account") or None
    # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
    if account is not None and not (account.isascii() and account.isdigit()):
        account = address(account, "account")
    gwei = _number(opts, "gas_price", Decimal, None, Decimal(0))
    endpoint = urlunsplit((scheme.removeprefix("evm+"), parts.netloc, parts.path, "", ""))
    return EvmOptions(
        endpoint=endpoint,
        label=label,
        mode=mode,
        contract=contract,
        sink=address(opts["sink"], "sink") if "sink" in opts else None,
        account=account,
        key_env=opts.get("key_env") or KEY_ENV,
        publishers=tuple(
            address(a.strip(), "publisher") for a in opts.get("publisher", "").split(",") if a
        ),
        confirmations=_number(opts, "confirmations", int, 1, 1),
        start=_number(opts, "start", int, 0, 0),
        chain_id=_number(opts, "chain_id", int, None, 1),
        gas_price_wei=None if gwei is None else int(gwei * 10**9),
        max_payload=_number(opts, "max_payload", int, DEFAULT_MAX_PAYLOAD, 1),
        coin=opts.get("coin") or "ETH",
        timeout=_number(opts, "timeout", float, 30.0, 0.1),
        retries=_number(opts, "retries", int, 3, 0),
        backoff=_number(opts, "backoff", float, 0.25, 0.0),
        batch=_number(opts, "batch", int, 100, 1),
        log_range=_number(opts, "log_range", int, 500, 1),
    )
