"""A real HTTP proxy in front of a real ``etdb serve``, in its own process: a *test double*
for the CAR downloader's misbehaving peers (no honest node does what its options make it do).

It forwards ``GET|HEAD [/<prefix>]/ipfs/...`` to the upstream node (dropping the prefix, which
tests use to tell runs apart in the log) and relays the answer. CAR bodies are relayed section
by section, so it can: ``--corrupt-block N`` flip one byte of the N-th block (1-based) of every
CAR stream (a lying peer), ``--cut-after N`` hang up after N blocks of every CAR stream (a peer
dying mid-stream), ``--refuse-car`` answer CAR requests 406 (a gateway serving raw blocks
only). ``--log FILE`` appends ``<prefix> <cid> <query>`` per request.
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from tests.content.peers_harness import ServerProcess

_HOP_HEADERS = {"connection", "transfer-encoding", "keep-alive", "content-length"}


class CarProxy(ServerProcess):
    """A running proxy process before ``upstream``; ``url`` is its base URL."""

    def __init__(
        self,
        upstream: str,
        *,
        corrupt_block: int | None = None,
        cut_after: int | None = None,
        refuse_car: bool = False,
        log: Path | None = None,
    ) -> None:
        args = ["--upstream", upstream]
        if corrupt_block is not None:
            args += ["--corrupt-block", str(corrupt_block)]
        if cut_after is not None:
            args += ["--cut-after", str(cut_after)]
        if refuse_car:
            args.append("--refuse-car")
        if log is not None:
            args += ["--log", str(log)]
        super().__init__("tests.content.car_proxy", args, "CAR proxy")


def read_proxy_log(log: Path) -> list[tuple[str, str, dict[str, list[str]]]]:
    """(prefix, cid, query parameters) of every request the proxy logged."""
    if not log.exists():
        return []
    out = []
    for line in log.read_text(encoding="utf-8").splitlines():
        prefix, cid, query = line.split(" ")
        out.append((prefix, cid, parse_qs(query)))
    return out


# -- the proxy process --------------------------------------------------------------------------


def _varint(read: object) -> tuple[int, bytes] | None:
    raw = bytearray()
    value = shift = 0
    while True:
        b = read(1)  # type: ignore[operator]
        if not b:
            return None
        raw += b
        value |= (b[0] & 0x7F) << shift
        if not b[0] & 0x80:
            return value, bytes(raw)
        shift += 7


def _handler(args: argparse.Namespace) -> type[BaseHTTPRequestHandler]:
    up = urlsplit(args.upstream)
    log_lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *a: object) -> None:
            pass

        def do_HEAD(self) -> None:
            self._relay()

        def do_GET(self) -> None:
            self._relay()

        def _relay(self) -> None:
            url = urlsplit(self.path)
            prefix, _, rest = url.path.partition("/ipfs/")
            car = "format=car" in url.query
            if args.log is not None and self.command == "GET":
                with log_lock, open(args.log, "a", encoding="utf-8") as f:
                    f.write(f"{prefix or '/'} {rest} {url.query or '-'}\n")
            if car and args.refuse_car:
                return self._plain(406, b"no CAR here")
            upstream = http.client.HTTPConnection(up.hostname, up.port, timeout=30)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            upstream.request(self.command, f"/ipfs/{rest}?{url.query}", headers=headers)
            r = upstream.getresponse()
            if not car or r.status != 200 or self.command == "HEAD":
                body = r.read()
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in _HOP_HEADERS:
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command == "GET":
                    self.wfile.write(body)
                upstream.close()
                return
            self.send_response(200)
            for k, v in r.getheaders():
                if k.lower() not in _HOP_HEADERS:
                    self.send_header(k, v)
            self.send_header("Connection", "close")  # the body ends when the socket does
            self.end_headers()
            self.close_connection = True
            self._relay_car(r)
            upstream.close()

        def _relay_car(self, r: http.client.HTTPResponse) -> None:
            head = _varint(r.read)
            assert head is not None
            self.wfile.write(head[1] + r.read(head[0]))
            n = 0
            while (section := _varint(r.read)) is not None:
                n += 1
                if args.cut_after is not None and n > args.cut_after:
                    self.wfile.flush()
                    return  # hang up mid-stream, as a crashed node does
                body = bytearray(r.read(section[0]))
                if n == args.corrupt_block:
                    body[-1] ^= 0xFF  # the block's last byte: the CID before it stays valid
                self.wfile.write(section[1] + bytes(body))

        def _plain(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command == "GET":
                self.wfile.write(body)

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--corrupt-block", type=int)
    parser.add_argument("--cut-after", type=int)
    parser.add_argument("--refuse-car", action="store_true")
    parser.add_argument("--log", type=Path)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(args))
    server.daemon_threads = True
    print(f"PORT {server.server_address[1]}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    server.serve_forever()


if __name__ == "__main__":
    main()
