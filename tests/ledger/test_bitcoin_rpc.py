"""The JSON-RPC client against a real HTTP server on 127.0.0.1 (``rpcserver.RpcServer``).

The server answers as Bitcoin Core does (HTTP 401 for bad credentials, HTTP 500/404 with a
JSON-RPC error body for failed calls, arrays for batches); the transport failures (refused
connections, silence, 5xx pages) are real sockets misbehaving, not mocks.
"""

from __future__ import annotations

import json
import socket
import time
from decimal import Decimal

import pytest

from etdb.ledger.base import (
    InsufficientFunds,
    LedgerAuthError,
    LedgerConfigError,
    LedgerError,
    LedgerUnavailable,
    PayloadTooLarge,
    WalletError,
)
from etdb.ledger.rpc import (
    BatchUnsupported,
    Endpoint,
    RetryPolicy,
    RpcClient,
    RpcError,
    parse_retry_policy,
    split_url,
)
from etdb.ledger.rpc_errors import ChainTooLong
from tests.ledger.rpcserver import Fault, Raw, RpcServer

SECRET = "s3cr3t-p@ss"
FAST = RetryPolicy(retries=3, timeout=2.0, backoff=0.01, max_backoff=0.02, retry_for=5.0)


def client(
    server: RpcServer,
    *,
    password: str | None = None,
    wallet: str | None = None,
    policy: RetryPolicy = FAST,
) -> RpcClient:
    endpoint = Endpoint(server.url, server.user, server.password if password is None else password)
    return RpcClient(
        endpoint,
        safe_url=f"flo+http://{server.user}@127.0.0.1:{server.port}/",
        wallet=wallet,
        policy=policy,
    )


@pytest.fixture
def server():
    results = {"getbalance": Decimal("0.00000001"), "getblockcount": 7}

    def handler(method, params, path):
        if method in results:
            return results[method]
        if method == "echo":
            return {"params": params, "path": path}
        raise Fault(-32601, "Method not found")

    with RpcServer(handler, password=SECRET) as srv:
        yield srv


def test_call_returns_result_and_amounts_are_exact_decimals(server):
    with client(server) as rpc:
        assert rpc.call("getbalance") == Decimal("0.00000001")
        assert rpc.call("getblockcount") == 7
    request = server.calls("getbalance")[0].body
    assert (
        request["method"] == "getbalance"
        and request["params"] == []
        and request["jsonrpc"] == "1.0"
    )
    assert server.calls("getbalance")[0].path == "/"


def test_decimal_params_are_sent_exactly(server):
    with client(server) as rpc:
        echoed = rpc.call("echo", "addr", Decimal("20999999.97690001"), 3)
    assert echoed["params"] == ["addr", "20999999.97690001", 3]


def test_wallet_calls_go_to_the_wallet_endpoint(server):
    with client(server, wallet="lab wallet/1") as rpc:
        assert rpc.call("echo", wallet=True)["path"] == "/wallet/lab%20wallet%2F1"
        assert rpc.call("echo")["path"] == "/"  # node-level calls stay at the root


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failure_is_clear_not_retried_and_hides_the_password(status):
    def handler(method, params, path):
        return Raw(status, b"")

    with RpcServer(handler, password=SECRET) as srv, client(srv) as rpc:
        with pytest.raises(LedgerAuthError) as caught:
            rpc.call("getblockcount")
        assert len(srv.seen) == 1
    message = str(caught.value)
    assert "wrong RPC user or password" in message and f"user@127.0.0.1:{srv.port}" in message
    assert SECRET not in message and SECRET not in repr(rpc)


def test_wrong_password_against_basic_auth(server):
    with client(server, password="nope") as rpc, pytest.raises(LedgerAuthError) as caught:
        rpc.call("getblockcount")
    assert "nope" not in str(caught.value) and SECRET not in str(caught.value)


def test_jsonrpc_error_in_http_500_is_the_call_failing_not_retried(server):
    with client(server) as rpc, pytest.raises(RpcError) as caught:
        rpc.call("nosuchmethod")
    assert caught.value.code == -32601 and "nosuchmethod" in str(caught.value)
    assert len(server.calls("nosuchmethod")) == 1


def test_jsonrpc_2_error_with_http_200():
    def handler(method, params, path):
        return Raw(
            200,
            {
                "jsonrpc": "2.0",
                "error": {"code": -8, "message": "Block height out of range"},
                "id": 1,
            },
        )

    with RpcServer(handler) as srv, client(srv) as rpc, pytest.raises(RpcError) as caught:
        rpc.call("getblockhash", 10**6)
    assert caught.value.code == -8 and caught.value.rpc_message == "Block height out of range"


