"""The publishing journal (``etdb.publish.journal``): every state transition and every refusal,
binding, schema versions, damage, and the lock that keeps a second publisher out (held by a
real second process)."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys

import pytest

from etdb.publish.journal import (
    DEFAULT_FILE,
    Journal,
    JournalError,
    PartState,
    default_path,
)
from etdb.publish.journal_file import SCHEMA_VERSION
from tests.conftest import REPO_ROOT

LEDGER = "local:///tmp/ledger.sqlite3?max_payload=1040"
PUBLISHER = "FPublisherAddressxxxxxxxxxxxxxxxxx"
TX = [f"{i:064x}" for i in range(1, 10)]
PART0 = "oip-mp(0,2,FAddr,,SIG):data"  # a 3-part multipart (max index 2)


@pytest.fixture
def path(tmp_path):
    return tmp_path / "journal.sqlite3"


@pytest.fixture
def journal(path):
    with Journal.open(path, ledger_url=LEDGER, publisher=PUBLISHER) as opened:
        yield opened


def _publish(journal, sid="ds1", **extra):
    return journal.begin(sid, "publish", "json:record", timestamp=100, since_height=7, **extra)


def _send_all(journal, op, texts):
    for i, text in enumerate(texts):
        journal.will_send(op.id, i, text)
        journal.sent(op.id, i, TX[i])


def test_publish_lifecycle(journal, path):
    op = _publish(journal, artifact={"k": "v"}, cid="bafy", content_fingerprint="c1")
    assert (op.sid, op.kind, op.timestamp, op.since_height, op.parts) == (
        "ds1",
        "publish",
        100,
        7,
        (),
    )
    assert journal.pending() == [op] and journal.get("ds1") is None
    journal.will_send(op.id, 0, PART0)
    assert journal.pending()[0].parts == (PartState(0, PART0, None),)
    journal.sent(op.id, 0, TX[0])
    journal.will_send(op.id, 1, "p1")
    journal.sent(op.id, 1, TX[1])
    journal.will_send(op.id, 2, "p2")
    journal.sent(op.id, 2, TX[2])
    entry = journal.finish(op.id)
    assert entry.state == "published" and entry.record_txid == TX[0]
    assert entry.txids == tuple(TX[:3])
    assert (entry.cid, entry.content_fingerprint, entry.artifact) == ("bafy", "c1", {"k": "v"})
    assert entry.history == (("publish", TX[0], 100),)
    assert journal.pending() == [] and journal.get("ds1") == entry
    assert journal.operation(op.id).state == "done"
    journal.close()
    with Journal.open(path, ledger_url=LEDGER, publisher=PUBLISHER) as again:  # durable
        assert again.get("ds1") == entry and list(again.entries()) == [entry]


def test_edit_then_deactivate(journal):
    op = _publish(journal, artifact={"v": 1}, cid="c1", record_fingerprint="r1")
    _send_all(journal, op, ["json:one"])
    published = journal.finish(op.id)
    edit = journal.begin(
        "ds1", "edit", "json:edit", timestamp=200, since_height=9,
        artifact={"v": 2}, record_fingerprint="r2",
    )  # fmt: skip
    assert edit.record_txid == published.record_txid  # taken from the journal
    journal.will_send(edit.id, 0, "json:edit")
    journal.sent(edit.id, 0, TX[5])
    edited = journal.finish(edit.id)
    assert edited.artifact == {"v": 2} and edited.record_fingerprint == "r2"
    assert edited.cid == "c1" and edited.txids == published.txids  # the publish's txs
    assert (edited.published_at, edited.updated_at) == (100, 200)
    off = journal.begin("ds1", "deactivate", "json:off", timestamp=300, since_height=9)
    _send_all(journal, off, ["json:off"])
    gone = journal.finish(off.id)
    assert gone.state == "deactivated" and gone.artifact == {"v": 2}
    assert [h[0] for h in gone.history] == ["publish", "edit", "deactivate"]
    # Deactivated: publishing it anew is allowed.
    assert _publish(journal).kind == "publish"


def test_edit_of_a_record_published_without_the_journal(journal):
    with pytest.raises(JournalError, match="needs the record's txid"):
        journal.begin("old", "edit", "json:e", timestamp=1, since_height=0)
    op = journal.begin("old", "edit", "json:e", timestamp=1, since_height=0, record_txid=TX[8])
    _send_all(journal, op, ["json:e"])
    entry = journal.finish(op.id)
    assert entry.record_txid == TX[8] and entry.history == (("edit", TX[0], 1),)


def test_entries_are_ordered_by_sid(journal):
    for sid in ("b", "c", "a"):
        op = _publish(journal, sid)
        _send_all(journal, op, ["x"])
        journal.finish(op.id)
    assert [e.sid for e in journal.entries()] == ["a", "b", "c"]


def test_pending_oldest_first_and_one_per_dataset(journal):
    first, second = _publish(journal, "b"), _publish(journal, "a")
    assert [op.id for op in journal.pending()] == [first.id, second.id]
    with pytest.raises(JournalError, match="already has an unfinished operation"):
        _publish(journal, "b")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("", "publish", "json:x"), "non-empty"),
        (("ds", "delete", "json:x"), "not one of publish, edit, deactivate"),
        (("ds", "publish", ""), "payload is empty"),
    ],
)
def test_begin_refuses_bad_input(journal, args, message):
    with pytest.raises(JournalError, match=message):
        journal.begin(*args, timestamp=1, since_height=0)
    assert journal.pending() == []


def test_publishing_a_published_dataset_again_is_refused(journal):
    op = _publish(journal)
    _send_all(journal, op, ["x"])
    journal.finish(op.id)
    with pytest.raises(JournalError, match="already published"):
        _publish(journal)


def test_will_send_rules(journal):
    op = _publish(journal)
    with pytest.raises(JournalError, match="cannot be sent before part 0"):
        journal.will_send(op.id, 1, "p1")
    journal.will_send(op.id, 0, PART0)
    journal.will_send(op.id, 0, PART0)  # a resumed send re-announces the same text: fine
    with pytest.raises(JournalError, match="differs"):
        journal.will_send(op.id, 0, PART0 + "!")
    with pytest.raises(JournalError, match="while part 0 has no txid"):
        journal.will_send(op.id, 1, "p1")
    journal.sent(op.id, 0, TX[0])
    with pytest.raises(JournalError, match="already sent"):
        journal.will_send(op.id, 0, PART0)
    assert journal.pending()[0].parts == (PartState(0, PART0, TX[0]),)


def test_sent_rules(journal):
    op = _publish(journal)
    with pytest.raises(JournalError, match="without will_send"):
        journal.sent(op.id, 0, TX[0])
    journal.will_send(op.id, 0, PART0)
    with pytest.raises(JournalError, match="empty txid"):
        journal.sent(op.id, 0, "")
    journal.sent(op.id, 0, TX[0])
    journal.sent(op.id, 0, TX[0])  # the same again: fine
    with pytest.raises(JournalError, match="went out twice"):
        journal.sent(op.id, 0, TX[1])
    with pytest.raises(JournalError, match="no operation 999"):
        journal.sent(999, 0, TX[0])


def test_finish_needs_every_part(journal):
    op = _publish(journal)
    with pytest.raises(JournalError, match="nothing was sent"):
        journal.finish(op.id)
    journal.will_send(op.id, 0, PART0)
    with pytest.raises(JournalError, match="part 0 has no txid"):
        journal.finish(op.id)
    journal.sent(op.id, 0, TX[0])
    journal.will_send(op.id, 1, "p1")
    journal.sent(op.id, 1, TX[1])
    with pytest.raises(JournalError, match="2 of 3 parts"):
        journal.finish(op.id)
    assert journal.get("ds1") is None and len(journal.pending()) == 1  # nothing half-done
    journal.will_send(op.id, 2, "p2")
    journal.sent(op.id, 2, TX[2])
    entry = journal.finish(op.id)
    assert journal.finish(op.id) == entry  # finishing twice returns the same
    with pytest.raises(JournalError, match="already done"):
        journal.will_send(op.id, 3, "p3")


def test_abandon_only_what_never_reached_the_ledger(journal):
    op = _publish(journal)
    journal.will_send(op.id, 0, PART0)  # the caller looked it up: not on the ledger
    journal.abandon(op.id, "edited before it went out")
    assert journal.pending() == [] and journal.operation(op.id).state == "abandoned"
    with pytest.raises(JournalError, match="already abandoned"):
        journal.finish(op.id)
    again = _publish(journal)  # the dataset is free for a new operation
    journal.will_send(again.id, 0, PART0)
    journal.sent(again.id, 0, TX[0])
    with pytest.raises(JournalError, match="part 0 is on the ledger"):
        journal.abandon(again.id, "too late")


def test_bound_to_one_ledger_and_publisher(journal, path):
    journal.close()
    with pytest.raises(JournalError, match="belongs to ledger"):
        Journal.open(path, ledger_url="local:///elsewhere.sqlite3", publisher=PUBLISHER)
    with pytest.raises(JournalError, match="publisher"):
        Journal.open(path, ledger_url=LEDGER, publisher="FOther")
    Journal.open(path, ledger_url=LEDGER, publisher=PUBLISHER).close()  # the lock was freed


def test_a_newer_schema_is_refused(journal, path):
    journal.close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'version'", (str(SCHEMA_VERSION + 1),))
    conn.commit()
    conn.close()
    with pytest.raises(JournalError, match="newer etdb"):
        Journal.open(path, ledger_url=LEDGER, publisher=PUBLISHER)


def test_not_a_journal(tmp_path):
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"this is not SQLite at all" * 100)
    with pytest.raises(JournalError, match="damaged or not an etdb publishing journal"):
        Journal.open(garbage, ledger_url=LEDGER, publisher=PUBLISHER)
    other = tmp_path / "other.sqlite3"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE meta (key TEXT, value TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(JournalError, match="not an etdb publishing journal"):
        Journal.open(other, ledger_url=LEDGER, publisher=PUBLISHER)


def test_closed_journal(journal):
    journal.close()
    journal.close()  # twice is fine
    with pytest.raises(JournalError, match="closed"):
        journal.pending()


def test_default_path(tmp_path):
    assert default_path(tmp_path) == tmp_path / "publish" / "journal.sqlite3"
    assert DEFAULT_FILE.parts == ("publish", "journal.sqlite3")


_HOLDER = """
import sys
from pathlib import Path
from etdb.publish.journal import Journal
j = Journal.open(Path(sys.argv[1]), ledger_url=sys.argv[2], publisher=sys.argv[3])
print("ready", flush=True)
sys.stdin.read()
"""


def test_a_second_publisher_is_refused_until_the_first_dies(path):
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path), LEDGER, PUBLISHER],
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout.readline().strip() == b"ready"
        with pytest.raises(
            JournalError, match=rf"another etdb publish is running \(pid {holder.pid}\)"
        ):
            Journal.open(path, ledger_url=LEDGER, publisher=PUBLISHER)
    finally:
        holder.send_signal(signal.SIGKILL)  # dies holding the lock: the OS releases it
        holder.wait()
    with Journal.open(path, ledger_url=LEDGER, publisher=PUBLISHER) as journal:
        assert journal.pending() == []


def test_two_handles_in_one_process_are_refused_too(journal, path):
    with pytest.raises(JournalError, match="another etdb publish is running"):
        Journal.open(path, ledger_url=LEDGER, publisher=PUBLISHER)
    assert journal.pending() == []  # the refused open did not disturb the first


def test_adopt_is_one_finished_publish(journal):
    entry = journal.adopt(
        "ds1",
        txids=(TX[0], TX[1]),
        timestamp=500,
        artifact={"k": "v"},
        cid="bafy",
        content_fingerprint=None,
        record_fingerprint="r1",
    )
    assert (entry.state, entry.record_txid, entry.txids, entry.cid) == (
        "published",
        TX[0],
        (TX[0], TX[1]),
        "bafy",
    )
    assert journal.get("ds1") == entry and journal.pending() == []
    assert entry.history == (("publish", TX[0], 500),)
    with pytest.raises(JournalError, match="already in the journal"):
        journal.adopt("ds1", txids=(TX[2],), timestamp=1, artifact=None, cid=None,
                      content_fingerprint=None, record_fingerprint=None)  # fmt: skip
    with pytest.raises(JournalError, match="needs its txids"):
        journal.adopt("ds2", txids=(), timestamp=1, artifact=None, cid=None,
                      content_fingerprint=None, record_fingerprint=None)  # fmt: skip
    _publish(journal, sid="ds3")
    with pytest.raises(JournalError, match="unfinished operation"):
        journal.adopt("ds3", txids=(TX[3],), timestamp=1, artifact=None, cid=None,
                      content_fingerprint=None, record_fingerprint=None)  # fmt: skip


def test_refresh_replaces_only_the_content_fingerprint(journal):
    op = _publish(journal, cid="bafy", content_fingerprint="c1", record_fingerprint="r1")
    _send_all(journal, op, ["json:record"])
    before = journal.finish(op.id)
    after = journal.refresh("ds1", content_fingerprint="c2")
    assert after.content_fingerprint == "c2"
    assert after == before.__class__(**{**before.__dict__, "content_fingerprint": "c2"})
    with pytest.raises(JournalError, match="not in the journal"):
        journal.refresh("nope", content_fingerprint="c3")
