"""``dups=n`` entity CARs of files with repeated subtrees: spec order, and one read per block.

A ``dups=n`` CAR sends each block once, at its first place in DFS pre-order. The walk does not
go into a subtree again once it has sent all of it (``walk_file(done=...)``); these tests check
that this changes nothing in what is sent, for whole files and for every ``entity-bytes``
range, against a reference written here from the rule itself (visit every block the range
needs, at every place it occurs; keep the first of each), and that the reads it costs are the
distinct blocks sent plus at most two nodes per level (those cut by the range's two ends).

DAGs are real: made by the project's importer (kubo's balanced layout, small chunks so that a
run of zeros repeats leaves and internal nodes) or built node by node with dag-pb (own data in
file nodes, dag-pb leaves, zero-length subtrees, the same child linked many times).
"""

from __future__ import annotations

import dataclasses
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etdb.content.cid import CID, DAG_PB, RAW
from etdb.content.dagpb import (
    PBLink,
    PBNode,
    UnixFSData,
    UnixFSType,
    decode_node,
    decode_unixfs,
    encode_node,
    encode_unixfs,
)
from etdb.content.errors import InvalidNodeError
from etdb.content.exporter import load_node, read_range, walk_file
from etdb.content.memstore import MemoryBlockstore
from etdb.content.traversal import car_blocks, entity_range
from etdb.content.unixfs import Importer, get_profile


class CountingStore:
    """A BlockGetter that counts reads (a real MemoryBlockstore underneath, every read hashed)."""

    def __init__(self, store: MemoryBlockstore) -> None:
        self.store = store
        self.reads = 0

    def get(self, cid: CID) -> bytes:
        self.reads += 1
        return self.store.get(cid)


def reference(store: MemoryBlockstore, root: CID, start: int, end: int, full: bool) -> list[CID]:
    """The spec's dups=n block list, from the rule: every block the range needs (all, if
    ``full``), at every place it occurs, in DFS pre-order; the first of each kept."""
    out: list[CID] = []

    def visit(cid: CID, offset: int) -> None:
        if cid not in out:
            out.append(cid)
        if cid.codec == RAW:
            return
        pb = decode_node(store.get(cid))
        fs = decode_unixfs(pb.data or b"")
        pos = offset + len(fs.data or b"")
        for link, size in zip(pb.links, fs.blocksizes, strict=True):
            if full or (pos < end and pos + size > start):
                visit(link.cid, pos)
            pos += size

    visit(root, 0)
    return out


def depth_of(store: MemoryBlockstore, cid: CID) -> int:
    if cid.codec == RAW:
        return 0
    return 1 + max(
        (depth_of(store, link.cid) for link in decode_node(store.get(cid)).links), default=0
    )


def check_range(
    store: MemoryBlockstore, root: CID, data: bytes, spec: tuple[int, int | None]
) -> None:
    """The dups=n CAR of ``root`` with ``entity-bytes=spec``: the reference's blocks, the same
    as the walk that re-reads repeats, enough for the bytes, and reads bounded."""
    size = len(data)
    start, end = entity_range(size, *spec)
    full = start <= 0 and end >= size
    counting = CountingStore(store)
    sent = list(car_blocks(counting, root, scope="entity", entity_bytes=spec))
    cids = [cid for cid, _ in sent]
    assert cids == reference(store, root, start, end, full)
    assert len(set(cids)) == len(cids)
    rereading = []  # the walk before the change: every occurrence read, repeats dropped after
    for node, _ in walk_file(store, load_node(store, root), start, end):
        if node.cid not in rereading:
            rereading.append(node.cid)
    assert cids == rereading
    part = MemoryBlockstore()
    for cid, block in sent:
        part.put(cid, block)
    assert read_range(part, root, start, end) == data[start:end]
    # the distinct blocks sent, plus at most one node per level cut by each end of the range
    assert counting.reads <= len(cids) + (0 if full else 2 * (depth_of(store, root) + 1))
    if full:
        assert counting.reads == len(cids)


# -- files made by the importer ---------------------------------------------------------------------

TINY = dataclasses.replace(get_profile("kubo-v1"), chunk_size=1000, max_links=4)


def padded(rng: random.Random, head: int, zeros: int, tail: int) -> bytes:
    return rng.randbytes(head) + bytes(zeros) + rng.randbytes(tail)


FILES = {
    "zero padding": (123, 70_000, 2_500),  # 70 zero leaves: repeated leaves and subtrees
    "aligned zeros": (4_000, 64_000, 1_000),  # whole 16-leaf subtrees of zeros, repeated
    "no repeats": (30_000, 0, 0),
    "all zeros": (0, 50_000, 0),
}
RANGES = [(0, None), (0, 0), (500, 60_000), (5_000, 5_000), (4_000, 20_999), (-3_000, None)]
RANGES += [(71_000, None), (10, -10), (-40_000, -20_001)]


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("spec", RANGES, ids=str)
def test_imported_files(name: str, spec: tuple[int, int | None]) -> None:
    store = MemoryBlockstore()
    data = padded(random.Random(name), *FILES[name])
    root = Importer(TINY, store).add_bytes(data).cid
    if entity_range(len(data), *spec)[0] >= entity_range(len(data), *spec)[1]:
        pytest.skip("the range selects no byte of this file (the gateway answers 400)")
    check_range(store, root, data, spec)


