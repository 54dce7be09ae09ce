"""CAR files: canonical header, DFS order and scopes, verifying reader, CARv2, interop."""

import dataclasses
import io
import json
import random
import shutil
import struct
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etdb.content.blockstore import FSBlockstore
from etdb.content.car import (
    CARV2_PRAGMA,
    car_blocks,
    decode_header,
    encode_header,
    entity_range,
    export_car,
    import_car,
    read_car,
    write_car,
)
from etdb.content.cid import CID, IDENTITY, RAW, encode_varint
from etdb.content.dagpb import PBLink, PBNode, UnixFSData, UnixFSType, encode_node, encode_unixfs
from etdb.content.errors import BlockNotFoundError, CARError, ContentError
from etdb.content.exporter import load_node, read_range
from etdb.content.memstore import MemoryBlockstore
from etdb.content.unixfs import Importer, get_profile
from tests.conftest import skip_or_fail
from tests.content.references import cache_dir, write_flat_dir

EMPTY_DIR_V0 = CID.decode("QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn")


def tiny_profile(**kw):
    return dataclasses.replace(get_profile("kubo-v1"), chunk_size=1000, max_links=4, **kw)


@pytest.fixture(scope="module")
def dataset():
    """A folder: a 4-level file (raw leaves), a repeated chunk, a small file, an empty folder."""
    store = MemoryBlockstore()
    imp = Importer(tiny_profile(), store)
    data = random.Random(1).randbytes(20_500)
    big = imp.add_bytes(data).cid
    zeros = imp.add_bytes(bytes(3000)).cid  # three identical leaves: dups matter
    small = imp.add_bytes(b"small").cid
    links = [PBLink(big, "big", 0), PBLink(EMPTY_DIR_V0, "empty", 4), PBLink(small, "small", 5)]
    links.append(PBLink(zeros, "zeros", 0))
    block = encode_node(PBNode(tuple(links), encode_unixfs(UnixFSData(UnixFSType.DIRECTORY))))
    root = CID.hash(block, 0x70)
    store.put(root, block)
    store.put(EMPTY_DIR_V0, bytes.fromhex("0a020801"))
    return store, root, big, data


def car_bytes(store, root, **kw) -> bytes:
    out = io.BytesIO()
    export_car(store, root, out, **kw)
    return out.getvalue()


def sections(car: bytes) -> list[tuple[CID, bytes]]:
    return list(read_car(io.BytesIO(car)))


# -- header ---------------------------------------------------------------------------------


def test_header_is_canonical_dag_cbor():
    cid = CID.decode("bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e")
    raw = bytes(cid)
    expected = (
        b"\xa2\x65roots\x81\xd8\x2a\x58"
        + bytes([len(raw) + 1])
        + b"\x00"
        + raw
        + b"\x67version\x01"
    )
    assert encode_header([cid]) == expected
    assert decode_header(expected) == {"roots": [cid], "version": 1}
    out = io.BytesIO()
    write_car(out, [cid], [])
    assert out.getvalue() == encode_varint(len(expected)) + expected


# -- export order and scopes --------------------------------------------------------------------


def test_round_trip_and_dfs_order(dataset, tmp_path):
    store, root, big, data = dataset
    car = car_bytes(store, root)
    blocks = sections(car)
    cids = [c for c, _ in blocks]
    assert read_car(io.BytesIO(car)).roots == [root]
    assert cids[0] == root and len(cids) == len(set(cids))  # dups=n
    # DFS pre-order: the big file's subtree comes whole, right after the root.
    assert cids[1] == big
    expected_file = [c for c, _ in car_blocks(store, big, scope="entity")]
    assert cids[1 : 1 + len(expected_file)] == expected_file
    assert cids[1 + len(expected_file)] == EMPTY_DIR_V0
    # Everything reachable, once; importing into a fresh store reproduces the same CAR.
    fresh = FSBlockstore(tmp_path / "b")
    assert import_car(fresh, io.BytesIO(car)) == [root]
    assert read_range(fresh, f"{root}/big", 0) == data
    assert car_bytes(fresh, root) == car


