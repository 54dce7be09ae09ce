"""The trustless gateway (raw blocks, CAR streams) over a real blockstore.

The dataset is imported with a tiny chunk size and link count so that a 20 KB file is a
four-level DAG, identical leaves and files repeat (``dups`` matters) and one folder is a HAMT.
Every CAR is parsed with the verifying reader; the expected block order is computed here by an
independent DFS walk, and the expected bytes come from the files on disk.
"""

from __future__ import annotations

import dataclasses
import io
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from etdb.api import create_app
from etdb.config import Settings
from etdb.content.blockstore import FSBlockstore
from etdb.content.car import export_car, read_car
from etdb.content.cid import CID, DAG_PB, RAW
from etdb.content.dagpb import decode_node
from etdb.content.errors import BlockNotFoundError, CorruptBlockError
from etdb.content.exporter import load_node, read_range, resolve
from etdb.content.memstore import MemoryBlockstore
from etdb.content.unixfs import Importer, get_profile
from etdb.index.catalog import open_catalog
from etdb.web.gateway import GatewayState
from etdb.web.gateway_trustless import parse_entity_bytes
from tests.content.references import write_flat_dir

CHUNK = 1000  # bytes per leaf in this dataset
IDENTITY_EMPTY = "bafkqaaa"
CAR_ACCEPT = "application/vnd.ipld.car"


@dataclass
class Dataset:
    root: CID
    folder: Path
    store_path: Path

    def store(self) -> FSBlockstore:
        return FSBlockstore(self.store_path, create=False)

    def cid_of(self, rel: str) -> CID:
        with self.store() as store:
            return resolve(store, f"{self.root}/{rel}")[0]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    home = tmp_path_factory.mktemp("tl-home")
    folder = tmp_path_factory.mktemp("tl-data") / "et2021-05-05-2"
    rng = random.Random(7)
    (folder / "raw" / "deep").mkdir(parents=True)
    (folder / "raw" / "series.mrc").write_bytes(rng.randbytes(20_500))
    (folder / "raw" / "zeros.bin").write_bytes(bytes(3 * CHUNK))  # three identical leaves
    (folder / "raw" / "deep" / "notes.txt").write_text("tilt series notes\n")
    (folder / "notes.txt").write_text("tilt series notes\n")  # the same file twice
    (folder / "empty.dat").write_bytes(b"")
    write_flat_dir(folder / "many", count=300, name_len=12, seed=3, max_size=40)
    profile = dataclasses.replace(
        get_profile("kubo-v1"), chunk_size=CHUNK, max_links=4, hamt_threshold=2000
    )
    store_path = home / "blocks"
    with FSBlockstore(store_path) as store:
        root = Importer(profile, store).add_path(folder).cid
        assert load_node(store, resolve(store, f"{root}/many")[0]).sharded
        assert not load_node(store, resolve(store, f"{root}/raw")[0]).sharded
    return Dataset(root, folder, store_path)


def _app_client(home: Path, tmp: Path, **extra: str) -> Iterator[TestClient]:
    catalog = open_catalog(f"sqlite:///{tmp / 'c.sqlite3'}")
    settings = Settings(home=home, ledger="local:///nowhere/ledger.sqlite3", extra=extra)
    with TestClient(create_app(catalog, settings=settings)) as c:
        yield c
    catalog.close()


