"""The content the kubo RPC tests serve: a dataset folder on disk, and hostile DAGs.

The dataset has what a tar must get right: nested folders, an empty file, a file of several
leaves, a non-ASCII name, a path USTAR splits into prefix and name, a name USTAR cannot hold,
and symlinks (one inside the tree, one climbing out, one absolute). The hostile DAGs are built
with the project's own dag-pb code, as anyone could publish them.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

from etdb.content.blockstore import FSBlockstore
from etdb.content.cid import CID, DAG_PB, RAW
from etdb.content.dagpb import PBLink, PBNode, UnixFSData, UnixFSType, encode_node, encode_unixfs
from etdb.content.tarstream import MAX_PATH
from etdb.web.kubo_rpc import MAX_LISTING_BYTES

LONG_DIRS = "d" * 60 + "/" + "e" * 60
FILES = {
    "notes.txt": b"tilt series notes\n",
    "tilt/series.mrc": random.Random(7).randbytes(1_300_000),  # five 256 KiB leaves and a bit
    "tilt/empty.dat": b"",
    "keyimg.jpg": b"\xff\xd8\xff\xe0" + random.Random(8).randbytes(5000),
    "\u00b5m \u00c5 r\u00e9sum\u00e9.txt": b"non-ASCII name\n",
    f"{LONG_DIRS}/{'f' * 90}.txt": b"a path USTAR splits into prefix and name\n",
    "g" * 120 + ".txt": b"a name USTAR cannot hold\n",
}
SAFE_LINKS = {"link-notes": "notes.txt"}
UNSAFE_LINKS = {"tilt/link-up": "../notes.txt", "link-abs": "/etc/passwd"}
LEAF = 256 * 1024
HEAVY = (8 << 20) - 64  # a file held in one dag-pb block just under the 8 MiB block limit


def write_dataset(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for rel, data in FILES.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    for rel, target in {**SAFE_LINKS, **UNSAFE_LINKS}.items():
        os.symlink(target, folder / rel)
    return folder


@dataclass(frozen=True)
class Hostile:
    """CIDs of DAGs built to hurt a tar writer or a streaming server."""

    names: dict[str, CID]  # unsafe entry name -> a folder holding "ok.txt" then that name
    deep: CID  # folders nested past MAX_PATH bytes of path
    missing_leaf: CID  # a 2-leaf file whose second leaf is not stored
    missing_leaf_first: bytes  # the bytes of its first (stored) leaf
    missing_child: CID  # a folder listing an entry whose block is not stored
    huge: CID  # a 1 TiB file of 23 blocks (every node links twice to one child)
    huge_size: int
    wide: CID  # a folder of `wide_entries` entries, one block, all naming one raw block
    wide_entries: int
    heavy: CID  # a folder of `heavy_entries` entries naming one 8 MiB dag-pb file block
    heavy_entries: int


def put_pb(store: FSBlockstore, node: PBNode) -> CID:
    block = encode_node(node)
    cid = CID.hash(block, codec=DAG_PB)
    store.put(cid, block)
    return cid


def put_raw(store: FSBlockstore, data: bytes) -> CID:
    cid = CID.hash(data, codec=RAW)
    store.put(cid, data)
    return cid


def put_dir(store: FSBlockstore, entries: list[tuple[str, CID]]) -> CID:
    links = tuple(PBLink(cid, name, 1) for name, cid in entries)
    return put_pb(store, PBNode(links, encode_unixfs(UnixFSData(UnixFSType.DIRECTORY))))


def build_hostile(store: FSBlockstore, bad_names: list[str], wide_entries: int) -> Hostile:
    payload = put_raw(store, b"pwned\n")
    names = {
        bad: put_dir(store, [("sub", put_dir(store, [("ok.txt", payload), (bad, payload)]))])
        for bad in bad_names
    }
    deep = payload
    for _ in range(MAX_PATH // 200 + 2):
        deep = put_dir(store, [("n" * 200, deep)])
    first = random.Random(9).randbytes(LEAF)
    absent = CID.hash(b"a leaf nobody stored", codec=RAW)
    two = UnixFSData(UnixFSType.FILE, filesize=LEAF + 20, blocksizes=(LEAF, 20))
    missing_leaf = put_pb(
        store,
        PBNode(
            (PBLink(put_raw(store, first), "", LEAF), PBLink(absent, "", 20)), encode_unixfs(two)
        ),
    )
    unstored = CID.hash(b"a folder nobody stored", codec=DAG_PB)
    missing_child = put_dir(store, [("here.txt", payload), ("gone", unstored)])
    huge, huge_size = _huge_file(store)
    wide = put_dir(store, [(f"e{i:06d}", payload) for i in range(wide_entries)])
    heavy_entries = MAX_LISTING_BYTES // HEAVY + 2  # just over the limit
    heavy_file = UnixFSData(UnixFSType.FILE, data=bytes(HEAVY), filesize=HEAVY)
    heavy_child = put_pb(store, PBNode((), encode_unixfs(heavy_file)))
    heavy = put_dir(store, [(f"h{i:04d}", heavy_child) for i in range(heavy_entries)])
    return Hostile(
        names, deep, missing_leaf, first, missing_child, huge, huge_size,
        wide, wide_entries, heavy, heavy_entries,
    )  # fmt: skip


def _huge_file(store: FSBlockstore) -> tuple[CID, int]:
    cid = put_raw(store, random.Random(10).randbytes(LEAF))
    size = LEAF
    for _ in range(22):
        fs = UnixFSData(UnixFSType.FILE, filesize=2 * size, blocksizes=(size, size))
        cid = put_pb(
            store, PBNode((PBLink(cid, "", size), PBLink(cid, "", size)), encode_unixfs(fs))
        )
        size *= 2
    return cid, size
