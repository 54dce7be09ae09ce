"""The floData carrier (``flo+http://``) end to end, against a FAKE flod.

No FLO node can run on these machines (shared/reference/ledger.md), so these tests talk over
real HTTP to ``tests/ledger/fake_flod.py``: a small stand-in that answers getblockchaininfo,
getblockcount, getblockhash, getblockheader, getblock (verbosity 2), getrawtransaction,
gettransaction, getnewaddress, sendtoaddress, estimatesmartfee and getnetworkinfo with the
JSON shapes of Bitcoin Core 0.15 plus FLO's ``floData`` field. The shapes, and four real FLO
mainnet transactions used as fixtures, come from public sources listed in that module's
docstring (bitspill/flod ``flojson/chainsvrresults.go``, floblockchain/flo
``src/rpc/rawtransaction.cpp``, flosight answers captured in ihyf/node_json_rpc
``tests/test_socket.js``, go-etdb's ``dbet/flo.go``). What a real flod does beyond those
shapes (fees, policy messages) is NOT verified here.
"""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from etdb.ledger import (
    BlockEvent,
    Cursor,
    LedgerAuthError,
    LedgerUnavailable,
    PayloadTooLarge,
    Rollback,
    UnknownBlock,
    follow,
    open_ledger,
)
from etdb.ledger.base import TxRef
from etdb.ledger.bitcoin import BitcoinLedger
from etdb.ledger.carriers import FloDataCarrier
from etdb.ledger.messages import find_payload, publish_message
from etdb.record.multipart import MultipartAssembler, parse_part
from etdb.record.signing import PrivateKey
from tests.ledger.fake_flod import REAL_TXS, WALLET_ADDRESS, FakeFlod


@pytest.fixture
def flod():
    fake = FakeFlod()
    yield fake
    fake.close()


@pytest.fixture
def ledger(flod):
    led = open_ledger(flod.url())
    yield led
    led.close()


def entries(ledger, cursor=None):
    out, last = [], cursor or Cursor()
    for event in follow(ledger, cursor):
        assert isinstance(event, BlockEvent)
        out.extend(event.block.entries)
        last = event.cursor
    return out, last


def test_opens_as_a_flodata_ledger(ledger):
    assert isinstance(ledger, BitcoinLedger) and isinstance(ledger.carrier, FloDataCarrier)
    assert ledger.max_payload == 1040 and ledger.confirmations == 1
    assert "flo-secret" not in ledger.url and "flo@127.0.0.1" in ledger.url


def test_publish_sends_go_etdbs_sendtoaddress(flod, ledger):
    refs = [ledger.publish(f'json:{{"n":{i}}}') for i in range(3)]
    sends = flod.server.calls("sendtoaddress")
    assert [s.path for s in sends] == ["/wallet/etdb"] * 3
    for i, send in enumerate(sends):
        # go-etdb (bitspill/dbet dbet/flo.go): sendtoaddress <own addr> <amount> "" "" <floData>
        assert send.body["params"] == [WALLET_ADDRESS, "0.001", "", "", f'json:{{"n":{i}}}']
    assert flod.getnewaddress_calls == 1  # one own address, reused
    assert [r.txid for r in refs] == [tx["txid"] for tx in flod.mempool]


def test_configured_address_amount_and_argument_position(flod):
    led = open_ledger(
        flod.url(address="FFzgFX8nj743byU5cnWCdv1neHAo6DrSoy", amount="0.1", flodata_arg=9)
    )
    try:
        led.publish("text:hello")
    finally:
        led.close()
    params = flod.server.calls("sendtoaddress")[0].body["params"]
    # Flo Core builds that kept Bitcoin Core 0.15's arguments 5-8 take floData 9th.
    assert params == [
        "FFzgFX8nj743byU5cnWCdv1neHAo6DrSoy",
        "0.1",
        "",
        "",
        False,
        None,
        None,
        None,
        "text:hello",
    ]
    assert flod.getnewaddress_calls == 0


