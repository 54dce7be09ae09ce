"""Bitcoin Core's JSON-RPC error codes, and what each means for a ledger user.

Codes from Bitcoin Core ``src/rpc/protocol.h`` (flod 0.15 and Litecoin Core share them); the
messages matched below are the nodes' own (checked against litecoind 0.21).
"""

from __future__ import annotations

import re

from etdb.ledger.base import (
    InsufficientFunds,
    LedgerError,
    PayloadTooLarge,
    WalletError,
)

RPC_MISC_ERROR = -1
RPC_INVALID_ADDRESS_OR_KEY = -5
RPC_WALLET_INSUFFICIENT_FUNDS = -6
RPC_INVALID_PARAMETER = -8
RPC_WALLET_ERROR = -4
RPC_WALLET_UNLOCK_NEEDED = -13
RPC_WALLET_PASSPHRASE_INCORRECT = -14
RPC_WALLET_WRONG_ENC_STATE = -15
RPC_WALLET_NOT_FOUND = -18
RPC_WALLET_NOT_SPECIFIED = -19
RPC_VERIFY_ERROR = -25
RPC_VERIFY_REJECTED = -26
RPC_VERIFY_ALREADY_IN_CHAIN = -27
RPC_IN_WARMUP = -28
RPC_METHOD_NOT_FOUND = -32601

# Policy rejections that mean "this payload is too big for the node's relay rules".
_TOO_LARGE_HINTS = ("scriptpubkey", "datacarrier", "tx-size", "flo-data", "flodata", "oversize")


# "too-long-mempool-chain, too many unconfirmed ancestors [limit: 25]" (mempool policy), and the
# wallet's own check under -walletrejectlongchains ("Transaction has too long of a mempool chain").
_CHAIN_HINTS = ("too-long-mempool-chain", "too long of a mempool chain")
_LIMIT = re.compile(r"\[limit: (\d{1,9})\]")


class ChainTooLong(LedgerError):
    """Nothing was sent: the node takes no more unconfirmed transactions in a row (its
    ``-limitancestorcount``/``-limitdescendantcount``, default 25) until a block confirms some.

    ``unconfirmed`` is how many are waiting in the chain we would extend, where known."""

    def __init__(self, message: str, *, unconfirmed: int | None = None) -> None:
        super().__init__(message)
        self.unconfirmed = unconfirmed


def chain_too_long(method: str, message: str) -> ChainTooLong:
    """The node's refusal of a too-long unconfirmed chain (the limit it names, if any)."""
    found = _LIMIT.search(message)
    return ChainTooLong(
        f"{method} refused: {message[:200]}; too many unconfirmed transactions in a row -- "
        "wait for a block before publishing more",
        unconfirmed=int(found.group(1)) if found else None,
    )


class RpcError(LedgerError):
    """The node answered a call with a JSON-RPC error that has no more specific meaning."""

    def __init__(self, method: str, code: int, message: str) -> None:
        super().__init__(f"{method} failed: {message} (RPC error {code})")
        self.method = method
        self.code = code
        self.rpc_message = message


def map_rpc_error(
    method: str, code: int, message: str, *, url: str, wallet: str | None
) -> LedgerError:
    """The typed error for a node's JSON-RPC error ``code``/``message`` from ``method``."""
    lowered = message.lower()
    name = wallet or ""
    if code == RPC_WALLET_NOT_FOUND:
        return WalletError(
            f"wallet {name!r} is not loaded on {url}: load or create it "
            f"(`loadwallet {name}` or `createwallet {name}`), or name another with ?wallet="
        )
    if code == RPC_WALLET_NOT_SPECIFIED:
        return WalletError(
            f"{url} has several wallets loaded (or none): name the one to pay with ?wallet=NAME, "
            "or load or create one with `createwallet`"
        )
    if code == RPC_WALLET_UNLOCK_NEEDED:
        return WalletError(f"wallet {name!r} on {url} is locked: unlock it (walletpassphrase)")
    if code in (RPC_WALLET_PASSPHRASE_INCORRECT, RPC_WALLET_WRONG_ENC_STATE):
        return WalletError(f"wallet {name!r} on {url}: {message}")
    if code == RPC_WALLET_ERROR and any(hint in lowered for hint in _CHAIN_HINTS):
        return chain_too_long(method, message)
    if code == RPC_WALLET_INSUFFICIENT_FUNDS or (
        code == RPC_WALLET_ERROR and "insufficient funds" in lowered
    ):
        return InsufficientFunds(
            f"wallet {name!r} on {url} cannot pay for {method}: {message}; fund one of its "
            "addresses (getnewaddress) and wait for a confirmation"
        )
    if code in (RPC_VERIFY_REJECTED, RPC_VERIFY_ERROR):
        if any(hint in lowered for hint in _TOO_LARGE_HINTS):
            return PayloadTooLarge(
                f"the node's relay policy refused the transaction ({message}): the payload is "
                "larger than the node's data-carrier limit (-datacarriersize); lower max_payload "
                "or raise the node's limit"
            )
        if any(hint in lowered for hint in _CHAIN_HINTS):
            return chain_too_long(method, message)
        return LedgerError(f"{method} refused by the node's policy: {message} (RPC error {code})")
    return RpcError(method, code, message)