@pytest.mark.parametrize(
    ("code", "message", "error", "says"),
    [
        (-18, "Requested wallet does not exist or is not loaded", WalletError, "createwallet"),
        (
            -19,
            "Wallet file not specified (must request wallet RPC through /wallet/<filename> uri-path).",
            WalletError,
            "?wallet=",
        ),
        (
            -13,
            "Error: Please enter the wallet passphrase with walletpassphrase first.",
            WalletError,
            "locked",
        ),
        (-6, "Insufficient funds", InsufficientFunds, "fund"),
        (-4, "Insufficient funds", InsufficientFunds, "fund"),
        (-26, "scriptpubkey", PayloadTooLarge, "datacarriersize"),
        (-26, "min relay fee not met, 100 < 141", LedgerError, "min relay fee not met"),
        (
            -26,
            "too-long-mempool-chain, too many unconfirmed ancestors [limit: 25]",
            ChainTooLong,
            "wait for a block",
        ),
        (-4, "Transaction has too long of a mempool chain", ChainTooLong, "wait for a block"),
        (-25, "bad-txns-inputs-missingorspent", LedgerError, "bad-txns-inputs-missingorspent"),
        (-5, "No such mempool or blockchain transaction", RpcError, "sendtoaddress"),
    ],
)
def test_node_errors_become_typed_errors(code, message, error, says):
    def handler(method, params, path):
        raise Fault(code, message)

    with RpcServer(handler) as srv, client(srv, wallet="w") as rpc, pytest.raises(error) as caught:
        rpc.call("sendtoaddress", "addr", Decimal("0.1"), wallet=True)
    assert type(caught.value) is error
    assert says in str(caught.value)
    assert len(srv.seen) == 1  # none of these is retried


def test_warming_up_node_is_waited_for():
    replies = iter([Fault(-28, "Loading block index…"), Fault(-28, "Verifying blocks…"), 42])

    def handler(method, params, path):
        reply = next(replies)
        if isinstance(reply, Fault):
            raise reply
        return reply

    with RpcServer(handler) as srv, client(srv) as rpc:
        assert rpc.call("getblockcount") == 42
        assert len(srv.seen) == 3


def test_5xx_pages_are_retried_then_succeed():
    replies = iter(
        [
            Raw(502, "<html>Bad Gateway</html>", content_type="text/html"),
            Raw(503, "busy", content_type="text/plain"),
            9,
        ]
    )

    def handler(method, params, path):
        return next(replies)

    with RpcServer(handler) as srv, client(srv) as rpc:
        assert rpc.call("getblockcount") == 9


def test_5xx_forever_gives_up_after_bounded_attempts():
    def handler(method, params, path):
        return Raw(503, "overloaded", content_type="text/plain")

    with RpcServer(handler) as srv, client(srv) as rpc, pytest.raises(LedgerUnavailable) as caught:
        rpc.call("getblockcount")
    assert len(srv.seen) == FAST.retries + 1
    assert "gave up after 4 attempts" in str(caught.value) and "HTTP 503" in str(caught.value)


def test_timeouts_are_retried_then_unavailable():
    def handler(method, params, path):
        return Raw(200, {"result": 1, "error": None, "id": 1}, delay=0.5)

    policy = RetryPolicy(retries=2, timeout=0.1, backoff=0.01, max_backoff=0.01, retry_for=5.0)
    with RpcServer(handler) as srv, client(srv, policy=policy) as rpc:
        started = time.monotonic()
        with pytest.raises(LedgerUnavailable) as caught:
            rpc.call("getblockcount")
        elapsed = time.monotonic() - started
    assert "no answer" in str(caught.value)
    assert len(srv.seen) == 3 and elapsed < 1.5


def test_a_send_that_may_have_reached_the_node_is_not_repeated():
    def handler(method, params, path):
        return Raw(200, {"result": "ab" * 32, "error": None, "id": 1}, delay=0.5)

    policy = RetryPolicy(retries=3, timeout=0.1, backoff=0.01, max_backoff=0.01)
    with RpcServer(handler) as srv, client(srv, policy=policy) as rpc:
        with pytest.raises(LedgerUnavailable) as caught:
            rpc.call("sendtoaddress", "addr", 1, wallet=True, idempotent=False)
        assert len(srv.seen) == 1
    assert "may have carried it out" in str(caught.value)