@pytest.fixture(scope="module")
def client(dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    yield from _app_client(dataset.store_path.parent, tmp_path_factory.mktemp("tl-cat"))


def car_of(response: Any) -> tuple[list[CID], list[tuple[CID, bytes]]]:
    """Roots and (verified) blocks of a CAR body."""
    assert response.status_code == 200, response.text
    reader = read_car(io.BytesIO(response.content))
    return reader.roots, list(reader)


def dfs(store: FSBlockstore, cid: CID, *, dups: bool) -> list[CID]:
    """Pre-order DFS, written independently of etdb.content.traversal."""
    out: list[CID] = []
    seen: set[CID] = set()

    def visit(c: CID) -> None:
        if not dups and c in seen:
            return
        seen.add(c)
        out.append(c)
        if c.codec == DAG_PB:
            for link in decode_node(store.get(c)).links:
                visit(link.cid)

    visit(cid)
    return out


def substore(blocks: list[tuple[CID, bytes]]) -> MemoryBlockstore:
    store = MemoryBlockstore()
    for cid, block in blocks:
        store.put(cid, block)
    return store


# -- raw blocks -------------------------------------------------------------------------------


def test_every_block_is_served_raw_and_hashes_to_its_cid(
    client: TestClient, dataset: Dataset
) -> None:
    with dataset.store() as store:
        cids = list(store.cids())
        assert len(cids) > 300
        for cid in random.Random(1).sample(cids, 40):
            r = client.get(f"/ipfs/{cid}", params={"format": "raw"})
            assert r.status_code == 200
            assert r.content == store.get(cid)
            assert cid.verify(r.content)


def test_raw_headers(client: TestClient, dataset: Dataset) -> None:
    cid = dataset.cid_of("raw/series.mrc")
    r = client.get(f"/ipfs/{cid}", headers={"Accept": "application/vnd.ipld.raw"})
    assert r.status_code == 200
    h = r.headers
    assert h["content-type"] == "application/vnd.ipld.raw"
    assert h["content-disposition"].startswith(f'attachment; filename="{cid}.bin"')
    assert h["x-content-type-options"] == "nosniff"
    assert h["cache-control"] == "public, max-age=29030400, immutable"
    assert h["etag"] == f'"{cid}.raw"'
    assert h["x-ipfs-path"] == f"/ipfs/{cid}"
    assert h["x-ipfs-roots"] == str(cid)
    assert "Accept" in [v.strip() for v in h["vary"].split(",")]
    assert h["content-length"] == str(len(r.content))
    assert h["content-location"] == f"/ipfs/{cid}?format=raw"  # asked by Accept only
    by_query = client.get(f"/ipfs/{cid}?format=raw")
    assert "content-location" not in by_query.headers
    assert by_query.content == r.content


def test_raw_head_and_if_none_match(client: TestClient, dataset: Dataset) -> None:
    cid = dataset.cid_of("raw/series.mrc")
    full = client.get(f"/ipfs/{cid}?format=raw")
    head = client.head(f"/ipfs/{cid}?format=raw")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(full.content))
    assert head.headers["etag"] == full.headers["etag"]
    r = client.get(f"/ipfs/{cid}?format=raw", headers={"If-None-Match": full.headers["etag"]})
    assert r.status_code == 304 and r.content == b""
    # The path gateway's ETag (the file) is another representation: no 304 across them.
    r = client.get(f"/ipfs/{cid}?format=raw", headers={"If-None-Match": f'"{cid}"'})
    assert r.status_code == 200


def test_raw_with_a_path_is_400(client: TestClient, dataset: Dataset) -> None:
    r = client.get(f"/ipfs/{dataset.root}/notes.txt?format=raw")
    assert r.status_code == 400
    assert r.json()["error"]["parameter"] == "path"
    assert "format=car" in r.json()["error"]["message"]


def test_identity_probe(client: TestClient) -> None:
    r = client.get(f"/ipfs/{IDENTITY_EMPTY}?format=raw")
    assert r.status_code == 200 and r.content == b""
    assert client.head(f"/ipfs/{IDENTITY_EMPTY}?format=raw").status_code == 200
    roots, blocks = car_of(client.get(f"/ipfs/{IDENTITY_EMPTY}?format=car"))
    assert roots == [CID.decode(IDENTITY_EMPTY)] and blocks == []


# -- CAR: order, duplicates, scopes ------------------------------------------------------------


@pytest.mark.parametrize("dups", [False, True])
def test_car_of_the_whole_dataset_is_dfs(client: TestClient, dataset: Dataset, dups: bool) -> None:
    accept = f"{CAR_ACCEPT}; version=1; order=dfs; dups={'y' if dups else 'n'}"
    r = client.get(f"/ipfs/{dataset.root}", headers={"Accept": accept})
    assert r.headers["content-type"] == accept
    roots, blocks = car_of(r)
    assert roots == [dataset.root]
    with dataset.store() as store:
        assert [c for c, _ in blocks] == dfs(store, dataset.root, dups=dups)
    if dups:  # the repeated leaves and the file stored twice really repeat
        assert len(blocks) > len({c for c, _ in blocks})


def test_car_headers(client: TestClient, dataset: Dataset) -> None:
    path = f"/ipfs/{dataset.root}/raw/series.mrc"
    r = client.get(path, headers={"Accept": CAR_ACCEPT})
    h = r.headers
    assert h["content-type"] == f"{CAR_ACCEPT}; version=1; order=dfs; dups=n"
    assert h["content-disposition"].startswith(f'attachment; filename="{dataset.root}.car"')
    assert h["cache-control"] == "public, max-age=29030400, immutable"
    assert "Accept" in [v.strip() for v in h["vary"].split(",")]
    assert h["x-ipfs-path"] == path
    roots = [dataset.root, dataset.cid_of("raw"), dataset.cid_of("raw/series.mrc")]
    assert h["x-ipfs-roots"] == ",".join(map(str, roots))
    assert h["content-location"] == f"{path}?format=car"
    assert h["etag"].startswith(f'"{dataset.root}.car.')
    again = client.get(path, headers={"Accept": CAR_ACCEPT, "If-None-Match": h["etag"]})
    assert again.status_code == 304 and again.content == b""
    head = client.head(path, params={"format": "car"})
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"] == h["content-type"]


