"""An independent IPFS client fetches from a real `etdb serve` and verifies what it gets.

`@helia/verified-fetch` (Node, see ``helia_client.py``) has our gateway as its only source of
blocks: it asks for raw blocks (``?format=raw``), checks each against its CID and assembles
UnixFS files itself. The files it returns must be byte-identical to the dataset on disk; behind
a proxy that flips one byte of one block it must refuse. ``@ipld/car`` reads our CAR streams
and hashes every block. Nothing here trusts etdb's own reader.
"""

from __future__ import annotations

import hashlib
import io
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from etdb.content.car import read_car
from etdb.content.cid import RAW
from tests.client.nodes import Node, run_etdb
from tests.web.helia_client import HeliaClient, helia_client

FILES = {
    "tilt/series.mrc": 1_500_000,  # six 256 KiB leaves under one root
    "tilt/deeper/still/notes.txt": 40,
    "key images/snap 01.jpg": 30_000,  # a space in a folder and a file name
    "reconstruction.rec": 300_000,
}


@dataclass
class Served:
    root: str
    folder: Path
    node: Node

    def sha256(self, rel: str) -> str:
        return hashlib.sha256((self.folder / rel).read_bytes()).hexdigest()

    def ipfs_url(self, rel: str) -> str:
        return f"ipfs://{self.root}/{quote(rel)}"


@pytest.fixture(scope="module")
def client() -> HeliaClient:
    return helia_client()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, client: HeliaClient) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("helia-home")
    folder = tmp_path_factory.mktemp("helia-data") / "et2022-02-02-7"
    rng = random.Random(11)
    for rel, size in FILES.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(rng.randbytes(size))
    added = run_etdb(home, "add", "-q", str(folder))
    assert added.returncode == 0, added.stderr
    node = Node(home).start()
    try:
        yield Served(added.stdout.strip(), folder, node)
    finally:
        node.stop()


def test_verified_fetch_gets_every_file_byte_identical(client: HeliaClient, served: Served) -> None:
    rels = list(FILES)
    status, results = client.fetch(served.node.url, [served.ipfs_url(r) for r in rels])
    for rel, result in zip(rels, results, strict=True):
        assert result["ok"], (rel, result)
        assert result["length"] == FILES[rel], rel
        assert result["sha256"] == served.sha256(rel), rel
    assert status == 0


def test_ipld_car_reads_our_car_streams(client: HeliaClient, served: Served) -> None:
    paths = [
        f"/ipfs/{served.root}?format=car",
        f"/ipfs/{served.root}/tilt/series.mrc?format=car&entity-bytes=300000:600000",
        f"/ipfs/{served.root}/{quote('key images')}?format=car&dag-scope=entity&car-dups=y",
    ]
    status, results = client.fetch(served.node.url, [f"car:{p}" for p in paths])
    assert status == 0, results
    for path, result in zip(paths, results, strict=True):
        ours = read_car(io.BytesIO(httpx.get(served.node.url + path).content))
        assert result["roots"] == [str(r) for r in ours.roots] == [served.root]
        assert result["blocks"] == len(list(ours)), path


class CorruptingProxy:
    """A real HTTP proxy in front of the gateway that flips one byte of one block's body."""

    def __init__(self, upstream: str, target: str) -> None:
        self.upstream = upstream
        self.target = target
        self.corrupted = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                wanted = {k: v for k, v in self.headers.items() if k.lower() == "accept"}
                up = httpx.get(proxy.upstream + self.path, headers=wanted, timeout=30)
                body = bytearray(up.content)
                if self.path.split("?")[0] == f"/ipfs/{proxy.target}" and body:
                    body[len(body) // 2] ^= 0x01
                    proxy.corrupted += 1
                self.send_response(up.status_code)
                for name in ("content-type", "etag", "cache-control", "x-ipfs-roots"):
                    if name in up.headers:
                        self.send_header(name, up.headers[name])
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(bytes(body))

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> CorruptingProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_gateway_that_corrupts_a_block_is_rejected(client: HeliaClient, served: Served) -> None:
    rel = "tilt/series.mrc"
    entity = httpx.get(f"{served.node.url}/ipfs/{served.root}/{rel}?format=car&dag-scope=entity")
    leaves = [cid for cid, _ in read_car(io.BytesIO(entity.content)) if cid.codec == RAW]
    assert len(leaves) > 2
    target = str(leaves[2])
    with CorruptingProxy(served.node.url, target) as proxy:
        # One process per fetch: a client that evicted the gateway for lying keeps no session
        # to ask again, so a second fetch in the same process would only wait for providers.
        status, (bad,) = client.fetch(proxy.url, [served.ipfs_url(rel)])
        assert proxy.corrupted >= 1  # the bad block was really sent
        assert status == 1 and not bad["ok"], bad
        assert bad["sha256"] is None and target in bad["error"]
        # The proxy itself is sound: a file without the corrupted block comes through intact.
        status, (good,) = client.fetch(proxy.url, [served.ipfs_url("reconstruction.rec")])
        assert status == 0 and good["sha256"] == served.sha256("reconstruction.rec"), good
