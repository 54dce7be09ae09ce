"""Publishing with a kubo node: each dataset's DAG is pushed, pinned, before its record goes to
the ledger, exactly once per node (the journal's ``pushes``), and a failed push is that
dataset's failure only.

Real kubo v0.43.1 daemons (``tests/kubo``, marker ``kubo``), the embedded ledger, the real
journal and blockstore: ``etdb publish --ipfs-api`` end to end (a second daemon fetches what was
pushed, a re-run pushes nothing, a dry run never pushes), a kubo daemon stopped mid-stream
and brought back (the re-run completes, each record once), kubo down, a bad address, and a
dataset whose blocks were lost locally. The journal's migration to its ``pushes`` table is
tested without kubo.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from etdb.cli import app
from etdb.content.car import car_blocks
from etdb.content.kubo_api import KuboApi
from etdb.publish.events import BlocksPushed, Pushed
from etdb.publish.journal import Journal
from etdb.publish.journal_file import SCHEMA_VERSION
from etdb.publish.pipeline import Action
from tests.kubo.daemon import KuboDaemon
from tests.publish.test_pipeline import Lab as PipelineLab
from tests.publish.test_pipeline import ListSource, dataset, meta
from tests.publish.test_publish_cli import SIDS, add_key, ledger_entries, write_dataset

PASS = "publish test passphrase"
BIG = "3dimage_1/extra_full.rec"  # > 1 MiB: a file of several leaves
runner = CliRunner()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pins(daemon: KuboDaemon) -> set[str]:
    out = daemon.cli("pin", "ls", "--type=recursive", "--enc=json").stdout
    return set(json.loads(out)["Keys"])


def kill(daemon: KuboDaemon) -> None:
    """SIGKILL the daemon: kubo gone mid-stream, as in a crash or a power cut."""
    assert daemon.process is not None
    os.killpg(daemon.process.pid, signal.SIGKILL)
    daemon.process.wait(timeout=20)
    daemon.process = None


# -- the journal's pushes (no kubo) ---------------------------------------------------------------


LEDGER, PUBLISHER = "local:///ledger.sqlite3", "FPublisherAddressForTests"


def test_pushes_are_journaled_per_node_and_survive_a_reopen(tmp_path):
    path = tmp_path / "journal.sqlite3"
    with Journal.open(path, ledger_url=LEDGER, publisher=PUBLISHER) as journal:
        assert not journal.pushed("bafyroot", "12D3KooWnodeA")
        journal.record_push("bafyroot", "12D3KooWnodeA", api="http://a:5001", blocks=3, size=9)
        journal.record_push("bafyroot", "12D3KooWnodeA", api="http://a:5001", blocks=3, size=9)
    with Journal.open(path, ledger_url=LEDGER, publisher=PUBLISHER) as journal:
        assert journal.pushed("bafyroot", "12D3KooWnodeA")
        assert not journal.pushed("bafyroot", "12D3KooWnodeB")  # another node: not pushed
        assert list(journal.pushes("12D3KooWnodeA")) == ["bafyroot"]


def test_a_version_1_journal_gains_its_pushes_table_and_keeps_everything(tmp_path):
    path = tmp_path / "journal.sqlite3"
    with Journal.open(path, ledger_url=LEDGER, publisher=PUBLISHER) as journal:
        op = journal.begin("ds1", "publish", "json:{}", timestamp=1, since_height=0)
        journal.will_send(op.id, 0, "json:{}")
        journal.sent(op.id, 0, "ab" * 32)
        journal.finish(op.id)
    conn = sqlite3.connect(path)  # what etdb before the pushes table wrote
    conn.execute("DROP TABLE pushes")
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'version'")
    conn.commit()
    conn.close()
    with Journal.open(path, ledger_url=LEDGER, publisher=PUBLISHER) as journal:
        assert journal.get("ds1").record_txid == "ab" * 32
        journal.record_push("bafyroot", "12D3KooWnodeA", api="http://a:5001", blocks=1, size=1)
    conn = sqlite3.connect(path)
    version = conn.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()[0]
    conn.close()
    assert int(version) == SCHEMA_VERSION == 2


# -- the pipeline with a real kubo --------------------------------------------------------------


class Lab(PipelineLab):
    """test_pipeline's lab (embedded ledger, journal, blockstore) with a big file per dataset."""

    def source(self, root: Path, sids: tuple[str, ...]) -> ListSource:
        items = []
        for n, sid in enumerate(sids):
            item = dataset(root, sid)
            (item.folder / BIG).write_bytes(os.urandom(1_100_000 + n))
            items.append(item)
        return ListSource(items)