def test_a_run_of_zeros_is_read_once() -> None:
    """70 zero leaves in a row: the whole-file CAR reads each distinct block once."""
    store = MemoryBlockstore()
    data = padded(random.Random(5), 123, 70_000, 2_500)
    root = Importer(TINY, store).add_bytes(data).cid
    counting = CountingStore(store)
    sent = list(car_blocks(counting, root, scope="entity"))
    assert counting.reads == len(sent) == len({cid for cid, _ in sent})
    leaves = [
        node.cid for node, _ in walk_file(store, load_node(store, root)) if node.cid.codec == RAW
    ]
    assert len(leaves) > 2 * len(set(leaves))  # the DAG does repeat: the test means something


def test_dups_y_still_sends_every_occurrence() -> None:
    store = MemoryBlockstore()
    data = padded(random.Random(6), 0, 9_000, 0)
    root = Importer(TINY, store).add_bytes(data).cid
    sent = [cid for cid, _ in car_blocks(store, root, scope="entity", dups=True)]
    assert len(sent) == len(list(walk_file(store, load_node(store, root))))
    assert len(set(sent)) < len(sent)


# -- DAGs built node by node --------------------------------------------------------------------------


def put_file_node(
    store: MemoryBlockstore, own: bytes, children: list[tuple[CID, int]]
) -> tuple[CID, int]:
    """A dag-pb UnixFS file node with its own bytes ``own`` and ``children`` (cid, size)."""
    size = len(own) + sum(s for _, s in children)
    fs = UnixFSData(
        UnixFSType.FILE, data=own, filesize=size, blocksizes=tuple(s for _, s in children)
    )
    links = tuple(PBLink(cid, "", s) for cid, s in children)
    block = encode_node(PBNode(links, encode_unixfs(fs)))
    cid = CID.hash(block, codec=DAG_PB)
    store.put(cid, block)
    return cid, size


def random_dag(rng: random.Random) -> tuple[MemoryBlockstore, CID, bytes]:
    """A file DAG of 3-4 levels whose nodes share children at random."""
    store = MemoryBlockstore()
    content: dict[CID, bytes] = {}
    pool: list[tuple[CID, int]] = []
    for i in range(rng.randint(1, 4)):  # leaves: raw, dag-pb with data, zero-length
        data = rng.randbytes(rng.randint(1, 9)) if i % 3 != 2 else b""
        if i % 2 == 0:
            cid = CID.hash(data, codec=RAW)
            store.put(cid, data)
            pool.append((cid, len(data)))
        else:
            pool.append(put_file_node(store, data, []))
        content[pool[-1][0]] = data
    for _level in range(rng.randint(2, 3)):
        above = []
        for _ in range(rng.randint(1, 3)):
            own = rng.randbytes(rng.randint(0, 2)) if rng.random() < 0.3 else b""
            children = [rng.choice(pool) for _ in range(rng.randint(1, 4))]
            cid, _size = put_file_node(store, own, children)
            content[cid] = own + b"".join(content[c] for c, _ in children)
            above.append((cid, _size))
        pool = above
    own = b""
    root, _ = put_file_node(store, own, pool)
    content[root] = b"".join(content[c] for c, _ in pool)
    return store, root, content[root]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32), a=st.integers(-200, 200), b=st.integers(-200, 200) | st.none())
def test_random_dags_and_ranges(seed: int, a: int, b: int | None) -> None:
    store, root, data = random_dag(random.Random(seed))
    try:
        start, end = entity_range(len(data), a, b)
    except ValueError:
        return  # from after to: the gateway answers 400
    if start >= end and data:
        return
    check_range(store, root, data, (a, b))
    check_range(store, root, data, (0, None))


def test_a_skipped_subtree_is_still_checked_against_blocksizes() -> None:
    """The second link to a subtree already sent claims another size: the walk, which does
    not read it again, still refuses the DAG."""
    store = MemoryBlockstore()
    leaf = b"0123456789"
    leaf_cid = CID.hash(leaf, codec=RAW)
    store.put(leaf_cid, leaf)
    sub, _ = put_file_node(store, b"", [(leaf_cid, 10), (leaf_cid, 10)])
    fs = UnixFSData(UnixFSType.FILE, filesize=40, blocksizes=(20, 20))
    lying = encode_node(PBNode((PBLink(sub, "", 20), PBLink(leaf_cid, "", 20)), encode_unixfs(fs)))
    root = CID.hash(lying, codec=DAG_PB)
    store.put(root, lying)
    with pytest.raises(InvalidNodeError, match="blocksizes say 20"):
        list(car_blocks(store, root, scope="entity"))