def test_car_etags_differ_by_scope_bytes_and_dups(client: TestClient, dataset: Dataset) -> None:
    path = f"/ipfs/{dataset.root}/raw/series.mrc"
    variants = [
        {"format": "car"},
        {"format": "car", "dag-scope": "entity"},
        {"format": "car", "dag-scope": "block"},
        {"format": "car", "entity-bytes": "0:99"},
        {"format": "car", "entity-bytes": "0:100"},
        {"format": "car", "car-dups": "y"},
    ]
    tags = [client.head(path, params=v).headers["etag"] for v in variants]
    assert len(set(tags)) == len(tags)
    assert client.head(f"/ipfs/{dataset.root}/raw", params={"format": "car"}).headers[
        "etag"
    ] not in set(tags)


def test_nested_path_car_verifies_the_path(client: TestClient, dataset: Dataset) -> None:
    rel = "raw/deep/notes.txt"
    roots, blocks = car_of(
        client.get(f"/ipfs/{dataset.root}/{rel}", params={"format": "car", "dag-scope": "block"})
    )
    assert roots == [dataset.root]
    expected = [dataset.root, dataset.cid_of("raw"), dataset.cid_of("raw/deep")]
    assert [c for c, _ in blocks] == [*expected, dataset.cid_of(rel)]
    # A client holding only these blocks walks the path and reads the file.
    assert (
        read_range(substore(blocks), f"{dataset.root}/{rel}", 0)
        == (dataset.folder / rel).read_bytes()
    )


def test_multiblock_file_entity(client: TestClient, dataset: Dataset) -> None:
    rel = "raw/series.mrc"
    _, blocks = car_of(client.get(f"/ipfs/{dataset.root}/{rel}?format=car&dag-scope=entity"))
    data = (dataset.folder / rel).read_bytes()
    leaves = [c for c, _ in blocks if c.codec == RAW]
    assert len(leaves) == -(-len(data) // CHUNK)
    assert read_range(substore(blocks), f"{dataset.root}/{rel}", 0) == data
    with dataset.store() as store:  # path blocks, then the file's DAG in DFS order
        file_cid = dataset.cid_of(rel)
        assert [c for c, _ in blocks] == [
            dataset.root,
            dataset.cid_of("raw"),
            *dfs(store, file_cid, dups=False),
        ]


def test_hamt_path_and_entity(client: TestClient, dataset: Dataset) -> None:
    name = "f00000000123"
    rel = f"many/{name}"
    _, blocks = car_of(client.get(f"/ipfs/{dataset.root}/{rel}?format=car&dag-scope=block"))
    assert (
        read_range(substore(blocks), f"{dataset.root}/{rel}", 0)
        == (dataset.folder / rel).read_bytes()
    )
    with dataset.store() as store:
        shards = {c for c, _ in blocks[1:-1]}
        assert shards and all(load_node(store, c).sharded for c in shards)
        _, entity = car_of(client.get(f"/ipfs/{dataset.root}/many?format=car&dag-scope=entity"))
        # The directory's shard nodes only: enough to list it, none of its files.
        assert all(load_node(store, c).sharded for c, _ in entity[1:])
        assert len(entity) > 2
    listing = substore(entity)
    with pytest.raises(BlockNotFoundError):  # a file's block is not in an entity CAR of its folder
        read_range(listing, f"{dataset.root}/{rel}", 0)


@pytest.mark.parametrize(
    "spec", ["0:*", "0:999", "0:1000", "1500:4000", "-1000:*", "499:-1000", "20000:99999", "-1:*"]
)
def test_entity_bytes_are_the_minimal_verified_blocks(
    client: TestClient, dataset: Dataset, spec: str
) -> None:
    rel = "raw/series.mrc"
    data = (dataset.folder / rel).read_bytes()
    size = len(data)
    first, last = parse_entity_bytes(spec)
    start = first if first >= 0 else size + first
    end = size if last is None else min(last + 1 if last >= 0 else size + last + 1, size)
    _, blocks = car_of(
        client.get(f"/ipfs/{dataset.root}/{rel}", params={"format": "car", "entity-bytes": spec})
    )
    got = read_range(substore(blocks), f"{dataset.root}/{rel}", start, end)
    assert got == data[start:end]
    leaves = [c for c, _ in blocks if c.codec == RAW]
    assert len(leaves) == (end - 1) // CHUNK - start // CHUNK + 1  # only leaves that overlap


def test_entity_bytes_on_a_folder_is_ignored(client: TestClient, dataset: Dataset) -> None:
    path = f"/ipfs/{dataset.root}/raw"
    with_bytes = client.get(path, params={"format": "car", "entity-bytes": "0:10"})
    entity = client.get(path, params={"format": "car", "dag-scope": "entity"})
    assert car_of(with_bytes)[1] == car_of(entity)[1]


def test_empty_file_entity_bytes(client: TestClient, dataset: Dataset) -> None:
    _, blocks = car_of(
        client.get(
            f"/ipfs/{dataset.root}/empty.dat", params={"format": "car", "entity-bytes": "0:*"}
        )
    )
    assert [c for c, _ in blocks][-1] == dataset.cid_of("empty.dat")


# -- negotiation and errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "headers", "status", "parameter"),
    [
        ({"format": "car", "entity-bytes": "30000:*"}, {}, 400, "entity-bytes"),
        ({"format": "car", "entity-bytes": "abc"}, {}, 400, "entity-bytes"),
        ({"format": "car", "entity-bytes": "5:2"}, {}, 400, "entity-bytes"),
        ({"format": "car", "entity-bytes": "-2:-5"}, {}, 400, "entity-bytes"),
        ({"format": "car", "dag-scope": "subtree"}, {}, 400, "dag-scope"),
        ({"format": "car", "car-order": "bfs"}, {}, 400, "car-order"),
        ({"format": "car", "car-dups": "maybe"}, {}, 400, "car-dups"),
        ({"format": "car"}, {"Accept": f"{CAR_ACCEPT}; order=bfs"}, 400, "Accept"),
        ({}, {"Accept": f"{CAR_ACCEPT}; order=bfs"}, 406, "Accept"),
        ({}, {"Accept": f"{CAR_ACCEPT}; version=2"}, 406, "Accept"),
        ({}, {"Accept": "application/vnd.ipld.dag-json"}, 406, "Accept"),
        ({"format": "tar"}, {}, 400, "format"),
        ({"format": "dag-json"}, {}, 400, "format"),
    ],
)
def test_bad_requests(
    client: TestClient,
    dataset: Dataset,
    params: dict[str, str],
    headers: dict[str, str],
    status: int,
    parameter: str,
) -> None:
    r = client.get(f"/ipfs/{dataset.root}/raw/series.mrc", params=params, headers=headers)
    assert r.status_code == status, r.text
    assert r.json()["error"]["parameter"] == parameter
    assert r.json()["error"]["message"]