@pytest.fixture
def lab(tmp_path):
    lab = Lab(tmp_path)
    yield lab
    lab.close()


@pytest.mark.kubo
def test_kubo_stopped_mid_push_then_the_rerun_completes(tmp_path, lab, kubo_factory):
    daemon = kubo_factory()
    source = lab.source(tmp_path, ("ds-1", "ds-2", "ds-3"))
    stop_at = {"blocks": 0}

    def stop_kubo_mid_stream(event: Any) -> None:
        lab.events.append(event)
        if isinstance(event, BlocksPushed) and event.sid == "ds-2":
            stop_at["blocks"] += 1
            if stop_at["blocks"] == 3:  # a real interruption: the daemon dies mid-stream
                kill(daemon)

    with KuboApi(daemon.api_url) as kubo:
        publisher = lab.publisher(source, kubo=kubo)
        publisher.on_event = stop_kubo_mid_stream
        plan = publisher.plan()
        summary = publisher.run(plan)
    failed = dict(summary.failed)
    assert summary.counts[Action.NEW] == 1 and summary.pushed == 1
    assert set(failed) == {"ds-2", "ds-3"}
    assert "push to kubo" in failed["ds-2"] and "run again" in failed["ds-2"]
    assert "kubo unreachable" in failed["ds-3"]  # found before its bytes were read
    assert lab.journal.get("ds-2") is None and lab.journal.get("ds-3") is None
    assert len(lab.entries()) == 1  # nothing on the ledger for what kubo does not have
    assert not any(isinstance(e, BlocksPushed) and e.sid == "ds-3" for e in lab.events)

    daemon.restart()  # same repo, same peer ID, new port
    lab.events.clear()
    with KuboApi(daemon.api_url) as kubo:
        again = lab.publisher(source, kubo=kubo)
        summary = again.run(again.plan())
    assert summary.failed == () and summary.counts[Action.NEW] == 2 and summary.pushed == 2
    assert [e.sid for e in lab.events if isinstance(e, Pushed)] == ["ds-2", "ds-3"]
    entries = {sid: lab.journal.get(sid) for sid in ("ds-1", "ds-2", "ds-3")}
    assert len(lab.entries()) == 3  # each record exactly once
    assert {e.cid for e in entries.values()} <= pins(daemon)
    for e in entries.values():
        assert lab.journal.pushed(e.cid, daemon.peer_id)
    # An edit of the metadata only (same content, same CID) is sent without a push.
    source.replace("ds-1", metadata=meta("ds-1", title="Phantom cell, retitled"))
    with KuboApi(daemon.api_url) as kubo:
        edit = lab.publisher(source, kubo=kubo)
        summary = edit.run(edit.plan())
    assert summary.counts[Action.EDIT] == 1 and summary.pushed == 0 and summary.failed == ()
    assert len(lab.entries()) == 4


@pytest.mark.kubo
def test_blocks_lost_locally_fail_that_dataset_only(tmp_path, lab, kubo_pair):
    a, _ = kubo_pair
    source = lab.source(tmp_path, ("ds-1", "ds-2"))
    first = lab.publisher(source)
    first.run(first.plan())  # published before kubo was set up
    cid, other = lab.journal.get("ds-1").cid, lab.journal.get("ds-2").cid
    shared = {c for c, _ in car_blocks(lab.store, other)}
    victim = [c for c, _ in car_blocks(lab.store, cid) if c not in shared][-1]  # ds-1's own
    lab.store.delete(victim)
    for sid in ("ds-1", "ds-2"):  # an edit whose content is unchanged: read from the store
        source.replace(sid, metadata=meta(sid, title=f"New {sid}"))
    with KuboApi(a.api_url) as kubo:
        publisher = lab.publisher(source, kubo=kubo)
        summary = publisher.run(publisher.plan())
    failed = dict(summary.failed)
    assert list(failed) == ["ds-1"] and f"block {victim} not found" in failed["ds-1"]
    assert summary.counts[Action.EDIT] == 1 and summary.pushed == 1
    assert lab.journal.get("ds-2").cid in pins(a) and cid not in pins(a)
    assert len(lab.entries()) == 3  # two publishes and ds-2's edit; ds-1's edit waits


# -- etdb publish --ipfs-api, end to end -------------------------------------------------------


@pytest.fixture
def home(etdb_home, monkeypatch) -> Path:
    monkeypatch.setenv("ETDB_KEY_PASSPHRASE", PASS)
    add_key(etdb_home, "lab")
    return etdb_home


@pytest.fixture
def lab_folder(tmp_path) -> Path:
    root = tmp_path / "lab"
    for n, sid in enumerate(SIDS, 1):
        write_dataset(root, sid, n)
    (root / SIDS[0] / BIG).write_bytes(os.urandom(1_300_000))
    return root


