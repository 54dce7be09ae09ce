"""HAMT hashing, building, listing and lookup.

The murmur3 vectors were produced with ``@multiformats/murmur3`` (the hash the JS importer's
``dir-sharded.js`` uses): its 16 output bytes are h1 then h2, big-endian. Spot values agree with
the reference ``MurmurHash3_x64_128`` (e.g. "" -> 0). That the importer's use of the hash (first
64 bits, most significant bits first) is right is proven by the sharded-directory CIDs in
test_kubo_parity.py matching both kubo and the JS importer.
"""

from __future__ import annotations

import random

import pytest

from etdb.content.cid import CID
from etdb.content.dagpb import PBNode, UnixFSType, decode_node, decode_unixfs
from etdb.content.hamt import (
    HAMTError,
    build_hamt,
    hamt_entries,
    hamt_lookup,
    murmur3_x64_64,
    murmur3_x64_128,
)
from etdb.content.unixfs import PROFILES, Importer

MURMUR3_X64_128 = [
    ("", "00000000000000000000000000000000"),
    ("a", "85555565f6597889e6b53a48510e895a"),
    ("hello", "cbd8a7b341bd9b025b1e906a48ae1d19"),
    ("hello world", "533f6046eb7f610eab97467d60eb63b1"),
    ("The quick brown fox jumps over the lazy dog", "e34bbc7bbc071b6c7a433ca9c49a9347"),
    ("ünïcödé dir", "1a3483a5e9bd417816e47631778b1beb"),
    ("😀.bin", "92b4b9c9dfee44a41a0c2c92c4eed595"),
    ("f00000000000000000000000000001", "04552708515567791cacb5e62fdd5782"),
]


@pytest.mark.parametrize(("text", "hex128"), MURMUR3_X64_128)
def test_murmur3_vectors(text: str, hex128: str) -> None:
    h1, h2 = murmur3_x64_128(text.encode())
    assert f"{h1:016x}{h2:016x}" == hex128
    assert murmur3_x64_64(text.encode()) == int(hex128[:16], 16)


def test_murmur3_all_tail_lengths_are_distinct() -> None:
    # Exercise every tail length 0..15 and several blocks; values must be 64-bit and distinct.
    data = bytes(range(256)) * 2
    hashes = {murmur3_x64_64(data[:n]) for n in range(80)}
    assert len(hashes) == 80
    assert all(0 <= h < 2**64 for h in hashes)


class Store(dict):
    def put(self, cid: CID, block: bytes) -> None:
        self[cid] = block


def sharded(count: int, fanout: int = 256, seed: int = 0):
    """A sharded folder of ``count`` small files, built in memory."""
    rng = random.Random(seed)
    store = Store()
    imp = Importer(PROFILES["kubo-v1"], store)
    entries = {}
    for i in range(count):
        name = f"entry-{i}-{rng.randrange(10**6)}" if i % 7 else f"ünï {i} 😀"
        entries[name] = imp.add_bytes(name.encode()).cid

    def emit(block: bytes) -> CID:
        cid = CID.hash(block, codec=0x70)
        store.put(cid, block)
        return cid

    root, _, nblocks = build_hamt([(n, c, 1) for n, c in entries.items()], fanout, emit)
    return store, decode_node(store[root]), entries, nblocks


@pytest.mark.parametrize("fanout", [2, 16, 256, 1024])
def test_entries_and_lookup_round_trip(fanout: int) -> None:
    store, root, entries, nblocks = sharded(500, fanout)
    listed = dict(hamt_entries(store.__getitem__, root))
    assert set(listed) == set(entries)
    assert {name: link.cid for name, link in listed.items()} == entries
    for name, cid in entries.items():
        link = hamt_lookup(store.__getitem__, root, name)
        assert link is not None and link.cid == cid
    assert hamt_lookup(store.__getitem__, root, "not there") is None
    assert nblocks > 1  # there are sub-shards


def test_shard_node_layout() -> None:
    _, root, _, _ = sharded(3000)
    meta = decode_unixfs(root.data)
    assert (meta.type, meta.hash_type, meta.fanout) == (UnixFSType.HAMT_SHARD, 0x22, 256)
    assert meta.filesize is None
    # The bitfield names exactly the slots that have links, big-endian.
    slots = {int(link.name[:2], 16) for link in root.links}
    assert int.from_bytes(meta.data, "big") == sum(1 << s for s in slots)
    names = [link.name for link in root.links]
    assert names == sorted(names)
    assert all(n[:2] == n[:2].upper() for n in names)
    # Sub-shards are named by the 2-hex label alone; entries by label + name, in the slot their
    # hash selects at that depth.
    subs = [link for link in root.links if len(link.name) == 2]
    assert subs
    for link in root.links:
        if len(link.name) > 2:
            assert murmur3_x64_64(link.name[2:].encode()) >> 56 == int(link.name[:2], 16)


def test_importer_shards_deterministically_whatever_the_order() -> None:
    entries = [(f"n{i}", CID.hash(str(i).encode()), i) for i in range(400)]
    emitted: list[bytes] = []

    def emit(block: bytes) -> CID:
        emitted.append(block)
        return CID.hash(block, codec=0x70)

    a = build_hamt(entries, 256, emit)
    b = build_hamt(list(reversed(entries)), 256, emit)
    assert a == b


def test_reader_rejects_non_shards() -> None:
    with pytest.raises(HAMTError):
        list(hamt_entries(lambda c: b"", PBNode((), b"\x08\x01")))
    with pytest.raises(HAMTError):
        hamt_lookup(lambda c: b"", PBNode(()), "x")


def test_hostile_deep_shard_chain_is_refused():
    """A chain of sub-shards deeper than the 64-bit hash allows is malformed: refuse it
    with a typed error instead of recursing until the stack runs out."""
    from etdb.content.dagpb import PBLink, encode_node
    from etdb.content.hamt import HAMTError, hamt_entries, shard_data

    blocks: dict[CID, bytes] = {}
    leaf = CID.hash(b"x")
    node = PBNode((PBLink(leaf, "00name", 1),), shard_data(1, 256))
    for _ in range(20):
        block = encode_node(node)
        cid = CID.hash(block, codec=0x70)
        blocks[cid] = block
        node = PBNode((PBLink(cid, "00", len(block)),), shard_data(1, 256))
    with pytest.raises(HAMTError, match="deeper"):
        list(hamt_entries(blocks.__getitem__, node))