def test_dups_and_identity(dataset):
    store, root, _, _ = dataset
    zeros_leaf = CID.hash(bytes(1000))
    with_dups = [c for c, _ in car_blocks(store, root, dups=True)]
    assert with_dups.count(zeros_leaf) == 3
    ident = CID.v1(RAW, b"inline", IDENTITY)
    block = encode_node(
        PBNode((PBLink(ident, "i", 6),), encode_unixfs(UnixFSData(UnixFSType.DIRECTORY)))
    )
    d = CID.hash(block, 0x70)
    store.put(d, block)
    assert [c for c, _ in car_blocks(store, d)] == [d]  # identity CIDs never go in a CAR


def test_scopes_with_paths(dataset):
    store, root, big, data = dataset
    block_scope = [c for c, _ in car_blocks(store, f"{root}/big", scope="block")]
    assert block_scope == [root, big]  # the path's blocks, then the target's root block
    entity_dir = [c for c, _ in car_blocks(store, root, scope="entity")]
    assert entity_dir == [root]
    entity_file = [c for c, _ in car_blocks(store, f"{root}/big", scope="entity")]
    # The path's root, then the file: 21 leaves under 6, under 2, under its root.
    assert entity_file[:2] == [root, big] and len(entity_file) == 1 + 1 + 2 + 6 + 21
    # entity-bytes: only the blocks a range needs, enough to verify and serve it.
    ranged = list(car_blocks(store, f"{root}/big", entity_bytes=(1500, 2600)))
    sub = MemoryBlockstore()
    sub.put_many(ranged)
    assert read_range(sub, f"{root}/big", 1500, 2601) == data[1500:2601]
    leaves = [c for c, _ in ranged if c.codec == RAW]
    assert len(leaves) == 2
    tail = [c for c, _ in car_blocks(store, big, entity_bytes=(-10, None))]
    assert tail[-1] == CID.hash(data[20_000:])


def test_entity_range():
    assert entity_range(100, 0, None) == (0, 100)
    assert entity_range(100, 10, 19) == (10, 20)
    assert entity_range(100, -10, None) == (90, 100)
    assert entity_range(100, 0, -1) == (0, 100)
    assert entity_range(100, 0, 1000) == (0, 100)
    assert entity_range(100, 500, None) == (100, 100)  # empty: only the root goes out
    with pytest.raises(ValueError):
        entity_range(100, 20, 10)


def test_hamt_entity_scope_is_the_shard_nodes(tmp_path):
    folder = write_flat_dir(tmp_path / "flat", count=300, name_len=12, seed=2, max_size=20)
    store = MemoryBlockstore()
    root = Importer(tiny_profile(hamt_threshold=1000), store).add_path(folder).cid
    assert load_node(store, root).sharded
    blocks = [c for c, _ in car_blocks(store, root, scope="entity")]
    assert blocks[0] == root
    assert all(load_node(store, c).sharded for c in blocks)
    assert len(blocks) > 1  # 300 entries in 256 slots: some sub-shards
    name = "f00000000123"
    path_blocks = [c for c, _ in car_blocks(store, f"{root}/{name}", scope="block")]
    sub = MemoryBlockstore()
    for c in path_blocks:
        sub.put(c, store.get(c))
    assert read_range(sub, f"{root}/{name}", 0) == (folder / name).read_bytes()


def test_missing_root_raises_before_streaming(dataset):
    store, _, _, _ = dataset
    with pytest.raises(BlockNotFoundError):
        car_blocks(store, CID.hash(b"absent"))


# -- reader: verification and hostile input ------------------------------------------------------


def test_truncated_car_is_detected_at_every_cut(dataset):
    store, root, _, _ = dataset
    car = car_bytes(store, f"{root}/small")
    full = sections(car)
    for cut in range(len(car)):
        try:
            got = sections(car[:cut])
        except CARError as exc:
            assert "offset" in str(exc) or "CAR" in str(exc)
        else:  # a cut exactly at a section boundary is a shorter valid CAR
            assert got == full[: len(got)] and len(got) < len(full)


def test_tampered_block_names_cid_and_offset(dataset):
    store, root, _, _ = dataset
    car = bytearray(car_bytes(store, root))
    car[-1] ^= 0x01
    with pytest.raises(CARError, match=r"does not match its CID") as info:
        sections(bytes(car))
    assert "offset" in str(info.value) and "baf" in str(info.value)
    fresh = MemoryBlockstore()
    with pytest.raises(CARError, match="valid blocks"):
        import_car(fresh, io.BytesIO(bytes(car)))


