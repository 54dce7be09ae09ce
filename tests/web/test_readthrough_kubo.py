"""Read-through from a real kubo: records whose ``Qm…`` data sits in a kubo node, as the real
ETDB-Caltech records' data does (we do not hold that data, so a dataset is added to a real
kubo v0.43.1 daemon with ``ipfs add -r`` and kubo's defaults: CIDv0, dag-pb leaves). An etdb
node whose only upstream is that kubo's gateway serves the record's files, its dataset page's
media and its slices, every block verified on the way.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest
from fastapi.testclient import TestClient

from etdb.api import create_app
from etdb.config import Settings
from etdb.content.blockstore import FSBlockstore
from etdb.content.cid import CID, RAW
from etdb.content.unixfs import Importer
from etdb.index.catalog import open_catalog
from tests.content.peers_harness import EtdbNode
from tests.kubo.daemon import KuboDaemon
from tests.kubo.fixtures import KuboFactory
from tests.web.readthrough_data import (
    KEY_IMAGE,
    KEY_MOVIE,
    RECONSTRUCTION,
    SUBTYPES,
    TILT_SERIES,
    Dataset,
    index_record,
    make_dataset,
    record_files,
)

pytestmark = pytest.mark.kubo

WAIT = 120.0


class Setup:
    def __init__(self, dataset: Dataset, cid: str, node: EtdbNode, record_id: str) -> None:
        self.dataset, self.cid, self.node, self.record_id = dataset, cid, node, record_id

    def url(self, name: str) -> str:
        return f"{self.node.url}/ipfs/{self.cid}/{name}"


@pytest.fixture(scope="module")
def kubo_node(kubo_factory: KuboFactory) -> KuboDaemon:
    """A kubo that answers from what it holds (``Gateway.NoFetch``: a block it lacks is not
    looked for on a network this test machine does not have)."""
    return kubo_factory(config={"Gateway.NoFetch": True})


@pytest.fixture(scope="module")
def setup(kubo_node: KuboDaemon, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    kubo = kubo_node
    root = tmp_path_factory.mktemp("readthrough-kubo")
    dataset = make_dataset(root / "dataset", seed=43)
    cid = kubo.cli("add", "-r", "-Q", str(dataset.folder)).stdout.decode().strip()
    assert cid.startswith("Qm"), cid  # kubo's default: CIDv0, as ETDB-Caltech's records
    home = root / "node"
    record_id = index_record(home, cid, record_files(dataset))
    settings = {"peers": kubo.gateway_url, "peer_cache": str(home / "cache")}
    with EtdbNode(root / "no-blocks", home, settings) as node:
        yield Setup(dataset, cid, node, record_id)


@pytest.mark.parametrize("name", list(SUBTYPES))
def test_a_record_s_files_come_from_kubo_byte_identical(setup: Setup, name: str) -> None:
    response = httpx.get(setup.url(name), timeout=WAIT)
    assert response.status_code == 200, response.text
    assert response.content == setup.dataset.bytes_of(name)


def test_byte_ranges_through_kubo(setup: Setup) -> None:
    data = setup.dataset.bytes_of(TILT_SERIES)
    for start, end in ((0, 1024), (262_000, 1_900_000), (len(data) - 10, len(data))):
        response = httpx.get(
            setup.url(TILT_SERIES), headers={"Range": f"bytes={start}-{end - 1}"}, timeout=WAIT
        )
        assert response.status_code == 206 and response.content == data[start:end]


def test_the_dataset_page_media_come_from_kubo(setup: Setup) -> None:
    html = httpx.get(f"{setup.node.url}/tomogram/{setup.record_id}", timeout=WAIT).text
    assert "not stored on this server" not in html
    video = re.search(r'<source src="([^"]+)" type="video/mp4"', html)
    poster = re.search(r'poster="([^"]+)"', html)
    assert video and poster
    for link, name in ((video.group(1), KEY_MOVIE), (poster.group(1), KEY_IMAGE)):
        media = httpx.get(setup.node.url + link, timeout=WAIT)
        assert media.status_code == 200 and media.content == setup.dataset.bytes_of(name)


@pytest.fixture(scope="module")
def local_portal(setup: Setup, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """An app over a blockstore holding the same dataset, imported here with kubo's defaults
    (the ``unixfs-v0-2015`` profile): the slices B must match."""
    root = tmp_path_factory.mktemp("local-portal")
    with FSBlockstore(root / "blocks") as store:
        cid = Importer("unixfs-v0-2015", store).add_path(setup.dataset.folder).cid
    assert str(cid) == setup.cid  # the same DAG as kubo's, so the same blocks
    with ExitStack() as stack:
        catalog = open_catalog(f"sqlite:///{root / 'catalog.sqlite3'}")
        stack.callback(catalog.close)
        settings = Settings(home=root, blockstore=str(root / "blocks"))
        yield stack.enter_context(TestClient(create_app(catalog, settings=settings)))


@pytest.mark.parametrize("name,query", [(RECONSTRUCTION, "?z=5"), (TILT_SERIES, "")])
def test_slices_of_kubo_held_files(
    setup: Setup, local_portal: TestClient, name: str, query: str
) -> None:
    ours = httpx.get(f"{setup.node.url}/slices/{setup.cid}/{name}{query}", timeout=WAIT)
    local = local_portal.get(f"/slices/{setup.cid}/{name}{query}")
    assert ours.status_code == local.status_code == 200, ours.text
    assert ours.content == local.content


def test_a_block_kubo_lacks_is_a_502_naming_it(setup: Setup, kubo_node: KuboDaemon) -> None:
    missing = str(CID.hash(b"no lab published these bytes", codec=RAW))
    response = httpx.get(f"{setup.node.url}/ipfs/{missing}", timeout=WAIT)
    assert response.status_code == 502, response.text
    message = response.json()["error"]["message"]
    assert missing in message and kubo_node.gateway_url in message  # which block, who said so
