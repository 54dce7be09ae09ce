"""kubo's RPC API: where it is (an http(s) URL or the multiaddr kubo users type) and a small,
bounded client of the calls a push needs (``id``, ``pin/ls``, a streamed ``POST``).

kubo listens where its ``Addresses.API`` says: ``/ip4/127.0.0.1/tcp/5001`` by default, which
is ``http://127.0.0.1:5001`` and what ``ipfs --api`` takes. Its answers are read up to
``MAX_ANSWER`` bytes and checked; every failure is a :class:`KuboError` naming the node (never
its password) and what to do. See ``kubo_push`` for the push itself.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from etdb.content.cid import CID, CIDError
from etdb.content.errors import ContentError
from etdb.content.peers import check_peer_url

__all__ = [
    "DEFAULT_API",
    "DEFAULT_API_MULTIADDR",
    "KuboApi",
    "KuboError",
    "KuboTimeouts",
    "api_url",
    "printable_api",
    "same_cid",
]

#: kubo's default ``Addresses.API`` (what ``ipfs --api`` talks to), and its gateway's port.
DEFAULT_API = "http://127.0.0.1:5001"
DEFAULT_API_MULTIADDR = "/ip4/127.0.0.1/tcp/5001"
DEFAULT_GATEWAY_PORT = 8080
#: The most bytes of one answer read: a peer's identity, a root or two, an error message.
MAX_ANSWER = 1 << 20
API_PATH = "/api/v0"
_PEER_ID = re.compile(r"[1-9A-HJ-NP-Za-km-z]{40,128}|b[a-z2-7]{50,200}")  # base58btc / base32
_HOST_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9-]{1,63})*\.?")
_QUOTED = 300  # characters of kubo's own words repeated in a message
_WHERE = (
    f"the address of its RPC API, `Addresses.API` ({DEFAULT_API_MULTIADDR} = {DEFAULT_API} "
    "by default, what `ipfs --api` takes)"
)


class KuboError(ContentError):
    """kubo could not be reached, refused a call, or answered something unusable."""


# -- where kubo's RPC API is -------------------------------------------------------------------


def api_url(text: str) -> str:
    """kubo's RPC API base URL (``scheme://[user:password@]host[:port]``) from an http(s) URL
    (a trailing ``/api/v0`` is dropped) or a TCP multiaddr (``/ip4|ip6|dns|dns4|dns6/HOST/
    tcp/PORT[/http|/https|/tls/http]``); ValueError saying what is wrong otherwise."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"kubo's RPC API address is empty (kubo's default: {DEFAULT_API})")
    text = text.strip()
    if text.startswith("/"):
        return _from_multiaddr(text)
    hint = f"an http(s) URL such as {DEFAULT_API}, or a multiaddr such as {DEFAULT_API_MULTIADDR}"
    try:
        check_peer_url(text)
        parts = urlsplit(text)
    except ValueError:
        raise ValueError(f"kubo's RPC API address {text!r} is not {hint}") from None
    if parts.query or parts.fragment or parts.path.rstrip("/") not in ("", API_PATH):
        raise ValueError(f"kubo's RPC API address {text!r}: give only {hint} (no path or query)")
    return f"{parts.scheme}://{parts.netloc}"


def _from_multiaddr(text: str) -> str:
    parts = text.split("/")[1:]
    why = (
        f"multiaddr {text!r} is not a TCP address of kubo's RPC API "
        f"(/ip4|ip6|dns|dns4|dns6/HOST/tcp/PORT[/http|/https|/tls/http], e.g. "
        f"{DEFAULT_API_MULTIADDR})"
    )
    if len(parts) < 4 or parts[2] != "tcp":
        unix = parts[:1] == ["unix"]
        raise ValueError(why + ("; unix sockets are not supported" if unix else ""))
    kind, host, _, port, *rest = parts
    try:
        if kind == "ip4":
            host = str(ipaddress.IPv4Address(host))
        elif kind == "ip6":
            host = f"[{ipaddress.IPv6Address(host)}]"
        elif kind not in ("dns", "dns4", "dns6") or not _HOST_NAME.fullmatch(host):
            raise ValueError
    except ValueError:
        raise ValueError(why) from None
    number = int(port) if port.isascii() and port.isdigit() and len(port) <= 5 else 0
    scheme = {(): "http", ("http",): "http", ("https",): "https", ("tls", "http"): "https"}
    if not 0 < number < 65536 or tuple(rest) not in scheme:
        raise ValueError(why)
    return f"{scheme[tuple(rest)]}://{host}:{number}"


def printable_api(url: str) -> str:
    """The API URL without its password (for messages and the journal)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return f"{parts.scheme}://{parts.username}:***@{parts.netloc.rpartition('@')[2]}"


def same_cid(text: object, cid: CID) -> bool:
    """Whether kubo's spelling ``text`` names ``cid``; a CIDv0 may come back upgraded to v1."""
    if not isinstance(text, str):
        return False
    try:
        return CID.decode(text).to_v1() == cid.to_v1()
    except CIDError:
        return False


