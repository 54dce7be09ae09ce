"""The OP_RETURN carrier (``btc+http://``) against a real Litecoin Core 0.21 regtest node.

One node serves the whole module (starting one takes ~1 s, but a fresh chain per test buys
nothing: the contract tests tolerate earlier entries and every test tags its own payloads).
The node runs with ``-datacarriersize=1100`` (1096 payload bytes per transaction) and
``-txindex=1``; see ``tests/ledger/litecoind.py``. Without litecoind these tests skip on a
laptop and fail in CI (``ETDB_REQUIRE_EXTERNAL=1``).
"""

from __future__ import annotations

import secrets
from decimal import Decimal

import pytest

from etdb.ledger import (
    BlockEvent,
    Cursor,
    InsufficientFunds,
    Ledger,
    PayloadTooLarge,
    Rollback,
    UnknownBlock,
    WalletError,
    follow,
    open_ledger,
)
from etdb.ledger.base import TxRef
from etdb.ledger.messages import find_payload
from tests.conftest import skip_or_fail
from tests.ledger.contract import Harness, LedgerContract
from tests.ledger.litecoind import LitecoindNode, litecoind_available, start_litecoind

pytestmark = pytest.mark.litecoind


def _require_litecoind() -> None:
    reason = litecoind_available()
    if reason:
        skip_or_fail(reason)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    _require_litecoind()
    started = start_litecoind(tmp_path_factory.mktemp("litecoind"))
    yield started
    started.close()


class LitecoindHarness(Harness):
    def __init__(self, node: LitecoindNode) -> None:
        self.node = node
        self._opened: list[Ledger] = []
        self.ledger = self.reopen()

    def reopen(self, **options) -> Ledger:
        ledger = open_ledger(self.node.ledger_url(**options))
        self._opened.append(ledger)
        return ledger

    def mine(self, blocks: int = 1) -> None:
        self.node.mine(blocks)

    def fork(self, depth: int) -> None:
        self.node.fork(depth)

    def bad_credentials(self) -> Ledger:
        return self.reopen(password="not-" + self.node.password)

    def stop_node(self) -> None:
        self.node.stop()

    def start_node(self) -> None:
        self.node.start()

    def close(self) -> None:
        for ledger in self._opened:
            ledger.close()


@pytest.fixture
def harness(node):
    h = LitecoindHarness(node)
    yield h
    h.close()


class TestLitecoindContract(LedgerContract):
    @pytest.fixture
    def backend(self, harness):
        return harness


def _entries(ledger, cursor=None):
    out, last = [], cursor or Cursor()
    for event in follow(ledger, cursor):
        assert isinstance(event, BlockEvent)
        out.extend(event.block.entries)
        last = event.cursor
    return out, last


def test_wrong_wallet_name_is_a_wallet_error(harness):
    ledger = harness.reopen(wallet="no-such-wallet")
    with pytest.raises(WalletError, match="createwallet no-such-wallet"):
        ledger.publish("text:nowhere")
    assert ledger.tip().height >= 0  # reading needs no wallet


def test_empty_wallet_is_insufficient_funds(harness, node):
    name = "empty-" + secrets.token_hex(3)
    node.call("createwallet", name)
    with pytest.raises(InsufficientFunds, match=name):
        harness.reopen(wallet=name).publish("text:broke")


def test_payload_limits_match_the_nodes_policy(harness, node):
    # The whole script counts against -datacarriersize=1100: 1 + 3 (PUSHDATA2) + 1096.
    assert harness.ledger.max_payload == 1096
    ref = harness.ledger.publish("x" * 1096)
    assert node.call("getmempoolentry", ref.txid)["vsize"] == 1221
    # Our own check, before anything is sent.
    small = harness.reopen(datacarriersize=100)
    mempool = node.call("getrawmempool")
    with pytest.raises(PayloadTooLarge, match="at most 97"):
        small.publish("y" * 98)
    assert node.call("getrawmempool") == mempool
    # A ledger told a larger limit than the node's: the node's refusal maps to the same error.
    lying = harness.reopen(datacarriersize=1101)
    with pytest.raises(PayloadTooLarge, match="scriptpubkey"):
        lying.publish("z" * 1097)
    node.mine(1)


def test_reorg_by_invalidate_then_reconsider(harness, node):
    ledger = harness.ledger
    ledger.publish("text:reorg-keep")
    node.mine(1)
    gone = ledger.publish("text:reorg-gone")
    node.mine(2)
    found, cursor = _entries(ledger)
    height = next(e.height for e in found if e.txid == gone.txid)
    orphaned_hash = ledger.block_hash(height)
    node.call("invalidateblock", orphaned_hash)
    events = list(follow(ledger, cursor))
    assert isinstance(events[0], Rollback) and events[0].from_height == height
    assert events[0].cursor.height == height - 1 and len(events) == 1  # nothing newer yet
    node.call("reconsiderblock", orphaned_hash)
    replay = list(follow(ledger, events[0].cursor))
    assert all(isinstance(e, BlockEvent) for e in replay)
    assert replay[0].block.height == height and replay[0].block.hash == orphaned_hash
    assert gone.txid in [e.txid for e in replay[0].block.entries]


