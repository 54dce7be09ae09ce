"""`etdb demo`: synthetic datasets published through the lab path, indexed, served; re-runs
publish nothing twice."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image
from typer.testing import CliRunner

from etdb.cli import app
from etdb.config import load_settings
from etdb.content import exporter
from etdb.content.blockstore import FSBlockstore
from etdb.content.unixfs import Importer
from etdb.index.catalog import open_catalog
from etdb.index.query import SearchQuery
from etdb.ledger import LedgerError, open_ledger
from etdb.mrc.ngff import loads_multiscales
from etdb.publish.pyramids import FOLDER_SUFFIXES
from etdb.record import decode, verify_publish
from tests.publish.test_media import probe

runner = CliRunner()


def run_demo(*args: str) -> dict:
    result = runner.invoke(app, ["demo", "--no-serve", "--json", *args])
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return json.loads(result.stdout)  # progress goes to stderr; stdout is only the JSON


def ledger_payloads(home: Path) -> list[tuple[str, str]]:
    with open_ledger("local://", home) as ledger:
        return [
            (e.txid, e.payload)
            for h in range(ledger.tip().height + 1)
            for e in ledger.block(h).entries
        ]


def test_demo_publishes_indexes_and_is_idempotent(etdb_home):
    out = run_demo("--datasets", "3")
    rows = out["records"]
    assert len(rows) == 3 and out["published"] == 3
    assert all(r["status"] == "published" and r["indexed"] for r in rows)
    assert out["url"].startswith("http://127.0.0.1:8780/")

    # On the ledger: three valid records signed by the demo key, saying they are synthetic.
    payloads = dict(ledger_payloads(etdb_home))
    assert set(payloads) == {r["record"] for r in rows}
    store = FSBlockstore(etdb_home / "blocks", create=False)
    for row in rows:
        artifact = decode(payloads[row["record"]]).artifact
        check = verify_publish(artifact)
        assert check.valid and check.address == out["publisher"]
        assert "synthetic" in artifact.info.description.lower()
        assert "SYNTHETIC" in artifact.details.artNotes
        # The location is the CID of the folder with its pyramid (made into demo/media),
        # and every file the record names can be read back from the blockstore at its size.
        folder, sid = Path(row["folder"]), row["sid"]
        pyramid = etdb_home / "demo" / "media" / sid / f"{sid}.ome.zarr"
        importer = Importer("kubo-v1", hidden_in=FOLDER_SUFFIXES)
        added = importer.add_path(folder, overlay={pyramid.name: pyramid})
        assert str(added.cid) == artifact.location == row["cid"]
        assert [f.fname for f in artifact.files_of("zarr")] == [pyramid.name]
        for f in artifact.files:
            if f.subtype != "zarr":
                assert exporter.stat(store, f"{artifact.location}/{f.fname}").size == f.fsize
        zattrs = b"".join(exporter.iter_file(store, f"{artifact.location}/{pyramid.name}/.zattrs"))
        assert len(loads_multiscales(zattrs).levels) >= 2
        assert row["files"] == len(artifact.files)
        # Media: decodable key image and thumbnail, a browser-ready key movie.
        with Image.open(folder / f"keyimg_{sid}.jpg") as im:
            assert im.format == "JPEG" and min(im.size) > 100
        with Image.open(folder / f"keyimg_{sid}_s.jpg") as im:
            assert max(im.size) <= 200
        movie = probe(folder / f"keymov_{sid}.mp4")
        assert movie["codec"] == "h264" and movie["pix_fmt"] == "yuv420p"
        assert movie["frames"] > 30

    # In the catalog: searchable by text and by publisher.
    catalog = open_catalog(load_settings().catalog_url)
    try:
        mine = catalog.search(SearchQuery(publisher=(out["publisher"],)))
        assert {i.id for i in mine.items} == {r["record"] for r in rows}
        species = rows[0]["species"].split()[0]
        assert rows[0]["record"] in {i.id for i in catalog.search(SearchQuery(q=species)).items}
        detail = catalog.get(rows[0]["record"][:8])
        assert detail is not None and detail.artifact["storage"]["location"] == rows[0]["cid"]
    finally:
        catalog.close()

    # Again: nothing new on the ledger, same answers.
    again = run_demo("--datasets", "3")
    assert again["published"] == 0
    assert [(r["cid"], r["record"]) for r in again["records"]] == [
        (r["cid"], r["record"]) for r in rows
    ]
    # Even without the journal, the catalog knows what the demo key already published.
    (etdb_home / "demo" / "journal.sqlite3").unlink()
    more = run_demo("--datasets", "4")
    assert more["published"] == 1 and more["records"][3]["status"] == "published"
    assert len(ledger_payloads(etdb_home)) == 4


def test_demo_will_not_write_synthetic_records_to_a_real_ledger(etdb_home, monkeypatch):
    monkeypatch.setenv("ETDB_LEDGER", "flo+http://user:secret@127.0.0.1:7313")
    result = runner.invoke(app, ["demo", "--no-serve"])
    assert result.exit_code == 1
    assert "--allow-public-ledger" in result.stderr and "secret" not in result.stderr
    assert not (etdb_home / "demo").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_demo_serves_the_records(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETDB_")}
    env["ETDB_HOME"] = str(tmp_path / "home")
    port = _free_port()
    cmd = [sys.executable, "-c", "from etdb.cli import main; main()", "demo"]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port), "--datasets", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        items: list = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and len(items) < 2:
            if proc.poll() is not None:
                pytest.fail(f"etdb demo exited {proc.returncode}: {proc.stderr.read()}")
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/api/v1/records", timeout=2)
                items = r.json()["items"] if r.status_code == 200 else []
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        assert len(items) == 2
        assert all(i["lab"] == "Phantom Lab" for i in items)
        # every demo dataset opens in the 3-D viewer, which the node serves itself
        base = f"http://127.0.0.1:{port}"
        for item in items:
            opened = httpx.get(f"{base}/tomogram/{item['id']}/viewer.json", timeout=10)
            assert opened.status_code == 200, opened.text
            (layer,) = opened.json()["state"]["layers"]
            assert layer["source"].startswith(f"zarr2://{base}/ipfs/{item['location']}/")
            zattrs = httpx.get(layer["source"].removeprefix("zarr2://") + ".zattrs", timeout=10)
            assert zattrs.status_code == 200 and "multiscales" in zattrs.json()
        page = opened.json()["url"].split("#")[0]  # the client's page, on this node
        client = httpx.get(f"{base}{page}", timeout=10)
        assert client.status_code == 200 and "<script" in client.text
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            stdout, stderr = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
    assert proc.returncode == 0, stderr
    assert f"http://127.0.0.1:{port}/" in stdout


def test_an_interrupted_multipart_publish_resumes_without_duplicates(etdb_home, monkeypatch):
    # FLO's payload limit: every record goes out as several signed parts.
    monkeypatch.setenv("ETDB_LEDGER", "local://?max_payload=1040")
    from etdb.ledger.local import LocalLedger

    real_publish = LocalLedger.publish
    calls = {"n": 0}

    def flaky(self, payload):
        calls["n"] += 1
        if calls["n"] == 3:
            raise LedgerError("node went away")
        return real_publish(self, payload)

    monkeypatch.setattr(LocalLedger, "publish", flaky)
    first = runner.invoke(app, ["demo", "--no-serve", "--json", "--datasets", "1"])
    assert first.exit_code == 1 and "node went away" in first.stderr
    assert len(ledger_payloads(etdb_home)) == 2  # parts 0 and 1 made it

    monkeypatch.setattr(LocalLedger, "publish", real_publish)
    out = run_demo("--datasets", "1")
    assert out["published"] == 1 and out["records"][0]["indexed"]
    texts = [p for _, p in ledger_payloads(etdb_home)]
    assert all(t.startswith("oip-mp(") for t in texts)
    assert len({t.split(",")[0] for t in texts}) == len(texts)  # each part index once
    assert out["records"][0]["record"] == ledger_payloads(etdb_home)[0][0]  # part 0's txid


def test_a_busy_port_is_reported_before_any_work(etdb_home):
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        result = runner.invoke(app, ["demo", "--port", str(port)])
    assert result.exit_code == 1 and "choose another --port" in result.stderr
    assert not (etdb_home / "demo").exists()


def test_a_reset_ledger_gets_the_records_again(etdb_home):
    first = run_demo("--datasets", "1")
    # The embedded ledger and the catalog derived from it are deleted (a fresh start); the
    # demo's journal now names transactions no ledger has: it is dropped, not trusted.
    for name in ("ledger.sqlite3", "catalog.sqlite3"):
        for suffix in ("", "-wal", "-shm"):
            (etdb_home / (name + suffix)).unlink(missing_ok=True)
    again = run_demo("--datasets", "1")
    assert again["published"] == 1 and again["records"][0]["indexed"]
    assert again["records"][0]["cid"] == first["records"][0]["cid"]
    assert [t for t, _ in ledger_payloads(etdb_home)] == [again["records"][0]["record"]]
