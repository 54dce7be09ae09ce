"""Seeing, before sending, that the node would refuse another unconfirmed transaction in a row.

Bitcoin Core and its kin (Litecoin Core, flod) keep at most ``-limitancestorcount`` (default 25)
unconfirmed transactions in one chain: a transaction spending the change of 25 unconfirmed ones
is refused (``too-long-mempool-chain``). Worse, a wallet call such as flod's ``sendtoaddress``
may keep such a transaction in the wallet and answer with its txid although no node has it. So
before each send :func:`check_room` asks the wallet which coins it could spend: a confirmed one,
or an unconfirmed one whose chain is shorter than the limit, means room; otherwise
:class:`~etdb.ledger.rpc_errors.ChainTooLong` is raised and nothing is built or sent. The node's
own refusal maps to the same error (:mod:`etdb.ledger.rpc_errors`), so a wrong guess here costs
nothing but the send. Waiting for a block is the caller's business (``etdb.publish.outbox``).
"""

from __future__ import annotations

from typing import Any

from etdb.ledger.rpc import RpcClient
from etdb.ledger.rpc_errors import ChainTooLong, RpcError

#: Bitcoin Core's -limitancestorcount / -limitdescendantcount default (Litecoin Core, flod too).
DEFAULT_CHAIN_LIMIT = 25
#: Unconfirmed coins looked at (a wallet holds few; a huge list is not worth the calls).
_MAX_CHECKED = 50
_MAX_CONF = 9_999_999


def check_room(rpc: RpcClient, limit: int) -> None:
    """Raise ChainTooLong when every coin the wallet could spend ends a chain of ``limit``
    unconfirmed transactions (``limit`` 0: never). Answers this check cannot read are left to
    the node's own refusal."""
    if limit <= 0:
        return
    try:
        query = {"maximumCount": 1}
        confirmed = rpc.call("listunspent", 1, _MAX_CONF, [], True, query, wallet=True)
        if not isinstance(confirmed, list) or confirmed:
            return
        pending = rpc.call("listunspent", 0, 0, wallet=True)
    except RpcError:  # a node without these calls (or options): its refusal still tells
        return
    if not isinstance(pending, list) or not pending:
        return  # nothing to spend at all: the node says so (insufficient funds)
    shallowest = None
    for coin in pending[:_MAX_CHECKED]:
        depth = _depth(rpc, coin)
        if depth is None or depth < limit:
            return  # room (or an answer we cannot read: let the node decide)
        shallowest = depth if shallowest is None else min(shallowest, depth)
    raise ChainTooLong(
        f"every coin of the wallet ends a chain of at least {shallowest} unconfirmed "
        f"transactions (the node's limit is {limit}, ?chain_limit=): nothing was sent -- wait "
        "for a block before publishing more",
        unconfirmed=shallowest,
    )


def _depth(rpc: RpcClient, coin: Any) -> int | None:
    """Unconfirmed transactions in the chain ending with ``coin``'s transaction, itself included;
    None if unknown (e.g. mined meanwhile)."""
    txid = coin.get("txid") if isinstance(coin, dict) else None
    if not isinstance(txid, str):
        return None
    try:
        entry = rpc.call("getmempoolentry", txid)
    except RpcError:  # "Transaction not in mempool": confirmed since, or never relayed
        return None
    count = entry.get("ancestorcount") if isinstance(entry, dict) else None
    return count if isinstance(count, int) and not isinstance(count, bool) else None