def publish(*args: str, code: int = 0) -> dict[str, Any]:
    result = runner.invoke(app, ["publish", *args, "--no-media", "--json"])
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)


@pytest.mark.kubo
def test_etdb_publish_pushes_each_dataset_once_and_a_second_node_fetches_it(
    home, lab_folder, kubo_pair
):
    a, b = kubo_pair
    before = pins(a)
    dry = publish(str(lab_folder), "--dry-run", "--ipfs-api", a.api_url)
    assert dry["ipfs_api"] == a.api_url and pins(a) == before  # a dry run never pushes
    multiaddr = f"/ip4/127.0.0.1/tcp/{a.api_url.rsplit(':', 1)[1]}"
    out = publish(str(lab_folder), "--ipfs-api", multiaddr)
    summary = out["summary"]
    assert summary["failed"] == [] and summary["counts"]["new"] == len(SIDS)
    assert summary["pushed"] == len(SIDS) and out["ipfs_api"] == a.api_url
    with Journal.open(
        home / "publish" / "journal.sqlite3", ledger_url=out["ledger"], publisher=out["publisher"]
    ) as journal:
        cids = {sid: journal.get(sid).cid for sid in SIDS}
        assert all(journal.pushed(cid, a.peer_id) for cid in cids.values())
    assert set(cids.values()) <= pins(a)
    # B, connected to A only, fetches the big file of the first dataset over bitswap.
    big = b.cli("cat", f"{cids[SIDS[0]]}/{BIG}", timeout=120).stdout
    assert big == (lab_folder / SIDS[0] / BIG).read_bytes()
    # A re-run finds nothing to do; a changed dataset is pushed (its new CID) and edited.
    assert publish(str(lab_folder), "--ipfs-api", a.api_url)["summary"] is None
    (lab_folder / SIDS[1] / "notes.txt").write_text("a file added later\n")
    transactions = ledger_entries(home)
    out = publish(str(lab_folder), "--ipfs-api", a.api_url)
    assert out["summary"]["counts"]["edit"] == 1 and out["summary"]["pushed"] == 1
    assert ledger_entries(home) == transactions + 1
    with Journal.open(
        home / "publish" / "journal.sqlite3", ledger_url=out["ledger"], publisher=out["publisher"]
    ) as journal:
        edited = journal.get(SIDS[1]).cid
    assert edited != cids[SIDS[1]] and edited in pins(a)


def test_etdb_publish_with_kubo_down_publishes_nothing(home, lab_folder):
    out = publish(str(lab_folder), "--ipfs-api", f"http://127.0.0.1:{free_port()}", code=1)
    failed = out["summary"]["failed"]
    assert sorted(f["sid"] for f in failed) == sorted(SIDS)
    assert all("kubo unreachable" in f["reason"] and "5001" in f["reason"] for f in failed)
    assert ledger_entries(home) == 0
    assert not any((home / "blocks").rglob("*.data"))  # nothing read: kubo was asked first


def test_a_bad_kubo_address_is_refused_before_anything(home, lab_folder, monkeypatch):
    result = runner.invoke(app, ["publish", str(lab_folder), "--ipfs-api", "localhost:5001"])
    assert result.exit_code == 2 and "--ipfs-api" in result.output and "multiaddr" in result.output
    monkeypatch.setenv("ETDB_IPFS_API", "/ip4/127.0.0.1/udp/5001/quic-v1")
    result = runner.invoke(app, ["publish", str(lab_folder), "--no-media"])
    assert result.exit_code == 1 and "setting ipfs_api" in result.output
    assert ledger_entries(home) == 0


def test_what_the_run_prints_is_text_not_markup(home, lab_folder):
    # A dataset id (the lab's folder name) that reads as Rich markup is printed as it is: not
    # eaten as a style, and a "[/...]" in a reason is not a crash (MarkupError) mid-run.
    write_dataset(lab_folder, "zz[red]-5", 5)
    result = runner.invoke(app, ["publish", str(lab_folder), "--no-media", "--yes"])
    assert result.exit_code == 0, result.output
    assert "new zz[red]-5:" in result.stderr
    (lab_folder / "zz[red]-5" / "more.txt").write_text("changed\n")
    down = f"http://127.0.0.1:{free_port()}"
    result = runner.invoke(app, ["publish", str(lab_folder), "--no-media", "--ipfs-api", down])
    assert result.exit_code == 1, result.output
    assert "failed zz[red]-5: push to kubo: kubo unreachable" in result.stderr
    assert "zz[red]-5" in result.stdout  # the summary's table of failures
