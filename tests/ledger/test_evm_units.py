"""EVM ledger pieces that need no node: URL options, decoding answers, the JSON-RPC client's
retry and error rules (against a scripted local HTTP server), error mapping."""

from __future__ import annotations

import builtins
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from etdb.ledger import (
    CorruptLedgerError,
    InsufficientFunds,
    Ledger,
    LedgerAuthError,
    LedgerConfigError,
    LedgerUnavailable,
    PayloadTooLarge,
    WalletError,
    open_ledger,
)
from etdb.ledger.evm_decode import TOPIC, assemble, payload_text, publisher_topic, txid_hex
from etdb.ledger.evm_rpc import JsonRpc, RpcError
from etdb.ledger.evm_send import LocalKey, send_error
from etdb.ledger.evm_url import DEFAULT_MAX_PAYLOAD, parse
from etdb.ledger.urls import redact

A = "0x" + "aa" * 20
B = "0x" + "Bb" * 20


# -- URL ----------------------------------------------------------------------------------------


def test_options_and_defaults():
    opts = parse(
        f"evm+https://u:pw@rpc.example:8443/v1?contract={B}&confirmations=12&gas_price=1.5"
    )
    assert opts.endpoint == "https://u:pw@rpc.example:8443/v1"
    assert opts.contract == B.lower() and opts.mode == "log"
    assert opts.confirmations == 12 and opts.gas_price_wei == 1_500_000_000
    assert opts.max_payload == DEFAULT_MAX_PAYLOAD and opts.coin == "ETH"
    assert "pw" not in opts.label and opts.label.startswith("evm+https://u@rpc.example:8443/v1?")
    calldata = parse(f"evm+http://h?mode=calldata&publisher={A},{B}&account=3")
    assert calldata.publishers == (A, B.lower()) and calldata.account == "3"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("evm+http://h", "needs contract"),
        ("evm+http://h?mode=calldata&colour=red", "unknown option"),
        ("evm+http://h?mode=calldata&key=00", "secret"),
        ("evm+http://h?contract=0x12", "address"),
        ("evm+http://h?mode=chain", "mode"),
        ("evm+http://h?mode=calldata&confirmations=0", "at least 1"),
        ("evm+http://h?mode=calldata&max_payload=lots", "not a number"),
        ("evm+http://h?mode=calldata&mode=log", "repeated"),
        ("evm+ftp://h?mode=calldata", r"evm\+http"),
    ],
)
def test_bad_urls(url, message):
    with pytest.raises(LedgerConfigError, match=message):
        parse(url)


def test_redaction_hides_passwords_and_path_keys():
    url = "evm+https://me:hunter2@mainnet.example/v3/0123456789abcdef0123456789abcdef?mode=log"
    assert redact(url) == "evm+https://me@mainnet.example/v3/***?mode=log"
    assert (
        redact("evm+https://0123456789abcdef01234@rpc.example/") == "evm+https://***@rpc.example/"
    )


def test_open_ledger_dispatches_without_network():
    ledger = open_ledger(f"evm+http://127.0.0.1:9?contract={A}")
    assert isinstance(ledger, Ledger)
    assert ledger.max_payload == DEFAULT_MAX_PAYLOAD and ledger.confirmations == 1


def test_missing_eth_account_is_a_config_error(monkeypatch):
    real_import = builtins.__import__

    def no_eth_account(name, *args, **kwargs):
        if name.startswith("eth_account"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_eth_account)
    with pytest.raises(LedgerConfigError, match=r"pip install 'etdb\[evm\]'"):
        LocalKey("11" * 32, "ETDB_EVM_PRIVATE_KEY")


def test_a_bad_key_is_not_echoed():
    with pytest.raises(LedgerConfigError) as caught:
        LocalKey("not-a-key-but-secret", "ETDB_EVM_PRIVATE_KEY")
    assert "secret" not in str(caught.value)


# -- decoding -----------------------------------------------------------------------------------


def _head(n: int, parent: int, txs=()) -> dict:
    return {
        "number": hex(n),
        "hash": f"0x{n:064x}",
        "parentHash": f"0x{parent:064x}",
        "timestamp": hex(1000 + n),
        "transactions": list(txs),
    }


def _log(block: int, index: int, data: bytes, sender: str = A) -> dict:
    return {
        "blockHash": f"0x{block:064x}",
        "logIndex": hex(index),
        "transactionHash": f"0x{block * 100 + index:064x}",
        "topics": [TOPIC, publisher_topic(sender)],
        "data": "0x" + data.hex(),
    }


def test_logs_become_ordered_entries_and_garbage_is_skipped():
    logs = [_log(6, 3, b"json:b"), _log(6, 1, b"json:a"), _log(6, 2, b"\xff"), _log(5, 0, b"")]
    blocks = assemble([_head(5, 4), _head(6, 5), None, _head(8, 7)], 5, logs)
    assert [b.height for b in blocks] == [5, 6]  # stops at the first missing header
    assert [(e.index, e.payload, e.sender) for e in blocks[1].entries] == [
        (1, "json:a", A),
        (3, "json:b", A),
    ]
    assert blocks[1].entries[0].txid == f"{601:064x}" and blocks[0].entries == ()


