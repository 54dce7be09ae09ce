"""Read-through on real nodes: node B (`etdb serve --no-index`, no blockstore, upstream peers)
serves a record's files, its dataset page's media and slices, which only node A (another real
`etdb serve`) holds; lying, slow and logging upstreams are real HTTP servers on loopback
(``tests/content/peers_harness.py``, ``tests/content/car_proxy.py``).
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from etdb.content.blockstore import FSBlockstore
from etdb.content.car import read_car
from etdb.content.cid import CID
from etdb.content.filefetch import plan_file
from etdb.content.unixfs import Importer
from tests.content.car_proxy import CarProxy, read_proxy_log
from tests.content.peers_harness import BlockServer, EtdbNode, read_log
from tests.web.readthrough_data import (
    KEY_IMAGE,
    KEY_MOVIE,
    RECONSTRUCTION,
    SUBTYPES,
    THUMBNAIL,
    TILT_SERIES,
    Dataset,
    index_record,
    make_dataset,
    record_files,
)

WAIT = 60.0  # seconds a test waits for something that happens in the background


class Setup:
    """The dataset, A's blockstore and node, and a factory of B nodes (all stopped at the end)."""

    def __init__(self, root: Path, dataset: Dataset, blocks: Path, cid: CID, a: EtdbNode) -> None:
        self.root, self.dataset, self.blocks, self.cid, self.a = root, dataset, blocks, cid, a
        self.nodes: list[Any] = []
        self.record_id = ""

    def node_b(self, name: str, peers: list[str], **settings: str) -> EtdbNode:
        """A fresh B: its catalog holds the record, it has no blockstore, ``peers`` upstream."""
        home = self.root / name
        self.record_id = index_record(home, str(self.cid), record_files(self.dataset))
        all_settings = {"peers": ",".join(peers), "peer_cache": str(home / "cache"), **settings}
        node = EtdbNode(self.root / f"{name}-no-blocks", home, all_settings)
        self.nodes.append(node)
        return node

    def keep(self, server: Any) -> Any:
        self.nodes.append(server)
        return server

    def url(self, node: Any, name: str = "") -> str:
        return f"{node.url}/ipfs/{self.cid}" + (f"/{name}" if name else "")

    def leaves(self, name: str) -> list[CID]:
        with FSBlockstore(self.blocks, create=False) as store:
            return [leaf.cid for leaf in plan_file(store, f"{self.cid}/{name}").leaves]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("readthrough")
    dataset = make_dataset(root / "dataset")
    blocks = root / "a-blocks"
    with FSBlockstore(blocks) as store:
        cid = Importer("kubo-v1", store).add_path(dataset.folder).cid
    a = EtdbNode(blocks, root / "a-home")
    s = Setup(root, dataset, blocks, cid, a)
    try:
        yield s
    finally:
        for node in [*s.nodes, a]:
            node.kill()


@pytest.fixture(scope="module")
def node_b(setup: Setup) -> EtdbNode:
    """B reading through A, with a cache (the default settings but for its size)."""
    return setup.node_b("b", [setup.a.url], peer_cache_size="64MiB")


def eventually(check: Callable[[], bool], what: str) -> None:
    """Wait (at most ``WAIT`` s) for background work (the cache's writer) to show."""
    deadline = time.monotonic() + WAIT
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"still not true after {WAIT:g} s: {what}")
        time.sleep(0.1)


def cached_bytes(home: Path) -> int:
    return sum(p.stat().st_size for p in (home / "cache").rglob("*.data"))


# -- B serves what only A holds ---------------------------------------------------------------


@pytest.mark.parametrize("name", list(SUBTYPES))
def test_files_are_served_byte_identical(setup: Setup, node_b: EtdbNode, name: str) -> None:
    response = httpx.get(setup.url(node_b, name), timeout=WAIT)
    assert response.status_code == 200, response.text
    assert response.content == setup.dataset.bytes_of(name)
    assert response.headers["etag"] == f'"{_file_cid(setup, name)}"'