def test_connection_refused_gives_up_within_bounds():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    endpoint = Endpoint(f"http://127.0.0.1:{port}", "user", SECRET)
    policy = RetryPolicy(retries=3, timeout=1.0, backoff=0.05, max_backoff=0.1)
    with RpcClient(endpoint, safe_url=f"btc+http://user@127.0.0.1:{port}/", policy=policy) as rpc:
        started = time.monotonic()
        with pytest.raises(LedgerUnavailable) as caught:
            rpc.call("getblockcount")
    assert time.monotonic() - started < 2.0
    assert "cannot connect" in str(caught.value) and "4 attempts" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_retry_for_bounds_the_total_time():
    def handler(method, params, path):
        raise Fault(-28, "Loading wallet…")

    policy = RetryPolicy(retries=1000, timeout=1.0, backoff=0.05, max_backoff=0.1, retry_for=0.4)
    with RpcServer(handler) as srv, client(srv, policy=policy) as rpc:
        started = time.monotonic()
        with pytest.raises(LedgerUnavailable, match="the node is starting"):
            rpc.call("getblockcount")
    assert time.monotonic() - started < 1.0


def test_backoff_grows_exponentially_with_jitter():
    policy = RetryPolicy(backoff=0.5, max_backoff=4.0)
    for attempt, step in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (6, 4.0)]:
        delays = {policy.delay(attempt) for _ in range(50)}
        assert all(step / 2 <= d <= step for d in delays)
        assert len(delays) > 1  # jittered


def test_batch_results_follow_request_order_whatever_the_reply_order():
    def handler(method, params, path):
        if params[0] > 3:
            raise Fault(-8, "Block height out of range")
        return f"hash{params[0]}"

    with RpcServer(handler) as srv, client(srv) as rpc:
        srv.reverse_batches = True
        calls = [("getblockhash", [h]) for h in range(6)]
        results = rpc.batch(calls, strict=False)
        assert results[:4] == ["hash0", "hash1", "hash2", "hash3"]
        assert all(isinstance(r, RpcError) and r.code == -8 for r in results[4:])
        with pytest.raises(RpcError):
            rpc.batch(calls)  # strict: the first failure raises
        assert isinstance(srv.seen[0].body, list) and len(srv.seen) == 2  # one request each


def test_batch_unsupported_is_reported():
    def handler(method, params, path):
        return 1

    error = {"result": None, "error": {"code": -32700, "message": "Parse error"}, "id": None}
    with RpcServer(handler) as srv, client(srv) as rpc:
        srv.batch_reply = (500, json.dumps(error).encode())
        with pytest.raises(BatchUnsupported):
            rpc.batch([("getblockhash", [1]), ("getblockhash", [2])])


def test_url_parsing_options_and_safe_url():
    endpoint, safe, options = split_url(
        "flo+http://etdb:p%40ss%3Aword@node.example:7313/?wallet=w&retries=7&timeout=2.5", 9999
    )
    assert endpoint.base == "http://node.example:7313"
    assert endpoint.credentials() == ("etdb", "p@ss:word")
    assert safe == "flo+http://etdb@node.example:7313/?wallet=w&retries=7&timeout=2.5"
    policy = parse_retry_policy(options)
    assert policy.retries == 7 and policy.timeout == 2.5
    assert split_url("btc+https://[::1]/", 8332)[0].base == "https://[::1]:8332"
    with pytest.raises(LedgerConfigError):
        parse_retry_policy({"retries": "many"})
    with pytest.raises(LedgerConfigError):
        split_url("btc+ftp://host:1/")


def test_from_url_uses_the_options(server):
    url = f"btc+http://{server.user}:{SECRET}@127.0.0.1:{server.port}/?wallet=w1&retries=1&backoff=0.01"
    with RpcClient.from_url(url) as rpc:
        assert rpc.wallet == "w1" and rpc.policy.retries == 1
        assert rpc.call("echo", wallet=True)["path"] == "/wallet/w1"
        assert SECRET not in repr(rpc) and SECRET not in rpc.safe_url


def test_cookie_file_credentials(server, tmp_path):
    cookie = tmp_path / ".cookie"
    cookie.write_text(f"{server.user}:{SECRET}")
    url = f"btc+http://127.0.0.1:{server.port}/?cookie={cookie}"
    with RpcClient.from_url(url) as rpc:
        assert rpc.call("getblockcount") == 7
    missing = Endpoint(server.url, cookie=tmp_path / "missing")
    with pytest.raises(LedgerConfigError, match="cookie"):
        missing.credentials()
