"""``etdb.Client`` against a real node: `etdb demo` datasets served by `etdb serve`.

Catalog calls (search, count, get) go to the node's /api/v1; ``open`` reads files through the
verifying block fetcher from the node's trustless gateway. Expected values come from the demo's
own report and the dataset files on disk, never from the API under test.
"""

from __future__ import annotations

import io
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mrcfile
import pytest
from mrcfile.mrcinterpreter import MrcInterpreter

import etdb
from etdb.client.client import Client, ClientError, Record
from etdb.index.query import RecordSummary
from etdb.record import Artifact
from tests.client.nodes import Node, free_port, make_demo_home


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Node, dict[str, Any]]]:
    home = tmp_path_factory.mktemp("client") / "home"
    report = make_demo_home(home, datasets=2)
    node = Node(home).start()
    try:
        yield node, report
    finally:
        node.stop()


@pytest.fixture
def client(demo) -> Iterator[Client]:
    node, _report = demo
    with etdb.Client(node.url) as c:
        yield c


def test_search_yields_typed_summaries_of_every_record(client: Client, demo) -> None:
    _node, report = demo
    hits = list(client.search())
    assert all(isinstance(h, RecordSummary) for h in hits)
    want = {r["record"]: r for r in report["records"]}
    assert {h.id for h in hits} == set(want)
    for hit in hits:
        rec = want[hit.id]
        assert (hit.sid, hit.species, hit.location) == (rec["sid"], rec["species"], rec["cid"])
        assert hit.total_bytes == rec["bytes"]
        assert "reconstruction" in hit.file_types


def test_search_filters_and_follows_pages(client: Client, demo) -> None:
    _node, report = demo
    first = report["records"][0]
    only = list(client.search(species=first["species"]))
    assert [h.id for h in only] == [first["record"]]
    assert client.count(species=[first["species"]]) == 1
    paged = list(client.search(limit=1))  # one record per page: two pages followed
    assert sorted(h.id for h in paged) == sorted(r["record"] for r in report["records"])
    assert list(client.search(q="no-such-word-anywhere")) == []


def test_get_returns_the_typed_artifact_and_provenance(client: Client, demo) -> None:
    _node, report = demo
    rec = report["records"][1]
    record = client.get(rec["record"][:10])  # a unique prefix is enough
    assert isinstance(record, Record) and isinstance(record.artifact, Artifact)
    assert record.id == rec["record"]
    assert record.location == rec["cid"]
    assert record.artifact.details is not None and record.artifact.details.sid == rec["sid"]
    assert len(record.artifact.files) == rec["files"]
    assert record.provenance.signature_valid
    assert rec["record"] in record.provenance.txids


def test_errors_name_the_status_and_the_parameter(client: Client) -> None:
    with pytest.raises(ClientError) as missing:
        client.get("ab" * 32)
    assert missing.value.status == 404
    with pytest.raises(ClientError) as bad:
        list(client.search(date_from="last tuesday"))
    assert bad.value.status == 400 and bad.value.parameter == "date_from"
    assert "date_from" in str(bad.value)
    nowhere = f"http://127.0.0.1:{free_port()}"
    with etdb.Client(nowhere) as nobody, pytest.raises(ClientError) as down:
        nobody.get("ab" * 32)
    assert nowhere in str(down.value) and down.value.status is None


# -- open: a seekable verified stream --------------------------------------------------------


def _reconstruction(client: Client, report: dict[str, Any]) -> tuple[Record, str, Path]:
    rec = report["records"][0]
    record = client.get(rec["record"])
    fname = record.artifact.reconstruction.fname
    return record, fname, Path(rec["folder"]) / fname


def test_open_reads_an_mrc_header_with_one_leaf(client: Client, demo) -> None:
    _node, report = demo
    record, fname, on_disk = _reconstruction(client, report)
    with client.open(record, fname) as f:
        mrc = MrcInterpreter(iostream=f, permissive=True, header_only=True)
        header = mrc.header
        assert f.leaves_fetched == 1
        assert f.size == on_disk.stat().st_size
        assert f.size > 8 * 256 * 1024  # many leaves, of which one was fetched
    with mrcfile.open(on_disk, header_only=True, permissive=True) as local:
        assert header.tobytes() == local.header.tobytes()


def test_open_is_seekable_and_byte_identical(client: Client, demo) -> None:
    _node, report = demo
    record, fname, on_disk = _reconstruction(client, report)
    expected = on_disk.read_bytes()
    rng = random.Random(3)
    with client.open(record.id, fname) as f:
        assert f.seekable() and f.readable() and not f.writable()
        for _ in range(20):
            start = rng.randrange(len(expected))
            n = rng.randrange(1, 600_000)
            assert f.seek(start) == start
            assert f.read(n) == expected[start : start + n]
        f.seek(-10, io.SEEK_END)
        assert f.read() == expected[-10:]
        assert f.read(5) == b""
        f.seek(0)
        assert f.read() == expected
    with pytest.raises(ValueError):
        f.read(1)


def test_open_through_a_buffered_reader(client: Client, demo) -> None:
    _node, report = demo
    record, fname, on_disk = _reconstruction(client, report)
    with io.BufferedReader(client.open(record, fname), buffer_size=64 * 1024) as f:
        f.seek(300_000)
        assert f.read(70_000) == on_disk.read_bytes()[300_000:370_000]


def test_open_names_a_missing_file(client: Client, demo) -> None:
    _node, report = demo
    record, _fname, _ = _reconstruction(client, report)
    with pytest.raises(Exception, match="no-such-file"):
        client.open(record, "no-such-file.rec")