# -- calling it ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class KuboTimeouts:
    """Seconds: to connect; for kubo to take the next piece of a body; for a short call's
    answer; for the answer to a streamed body (a ``dag import`` pins first, re-reading the
    whole DAG: long for a large dataset)."""

    connect: float = 10.0
    write: float = 120.0
    answer: float = 60.0
    import_answer: float = 1800.0


class KuboApi:
    """One kubo node's RPC API; close it, or use it as a context manager."""

    def __init__(self, api: str, *, timeouts: KuboTimeouts | None = None) -> None:
        self.url = api_url(api)
        self.shown = printable_api(self.url)
        self.timeouts = t = timeouts or KuboTimeouts()
        self._http = httpx.Client(
            base_url=self.url + API_PATH,
            timeout=httpx.Timeout(t.connect, read=t.answer, write=t.write),
            follow_redirects=False,
            headers={"User-Agent": "etdb"},
        )

    def __repr__(self) -> str:
        return f"KuboApi({self.shown!r})"

    def __enter__(self) -> KuboApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def peer_id(self) -> str:
        """The node's peer ID (``id``): the name it is known by, whatever URL reaches it. Asked
        each time (a cheap call): it also says that the node is up, and is the node now there."""
        answer = self.call("id")
        found = answer.get("ID") if isinstance(answer, dict) else None
        if not isinstance(found, str) or not _PEER_ID.fullmatch(found):
            raise KuboError(f"{self.shown} answered /api/v0/id without a peer ID")
        return found

    def pinned(self, root: CID) -> bool:
        """Whether the node has ``root`` pinned recursively (``pin/ls``)."""
        try:
            answer = self.call("pin/ls", arg=str(root), type="recursive")
        except KuboError as exc:
            if "is not pinned" in str(exc):
                return False
            raise
        keys = answer.get("Keys") if isinstance(answer, dict) else None
        if not isinstance(keys, dict):
            raise KuboError(f"{self.shown} answered pin/ls without its Keys")
        return any(same_cid(key, root) for key in list(keys)[:16])

    def call(self, command: str, **params: str) -> Any:
        """``POST /api/v0/<command>?params``: its JSON answer, or KuboError."""
        try:
            with self._http.stream("POST", f"/{command}", params=params) as response:
                status, raw = response.status_code, bounded(response)
        except httpx.TimeoutException as exc:
            raise KuboError(
                f"{self.shown} did not answer /api/v0/{command}: {_said(exc)}"
            ) from None
        except httpx.HTTPError as exc:
            raise KuboError(
                f"kubo unreachable at {self.shown} ({_said(exc)}): is its daemon running "
                f"(`ipfs daemon`)? Give {_WHERE}"
            ) from None
        if status in (404, 405):
            raise KuboError(
                f"{self.shown} is not kubo's RPC API (HTTP {status} for /api/v0/{command}): give "
                f"{_WHERE}, not its gateway's (port {DEFAULT_GATEWAY_PORT} by default)"
            )
        if status != 200:
            raise KuboError(f"{self.shown}: {refusal(status, raw)}")
        try:
            return json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: nested past what json decodes
            raise KuboError(f"{self.shown} answered /api/v0/{command} with no JSON") from None

    def post_stream(
        self, command: str, params: dict[str, str], content: Iterator[bytes], content_type: str
    ) -> tuple[int, bytes]:
        """``POST`` a streamed body (chunked); the status and bounded answer. httpx errors
        (timeouts, a cut connection) and errors the body's iterator raises go to the caller,
        which knows how far the body got."""
        t = self.timeouts
        with self._http.stream(
            "POST",
            f"/{command}",
            params=params,
            content=content,
            headers={"Content-Type": content_type},
            timeout=httpx.Timeout(t.connect, read=t.import_answer, write=t.write),
        ) as response:
            return response.status_code, bounded(response)


def bounded(response: httpx.Response) -> bytes:
    """The answer's body, at most ``MAX_ANSWER`` bytes (KuboError past that)."""
    data = bytearray()
    for chunk in response.iter_bytes():
        data += chunk
        if len(data) > MAX_ANSWER:
            raise KuboError(f"kubo's answer is over {MAX_ANSWER} bytes; not read further")
    return bytes(data)


def refusal(status: int, raw: bytes) -> str:
    """kubo's error: its JSON ``Message`` if there is one, else the HTTP status."""
    try:
        message = json.loads(raw).get("Message")
    except (ValueError, AttributeError, RecursionError):
        message = None
    said = quoted(message) if isinstance(message, str) and message else f"HTTP {status}"
    if status in (401, 403):
        said += (
            " (kubo's API.Authorizations: put the user and password in the URL, "
            "http://user:password@host:5001)"
        )
    return said


def quoted(text: str) -> str:
    """Words from elsewhere, in one printable line of bounded length."""
    flat = "".join(c if c.isprintable() else " " for c in text).strip()
    return flat if len(flat) <= _QUOTED else flat[:_QUOTED] + "…"


def _said(exc: BaseException) -> str:
    return quoted(str(exc)) or type(exc).__name__
