"""UnixFSZarrStore: a zarr v2 (NGFF-style) folder written by zarr, imported into a real
blockstore, read back through the store by zarr itself; hostile keys and ranges, read-only."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from numcodecs import Blosc
from zarr.abc.store import OffsetByteRequest, RangeByteRequest, SuffixByteRequest

from etdb.content.blockstore import FSBlockstore
from etdb.content.errors import ContentError, NotADirError
from etdb.content.unixfs import Importer
from etdb.content.zarr_store import UnixFSZarrStore


def write_zarr(folder: Path, data: np.ndarray) -> None:
    group = zarr.open_group(folder, mode="w", zarr_format=2)
    group.attrs["hello"] = "world"
    array = group.create_array(
        "0", shape=data.shape, chunks=(16, 16, 16), dtype=data.dtype,
        compressors=Blosc(cname="zstd", shuffle=Blosc.SHUFFLE),
        chunk_key_encoding={"name": "v2", "separator": "/"},
    )  # fmt: skip
    array[:] = data


@pytest.fixture(scope="module")
def held(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("zarrstore")
    data = np.random.default_rng(3).normal(size=(20, 33, 40)).astype(np.float32)
    write_zarr(root / "p.ome.zarr", data)
    (root / "p.ome.zarr" / "big").write_bytes(bytes(5000))
    store = FSBlockstore(root / "blocks")
    cid = Importer("kubo-v1", store, hidden=True).add_path(root).cid  # .zarray etc. are hidden
    store.sync()
    return {"store": store, "root": f"{cid}/p.ome.zarr", "data": data, "folder": root}


def test_zarr_reads_the_array_back(held):
    store = UnixFSZarrStore(held["store"], held["root"])
    group = zarr.open_group(store, mode="r", zarr_format=2)
    assert group.attrs["hello"] == "world"
    array = group["0"]
    np.testing.assert_array_equal(array[:], held["data"])
    np.testing.assert_array_equal(array[:, 7, :], held["data"][:, 7, :])


def test_byte_ranges_read_only_what_they_ask(held):
    store = UnixFSZarrStore(held["store"], held["root"])
    whole = (held["folder"] / "p.ome.zarr" / "0" / ".zarray").read_bytes()
    assert store.read("0/.zarray") == whole
    assert store.read("0/.zarray", RangeByteRequest(2, 10)) == whole[2:10]
    assert store.read("0/.zarray", OffsetByteRequest(5)) == whole[5:]
    assert store.read("0/.zarray", SuffixByteRequest(4)) == whole[-4:]
    assert store.read("0/.zarray", RangeByteRequest(10, 10**9)) == whole[10:]


@pytest.mark.parametrize(
    "key", ["", "/", "0/", "0//0", "../x", "0/../0/.zarray", "./.zgroup", "nope", "0", "x" * 2000]
)
def test_keys_that_name_no_file_are_missing(held, key):
    store = UnixFSZarrStore(held["store"], held["root"])
    assert store.read(key) is None
    assert asyncio.run(store.exists(key)) is False


def test_an_object_too_large_is_refused_not_read(held):
    store = UnixFSZarrStore(held["store"], held["root"], max_object=4096)
    with pytest.raises(ContentError, match="more than a zarr store reads"):
        store.read("big")
    assert store.read("big", RangeByteRequest(0, 100)) == bytes(100)


def test_listing(held):
    store = UnixFSZarrStore(held["store"], held["root"])

    async def listed() -> tuple[list[str], list[str], list[str]]:
        keys = [k async for k in store.list()]
        names = [k async for k in store.list_dir("0")]
        prefixed = [k async for k in store.list_prefix("0/1/")]
        return keys, names, prefixed

    keys, names, prefixed = asyncio.run(listed())
    on_disk = sorted(
        p.relative_to(held["folder"] / "p.ome.zarr").as_posix()
        for p in (held["folder"] / "p.ome.zarr").rglob("*")
        if p.is_file()
    )
    assert sorted(keys) == on_disk
    assert {".zarray", "0", "1"} <= set(names)
    assert prefixed and all(k.startswith("0/1/") for k in prefixed)


def test_read_only_and_root_checked(held):
    store = UnixFSZarrStore(held["store"], held["root"])
    with pytest.raises(ValueError):
        store.with_read_only(False)
    with pytest.raises(ValueError, match="read-only"):
        asyncio.run(store.delete(".zgroup"))
    with pytest.raises(NotADirError):
        UnixFSZarrStore(held["store"], held["root"] + "/.zgroup")
    assert store == UnixFSZarrStore(held["store"], held["root"])