def test_limits_refuse_huge_sizes_without_allocating():
    huge_header = encode_varint(1 << 40)
    with pytest.raises(CARError, match="exceeds"):
        read_car(io.BytesIO(huge_header))
    header = encode_header([EMPTY_DIR_V0])
    car = encode_varint(len(header)) + header + encode_varint(1 << 50) + b"\x12\x20"
    with pytest.raises(CARError, match="section length"):
        sections(car)


def test_carv2_is_read():
    store = MemoryBlockstore()
    cid = Importer("kubo-v1", store).add_bytes(b"x" * 300_000).cid
    v1 = car_bytes(store, cid)
    padding = 7
    header = struct.pack("<16sQQQ", bytes(16), 51 + padding, len(v1), 0)
    v2 = CARV2_PRAGMA + header + bytes(padding) + v1 + b"index bytes we ignore"
    reader = read_car(io.BytesIO(v2))
    assert reader.version == 2 and reader.roots == [cid]
    assert list(reader) == sections(v1)
    short = CARV2_PRAGMA + struct.pack("<16sQQQ", bytes(16), 51, len(v1) + 10, 0) + v1
    with pytest.raises(CARError, match="truncated"):
        sections(short)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_fuzz_arbitrary_bytes_raise_only_car_errors(data):
    try:
        for _ in read_car(io.BytesIO(data)):
            pass
    except CARError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_fuzz_mutated_valid_car(data):
    block = b"fuzz block"
    cid = CID.hash(block)
    header = encode_header([cid])
    car = bytearray(encode_varint(len(header)) + header + encode_varint(36 + 10) + bytes(cid))
    car += block
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(car) - 1))
        car[i] = data.draw(st.integers(0, 255))
    try:
        for got_cid, got in read_car(io.BytesIO(bytes(car))):
            assert got_cid.verify(got)
    except CARError:
        pass


# -- interop: the reference JS CAR reader (@ipld/car) reads our CARs --------------------------------

CAR_JS_PACKAGE = "@ipld/car@5.4.7"
_READ_CAR_JS = """
import { CarReader } from '@ipld/car'
import { sha256 } from 'multiformats/hashes/sha2'
import fs from 'node:fs'
const reader = await CarReader.fromBytes(fs.readFileSync(process.argv[2]))
const out = { roots: (await reader.getRoots()).map(String), blocks: [] }
for await (const { cid, bytes } of reader.blocks()) {
  const digest = await sha256.digest(bytes)
  if (!equals(digest.digest, cid.multihash.digest)) throw new Error('bad block ' + cid)
  out.blocks.push(cid.toString())
}
function equals (a, b) { return a.length === b.length && a.every((x, i) => x === b[i]) }
console.log(JSON.stringify(out))
"""


@pytest.fixture(scope="module")
def car_js():
    if shutil.which("node") is None or shutil.which("npm") is None:
        skip_or_fail("node and npm are needed for the @ipld/car interop test")
    folder = cache_dir() / "car-js"
    folder.mkdir(exist_ok=True)
    stamp = folder / "installed"
    if not (stamp.exists() and stamp.read_text() == CAR_JS_PACKAGE):
        (folder / "package.json").write_text('{"name": "etdb-car-js", "private": true}')
        cmd = ["npm", "install", "--no-audit", "--no-fund", "--silent", CAR_JS_PACKAGE]
        try:
            proc = subprocess.run(cmd, cwd=folder, capture_output=True, timeout=600, check=False)
        except subprocess.TimeoutExpired:
            skip_or_fail("npm install @ipld/car timed out")
        if proc.returncode != 0:
            skip_or_fail(f"npm install @ipld/car failed: {proc.stderr.decode()[-500:]}")
        stamp.write_text(CAR_JS_PACKAGE)
    script = folder / "read-car.mjs"
    script.write_text(_READ_CAR_JS)
    return script


@pytest.mark.reference
def test_ipld_car_reads_our_car(car_js, dataset, tmp_path):
    store, root, _, _ = dataset
    path = tmp_path / "x.car"
    path.write_bytes(car_bytes(store, root))
    proc = subprocess.run(
        ["node", str(car_js), str(path)], capture_output=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr.decode()
    got = json.loads(proc.stdout)
    ours = sections(path.read_bytes())
    assert got["roots"] == [str(root)]
    assert got["blocks"] == [str(c) for c, _ in ours]


def test_errors_are_content_errors():
    assert issubclass(CARError, ContentError)
