"""A small JSON-RPC 2.0 client over HTTP(S) for EVM nodes: batches, retries, typed errors.

Written on ``http.client`` rather than web3's provider because the ledger needs three things
web3 hides: JSON-RPC batches (one round trip for hundreds of block headers), knowing whether a
failed request ever reached the node (a send that may have arrived must not be repeated, or a
record could be published twice), and precise mapping of transport failures to the ledger's
errors. Keep-alive connections; one lock, so a handle may be shared between threads.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import itertools
import json
import ssl
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from etdb.ledger.base import (
    CorruptLedgerError,
    LedgerAuthError,
    LedgerConfigError,
    LedgerError,
    LedgerUnavailable,
)

#: HTTP statuses worth retrying: the node or a gateway in front of it is busy or restarting.
_RETRY_STATUSES = {408, 425, 429, 500, 502, 503, 504}
#: ...of which these say the request was not acted on, so even a send may be repeated (a 502
#: or 504 from a gateway may come after the node took the transaction).
_NOT_ACTED_ON = {425, 429}


class RpcError(LedgerError):
    """The node answered a call with a JSON-RPC error object."""

    def __init__(self, method: str, code: int | None, message: str, data: Any = None) -> None:
        super().__init__(f"{method}: {message} (JSON-RPC error {code})")
        self.method = method
        self.code = code
        self.node_message = message
        self.data = data


class _MaybeSent(Exception):
    """The request was written; the node may have acted on it (only idempotent calls retry)."""


Call = tuple[str, Sequence[Any]]


class JsonRpc:
    """Calls to one endpoint. ``label`` (a URL without secrets) names it in error messages."""

    def __init__(
        self,
        endpoint: str,
        *,
        label: str,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.25,
        max_batch: int = 100,
    ) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise LedgerConfigError(f"not an http(s) node URL: {label}")
        self.label = label
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._path = parts.path or "/"
        self._headers = {"Content-Type": "application/json", **(headers or {})}
        if parts.username is not None:
            user = unquote(parts.username)
            secret = unquote(parts.password or "")
            token = base64.b64encode(f"{user}:{secret}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"
        self._timeout = timeout
        self._retries = max(0, retries)
        self._backoff = backoff
        self.max_batch = max(1, max_batch)
        self._conn: http.client.HTTPConnection | None = None
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    # -- public -----------------------------------------------------------------------------

    def call(self, method: str, *params: Any, idempotent: bool = True) -> Any:
        """One call's result; RpcError when the node reports an error."""
        request = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        reply = self._exchange(request, idempotent=idempotent, what=method)
        if not isinstance(reply, dict):
            raise CorruptLedgerError(f"{self.label}: {method} answered {str(reply)[:200]!r}")
        return _result(method, reply)

    def batch(self, calls: Sequence[Call]) -> list[Any]:
        """Results of idempotent ``calls`` in order, ``max_batch`` per HTTP request."""
        out: list[Any] = []
        for i in range(0, len(calls), self.max_batch):
            out.extend(self._batch(calls[i : i + self.max_batch]))
        return out

    def close(self) -> None:
        with self._lock:
            self._drop()

    # -- internals ----------------------------------------------------------------------------

    def _batch(self, calls: Sequence[Call]) -> list[Any]:
        ids = [next(self._ids) for _ in calls]
        body = [
            {"jsonrpc": "2.0", "id": i, "method": m, "params": list(p)}
            for i, (m, p) in zip(ids, calls, strict=True)
        ]
        what = f"batch of {len(calls)} ({calls[0][0]}...)"
        reply = self._exchange(body, idempotent=True, what=what)
        if isinstance(reply, dict):  # a single error object: the node refused the whole batch
            _result(what, reply)
        if not isinstance(reply, list):
            raise CorruptLedgerError(f"{self.label}: {what} answered {str(reply)[:200]!r}")
        by_id = {r.get("id"): r for r in reply if isinstance(r, dict)}
        missing = [m for i, (m, _) in zip(ids, calls, strict=True) if i not in by_id]
        if missing:
            raise CorruptLedgerError(f"{self.label}: no answer to {missing[0]} in a batch")
        return [_result(m, by_id[i]) for i, (m, _) in zip(ids, calls, strict=True)]

    def _exchange(self, body: Any, *, idempotent: bool, what: str) -> Any:
        data = json.dumps(body).encode()
        last: BaseException | None = None
        for attempt in range(self._retries + 1):
            if attempt:
                time.sleep(self._backoff * 2 ** (attempt - 1))
            with self._lock:
                try:
                    status, text = self._post(data, fresh=not idempotent)
                except _MaybeSent as exc:
                    last = exc.__cause__ or exc
                    if not idempotent:
                        raise LedgerUnavailable(
                            f"{self.label}: connection lost during {what} ({last}); the node "
                            "may or may not have acted on it: check before repeating it"
                        ) from last
                    continue
                except OSError as exc:  # refused, timed out, DNS: it never reached the node
                    last = exc
                    continue
            if status in (401, 403):
                raise LedgerAuthError(
                    f"{self.label}: the node refused our credentials (HTTP {status}); check the "
                    "user and password in the URL or ETDB_EVM_AUTH_HEADER"
                )
            if status in _RETRY_STATUSES:
                last = LedgerUnavailable(f"HTTP {status}: {text[:200]!r}")
                if idempotent or status in _NOT_ACTED_ON:
                    continue
                raise LedgerUnavailable(
                    f"{self.label}: {what} got HTTP {status}; the node may or may not have acted "
                    "on it: check before repeating it"
                )
            try:
                return json.loads(text)
            except ValueError:
                if status == 404:
                    raise LedgerConfigError(
                        f"{self.label}: no JSON-RPC endpoint (HTTP 404)"
                    ) from None
                raise CorruptLedgerError(
                    f"{self.label}: {what}: HTTP {status}, not JSON: {text[:200]!r}"
                ) from None
        raise LedgerUnavailable(
            f"{self.label}: {what} failed after {self._retries + 1} attempts: {last}"
        ) from last

    def _post(self, data: bytes, *, fresh: bool) -> tuple[int, str]:
        if fresh:  # a request that must not be repeated goes on a new connection, so a
            self._drop()  # stale keep-alive socket cannot make its fate ambiguous
        conn = self._connection()
        if conn.sock is None:
            try:
                conn.connect()
            except OSError:
                self._drop()
                raise
        try:
            conn.request("POST", self._path, data, self._headers)
            resp = conn.getresponse()
            text = resp.read().decode("utf-8", errors="replace")
        except (OSError, http.client.HTTPException) as exc:
            self._drop()
            raise _MaybeSent() from exc
        if resp.will_close:
            self._drop()
        return resp.status, text

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self._https:
                ctx = ssl.create_default_context()
                self._conn = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self._timeout, context=ctx
                )
            else:
                self._conn = http.client.HTTPConnection(
                    self._host, self._port, timeout=self._timeout
                )
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.close()
            self._conn = None


def _result(method: str, reply: dict[str, Any]) -> Any:
    error = reply.get("error")
    if error is not None:
        if isinstance(error, dict):
            raise RpcError(method, error.get("code"), str(error.get("message")), error.get("data"))
        raise RpcError(method, None, str(error))
    if "result" not in reply:
        raise CorruptLedgerError(f"{method}: reply without result: {str(reply)[:200]!r}")
    return reply["result"]
