"""Real HTTP block servers on loopback for the fetcher's tests, each in its own process.

``BlockServer`` runs this module as a script: a small threaded HTTP/1.1 server answering
``GET|HEAD [/<prefix>]/ipfs/<cid>?format=raw`` with the block's bytes from a real
``FSBlockstore`` (``Content-Type: application/vnd.ipld.raw``, 404 when the block is absent),
the part of the IPFS Trustless Gateway protocol a block fetcher uses. It is a real process and
a real socket, so a test can SIGKILL it mid-download.

Options make it a *test double* where a test needs misbehaviour no honest node shows:
``--corrupt CID`` serves wrong bytes for that one block (a lying gateway; ``all``: for every
block), ``--oversize`` sends
more than 2 MiB for every block (a peer streaming garbage), ``--delay S`` makes every answer
late (a slow peer), ``--status N`` answers every request with status N, ``--hang-up`` closes
each connection after one answer without saying so (as a keep-alive timeout expiring does).
``--log FILE`` appends one line per block request, ``<prefix> <cid>``: the prefix is whatever
path the client put before ``/ipfs/`` (tests give each run its own peer URL prefix, so one
server's log tells which run asked for what).
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Literal, Self
from urllib.parse import urlsplit

import httpx

from etdb.content.blockstore import FSBlockstore
from etdb.content.cid import CID, CIDError
from etdb.content.errors import BlockNotFoundError
from etdb.content.unixfs import Importer, Profile

RAW_MEDIA = "application/vnd.ipld.raw"
START_TIMEOUT = 20.0
OVERSIZE = (2 << 20) + 1


def import_bytes(store_path: Path, data: bytes, profile: Profile) -> CID:
    """Import ``data`` as one UnixFS file into a real FSBlockstore; return its root CID."""
    with FSBlockstore(store_path) as store:
        return Importer(profile, store).add_bytes(data).cid


class ServerProcess:
    """A test server started as ``python -m <module> <args>`` that prints ``PORT <n>`` once
    it listens; ``url`` is its base URL. SIGKILLed on exit (as a crashed node vanishes)."""

    def __init__(self, module: str, args: list[str], what: str) -> None:
        repo = Path(__file__).resolve().parents[2]
        cmd = [sys.executable, "-m", module, *args]
        self.proc = subprocess.Popen(cmd, cwd=repo, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], START_TIMEOUT)
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith("PORT "):
            self.kill()
            raise RuntimeError(f"{what} did not start (said {line!r})")
        self.port = int(line.split()[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        """SIGKILL: the server vanishes mid-answer, as a crashed node does."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class BlockServer(ServerProcess):
    """A running block server process; ``url`` is its base URL. Use as a context manager."""

    def __init__(
        self,
        store: Path,
        *,
        corrupt: CID | Literal["all"] | None = None,
        delay: float = 0.0,
        status: int | None = None,
        oversize: bool = False,
        hang_up: bool = False,
        log: Path | None = None,
    ) -> None:
        args = ["--store", str(store)]
        if corrupt is not None:
            args += ["--corrupt", str(corrupt)]
        if delay:
            args += ["--delay", str(delay)]
        if status is not None:
            args += ["--status", str(status)]
        if oversize:
            args.append("--oversize")
        if hang_up:
            args.append("--hang-up")
        if log is not None:
            args += ["--log", str(log)]
        super().__init__("tests.content.peers_harness", args, "block server")


class EtdbNode:
    """A real ``etdb serve --no-index`` process whose blockstore is ``store``: our own path and
    trustless gateway, as another lab's node would run it. ``settings`` (e.g.
    ``{"gateway_streams": "4"}``) reach it as ``ETDB_*`` variables. Use as a context manager."""

    def __init__(self, store: Path, home: Path, settings: dict[str, str] | None = None) -> None:
        home.mkdir(parents=True, exist_ok=True)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETDB_")}
        env.update(ETDB_HOME=str(home), ETDB_BLOCKSTORE=str(store))
        env.update({f"ETDB_{name.upper()}": value for name, value in (settings or {}).items()})
        self.log = home / "serve.log"
        etdb = (sys.executable, "-c", "from etdb.cli import main; main()")
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [*etdb, "serve", "--no-index", "--host", "127.0.0.1", "--port", str(self.port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 3 * START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"etdb serve exited: {self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/api/v1/status", timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"etdb serve on {self.url} did not answer: {self.log.read_text()}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def __enter__(self) -> EtdbNode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


def read_log(log: Path) -> list[tuple[str, str]]:
    """The (prefix, cid) of every block request a server logged."""
    if not log.exists():
        return []
    out = []
    for line in log.read_text(encoding="utf-8").splitlines():
        prefix, _, cid = line.rpartition(" ")
        out.append((prefix, cid))
    return out


# -- the server process -------------------------------------------------------------------------


def _handler(store: FSBlockstore, args: argparse.Namespace) -> type[BaseHTTPRequestHandler]:
    corrupt = CID.decode(args.corrupt) if args.corrupt not in (None, "all") else None
    delay, status, log = args.delay, args.status, args.log
    log_lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as any real gateway
        # Headers and body go out in two writes: with Nagle, the body waits for a delayed ACK.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def do_GET(self) -> None:
            self._answer(body=True)

        def _answer(self, *, body: bool) -> None:
            url = urlsplit(self.path)
            prefix, sep, cid_text = url.path.partition("/ipfs/")
            if not sep or "format=raw" not in url.query:
                return self._send(400, b"only /ipfs/<cid>?format=raw", "text/plain", body)
            if log is not None and body:
                with log_lock, open(log, "a", encoding="utf-8") as f:
                    f.write(f"{prefix or '/'} {cid_text}\n")
            if delay:
                time.sleep(delay)
            if status is not None:
                return self._send(status, b"as told", "text/plain", body)
            try:
                cid = CID.decode(cid_text)
                block = store.get(cid)
            except CIDError:
                return self._send(400, b"bad CID", "text/plain", body)
            except BlockNotFoundError:
                return self._send(404, b"not here", "text/plain", body)
            if args.corrupt == "all" or (corrupt is not None and cid == corrupt):
                block = bytes([block[0] ^ 0xFF]) + block[1:]
            if args.oversize:
                block = bytes(OVERSIZE)
            self._send(200, block, RAW_MEDIA, body)

        def _send(self, code: int, data: bytes, media: str, body: bool) -> None:
            self.send_response(code)
            self.send_header("Content-Type", media)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)
            if args.hang_up:
                self.close_connection = True

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--corrupt")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--status", type=int)
    parser.add_argument("--oversize", action="store_true")
    parser.add_argument("--hang-up", action="store_true")
    parser.add_argument("--log", type=Path)
    args = parser.parse_args()
    store = FSBlockstore(args.store, create=False)
    handler = _handler(store, args)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    print(f"PORT {server.server_address[1]}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    server.serve_forever()


if __name__ == "__main__":
    main()