def test_inconsistent_answers_are_detected():
    assert assemble([_head(5, 4), _head(6, 99)], 5, []) is None  # parent hash mismatch
    assert assemble([_head(5, 4)], 5, [_log(9, 0, b"json:x")]) is None  # log of an unseen block
    assert assemble([_head(6, 5)], 5, []) is None  # wrong height


def test_calldata_entries():
    sink = "0x" + "cd" * 20
    txs = [
        {
            "to": sink,
            "from": A,
            "input": "0x6a736f6e3a78",
            "hash": "0x" + "01" * 32,
            "transactionIndex": "0x1",
        },
        {
            "to": A,
            "from": A,
            "input": "0x6a736f6e3a79",
            "hash": "0x" + "02" * 32,
            "transactionIndex": "0x2",
        },
        {
            "to": None,
            "from": A,
            "input": "0x6a",
            "hash": "0x" + "03" * 32,
            "transactionIndex": "0x3",
        },
        {
            "to": sink,
            "from": B.lower(),
            "input": "0x6a",
            "hash": "0x" + "04" * 32,
            "transactionIndex": "0x4",
        },
    ]
    (block,) = assemble([_head(3, 2, txs)], 3, sink=sink, publishers=(A,))
    assert [(e.payload, e.index) for e in block.entries] == [("json:x", 1)]


def test_identifiers():
    assert txid_hex("0x" + "AB" * 32) == "ab" * 32
    with pytest.raises(ValueError):
        txid_hex("abc")
    assert payload_text("0x") is None and payload_text("0xc3a9") == "é"


# -- JSON-RPC client ----------------------------------------------------------------------------


class Scripted:
    """An HTTP server answering each POST with the next scripted step."""

    def __init__(self, steps) -> None:
        self.steps, self.requests = list(steps), []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                step = outer.steps.pop(0) if outer.steps else (200, None)
                if step == "drop":  # read the request, then hang up without answering
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                status, result = step
                items = body if isinstance(body, list) else [body]
                answer = [{"jsonrpc": "2.0", "id": i["id"], "result": result} for i in items]
                if isinstance(result, bytes):
                    data = result
                else:
                    data = json.dumps(answer if isinstance(body, list) else answer[0]).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def client(self, **kw) -> JsonRpc:
        return JsonRpc(self.url, label="test", backoff=0.0, **kw)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted():
    servers = []

    def make(*steps) -> Scripted:
        servers.append(Scripted(steps))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def test_busy_node_is_retried(scripted):
    server = scripted((503, None), (200, "0x1"))
    assert server.client().call("eth_chainId") == "0x1"
    assert len(server.requests) == 2


def test_refused_credentials(scripted):
    with pytest.raises(LedgerAuthError):
        scripted((401, None)).client().call("eth_chainId")


def test_nonsense_is_corrupt(scripted):
    with pytest.raises(CorruptLedgerError):
        scripted((200, b"<html>")).client().call("eth_chainId")


def test_a_dropped_send_is_not_repeated(scripted):
    server = scripted("drop", (200, "0x" + "11" * 32))
    with pytest.raises(LedgerUnavailable, match="may or may not"):
        server.client().call("eth_sendTransaction", {}, idempotent=False)
    assert len(server.requests) == 1
    assert server.client().call("eth_blockNumber") == "0x" + "11" * 32  # a read is retried
    gateway = scripted((502, None), (200, "0x1"))
    with pytest.raises(LedgerUnavailable, match="may or may not"):
        gateway.client().call("eth_sendTransaction", {}, idempotent=False)
    assert len(gateway.requests) == 1


def test_nobody_listening_is_unavailable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(LedgerUnavailable, match="3 attempts"):
        JsonRpc(f"http://127.0.0.1:{port}", label="t", retries=2, backoff=0).call("eth_chainId")


def test_batches_split_and_keep_order(scripted):
    server = scripted()
    got = server.client(max_batch=2).batch([("a", ()), ("b", (1,)), ("c", ())])
    assert got == [None, None, None] and [len(r) for r in server.requests] == [2, 1]


def test_node_errors_map_to_ledger_errors():
    def err(message, method="eth_sendRawTransaction", code=-32000):
        return send_error(RpcError(method, code, message), A, "evm+http://h")

    assert isinstance(err("insufficient funds for gas * price + value"), InsufficientFunds)
    assert isinstance(err("Sender doesn't have enough funds to send tx"), InsufficientFunds)
    assert isinstance(err("the method does not exist", "eth_sendTransaction", -32601), WalletError)
    assert isinstance(err("unknown account"), WalletError)
    assert isinstance(err("exceeds block gas limit"), PayloadTooLarge)
    assert "reverted" in str(err("execution reverted"))
