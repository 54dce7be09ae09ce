"""A small JSON-RPC client for Bitcoin-family nodes (Bitcoin/Litecoin Core, flod) over httpx.

What it adds over a bare POST:

* credentials from the URL's userinfo (or a cookie file), never shown in messages or ``repr``;
* wallet calls go to ``/wallet/<name>`` (multi-wallet nodes), node calls to ``/``;
* bounded retries with exponential backoff and jitter on what is worth retrying: connection
  failures, timeouts, HTTP 5xx without a JSON-RPC body (a proxy), and RPC error -28 (the
  node is still loading). A call that may already have reached the node (read timeout, dropped
  reply) is retried only when it is ``idempotent`` -- re-sending ``sendtoaddress`` could pay
  twice;
* node errors become the typed errors of :mod:`etdb.ledger.base` (:mod:`.rpc_errors`);
* amounts are parsed as :class:`~decimal.Decimal` (``parse_float=Decimal``), never float.

Ledger URL options read here: ``?retries=5&timeout=30&backoff=0.5&retry_for=60`` (the
defaults; seconds) and ``?cookie=PATH`` (the node's ``.cookie`` file instead of user:password).

Bitcoin Core answers a failed call with HTTP 500 (404 for an unknown method) *and* a JSON-RPC
error body; such answers are errors of the call, not of the server, and are not retried.
"""

from __future__ import annotations

import itertools
import json
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import httpx

from etdb.ledger.base import (
    LedgerAuthError,
    LedgerConfigError,
    LedgerError,
    LedgerUnavailable,
)
from etdb.ledger.rpc_errors import RPC_IN_WARMUP, RPC_MISC_ERROR, RpcError, map_rpc_error

__all__ = [
    "BatchUnsupported",
    "Endpoint",
    "RetryPolicy",
    "RpcClient",
    "RpcError",
    "parse_retry_policy",
    "split_url",
]


class BatchUnsupported(LedgerError):
    """The server answered a JSON-RPC batch with something other than a list of replies."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try. ``retries`` more attempts after the first, waits ``backoff * 2**n``
    seconds (jittered, capped at ``max_backoff``) and never starts a wait that would end more
    than ``retry_for`` seconds after the first attempt."""

    retries: int = 5
    timeout: float = 30.0
    backoff: float = 0.5
    max_backoff: float = 8.0
    retry_for: float = 60.0

    def delay(self, attempt: int) -> float:
        # "Equal jitter": at least half the exponential step, so waits still grow.
        growth: int = 2**attempt  # an int: attempt >= 0
        step = min(self.max_backoff, self.backoff * growth)
        return step / 2 + random.uniform(0, step / 2)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and as whom to call: ``base`` is ``http(s)://host:port`` without credentials."""

    base: str
    user: str = ""
    password: str = ""
    cookie: Path | None = None

    def credentials(self) -> tuple[str, str] | None:
        if self.cookie is not None:
            # Read at each client start: the node rewrites the cookie every time it starts.
            try:
                user, _, password = self.cookie.read_text().strip().partition(":")
            except OSError as exc:
                raise LedgerConfigError(
                    f"cannot read RPC cookie file {self.cookie}: {exc}"
                ) from exc
            return user, password
        if self.user or self.password:
            return self.user, self.password
        return None