def test_read_back_entries_with_sender(flod, ledger):
    payloads = [f'json:{{"test":"read","n":{i}}}' for i in range(3)]
    refs = [ledger.publish(p) for p in payloads[:2]]
    flod.mine()
    refs.append(ledger.publish(payloads[2]))
    flod.mine()
    found, cursor = entries(ledger)
    ours = [e for e in found if e.payload in payloads]
    assert [e.payload for e in ours] == payloads
    assert [e.txid for e in ours] == [r.txid for r in refs]
    assert all(e.sender == WALLET_ADDRESS for e in ours)
    assert [(e.height, e.index) for e in ours] == [(3, 1), (3, 2), (4, 1)]
    assert cursor.height == flod.height
    block = ledger.block(3)
    assert block.parent_hash == ledger.block_hash(2) and block.entries[0].block_hash == block.hash


def test_real_mainnet_transactions(ledger):
    found, _ = entries(ledger)
    by_txid = {e.txid: e for e in found}
    # Only transactions with non-empty floData are entries.
    assert set(by_txid) == {REAL_TXS[1]["txid"], REAL_TXS[2]["txid"]}
    mc = by_txid[REAL_TXS[1]["txid"]]
    assert mc.payload == "mc测试转账" and mc.index == 3 and mc.height == 1
    # Funded by the block's previous transaction (found in the block itself).
    assert mc.sender == "FBjBWwd4Bm8MAYdJqqLB2pvDXzP1AomBXK"
    joseph = by_txid[REAL_TXS[2]["txid"]]
    assert joseph.payload == "Hi Joseph, i am mc from china."
    assert joseph.sender is None  # its funding transaction is unknown to this node


def test_limit_is_1040_utf8_bytes(flod, ledger):
    ledger.publish("é" * 520)  # 520 characters, 1040 bytes: fits
    with pytest.raises(PayloadTooLarge, match="1042 bytes"):
        ledger.publish("é" * 521)
    assert len(flod.server.calls("sendtoaddress")) == 1  # refused before sending


def test_multipart_message_reassembles(flod, ledger):
    key = PrivateKey(bytes([0x22]) * 32)
    message = "json:" + "é" * 100 + "z" * 2500
    refs = publish_message(ledger, message, key)
    assert len(refs) == 4  # 2705 bytes: 840 + 3 x 790 at most (go-etdb's chunk sizes)
    sent = [s.body["params"][4] for s in flod.server.calls("sendtoaddress")]
    assert all(len(p.encode()) <= 1040 for p in sent)
    assert sent[0].startswith("oip-mp(0,3,") and refs[0].txid in sent[1]
    flod.mine()
    found, _ = entries(ledger)
    assembler, done = MultipartAssembler(), []
    by_txid = {e.txid: e for e in found}
    for ref in refs:
        result = assembler.add(parse_part(by_txid[ref.txid].payload), ref.txid)
        if result is not None:
            done.append(result)
    assert [d.data for d in done] == [message] and done[0].txid == refs[0].txid


def test_reorg_is_reported_and_orphans_not_replayed(flod, ledger):
    ledger.publish("text:keep")
    flod.mine()
    lost = ledger.publish("text:orphan")
    flod.mine()
    found, cursor = entries(ledger)
    orphan_height = next(e.height for e in found if e.txid == lost.txid)
    flod.reorg(orphan_height, new_blocks=2)
    events = list(follow(ledger, cursor))
    assert isinstance(events[0], Rollback) and events[0].from_height == orphan_height
    replayed = [e for ev in events[1:] for e in ev.block.entries]
    assert not [e for e in replayed if e.txid == lost.txid]
    assert events[-1].cursor.height == flod.height
    status = ledger.transaction(lost.txid)  # back in the mempool, like a real node
    assert status is not None and status.confirmations == 0


def test_block_leaving_the_chain_between_hash_and_read_is_read_again(flod, ledger):
    ledger.publish("text:race")
    flod.mine()
    height = flod.height
    flod.before_getblock = lambda: flod.reorg(height, new_blocks=1)
    block = ledger.block(height)
    assert block.hash == flod.blocks[height]["hash"]  # the new block, not the orphaned one
    assert not block.entries