def test_accept_alternatives_and_precedence(client: TestClient, dataset: Dataset) -> None:
    path = f"/ipfs/{dataset.root}/raw/series.mrc"
    fallback = f"{CAR_ACCEPT}; order=bfs, {CAR_ACCEPT}; order=dfs; dups=y; q=0.5"
    r = client.get(path, headers={"Accept": fallback})
    assert r.headers["content-type"].endswith("dups=y")
    car_of(r)
    # order=unk ("any order") is satisfied by DFS, which the answer states.
    r = client.head(path, headers={"Accept": f"{CAR_ACCEPT}; order=unk"})
    assert r.headers["content-type"] == f"{CAR_ACCEPT}; version=1; order=dfs; dups=n"
    # ?format= wins over Accept; car-dups wins over the Accept parameter.
    r = client.head(
        path, params={"format": "car", "car-dups": "n"}, headers={"Accept": f"{CAR_ACCEPT};dups=y"}
    )
    assert r.headers["content-type"].endswith("dups=n")
    cid = dataset.cid_of("raw/series.mrc")
    r = client.get(f"/ipfs/{cid}?format=raw", headers={"Accept": CAR_ACCEPT})
    assert r.headers["content-type"] == "application/vnd.ipld.raw"
    # Browsers and curl still get the file and the listing.
    r = client.get(path, headers={"Accept": "text/html,*/*;q=0.8"})
    assert r.content == (dataset.folder / "raw/series.mrc").read_bytes()
    r = client.get(path, headers={"Accept": "application/vnd.ipld.dag-json, */*;q=0.1"})
    assert r.content == (dataset.folder / "raw/series.mrc").read_bytes()
    r = client.get(f"/ipfs/{dataset.root}/raw", headers={"Accept": "text/html"})
    assert r.headers["content-type"].startswith("text/html")