def test_fee_estimate_fallback_is_what_the_wallet_pays(tmp_path):
    # A chain of its own: the shared one soon has a fee estimate (every wallet tx pays the
    # same rate), and the fallback must be seen on a node that has none.
    _require_litecoind()
    fresh = start_litecoind(tmp_path / "fresh")
    try:
        ledger = open_ledger(fresh.ledger_url())
        for size in (5, 80, 300, 1096):
            estimate = ledger.estimate_fee(size, 1)
            assert estimate.unit == "LTC" and "fallback rate 0.0002" in estimate.basis
            ref = ledger.publish("f" * size)
            tx = fresh.call("gettransaction", ref.txid, wallet=True)
            assert len(fresh.call("decoderawtransaction", tx["hex"])["vin"]) == 1
            # -fallbackfee=0.0002 and our fallback rate agree; so must the size model.
            assert estimate.total == -tx["fee"], size
        ledger.close()
    finally:
        fresh.close()


def test_fee_estimate_with_a_configured_rate(harness):
    configured = harness.reopen(fee_rate="0.001").estimate_fee(2000, 2)
    assert "fee_rate" in configured.basis and configured.transactions == 2
    assert configured.total == 2 * Decimal("0.001") * 1125 / 1000  # vsize 1125 per 1000 bytes
    estimated = harness.ledger.estimate_fee(1000)
    assert estimated.basis.startswith(("node estimate", "fallback"))


def test_entries_carry_the_funding_wallet_address(harness, node):
    ref = harness.ledger.publish("text:who-sent-this")
    node.mine(1)
    entry = next(
        e for e in harness.ledger.block(node.call("getblockcount")).entries if e.txid == ref.txid
    )
    assert entry.sender and node.call("getaddressinfo", entry.sender, wallet=True)["ismine"]


def test_foreign_op_returns_are_not_entries(harness, node):
    # Raw bytes that are not UTF-8, sent straight through the node.
    raw = node.call("createrawtransaction", [], {"data": "fffe00c3"})
    funded = node.call("fundrawtransaction", raw, wallet=True)
    signed = node.call("signrawtransactionwithwallet", funded["hex"], wallet=True)
    txid = node.call("sendrawtransaction", signed["hex"])
    node.mine(1)
    block = harness.ledger.block(node.call("getblockcount"))
    assert txid not in [e.txid for e in block.entries]
    # The coinbase's witness commitment is an OP_RETURN too, and never an entry.
    assert all(e.index > 0 for e in block.entries)


def test_reading_past_the_tip(harness):
    tip = harness.ledger.tip()
    with pytest.raises(UnknownBlock):
        harness.ledger.block(tip.height + 1)
    blocks = list(harness.ledger.blocks(tip.height - 2, tip.height + 5))
    assert [b.height for b in blocks] == [tip.height - 2, tip.height - 1, tip.height]
    assert blocks[-1].hash == tip.hash and blocks[1].parent_hash == blocks[0].hash


def test_mempool_status_then_confirmed(harness, node):
    ref = harness.ledger.publish("text:status")
    assert harness.ledger.transaction(ref.txid).confirmations == 0
    node.mine(3)
    status = harness.ledger.transaction(ref.txid)
    assert status.confirmations == 3 and status.height == node.call("getblockcount") - 2


def test_find_payload_in_the_mempool_then_in_a_block(harness, node):
    ledger = harness.ledger
    since = ledger.tip().height + 1
    text = "text:find me " + secrets.token_hex(4)
    ref = ledger.publish(text)
    # Sent, not mined: found in the mempool (no height yet); a resend would be a duplicate.
    assert find_payload(ledger, text, since_height=since) == TxRef(ref.txid)
    assert find_payload(ledger, text + "!", since_height=since) is None
    stranger = node.call("getnewaddress", wallet=True)
    assert find_payload(ledger, text, since_height=since, sender=stranger) is None
    node.mine(1)
    height = ledger.transaction(ref.txid).height
    assert find_payload(ledger, text, since_height=since) == TxRef(ref.txid, height)
    assert find_payload(ledger, text, since_height=height + 1) is None
    funder = next(e.sender for e in ledger.block(height).entries if e.txid == ref.txid)
    assert find_payload(ledger, text, since_height=since, sender=funder) == TxRef(ref.txid, height)
    assert find_payload(ledger, text, since_height=since, sender=stranger) is None
