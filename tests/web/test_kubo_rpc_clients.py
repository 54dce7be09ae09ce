"""The real kubo RPC clients from npm against a real ``etdb serve``: ipfs-api 22 and kubo-rpc-client.

The original ETDB-downloads CLI selects datasets through ``/api/v2`` and downloads each file
with ipfs-api's ``files.getReadableStream('<location>/<fname>')`` (kubo's ``POST
/api/v0/get``), then checks what it has with ``ls``; before etdb served the RPC that was a 404,
then ``Error: [object Object]``. Here its exact calls run (``kubo_rpc_clients/clients.mjs``)
against a node made by ``etdb demo`` (a published, indexed dataset) that also holds the test
dataset of ``kubo_rpc_dataset`` and a file with a block missing. Expected bytes come from the
files on disk and expected CIDs from etdb's importer run on the downloaded bytes, as
ETDB-downloads itself checks files (``add --only-hash`` against ``ls``).
"""

from __future__ import annotations

import base64
import hashlib
import io
import random
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from etdb import __version__
from etdb.content.blockstore import FSBlockstore
from etdb.content.dagpb import PBLink, PBNode, UnixFSData, UnixFSType, encode_unixfs
from etdb.content.unixfs import Importer
from tests.client.nodes import Node, make_demo_home, run_etdb
from tests.web.kubo_rpc_clients import RpcClients, rpc_clients
from tests.web.kubo_rpc_dataset import (
    FILES,
    LEAF,
    SAFE_LINKS,
    UNSAFE_LINKS,
    put_pb,
    put_raw,
    write_dataset,
)

LEGACY, MODERN = "ipfs-api", "kubo-rpc-client"


@dataclass(frozen=True)
class Served:
    node: Node
    record: dict[str, Any]  # the demo's published record (etdb demo --json)
    roots: dict[str, str]  # profile -> the test dataset's root CID
    broken: str  # a 2-leaf file whose second leaf is not stored


@pytest.fixture(scope="module")
def clients() -> RpcClients:
    return rpc_clients()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, clients: RpcClients) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("rpc-clients")
    record = make_demo_home(home, datasets=1)["records"][0]
    folder = write_dataset(tmp_path_factory.mktemp("rpc-data") / "et2024-07-07-1")
    roots = {}
    for profile in ("kubo-v1", "unixfs-v0-2015"):
        added = run_etdb(home, "add", "-q", "--profile", profile, str(folder))
        assert added.returncode == 0, added.stderr
        roots[profile] = added.stdout.strip()
    with FSBlockstore(home / "blocks") as store:
        first = put_raw(store, random.Random(3).randbytes(LEAF))
        absent = put_raw(store, b"a leaf that goes missing")
        fs = UnixFSData(UnixFSType.FILE, filesize=LEAF + 24, blocksizes=(LEAF, 24))
        broken = put_pb(
            store, PBNode((PBLink(first, "", LEAF), PBLink(absent, "", 24)), encode_unixfs(fs))
        )
        store.delete(absent)
    node = Node(home).start()
    try:
        yield Served(node, record, roots, str(broken))
    finally:
        node.stop()


