"""Client.pyramid / Client.zarr: a pyramid folder in a real node's blockstore, read by zarr
through the client's verifying fetcher; a peer sending wrong bytes for a chunk is caught."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import zarr

from etdb.client.client import Client
from etdb.client.errors import ClientError
from etdb.content import exporter
from etdb.content.blockstore import FSBlockstore
from etdb.content.errors import ContentError
from etdb.content.unixfs import Importer
from tests.content.peers_harness import BlockServer, EtdbNode
from tests.web.test_slices_planes import write_pyramid


@pytest.fixture(scope="module")
def held(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("clientpyramid")
    folder = root / "dataset"
    folder.mkdir()
    data = np.random.default_rng(5).normal(size=(20, 24, 28)).astype(np.float32)
    write_pyramid(folder / "S1.ome.zarr", data, (3.0, 2.0, 2.0))
    store = FSBlockstore(root / "blocks")
    cid = str(Importer("kubo-v1", store, hidden=True).add_path(folder).cid)
    store.sync()
    chunk = exporter.resolve(store, f"{cid}/S1.ome.zarr/0/1/1/1")[0]
    return {"root": root, "cid": cid, "data": data, "folder": folder, "chunk": chunk}


@pytest.fixture(scope="module")
def node(held: dict[str, Any]) -> Any:
    with EtdbNode(held["root"] / "blocks", held["root"] / "home") as running:
        yield running


def test_levels_hold_the_pyramids_values(held, node):
    with Client(node.url) as client:
        group = client.pyramid(held["cid"] + "/S1.ome.zarr")
        on_disk = zarr.open_group(held["folder"] / "S1.ome.zarr", mode="r")
        for level in ("0", "1"):
            np.testing.assert_array_equal(group[level][:], on_disk[level][:])
        array = client.zarr(held["cid"], level=1, fname="S1.ome.zarr")
        np.testing.assert_array_equal(array[:], held["data"][::2, ::2, ::2])
        np.testing.assert_array_equal(
            client.zarr(held["cid"], fname="S1.ome.zarr")[3], held["data"][3]
        )
        with pytest.raises(ClientError, match="levels 0 to 1"):
            client.zarr(held["cid"], level=2, fname="S1.ome.zarr")


def test_a_lying_peer_is_caught(held, node):
    with BlockServer(held["root"] / "blocks", corrupt=held["chunk"]) as liar:
        with Client(node.url, peers=[liar.url]) as client:
            array = client.zarr(held["cid"], fname="S1.ome.zarr")
            np.testing.assert_array_equal(array[:8, :8, :8], held["data"][:8, :8, :8])
            with pytest.raises(ContentError, match="lied"):
                array[8:16, 8:16, 8:16]  # the corrupted chunk: never wrong values
        with Client(node.url, peers=[liar.url, node.url]) as client:
            array = client.zarr(held["cid"], fname="S1.ome.zarr")
            np.testing.assert_array_equal(array[:], held["data"])


def test_a_record_names_its_pyramid_by_its_zarr_entry():
    from etdb.record import Artifact

    def artifact(*files: dict[str, str]) -> Artifact:
        return Artifact.model_validate({"storage": {"location": "Qm", "files": list(files)}})

    rec = {"fname": "a.rec", "subtype": "reconstruction"}
    assert artifact(rec).pyramid is None
    pyramid = artifact(rec, {"fname": "S.ome.zarr", "subtype": "ZARR", "type": "preview"}).pyramid
    assert pyramid is not None and pyramid.fname == "S.ome.zarr"