def _file_cid(setup: Setup, name: str) -> CID:
    with FSBlockstore(setup.blocks, create=False) as store:
        return plan_file(store, f"{setup.cid}/{name}").cid


@pytest.mark.parametrize(
    "spec", ["bytes=0-99", "bytes=262100-262200", "bytes=1000000-", "bytes=-5000", "bytes=7-7"]
)
def test_byte_ranges_are_served_byte_identical(setup: Setup, node_b: EtdbNode, spec: str) -> None:
    data = setup.dataset.bytes_of(TILT_SERIES)
    first, last = spec.removeprefix("bytes=").split("-")
    if not first:
        start, end = len(data) - int(last), len(data)
    else:
        start, end = int(first), (int(last) + 1 if last else len(data))
    response = httpx.get(setup.url(node_b, TILT_SERIES), headers={"Range": spec}, timeout=WAIT)
    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes {start}-{end - 1}/{len(data)}"
    assert response.content == data[start:end]


def test_the_dataset_page_shows_and_plays_what_b_does_not_hold(
    setup: Setup, node_b: EtdbNode
) -> None:
    page = httpx.get(f"{node_b.url}/tomogram/{setup.record_id}", timeout=WAIT)
    assert page.status_code == 200
    html = page.text
    assert "not stored on this server" not in html  # the slice viewer found the MRC headers
    video = re.search(r'<source src="([^"]+)" type="video/mp4"', html)
    poster = re.search(r'poster="([^"]+)"', html)
    assert video and poster, html[:2000]
    for link, name in ((video.group(1), KEY_MOVIE), (poster.group(1), KEY_IMAGE)):
        assert link.endswith(name)
        media = httpx.get(node_b.url + link.replace("&amp;", "&"), timeout=WAIT)
        assert media.status_code == 200 and media.content == setup.dataset.bytes_of(name)
    # A seek in the movie, as a browser asks for it.
    seek = httpx.get(node_b.url + video.group(1), headers={"Range": "bytes=600000-"}, timeout=WAIT)
    assert seek.content == setup.dataset.bytes_of(KEY_MOVIE)[600000:]


@pytest.mark.parametrize("name,z", [(RECONSTRUCTION, 3), (TILT_SERIES, 7), (TILT_SERIES, None)])
def test_slices_match_those_of_the_node_holding_the_file(
    setup: Setup, node_b: EtdbNode, name: str, z: int | None
) -> None:
    query = "" if z is None else f"?z={z}"
    ours = httpx.get(f"{node_b.url}/slices/{setup.cid}/{name}{query}", timeout=WAIT)
    theirs = httpx.get(f"{setup.a.url}/slices/{setup.cid}/{name}{query}", timeout=WAIT)
    assert ours.status_code == theirs.status_code == 200, ours.text
    assert ours.headers["content-type"] == "image/png"
    assert ours.content == theirs.content
    info = httpx.get(f"{node_b.url}/slices/{setup.cid}/{name}?info=1", timeout=WAIT).json()
    assert info == httpx.get(f"{setup.a.url}/slices/{setup.cid}/{name}?info=1").json()