def digest(data: bytes) -> dict[str, Any]:
    return {"length": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def run(clients: RpcClients, served: Served, *ops: dict[str, Any]) -> list[dict[str, Any]]:
    return clients.run(served.node.url, ops)


def ok(result: dict[str, Any]) -> Any:
    assert result["ok"], result
    return result["result"]


# -- ETDB-downloads, as it is ---------------------------------------------------------------------


def test_etdb_downloads_selects_through_api_v2_and_downloads_every_file(
    clients: RpcClients, served: Served, tmp_path: Path
) -> None:
    page = httpx.get(
        f"{served.node.url}/api/v2/artifact/get/type",
        params={"t": "research", "st": "tomogram"},
        timeout=60,
    ).json()
    (artifact,) = [r["oip042"]["artifact"] for r in page["results"]]
    storage = artifact["storage"]
    files = [{"fname": f["fname"], "dname": f["dname"]} for f in storage["files"]]
    # every entry but the pyramid folder, which the 2018 clients would take for a file
    assert storage["location"] == served.record["cid"] and len(files) == served.record["files"] - 1
    v1 = httpx.get(f"{served.node.url}/api/v1/records/{served.record['record']}", timeout=60)
    assert [f["subtype"] for f in v1.json()["artifact"]["storage"]["files"]].count("zarr") == 1
    (result,) = run(
        clients,
        served,
        {
            "client": LEGACY,
            "op": "etdb-downloads",
            "location": storage["location"],
            "files": files,
            "dest": str(tmp_path),
        },
    )
    done = ok(result)
    assert done["written"] == [f["dname"] for f in files]
    listed = {e["path"]: e for e in done["listed"]}
    dataset = Path(served.record["folder"])
    for f, meta in zip(files, storage["files"], strict=True):
        got = (tmp_path / f["dname"]).read_bytes()
        assert got == (dataset / f["fname"]).read_bytes() and len(got) == meta["fsize"]
        # ETDB-downloads' own check: the file hashes to the CID its ls names for it.
        entry = listed[f"/ipfs/{storage['location']}/{f['fname']}"]
        assert entry["type"] == "file"
        assert str(Importer("kubo-v1").add_bytes(got).cid) == entry["hash"]


# -- ipfs-api ------------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["kubo-v1", "unixfs-v0-2015"])
def test_ipfs_api_get_of_cid_slash_file_returns_the_file(
    clients: RpcClients, served: Served, profile: str
) -> None:
    root = served.roots[profile]
    results = run(
        clients,
        served,
        *({"client": LEGACY, "op": "get", "path": f"{root}/{rel}"} for rel in FILES),
    )
    for rel, result in zip(FILES, results, strict=True):
        assert ok(result) == [{"path": rel.rsplit("/", 1)[-1], **digest(FILES[rel])}], rel


def test_ipfs_api_get_of_a_folder(clients: RpcClients, served: Served) -> None:
    root = served.roots["unixfs-v0-2015"]
    (result,) = run(clients, served, {"client": LEGACY, "op": "get", "path": root})
    entries = {e["path"]: e for e in ok(result)}
    for rel, data in FILES.items():
        assert entries[f"{root}/{rel}"] == {"path": f"{root}/{rel}", **digest(data)}
    assert {f"{root}/{rel}" for rel in SAFE_LINKS} <= set(entries)
    assert not {f"{root}/{rel}" for rel in UNSAFE_LINKS} & set(entries)
    assert entries[f"{root}/tilt"] == {"path": f"{root}/tilt"}  # a folder: no content


def test_cat_with_offset_and_length(clients: RpcClients, served: Served) -> None:
    path = f"{served.roots['kubo-v1']}/tilt/series.mrc"
    data = FILES["tilt/series.mrc"]
    cases = [(None, None), (LEAF - 5, 10), (1_000_000, None), (0, 1), (7, 0)]
    ops = [
        {"client": client, "op": "cat", "path": path, "offset": offset, "length": length}
        for client in (LEGACY, MODERN)
        for offset, length in cases
    ]
    results = run(clients, served, *ops)
    for op, result in zip(ops, results, strict=True):
        start = op["offset"] or 0
        end = None if op["length"] is None else start + op["length"]
        assert ok(result) == digest(data[start:end]), op


def test_ls_with_both_clients(clients: RpcClients, served: Served) -> None:
    root = served.roots["kubo-v1"]
    legacy, modern = run(
        clients,
        served,
        {"client": LEGACY, "op": "ls", "path": root},
        {"client": MODERN, "op": "ls", "path": root},
    )
    by_name = {e["name"]: e for e in ok(legacy)}
    assert by_name["notes.txt"]["size"] == len(FILES["notes.txt"])
    assert by_name["notes.txt"]["type"] == "file" and by_name["tilt"]["type"] == "dir"
    assert by_name["tilt"]["path"] == f"{root}/tilt"
    modern_by_name = {e["name"]: e for e in ok(modern)}
    assert set(modern_by_name) == set(by_name)
    for name, entry in modern_by_name.items():
        assert entry["cid"] == by_name[name]["hash"] and entry["size"] == by_name[name]["size"]
    assert modern_by_name["tilt"]["type"] == "dir"


def test_version_with_both_clients(clients: RpcClients, served: Served) -> None:
    legacy, modern = run(
        clients, served, {"client": LEGACY, "op": "version"}, {"client": MODERN, "op": "version"}
    )
    assert ok(legacy)["version"] == __version__
    assert ok(modern)["version"] == __version__


def test_kubo_rpc_client_get_is_the_tar(clients: RpcClients, served: Served) -> None:
    root = served.roots["kubo-v1"]
    (result,) = run(clients, served, {"client": MODERN, "op": "get", "path": root, "base64": True})
    tar = base64.b64decode(ok(result)["base64"])
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        for rel, data in FILES.items():
            assert archive.extractfile(f"{root}/{rel}").read() == data  # type: ignore[union-attr]


def test_errors_reach_the_clients_as_errors(clients: RpcClients, served: Served) -> None:
    """kubo's JSON error arrives as the client's error (message and Code), and a stream cut by
    a block gone missing is an error too: never a short file taken for a whole one.

    Not asked: ipfs-api 22's ``files.get`` of the cut stream, which never settles (its tar
    parser's error goes nowhere); it does the same on kubo's own mid-stream errors."""
    root = served.roots["kubo-v1"]
    missing = f'no link named "nope" under {root}'
    results = run(
        clients,
        served,
        {"client": LEGACY, "op": "get", "path": f"{root}/nope"},
        {"client": MODERN, "op": "cat", "path": f"{root}/nope"},
        {"client": LEGACY, "op": "cat", "path": served.broken},
        {"client": MODERN, "op": "cat", "path": served.broken},
        {"client": MODERN, "op": "get", "path": served.broken},
    )
    assert (results[0]["ok"], results[0]["error"], results[0]["code"]) == (False, missing, 0)
    assert (results[1]["ok"], results[1]["error"]) == (False, missing)
    for result in results[2:]:
        assert not result["ok"], result
