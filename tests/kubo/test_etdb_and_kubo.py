"""etdb nodes and real kubo nodes exchanging datasets over plain HTTP, both ways.

* An institution running kubo mirrors a dataset from an etdb node: the CAR that etdb's
  trustless gateway streams (``/ipfs/<cid>?format=car``) goes into ``ipfs dag import`` and is
  pinned; kubo then serves every file byte-identical to etdb's path gateway.
* ``etdb download --peer <kubo gateway>``: etdb's verified downloader takes a dataset from a
  kubo node's trustless gateway alone, and the bytes equal the publisher's.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.client.nodes import Node, make_demo_home, run_etdb

pytestmark = pytest.mark.kubo


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Node, dict[str, Any]]]:
    home = tmp_path_factory.mktemp("etdb-node")
    record = make_demo_home(home, datasets=1)["records"][0]
    node = Node(home).start()
    try:
        yield node, record
    finally:
        node.stop()


def _tree(kubo, cid: str, prefix: str = "") -> dict[str, str]:
    """path -> CID of every file under ``cid``, listed by kubo (``ipfs ls``)."""
    out: dict[str, str] = {}
    for line in (
        kubo.cli("ls", "--resolve-type=true", f"{cid}{prefix}").stdout.decode().splitlines()
    ):
        child, _size, name = line.split(maxsplit=2)
        if name.endswith("/"):
            out.update(_tree(kubo, cid, f"{prefix}/{name.rstrip('/')}"))
        else:
            out[f"{prefix}/{name}"] = child
    return out


def _listed(node: Node, record: dict[str, Any], paths: Iterable[str]) -> None:
    """``paths`` (relative, "/"-separated) are exactly the record's files: its file entries
    and, under its folder entry (the OME-Zarr pyramid), that folder's files."""
    artifact = httpx.get(f"{node.url}/api/v1/records/{record['record']}", timeout=60).json()
    entries = artifact["artifact"]["storage"]["files"]
    folders = [f["fname"] + "/" for f in entries if f["subtype"] == "zarr"]
    plain = sorted(p for p in paths if not p.startswith(tuple(folders)))
    assert plain == sorted(f["fname"] for f in entries if f["subtype"] != "zarr")
    assert len(folders) == 1 and len(plain) < len(list(paths))


def test_kubo_mirrors_a_dataset_from_an_etdb_node_over_http(published, kubo) -> None:
    node, record = published
    cid = record["cid"]
    car = httpx.get(
        f"{node.url}/ipfs/{cid}", params={"format": "car"}, timeout=120
    ).raise_for_status()
    imported = kubo.cli(
        "dag", "import", "--pin-roots=true", "--stats", "--enc=json", input=car.content
    )
    roots = [json.loads(line) for line in imported.stdout.decode().splitlines() if '"Root"' in line]
    assert [r["Root"]["Cid"]["/"] for r in roots] == [cid]
    assert not roots[0]["Root"].get("PinErrorMsg")
    assert cid in kubo.cli("pin", "ls", "--type=recursive", cid).stdout.decode()
    files = _tree(kubo, cid)
    _listed(node, record, [p.lstrip("/") for p in files])
    total = 0
    for path in files:
        from_kubo = httpx.get(f"{kubo.gateway_url}/ipfs/{cid}{path}", timeout=60)
        from_etdb = httpx.get(f"{node.url}/ipfs/{cid}{path}", timeout=60)
        assert from_kubo.status_code == from_etdb.status_code == 200, path
        assert (
            hashlib.sha256(from_kubo.content).digest() == hashlib.sha256(from_etdb.content).digest()
        )
        total += len(from_kubo.content)
    assert total == record["bytes"]


def test_etdb_download_from_a_kubo_gateway_alone(published, kubo, tmp_path: Path) -> None:
    node, record = published
    cid = record["cid"]
    car = httpx.get(f"{node.url}/ipfs/{cid}", params={"format": "car"}, timeout=120)
    kubo.cli("dag", "import", "--pin-roots=true", input=car.raise_for_status().content)
    dest = tmp_path / "dest"
    client_home = tmp_path / "client"  # no blockstore: every byte must come from kubo
    client_home.mkdir()
    done = run_etdb(
        client_home,
        "download", "--server", node.url, "--peer", kubo.gateway_url, "--id", record["record"],
        "--layout", "{path}", "--dest", str(dest), "--yes", "--json", "--file-type", "all",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    got = {p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    got.pop("metadata.json", None)
    _listed(node, record, got)
    assert sum(len(b) for b in got.values()) == record["bytes"]
    for path, body in got.items():
        assert httpx.get(f"{node.url}/ipfs/{cid}/{path}", timeout=60).content == body, path
