"""The EVM ledger against real nodes: the shared contract in both carrier modes, then what only
an EVM chain has (publisher filters, local signing, gas, provider limits).

One ganache node serves the module (its chain survives the node-down test's restart); each
test gets a fresh registry (log mode) or a fresh sink address (calldata mode), so tests never
see each other's records. Fee figures are also checked on Hardhat (Prague gas rules).
"""

from __future__ import annotations

import base64
import json
import os
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit, urlunsplit

import pytest

from etdb.ledger import (
    InsufficientFunds,
    LedgerAuthError,
    LedgerConfigError,
    LedgerError,
    UnknownBlock,
    follow,
    open_ledger,
)
from etdb.ledger.base import TxRef
from etdb.ledger.evm import EvmLedger, main, open_evm
from etdb.ledger.evm_registry import DEPLOY_GAS
from etdb.ledger.evm_rpc import JsonRpc
from etdb.ledger.evm_send import LocalKey
from etdb.ledger.messages import find_payload
from tests.ledger.contract import Harness, LedgerContract
from tests.ledger.evm_node import EvmNode, node_or_skip

pytestmark = pytest.mark.evm_node

FAST = {"retries": 2, "backoff": 0.05}  # the node-down test should not wait long


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    started = node_or_skip(tmp_path_factory.mktemp("ganache"), "ganache")
    yield started
    started.close()


@pytest.fixture(scope="module")
def hardhat(tmp_path_factory):
    started = node_or_skip(tmp_path_factory.mktemp("hardhat"), "hardhat")
    yield started
    started.close()