def split_url(url: str, default_port: int | None = None) -> tuple[Endpoint, str, dict[str, str]]:
    """A ledger URL (``flo+http://user:pass@host:port/?opt=v``) as endpoint, safe URL, options.

    The safe URL keeps the user name but never the password. Repeated options keep the last.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    transport = scheme.split("+", 1)[1] if "+" in scheme else scheme
    if transport not in ("http", "https"):
        raise LedgerConfigError(f"{url.split('@')[-1]!r}: the node URL must use http or https")
    if not parts.hostname:
        raise LedgerConfigError(f"{scheme}:// URL has no host")
    try:
        port = parts.port
    except ValueError as exc:
        raise LedgerConfigError(f"bad port in {scheme}:// URL: {exc}") from exc
    port = port or default_port
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    hostport = f"{host}:{port}" if port else host
    user = unquote(parts.username or "")
    options: dict[str, str] = {}
    for item in parts.query.split("&"):
        if item:
            key, _, value = item.partition("=")
            options[unquote(key)] = unquote(value.replace("+", " "))
    cookie = options.get("cookie")
    endpoint = Endpoint(
        base=f"{transport}://{hostport}",
        user=user,
        password=unquote(parts.password or ""),
        cookie=Path(cookie).expanduser() if cookie else None,
    )
    netloc = f"{quote(user, safe='')}@{hostport}" if user else hostport
    safe = urlunsplit((scheme, netloc, parts.path, parts.query, ""))
    return endpoint, safe, options


def parse_retry_policy(options: Mapping[str, str]) -> RetryPolicy:
    """``?retries=N&timeout=S&backoff=S&retry_for=S`` (seconds); defaults as RetryPolicy."""
    default = RetryPolicy()

    def number(key: str, kind: type, fallback: float) -> Any:
        if key not in options:
            return fallback
        try:
            value = kind(options[key])
        except ValueError:
            raise LedgerConfigError(f"option {key}={options[key]!r} is not a number") from None
        if value < 0:
            raise LedgerConfigError(f"option {key} must not be negative")
        return value

    return RetryPolicy(
        retries=number("retries", int, default.retries),
        timeout=number("timeout", float, default.timeout) or default.timeout,
        backoff=number("backoff", float, default.backoff),
        max_backoff=max(number("backoff", float, default.backoff), default.max_backoff),
        retry_for=number("retry_for", float, default.retry_for),
    )


@dataclass(frozen=True, slots=True)
class _Failure:
    """Why an attempt failed; ``retry`` says whether trying again is safe and useful."""

    reason: str
    retry: bool


class RpcClient:
    """Calls one node. Thread-safe as httpx.Client is; one keep-alive connection pool."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        safe_url: str,
        wallet: str | None = None,
        policy: RetryPolicy | None = None,
        jsonrpc: str = "1.0",
    ) -> None:
        self.safe_url = safe_url
        self.wallet = wallet
        self.policy = policy or RetryPolicy()
        self._endpoint = endpoint
        self._jsonrpc = jsonrpc
        self._ids = itertools.count(1)
        self._http = httpx.Client(
            base_url=endpoint.base,
            auth=endpoint.credentials(),
            timeout=self.policy.timeout,
            headers={"Content-Type": "application/json"},
        )

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RpcClient:
        endpoint, safe, options = split_url(url)
        kwargs.setdefault("wallet", options.get("wallet") or None)
        kwargs.setdefault("policy", parse_retry_policy(options))
        return cls(endpoint, safe_url=safe, **kwargs)

    def __repr__(self) -> str:
        return f"RpcClient({self.safe_url!r}, wallet={self.wallet!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RpcClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- public calls -------------------------------------------------------------------------

    def call(
        self,
        method: str,
        *params: Any,
        wallet: bool = False,
        idempotent: bool = True,
        timeout: float | None = None,
    ) -> Any:
        """``method(*params)``'s result; typed errors on failure (see the module docstring)."""
        request = self._request(method, params)
        reply = self._post(request, method, wallet=wallet, idempotent=idempotent, timeout=timeout)
        if not isinstance(reply, dict):
            raise LedgerError(f"{method}: {self.safe_url} sent a reply that is not JSON-RPC")
        return self._result(method, reply, wallet=wallet)

    def batch(
        self,
        calls: Sequence[tuple[str, Sequence[Any]]],
        *,
        wallet: bool = False,
        strict: bool = True,
    ) -> list[Any]:
        """Several read-only calls in one HTTP request, results in ``calls`` order.

        With ``strict`` the first failed call raises its typed error; otherwise its place in
        the list holds the error (for "try each, some may be missing" look-ups).
        """
        if not calls:
            return []
        requests = [self._request(method, params) for method, params in calls]
        label = f"batch of {len(calls)} {calls[0][0]}"
        replies = self._post(requests, label, wallet=wallet, idempotent=True, timeout=None)
        if not isinstance(replies, list):
            # Some servers answer a batch they cannot handle with one error object.
            raise BatchUnsupported(f"{label}: {self.safe_url} does not answer JSON-RPC batches")
        by_id = {r.get("id"): r for r in replies if isinstance(r, dict)}
        out: list[Any] = []
        for request, (method, _) in zip(requests, calls, strict=True):
            reply = by_id.get(request["id"])
            if reply is None:
                raise LedgerError(f"{label}: {self.safe_url} left call {method} unanswered")
            try:
                out.append(self._result(method, reply, wallet=wallet))
            except LedgerError as exc:
                if strict:
                    raise
                out.append(exc)
        return out

    # -- internals ----------------------------------------------------------------------------

    def _request(self, method: str, params: Sequence[Any]) -> dict[str, Any]:
        return {
            "jsonrpc": self._jsonrpc,
            "id": next(self._ids),
            "method": method,
            "params": list(params),
        }

    def _path(self, wallet: bool) -> str:
        if wallet and self.wallet is not None:
            return "/wallet/" + quote(self.wallet, safe="")
        return "/"

    def _result(self, method: str, reply: dict[str, Any], *, wallet: bool) -> Any:
        error = reply.get("error")
        if error:
            if isinstance(error, dict):
                code = int(error.get("code", RPC_MISC_ERROR))
                message = str(error.get("message", ""))
            else:
                code, message = RPC_MISC_ERROR, str(error)
            raise map_rpc_error(
                method, code, message, url=self.safe_url, wallet=self.wallet if wallet else None
            )
        return reply.get("result")

    def _post(
        self,
        payload: Any,
        label: str,
        *,
        wallet: bool,
        idempotent: bool,
        timeout: float | None,
    ) -> Any:
        body = json.dumps(payload, default=_json_default)
        policy = self.policy
        started = time.monotonic()
        attempt = 0
        while True:
            failure = self._attempt(body, label, wallet, idempotent, timeout)
            if not isinstance(failure, _Failure):
                return failure
            if not failure.retry:
                raise LedgerUnavailable(failure.reason)
            wait = policy.delay(attempt)
            spent = time.monotonic() - started
            if attempt >= policy.retries or spent + wait > policy.retry_for:
                raise LedgerUnavailable(
                    f"{failure.reason} (gave up after {attempt + 1} attempts in {spent:.1f} s; "
                    "is the node running? tune with ?retries=&timeout=)"
                )
            time.sleep(wait)
            attempt += 1

    def _attempt(
        self, body: str, label: str, wallet: bool, idempotent: bool, timeout: float | None
    ) -> Any:
        """The decoded reply, or a _Failure saying whether another attempt may help."""
        where = f"{label} on {self.safe_url}"
        try:
            response = self._http.post(
                self._path(wallet), content=body, timeout=timeout or httpx.USE_CLIENT_DEFAULT
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # Nothing reached the node: always safe to try again.
            return _Failure(f"cannot connect for {where}: {_describe(exc)}", retry=True)
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            reason = f"no answer to {where}: {_describe(exc)}"
            if not idempotent:
                reason += (
                    "; the node may have carried it out anyway -- check the wallet "
                    "(listtransactions) before sending again"
                )
            return _Failure(reason, retry=idempotent)
        if response.status_code in (401, 403):
            raise LedgerAuthError(
                f"wrong RPC user or password for {self.safe_url} (HTTP {response.status_code}"
                + (
                    ", or this address is not in the node's -rpcallowip"
                    if response.status_code == 403
                    else ""
                )
                + ")"
            )
        try:
            decoded = json.loads(response.content, parse_float=Decimal)
        except ValueError:
            decoded = None
        if decoded is None or not isinstance(decoded, (dict, list)):
            text = response.text[:200].strip() or response.reason_phrase
            reason = f"{where}: HTTP {response.status_code} {text}"
            if response.status_code >= 500:
                return _Failure(reason, retry=idempotent or response.status_code == 503)
            raise LedgerError(reason)
        warming = _warming_up(decoded)
        if warming is not None:
            # The node refused before doing anything: safe to retry whatever the call.
            return _Failure(f"{where}: the node is starting ({warming})", retry=True)
        return decoded


def _warming_up(decoded: Any) -> str | None:
    replies = decoded if isinstance(decoded, list) else [decoded]
    for reply in replies:
        error = reply.get("error") if isinstance(reply, dict) else None
        if isinstance(error, dict) and error.get("code") == RPC_IN_WARMUP:
            return str(error.get("message", "warming up"))
    return None


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        # As a string: exact (a float could round), and every amount argument of Bitcoin Core
        # and flod accepts "numeric or string".
        return format(value, "f")
    raise TypeError(f"cannot send {type(value).__name__} over JSON-RPC")