def test_etdb_download_from_b_once_b_holds_the_dataset(
    setup: Setup, node_b: EtdbNode, tmp_path: Path
) -> None:
    # B answers other peers (etdb download is one) from what it holds: it read every file
    # through above, so its cache now holds the whole dataset.
    for name in SUBTYPES:
        assert httpx.get(setup.url(node_b, name), timeout=WAIT).status_code == 200

    whole = httpx.get(setup.url(setup.a) + "?format=car", timeout=WAIT).content
    assert len(list(read_car(io.BytesIO(whole)))) > 20

    def complete_car() -> bool:
        try:
            car = httpx.get(setup.url(node_b) + "?format=car", timeout=WAIT)
        except httpx.HTTPError:
            return False  # a block not written yet: the CAR was cut short
        return car.status_code == 200 and car.content == whole

    eventually(complete_car, "B's cache holds the whole dataset")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETDB_")}
    env["ETDB_HOME"] = str(tmp_path / "home")
    dest = tmp_path / "download"
    done = subprocess.run(
        [sys.executable, "-c", "from etdb.cli import main; main()", "download",
         "--server", node_b.url, "--id", setup.record_id, "--dest", str(dest),
         "--layout", "{path}", "--yes", "--json"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    for name in SUBTYPES:
        assert (dest / name).read_bytes() == setup.dataset.bytes_of(name), name


# -- what B answers other peers: never through its upstream ----------------------------------


def test_the_trustless_gateway_never_reads_through(setup: Setup, tmp_path: Path) -> None:
    # Two nodes that are each other's upstream would bounce a request for a block neither
    # holds for ever, and any client could make B fetch arbitrary blocks from its peers.
    # Fails if the trustless responders are given GatewayState.store() instead of held().
    log = tmp_path / "proxy.log"
    proxy = setup.keep(CarProxy(setup.a.url, log=log))
    b = setup.node_b("b-trustless", [proxy.url])
    leaf = setup.leaves(KEY_MOVIE)[2]
    assert httpx.get(f"{b.url}/ipfs/{leaf}?format=raw").status_code == 404
    assert httpx.get(setup.url(b, KEY_MOVIE) + "?format=car").status_code == 404
    raw = {"Accept": "application/vnd.ipld.raw"}
    assert httpx.get(f"{b.url}/ipfs/{leaf}", headers=raw).status_code == 404
    assert read_proxy_log(log) == []  # the upstream was never asked
    block = httpx.get(f"{setup.a.url}/ipfs/{leaf}?format=raw").content
    assert httpx.get(f"{b.url}/ipfs/{leaf}").content == block
    assert read_proxy_log(log)  # the path gateway does read through (the peer works)
    eventually(
        lambda: httpx.get(f"{b.url}/ipfs/{leaf}?format=raw").status_code == 200,
        "B answers the block it now holds",
    )


# -- lying upstreams ------------------------------------------------------------------------------


def test_a_lying_upstream_is_a_502_naming_the_block_never_its_bytes(setup: Setup) -> None:
    liar = setup.keep(BlockServer(setup.blocks, corrupt="all"))
    b = setup.node_b("b-liar", [liar.url])
    response = httpx.get(setup.url(b, KEY_IMAGE), timeout=WAIT)
    assert response.status_code == 502
    message = response.json()["error"]["message"]
    assert str(setup.cid) in message and "lied" in message
    assert cached_bytes(setup.root / "b-liar") == 0


def test_with_a_liar_and_an_honest_upstream_the_right_bytes_come(setup: Setup) -> None:
    liar = setup.keep(BlockServer(setup.blocks, corrupt="all"))
    b = setup.node_b("b-mixed", [liar.url, setup.a.url])
    for name in (KEY_MOVIE, TILT_SERIES, THUMBNAIL):
        response = httpx.get(setup.url(b, name), timeout=WAIT)
        assert response.status_code == 200 and response.content == setup.dataset.bytes_of(name)


def test_a_car_stream_that_lies_mid_file_never_reaches_the_client(setup: Setup) -> None:
    # The only upstream flips a byte of the 3rd block of every CAR stream (its raw blocks are
    # honest): B's read-ahead stops there and reads the rest block by block, verified.
    # Fails without the CAR reader's verification (the flipped block would be sent).
    liar = setup.keep(CarProxy(setup.a.url, corrupt_block=3))
    b = setup.node_b("b-car-liar", [liar.url])
    response = httpx.get(setup.url(b, TILT_SERIES), timeout=WAIT)
    assert response.status_code == 200
    assert response.content == setup.dataset.bytes_of(TILT_SERIES)


def test_with_no_honest_source_left_mid_file_the_body_is_cut_short(setup: Setup) -> None:
    # The only upstream lies about the 5th leaf of the file (and serves no CARs): the 200 is
    # already sent when that leaf is read, so the body ends there. Fails without the block
    # fetcher's verification (the wrong leaf would be sent, and the rest after it).
    fifth = setup.leaves(TILT_SERIES)[4]
    liar = setup.keep(BlockServer(setup.blocks, corrupt=fifth))
    b = setup.node_b("b-mid", [liar.url])
    data = setup.dataset.bytes_of(TILT_SERIES)
    got = bytearray()
    with httpx.stream("GET", setup.url(b, TILT_SERIES), timeout=WAIT) as response:
        assert response.status_code == 200
        with pytest.raises(httpx.HTTPError):
            for chunk in response.iter_raw():
                got += chunk
    assert 0 < len(got) < len(data)
    assert bytes(got) == data[: len(got)]
    log = (setup.root / "b-mid" / "serve.log").read_text()
    assert "upstream" in log and str(fifth) in log


# -- the cache ------------------------------------------------------------------------------------


def test_the_cache_stays_within_its_bound_and_keeps_the_latest(setup: Setup) -> None:
    b = setup.node_b("b-small", [setup.a.url], peer_cache_size="1MiB")
    for name in (TILT_SERIES, KEY_MOVIE):  # 3.6 MB through a 1 MiB cache
        assert httpx.get(setup.url(b, name), timeout=WAIT).content == setup.dataset.bytes_of(name)
    home = setup.root / "b-small"
    last = setup.leaves(KEY_MOVIE)[-1]
    cache = home / "cache"
    eventually(lambda: any(cache.rglob(f"*{_key(last)}.data")), "the last block read is kept")
    assert 0 < cached_bytes(home) <= 1 << 20
    assert not any(cache.rglob(f"*{_key(setup.leaves(TILT_SERIES)[0])}.data"))  # evicted


def _key(cid: CID) -> str:
    from etdb.content.blockstore import multihash_key

    return multihash_key(cid.multihash)


def test_with_the_cache_off_nothing_is_kept(setup: Setup) -> None:
    b = setup.node_b("b-off", [setup.a.url], peer_cache_size="0")
    for name in (KEY_MOVIE, RECONSTRUCTION):
        assert httpx.get(setup.url(b, name), timeout=WAIT).content == setup.dataset.bytes_of(name)
    assert not (setup.root / "b-off" / "cache").exists()  # no cache was ever opened
    assert httpx.get(setup.url(b, KEY_IMAGE) + "?format=car").status_code == 404


def test_concurrent_requests_for_one_block_fetch_it_once(setup: Setup, tmp_path: Path) -> None:
    log = tmp_path / "requests.log"
    slow = setup.keep(BlockServer(setup.blocks, delay=0.5, log=log))  # the requests overlap
    b = setup.node_b("b-once", [slow.url])
    leaf = setup.leaves(RECONSTRUCTION)[4]
    answers: list[httpx.Response] = []

    def ask() -> None:
        answers.append(httpx.get(f"{b.url}/ipfs/{leaf}", timeout=WAIT))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in answers] == [200] * 8
    assert len({r.content for r in answers}) == 1
    assert [c for _, c in read_log(log)] == [str(leaf)]


def test_serve_peer_option_overrides_the_setting_and_bad_urls_stop_it(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETDB_")}
    env |= {"ETDB_HOME": str(tmp_path / "home"), "ETDB_PEERS": "http://127.0.0.1:9"}
    etdb = [sys.executable, "-c", "from etdb.cli import main; main()"]
    bad = subprocess.run([*etdb, "serve", "--no-index", "--peer", "ftp://x"], env=env,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert bad.returncode == 2 and "ftp://x" in bad.stderr and "http" in bad.stderr
    env["ETDB_PEER_CACHE_SIZE"] = "lots"
    bad = subprocess.run([*etdb, "serve", "--no-index"], env=env, capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert bad.returncode == 2 and "peer_cache_size" in bad.stderr
