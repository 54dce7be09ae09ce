"""Who pays for an EVM transaction: a node-held account, or a private key signing locally.

A node account is sent with ``eth_sendTransaction``, which is not idempotent (the node picks
the nonce), so it is never retried once the request may have reached the node. A local key
signs a complete transaction first; resending those exact bytes is harmless, and if the node
says it already has the transaction, that is success.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Protocol

from etdb.ledger.base import (
    InsufficientFunds,
    LedgerConfigError,
    LedgerError,
    PayloadTooLarge,
    WalletError,
)
from etdb.ledger.evm_rpc import JsonRpc, RpcError
from etdb.ledger.evm_url import EvmOptions

_NO_FUNDS = ("insufficient funds", "enough funds", "exceeds balance", "insufficient balance")
_NO_SIGNER = ("unknown account", "no signer", "not unlocked", "authentication needed")
_TOO_BIG = ("exceeds block gas limit", "oversized", "too large", "exceeds the configured cap")


class Signer(Protocol):
    @property
    def address(self) -> str:  # read-only: NodeAccount is frozen
        ...

    def send(self, rpc: JsonRpc, tx: dict[str, Any], chain_id: int) -> str:
        """Send ``tx`` (from, to, value, data, gas[, gasPrice]); the node's ``0x…`` hash."""
        ...


@dataclass(frozen=True)
class NodeAccount:
    address: str

    def send(self, rpc: JsonRpc, tx: dict[str, Any], chain_id: int) -> str:
        return str(rpc.call("eth_sendTransaction", tx, idempotent=False))


class LocalKey:
    """A private key held in memory only; never printed (``repr`` shows the address)."""

    def __init__(self, secret: str, env_name: str) -> None:
        try:
            from eth_account import Account
        except ImportError:
            raise LedgerConfigError(
                f"signing with the key in {env_name} needs eth-account: pip install 'etdb[evm]'"
            ) from None
        try:
            self._account = Account.from_key(secret.strip())
        except (ValueError, TypeError):
            raise LedgerConfigError(f"{env_name} does not hold a hex private key") from None
        self.address = str(self._account.address).lower()

    def __repr__(self) -> str:
        return f"LocalKey({self.address})"

    def send(self, rpc: JsonRpc, tx: dict[str, Any], chain_id: int) -> str:
        calls: list[tuple[str, tuple[Any, ...]]] = [
            ("eth_getTransactionCount", (self.address, "pending"))
        ]
        if "gasPrice" not in tx:
            calls.append(("eth_gasPrice", ()))
        # The node's pending count: right as long as one process sends for this key at a time.
        nonce, *price = rpc.batch(calls)
        # Legacy (type 0) EIP-155 transactions: accepted by every EVM chain and node; the gas
        # price (the node's suggestion) is all a type-2 fee would be in a quiet market.
        fields = {
            "nonce": int(nonce, 16),
            "gasPrice": int(tx.get("gasPrice") or price[0], 16),
            "gas": int(tx["gas"], 16),
            "value": 0,
            "data": tx["data"],
            "chainId": chain_id,
        }
        if tx.get("to"):
            fields["to"] = bytes.fromhex(tx["to"][2:])  # absent: a contract creation
        signed = self._account.sign_transaction(fields)
        txid = "0x" + bytes(signed.hash).hex()
        try:
            return str(
                rpc.call("eth_sendRawTransaction", "0x" + bytes(signed.raw_transaction).hex())
            )
        except RpcError:
            # An earlier attempt may have reached the node ("already known", "nonce too low").
            if rpc.call("eth_getTransactionByHash", txid) is not None:
                return txid
            raise


def local_signer(options: EvmOptions) -> LocalKey | None:
    """The key in ``options.key_env`` (checked against ``account=``), or None if unset."""
    secret = os.environ.get(options.key_env, "").strip()
    if not secret:
        return None
    key = LocalKey(secret, options.key_env)
    if options.account is not None and options.account != key.address:
        raise LedgerConfigError(
            f"{options.key_env} holds the key of {key.address}, but the URL says "
            f"account={options.account}: drop one of them"
        )
    return key


def send_error(exc: RpcError, sender: str, label: str) -> LedgerError:
    """The typed error for a node refusing to estimate or take a transaction."""
    message = exc.node_message
    low = message.lower()
    if any(s in low for s in _NO_FUNDS):
        return InsufficientFunds(f"{label}: {sender} cannot pay for the transaction: {message}")
    if any(s in low for s in _NO_SIGNER) or (
        exc.method == "eth_sendTransaction" and exc.code == -32601
    ):
        return WalletError(
            f"{label}: the node will not sign for {sender} ({message}); give a private key "
            "through ETDB_EVM_PRIVATE_KEY (or the variable key_env= names) to sign locally"
        )
    if any(s in low for s in _TOO_BIG):
        return PayloadTooLarge(
            f"{label}: the chain refused the size ({message}): lower max_payload"
        )
    if "revert" in low:
        return LedgerError(f"{label}: the transaction reverted: {message}")
    return LedgerError(f"{label}: {exc}")