def test_block_past_the_tip(ledger, flod):
    with pytest.raises(UnknownBlock):
        ledger.block(flod.height + 1)
    assert ledger.block_hash(flod.height + 1) is None and ledger.block_hash(-1) is None
    assert list(ledger.blocks(flod.height, flod.height + 10))[-1].height == flod.height


def test_transaction_status(flod, ledger):
    ref = ledger.publish("text:status")
    assert ledger.transaction(ref.txid).confirmations == 0
    flod.mine(2)
    status = ledger.transaction(ref.txid)
    assert (status.confirmations, status.height) == (2, flod.height - 1)
    assert status.block_hash == flod.blocks[flod.height - 1]["hash"]
    assert ledger.transaction("ab" * 32) is None


def test_bad_credentials(flod):
    bad = open_ledger(flod.url(password="wrong-password"))
    with pytest.raises(LedgerAuthError) as caught:
        bad.tip()
    assert "wrong-password" not in str(caught.value) and "flo-secret" not in str(caught.value)
    assert len(flod.server.seen) == 1  # not retried


def test_node_down_then_back(flod, ledger):
    _, cursor = entries(ledger)
    flod.server.stop()
    started = time.monotonic()
    with pytest.raises(LedgerUnavailable, match="gave up after 3 attempts"):
        list(follow(ledger, Cursor()))
    assert time.monotonic() - started < 2.0  # retries=2, backoff=0.01: bounded and quick
    flod.server.start()  # same port
    ledger.publish("text:back")
    flod.mine()
    rest, _ = entries(ledger, cursor)
    assert [e.payload for e in rest] == ["text:back"]


def test_fee_estimate_bases(flod, ledger):
    # No node estimate: the documented fallback rate (0.0002 FLO/kvB).
    fallback = ledger.estimate_fee(1000, 1)
    assert fallback.unit == "FLO" and "fallback" in fallback.basis
    # one P2PKH input, payment + change outputs, 1000 floData bytes (+3 length bytes)
    vsize = 10 + 148 + 2 * 34 + 3 + 1000
    assert fallback.total == Decimal("0.0002") * vsize / 1000
    flod.feerate = Decimal("0.001")
    estimated = ledger.estimate_fee(2000, 2)
    assert "estimatesmartfee" in estimated.basis and estimated.transactions == 2
    assert estimated.total == 2 * Decimal("0.001") * (10 + 148 + 68 + 3 + 1000) / 1000
    configured = open_ledger(flod.url(fee_rate="0.01", coin="flo"))
    assert (
        "fee_rate" in configured.estimate_fee(10).basis
        and configured.estimate_fee(10).unit == "FLO"
    )


def test_without_batches(flod):
    flod.server.batch_reply = (
        500,
        b'{"result":null,"error":{"code":-32700,"message":"Parse error"},"id":null}',
    )
    led = open_ledger(flod.url())
    found, cursor = entries(led)
    assert len(found) == 2 and cursor.height == flod.height
    led_no_batch = open_ledger(flod.url(batch=0))
    assert len(entries(led_no_batch)[0]) == 2


def test_find_payload_in_the_mempool_then_in_a_block(flod, ledger):
    since = ledger.tip().height + 1
    text = 'json:{"test":"find"}'
    ref = ledger.publish(text)
    # Sent, not mined: found in the mempool without a height (a resend would duplicate it).
    assert find_payload(ledger, text, since_height=since) == TxRef(ref.txid)
    assert find_payload(ledger, text, since_height=since, sender=WALLET_ADDRESS) == TxRef(ref.txid)
    assert find_payload(ledger, text, since_height=since, sender="Fstranger") is None
    assert find_payload(ledger, text + " ", since_height=since) is None
    flod.mine()
    assert find_payload(ledger, text, since_height=since) == TxRef(ref.txid, since)
    assert find_payload(ledger, text, since_height=since + 1) is None
    # A reorg puts it back in the mempool: still found, never sent twice.
    flod.reorg(since, 2)
    assert find_payload(ledger, text, since_height=since) == TxRef(ref.txid)
