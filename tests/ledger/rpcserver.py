"""A real loopback HTTP JSON-RPC server for tests, answering the way Bitcoin Core's does.

Bitcoin Core (and flod 0.15, its fork) speak JSON-RPC 1.0 over HTTP with basic auth: a bad
password is HTTP 401 with an empty body; a failed call is HTTP 500 (404 for an unknown method)
with ``{"result": null, "error": {"code", "message"}, "id"}``; a batch (JSON array) is answered
with an array, HTTP 200. Those shapes were checked against litecoind 0.21 on this machine.

``handler(method, params, path)`` returns the result, raises :class:`Fault` for a JSON-RPC
error, or returns :class:`Raw` to send arbitrary HTTP (status, body, delay) for transport tests.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Fault(Exception):
    """A JSON-RPC error reply."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Raw:
    status: int = 200
    body: bytes | str | Any = b""
    delay: float = 0.0
    content_type: str = "application/json"


@dataclass
class Seen:
    path: str
    body: Any
    auth: str


Handler = Callable[[str, list[Any], str], Any]


def _encode(value: Any) -> bytes:
    def default(v: Any) -> Any:
        if isinstance(v, Decimal):
            return float(v)
        raise TypeError(type(v).__name__)

    return json.dumps(value, default=default).encode()


class RpcServer:
    """``with RpcServer(handler) as server: server.url ...``; ``stop()``/``start()`` keep the port."""

    def __init__(self, handler: Handler, *, user: str = "user", password: str = "pass") -> None:
        self.handler = handler
        self.user = user
        self.password = password
        self.seen: list[Seen] = []
        #: Answer batches in reverse order / with this fixed (status, body): for client tests.
        self.reverse_batches = False
        self.batch_reply: tuple[int, bytes] | None = None
        self.port = 0
        self._httpd: ThreadingHTTPServer | None = None
        self._connections: set[socket.socket] = set()
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like Bitcoin Core

            def log_message(self, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                # Headers and body go out in two writes: without this, Nagle + delayed ACK
                # add 40 ms to every call.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                server._connections.add(self.connection)

            def finish(self) -> None:
                server._connections.discard(self.connection)
                super().finish()

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                auth = self.headers.get("Authorization", "")
                try:
                    body = json.loads(raw, parse_float=Decimal)
                except ValueError:
                    body = raw
                server.seen.append(Seen(self.path, body, auth))
                expected = (
                    "Basic "
                    + base64.b64encode(f"{server.user}:{server.password}".encode()).decode()
                )
                if auth != expected:
                    self._send(401, b"", "text/html")
                    return
                if isinstance(body, list):
                    if server.batch_reply is not None:
                        self._send(*server.batch_reply)
                        return
                    replies = [server._one(r, self.path)[1] for r in body]
                    if server.reverse_batches:
                        replies.reverse()  # JSON-RPC allows any order; clients match by id
                    self._send(200, _encode(replies))
                    return
                status, reply = server._one(body, self.path)
                if isinstance(reply, Raw):
                    time.sleep(reply.delay)
                    data = reply.body
                    if not isinstance(data, (bytes, str)):
                        data = _encode(data)
                    self._send(
                        reply.status,
                        data if isinstance(data, bytes) else data.encode(),
                        reply.content_type,
                    )
                    return
                self._send(status, _encode(reply))

            def _send(
                self, status: int, data: bytes, content_type: str = "application/json"
            ) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

        httpd = ThreadingHTTPServer(("127.0.0.1", self.port), _Handler)
        httpd.daemon_threads = True
        self.port = httpd.server_address[1]
        self._httpd = httpd
        threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True).start()

    def _one(self, request: Any, path: str) -> tuple[int, Any]:
        rid = request.get("id") if isinstance(request, dict) else None
        try:
            result = self.handler(str(request["method"]), list(request.get("params") or []), path)
        except Fault as fault:
            status = 404 if fault.code == -32601 else 500
            return status, {
                "result": None,
                "error": {"code": fault.code, "message": fault.message},
                "id": rid,
            }
        if isinstance(result, Raw):
            return result.status, result
        return 200, {"result": result, "error": None, "id": rid}

    def stop(self) -> None:
        """Stop listening and drop open keep-alive connections (as a dying node would)."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        for connection in list(self._connections):
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def calls(self, method: str | None = None) -> list[Seen]:
        """Requests seen (single calls only), optionally of one method."""
        return [
            s
            for s in self.seen
            if isinstance(s.body, dict) and method in (None, s.body.get("method"))
        ]

    def __enter__(self) -> RpcServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