class AuthProxy:
    """A front for the node wanting Basic ``lab:s3cret`` or ``X-Api-Key: k3y``, as a provider
    or an nginx would; ``max_log_span`` refuses wider ``eth_getLogs``, as public RPCs do."""

    def __init__(self, target: str, max_log_span: int | None = None) -> None:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                ok = f"Basic {base64.b64encode(b'lab:s3cret').decode()}"
                if (
                    self.headers.get("Authorization") != ok
                    and self.headers.get("X-Api-Key") != "k3y"
                ):
                    self.send_response(401)
                    self.end_headers()
                    return
                reply = json.dumps(proxy.forward(json.loads(body))).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args) -> None:
                pass

        self.target, self.max_log_span, self.refused = target, max_log_span, 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def forward(self, request):
        items = request if isinstance(request, list) else [request]
        refused = [i for i in items if self._too_wide(i)]
        self.refused += len(refused)
        passed = [i for i in items if i not in refused]
        answers = []
        if passed:
            req = urllib.request.Request(
                self.target, json.dumps(passed).encode(), {"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(req, timeout=60) as resp:
                answers = json.load(resp)
        answers += [
            {
                "jsonrpc": "2.0",
                "id": i["id"],
                "error": {"code": -32005, "message": "range too wide"},
            }
            for i in refused
        ]
        return answers if isinstance(request, list) else answers[0]

    def _too_wide(self, item) -> bool:
        if self.max_log_span is None or item.get("method") != "eth_getLogs":
            return False
        span = item["params"][0]
        return int(span["toBlock"], 16) - int(span["fromBlock"], 16) + 1 > self.max_log_span

    def url(self, ledger_url: str, credentials: str = "lab:s3cret") -> str:
        """``ledger_url`` pointed at this front, with ``credentials`` as its user info."""
        port = self.server.server_address[1]
        netloc = (f"{credentials}@" if credentials else "") + f"127.0.0.1:{port}"
        return urlunsplit(urlsplit(ledger_url)._replace(netloc=netloc))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def proxy(node):
    front = AuthProxy(node.url)
    yield front
    front.close()


class EvmHarness(Harness):
    def __init__(self, node: EvmNode, proxy: AuthProxy, **options) -> None:
        self.node, self.proxy = node, proxy
        self.url = node.ledger_url(**FAST, **options)
        self.ledger = open_evm(self.url)
        node.checkpoint()

    def reopen(self):
        return open_evm(self.url)

    def mine(self, blocks: int = 1) -> None:
        # Automining already put each transaction in its own block; remember this height so
        # fork() can go back to it.
        self.node.checkpoint()

    def fork(self, depth: int) -> None:
        self.node.fork(depth)

    def bad_credentials(self):
        return open_evm(self.proxy.url(self.url, "lab:wrong"))

    def stop_node(self) -> None:
        self.node.stop()

    def start_node(self) -> None:
        self.node.start()


class TestEvmLogContract(LedgerContract):
    @pytest.fixture
    def backend(self, node, proxy):
        harness = EvmHarness(node, proxy, contract=node.deploy_registry())
        yield harness
        harness.ledger.close()


class TestEvmCalldataContract(LedgerContract):
    @pytest.fixture
    def backend(self, node, proxy):
        harness = EvmHarness(node, proxy, mode="calldata", sink="0x" + os.urandom(20).hex())
        yield harness
        harness.ledger.close()


def _payloads(ledger, cursor=None):
    return [e for ev in follow(ledger, cursor) for e in ev.block.entries]


# -- reading ------------------------------------------------------------------------------------


def test_publisher_filter_reads_only_that_publisher(node):
    contract = node.deploy_registry()
    a, b = node.accounts[0], node.accounts[1]
    first = open_evm(node.ledger_url(contract=contract, account=0))
    second = open_evm(node.ledger_url(contract=contract, account=1))
    for i in range(2):
        first.publish(f"json:a{i}")
        second.publish(f"json:b{i}")
    everyone = _payloads(open_evm(node.ledger_url(contract=contract, log_range=2)))
    assert [(e.sender, e.payload) for e in everyone] == [
        (a, "json:a0"),
        (b, "json:b0"),
        (a, "json:a1"),
        (b, "json:b1"),
    ]
    only_b = open_evm(node.ledger_url(contract=contract, publisher=b))
    assert [e.payload for e in _payloads(only_b)] == ["json:b0", "json:b1"]
    both = open_evm(node.ledger_url(contract=contract, publisher=f"{a},{b}"))
    assert len(_payloads(both)) == 4
    # The calldata carrier filters by sender the same way (client-side).
    sink = "0x" + os.urandom(20).hex()
    open_evm(node.ledger_url(mode="calldata", sink=sink, account=0)).publish("json:ca")
    open_evm(node.ledger_url(mode="calldata", sink=sink, account=1)).publish("json:cb")
    reader = open_evm(node.ledger_url(mode="calldata", sink=sink, publisher=b))
    assert [(e.sender, e.payload) for e in _payloads(reader)] == [(b, "json:cb")]


def test_start_cursor_skips_blocks_before_the_registry(node):
    url = node.ledger_url(contract=node.deploy_registry())
    ledger = open_evm(url)
    start = ledger.transaction(ledger.publish("json:first").txid).height
    ledger = open_evm(url + f"&start={start}")
    cursor = ledger.start_cursor()
    assert cursor.height == start - 1
    events = list(follow(ledger, cursor))
    assert events[0].block.height == start
    assert [e.payload for ev in events for e in ev.block.entries] == ["json:first"]


def test_many_payloads_share_a_block_in_log_order(node):
    for options in (
        {"contract": node.deploy_registry()},
        {"mode": "calldata", "sink": "0x" + "ab" * 20},
    ):
        ledger = open_evm(node.ledger_url(**options))
        node.automine(False)
        try:
            refs = [ledger.publish(f"json:same block {i}") for i in range(3)]
            assert ledger.transaction(refs[0].txid).confirmations == 0  # pending
            node.mine()
        finally:
            node.automine(True)
        status = ledger.transaction(refs[0].txid)
        block = ledger.block(status.height)
        assert [e.txid for e in block.entries] == [r.txid for r in refs]
        assert [e.index for e in block.entries] == sorted(e.index for e in block.entries)


def test_garbage_sent_to_the_registry_is_skipped(node):
    contract = node.deploy_registry()
    node.send({"to": contract, "data": "0xfffe00"})  # not UTF-8
    node.send({"to": contract})  # empty
    ledger = open_evm(node.ledger_url(contract=contract))
    ledger.publish("json:real")
    assert [e.payload for e in _payloads(ledger)] == ["json:real"]


def test_blocks_beyond_the_tip(node):
    ledger = open_evm(node.ledger_url(contract=node.deploy_registry()))
    tip = ledger.tip()
    assert ledger.block_hash(tip.height) == tip.hash
    assert ledger.block(tip.height).hash == tip.hash
    for height in (tip.height + 1, -1):
        with pytest.raises(UnknownBlock):
            ledger.block(height)
    assert list(ledger.blocks(tip.height + 1, tip.height + 5)) == []


def test_a_provider_log_span_limit_is_worked_around(node):
    narrow = AuthProxy(node.url, max_log_span=3)
    try:
        url = node.ledger_url(contract=node.deploy_registry())
        writer = open_evm(url)
        sent = [writer.publish(f"json:span {i}").txid for i in range(4)]
        reader = open_evm(narrow.url(url))
        assert [e.txid for e in _payloads(reader) if e.payload.startswith("json:span")] == sent
        assert narrow.refused > 0
    finally:
        narrow.close()


# -- configuration and credentials ---------------------------------------------------------------


def test_no_registry_at_the_address(node):
    nowhere = open_evm(node.ledger_url(contract="0x" + "12" * 20))
    with pytest.raises(LedgerConfigError, match="no contract"):
        nowhere.publish("json:x")
    with pytest.raises(LedgerConfigError, match="no contract"):
        list(nowhere.blocks(0, 1))
    # Code that is not the registry: init code returning the 1-byte runtime STOP.
    other = node.receipt(node.send({"data": "0x600180600b6000396000f300"}))["contractAddress"]
    with pytest.raises(LedgerConfigError, match="not an etdb registry"):
        open_evm(node.ledger_url(contract=other)).publish("json:x")
    with pytest.raises(LedgerConfigError, match="has code"):
        open_evm(node.ledger_url(mode="calldata", sink=other)).publish("json:x")
    with pytest.raises(LedgerConfigError, match="chain"):
        open_evm(node.ledger_url(mode="calldata", chain_id=node.chain_id + 1)).publish("json:x")


def test_credentials_through_an_authenticating_front(node, proxy, monkeypatch):
    url = node.ledger_url(contract=node.deploy_registry())
    ledger = open_ledger(proxy.url(url))
    assert "s3cret" not in ledger.url and "lab@" in ledger.url
    ledger.publish("json:through the front")
    monkeypatch.setenv("ETDB_EVM_AUTH_HEADER", "X-Api-Key: k3y")
    assert open_evm(proxy.url(url, "")).tip().height >= 0
    monkeypatch.delenv("ETDB_EVM_AUTH_HEADER")
    with pytest.raises(LedgerAuthError) as refused:
        open_evm(proxy.url(url, "lab:wrong")).tip()
    assert "wrong" not in str(refused.value)


# -- writing ------------------------------------------------------------------------------------


def _fresh_key(monkeypatch) -> str:
    from eth_account import Account

    account = Account.create()
    monkeypatch.setenv("ETDB_TEST_EVM_KEY", bytes(account.key).hex())
    return account.address.lower()


def test_local_key_signs_and_publishes(node, monkeypatch):
    address = _fresh_key(monkeypatch)
    node.fund(address, 10**18)
    url = node.ledger_url(contract=node.deploy_registry(), key_env="ETDB_TEST_EVM_KEY")
    ref = open_evm(url).publish("json:signed here")
    assert len(ref.txid) == 64 and ref.txid == ref.txid.lower()
    (entry,) = _payloads(open_evm(url))
    assert (entry.sender, entry.txid, entry.payload) == (address, ref.txid, "json:signed here")


def test_a_resent_raw_transaction_is_not_sent_twice(hardhat, monkeypatch):
    # On Hardhat: ganache 7.9.2 wrongly executes a replayed raw transaction a second time.
    node = hardhat
    address = _fresh_key(monkeypatch)
    node.fund(address, 10**18)

    class LostAnswer(JsonRpc):  # the first send got through, its answer was lost: resend
        def call(self, method, *params, idempotent=True):
            if method == "eth_sendRawTransaction":
                super().call(method, *params)
            return super().call(method, *params, idempotent=idempotent)

    key = LocalKey(os.environ["ETDB_TEST_EVM_KEY"], "ETDB_TEST_EVM_KEY")
    rpc = LostAnswer(node.url, label="test")
    tx = {"to": "0x" + "cd" * 20, "data": "0x6869", "gas": hex(30_000)}
    txid = key.send(rpc, tx, node.chain_id)
    assert node.receipt(txid)["status"] == "0x1"
    assert int(node.rpc("eth_getTransactionCount", address, "latest"), 16) == 1


def test_an_account_without_funds(node, monkeypatch):
    _fresh_key(monkeypatch)
    ledger = open_evm(node.ledger_url(contract=node.deploy_registry(), key_env="ETDB_TEST_EVM_KEY"))
    with pytest.raises(InsufficientFunds, match="cannot pay"):
        ledger.publish("json:no money")


def test_a_failed_transaction_is_reported(node):
    contract = node.deploy_registry()
    txid = node.send({"to": contract, "data": "0x41", "value": "0x1", "gas": hex(100_000)})
    with pytest.raises(LedgerError, match="failed on chain"):
        open_evm(node.ledger_url(contract=contract)).transaction(txid)


@pytest.mark.parametrize("engine", ["ganache", "hardhat"])
@pytest.mark.parametrize("mode", ["log", "calldata"])
def test_fee_estimate_matches_gas_used(engine, mode, request):
    chain: EvmNode = request.getfixturevalue("node" if engine == "ganache" else "hardhat")
    target = {"contract": chain.deploy_registry()} if mode == "log" else {"mode": "calldata"}
    ledger = open_evm(chain.ledger_url(gas_price=1, **target))
    estimate = ledger.estimate_fee(10_000, 10)
    receipt = chain.receipt(ledger.publish("json:" + "é" * 497 + "x").txid)  # 1,000 bytes
    gas_per_tx = estimate.per_transaction * 10**9  # at 1 gwei
    assert abs(gas_per_tx - int(receipt["gasUsed"], 16)) <= gas_per_tx / 10
    assert estimate.unit == "ETH" and "eth_estimateGas" in estimate.basis
    assert "eth_gasPrice" in open_evm(chain.ledger_url(**target)).estimate_fee(1000).basis


def test_fee_beyond_the_block_gas_limit_falls_back_to_the_schedule(hardhat):
    # Hardhat refuses to estimate beyond its 30M-gas blocks (ganache estimates anyway).
    url = hardhat.ledger_url(contract=hardhat.deploy_registry(), max_payload=10**6, gas_price=1)
    estimate = open_evm(url).estimate_fee(1_000_000, 1)  # 40M gas with Prague's floor
    assert "gas schedule" in estimate.basis
    assert estimate.per_transaction * 10**9 == 40_021_000  # at 1 gwei


def test_deploy_command(node, capsys):
    assert main(["deploy", node.ledger_url(), "--account", "1"]) == 0
    out = capsys.readouterr().out
    assert f"gas used: {DEPLOY_GAS}" in out
    url = out.split("ledger URL: ")[1].strip()
    assert isinstance(open_ledger(url), EvmLedger) and "contract=0x" in url
    open_ledger(url).publish("json:deployed by the command")


# -- find_payload -------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["ganache", "hardhat"])
@pytest.mark.parametrize("mode", ["log", "calldata"])
def test_find_payload_pending_then_mined(engine, mode, request):
    # Ganache shows unmined transactions in txpool_content, Hardhat in the "pending" block.
    node: EvmNode = request.getfixturevalue("node" if engine == "ganache" else "hardhat")
    options = (
        {"contract": node.deploy_registry()}
        if mode == "log"
        else {"mode": "calldata", "sink": "0x" + os.urandom(20).hex()}
    )
    ledger = open_evm(node.ledger_url(**options))
    since = ledger.tip().height + 1
    text = f"json:find me {os.urandom(4).hex()}"
    node.automine(False)
    try:
        ref = ledger.publish(text)
        # Sent, not yet in a block: found in the pending block, without a height.
        assert find_payload(ledger, text, since_height=since) == TxRef(ref.txid)
        assert find_payload(ledger, text + "!", since_height=since) is None
        node.mine()
    finally:
        node.automine(True)
    height = ledger.transaction(ref.txid).height
    assert find_payload(ledger, text, since_height=since) == TxRef(ref.txid, height)
    assert find_payload(ledger, text, since_height=height + 1) is None
    sender = node.accounts[0]
    assert find_payload(ledger, text, since_height=since, sender=sender.upper()) is not None
    assert find_payload(ledger, text, since_height=since, sender="0x" + "00" * 20) is None