def test_missing_content_is_404_before_streaming(client: TestClient, dataset: Dataset) -> None:
    absent = CID.hash(b"not stored here")
    for query in ("format=raw", "format=car"):
        r = client.get(f"/ipfs/{absent}?{query}")
        assert r.status_code == 404, query
        assert r.json()["error"]["parameter"] == "cid"
    r = client.get(f"/ipfs/{dataset.root}/raw/nothing.mrc?format=car")
    assert r.status_code == 404
    assert "nothing.mrc" in r.json()["error"]["message"]
    r = client.get(f"/ipfs/{dataset.root}/notes.txt/below?format=car")
    assert r.status_code == 404
    assert client.head(f"/ipfs/{absent}?format=car").status_code == 404
    r = client.get("/ipfs/not-a-cid?format=car")
    assert r.status_code == 400


def test_only_if_cached(client: TestClient, dataset: Dataset) -> None:
    only = {"Cache-Control": "only-if-cached"}
    absent = CID.hash(b"not stored either")
    assert client.get(f"/ipfs/{absent}?format=raw", headers=only).status_code == 412
    assert client.head(f"/ipfs/{absent}?format=car", headers=only).status_code == 412
    assert client.head(f"/ipfs/{dataset.root}?format=car", headers=only).status_code == 200


# -- limits and damage ------------------------------------------------------------------------


def test_car_streams_share_the_gateway_slots(client: TestClient, dataset: Dataset) -> None:
    state: GatewayState = client.app.state.etdb.extra["gateway_state"]  # type: ignore[attr-defined]
    slots = state.slots
    taken = 0
    while slots.try_acquire():
        taken += 1
    try:
        r = client.get(f"/ipfs/{dataset.root}?format=car")
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        assert client.head(f"/ipfs/{dataset.root}?format=car").status_code == 200
    finally:
        for _ in range(taken):
            slots.release()
    car_of(client.get(f"/ipfs/{dataset.root}?format=car"))
    assert slots.active == 0


def test_a_damaged_block_aborts_the_car_and_frees_the_slot(
    dataset: Dataset, tmp_path: Path
) -> None:
    """No complete-looking CAR with a bad block: the stream stops at it (a truncated CAR)."""
    home = tmp_path / "home"
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "big.bin").write_bytes(random.Random(5).randbytes(3 * 262_144 + 10))
    with FSBlockstore(home / "blocks") as store:
        root = Importer("kubo-v1", store).add_path(folder).cid
        file_node = load_node(store, resolve(store, f"{root}/big.bin")[0])
        assert file_node.pb is not None
        leaf = file_node.pb.links[1].cid
        block_file = store.path_of(leaf)
    damaged = bytearray(block_file.read_bytes())
    damaged[100] ^= 0xFF
    block_file.write_bytes(bytes(damaged))
    for c in _app_client(home, tmp_path):
        state: GatewayState = c.app.state.etdb.extra["gateway_state"]  # type: ignore[attr-defined]
        with pytest.raises(CorruptBlockError):
            c.get(f"/ipfs/{root}/big.bin?format=car")
        assert state.slots.active == 0
        r = c.get(f"/ipfs/{leaf}?format=raw")  # the block itself: refused, never sent
        assert r.status_code == 500
        assert bytes(damaged) not in r.content


def test_parse_entity_bytes() -> None:
    assert parse_entity_bytes("0:*") == (0, None)
    assert parse_entity_bytes("-1024:*") == (-1024, None)
    assert parse_entity_bytes("499:-1000") == (499, -1000)
    assert parse_entity_bytes("-10:-1") == (-10, -1)
    for bad in ("", "1", "a:b", "1:2:3", "*:5", "10:5"):
        with pytest.raises(Exception, match="entity-bytes"):
            parse_entity_bytes(bad)


@pytest.mark.parametrize(
    ("rel", "params", "options"),
    [
        ("", {}, {}),
        ("raw/series.mrc", {"entity-bytes": "1500:-3000"}, {"entity_bytes": (1500, -3000)}),
        ("many", {"dag-scope": "entity", "car-dups": "y"}, {"scope": "entity", "dups": True}),
    ],
)
def test_gateway_car_is_etdb_car_export(
    client: TestClient,
    dataset: Dataset,
    rel: str,
    params: dict[str, str],
    options: dict[str, Any],
) -> None:
    """What docs/gateway.md promises: `curl ...?format=car` == `etdb car export` of the same."""
    path = f"{dataset.root}/{rel}" if rel else str(dataset.root)
    r = client.get(f"/ipfs/{path}", params={"format": "car", **params})
    out = io.BytesIO()
    with dataset.store() as store:
        export_car(store, path, out, **options)
    assert r.status_code == 200 and r.content == out.getvalue()
