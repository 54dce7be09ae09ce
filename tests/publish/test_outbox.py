"""Exactly-once sending (``etdb.publish.outbox``): every crash point in-process, then the real
thing: a publisher SIGKILLed at 25+ points (``outbox_crasher.py``), re-run until done, and the
ledger alone checked for duplicates, incomplete multiparts and losses."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from etdb.ledger.base import TxRef
from etdb.ledger.local import LocalLedger
from etdb.ledger.messages import plan
from etdb.publish.journal import Journal, JournalError
from etdb.publish.outbox import recover, send
from etdb.record.multipart import MultipartAssembler, parse_part
from etdb.record.signing import PrivateKey
from tests.conftest import REPO_ROOT
from tests.publish.outbox_crasher import KEY, MAX_PAYLOAD, message, sid

OTHER_KEY = PrivateKey(bytes(range(2, 34)))


@pytest.fixture
def ledger(tmp_path):
    with LocalLedger(tmp_path / "ledger.sqlite3", max_payload=MAX_PAYLOAD) as opened:
        yield opened


@pytest.fixture
def journal(tmp_path, ledger):
    with Journal.open(
        tmp_path / "journal.sqlite3", ledger_url=ledger.url, publisher=KEY.address
    ) as opened:
        yield opened


def _begin(journal, ledger, i=0, kind="publish", **extra):
    return journal.begin(
        sid(i),
        kind,
        message(i) if kind == "publish" else f"json:{kind} {i}",
        timestamp=1_700_000_000 + i,
        since_height=ledger.tip().height + 1,
        **extra,
    )


def _payloads(ledger) -> list[str]:
    return [e.payload for b in ledger.blocks(0, ledger.tip().height) for e in b.entries]


def test_send_a_multipart_and_finish(journal, ledger):
    op = _begin(journal, ledger, cid="bafy1", artifact={"a": 1})
    seen: list[tuple[int, TxRef]] = []
    entry = send(journal, op, ledger, KEY, on_sent=lambda i, ref: seen.append((i, ref)))
    texts = plan(ledger, message(0), KEY, entry.record_txid)
    assert 3 <= len(texts) <= 4
    assert _payloads(ledger) == texts
    assert entry.txids == tuple(ref.txid for _, ref in seen)
    assert [i for i, _ in seen] == list(range(len(texts)))
    assert (entry.state, entry.cid, entry.artifact) == ("published", "bafy1", {"a": 1})
    assert journal.pending() == []


def test_a_small_message_is_one_transaction(journal, ledger):
    op = journal.begin(sid(1), "publish", "json:small", timestamp=5, since_height=0)
    entry = send(journal, op, ledger, KEY)
    assert _payloads(ledger) == ["json:small"] and len(entry.txids) == 1


def test_crash_after_will_send_before_the_ledger_saw_it_sends_it_once(journal, ledger):
    op = _begin(journal, ledger)
    part0 = plan(ledger, message(0), KEY)[0]
    journal.will_send(op.id, 0, part0)  # ...and the process died here
    entry = send(journal, op, ledger, KEY)
    assert _payloads(ledger).count(part0) == 1
    assert len(_payloads(ledger)) == len(entry.txids)


def test_crash_after_the_ledger_took_it_before_sent_is_not_resent(journal, ledger):
    op = _begin(journal, ledger)
    part0 = plan(ledger, message(0), KEY)[0]
    journal.will_send(op.id, 0, part0)
    ref0 = ledger.publish(part0)  # accepted; the process died before journal.sent()
    seen: list[int] = []
    entry = send(journal, op, ledger, KEY, on_sent=lambda i, _ref: seen.append(i))
    assert entry.record_txid == ref0.txid
    assert _payloads(ledger).count(part0) == 1
    assert seen == list(range(len(entry.txids)))  # the found part is reported too


def test_crash_between_parts_and_before_finish(journal, ledger):
    op = _begin(journal, ledger)
    texts = plan(ledger, message(0), KEY)
    journal.will_send(op.id, 0, texts[0])
    ref0 = ledger.publish(texts[0])
    journal.sent(op.id, 0, ref0.txid)
    texts = plan(ledger, message(0), KEY, ref0.txid)
    journal.will_send(op.id, 1, texts[1])
    journal.sent(op.id, 1, ledger.publish(texts[1]).txid)  # died between parts 1 and 2
    entry = recover(journal, ledger, KEY)[0]
    assert _payloads(ledger) == texts
    # Every part sent, the process died before finish(): nothing is sent, the op finishes.
    op2 = _begin(journal, ledger, 1)
    texts2 = plan(ledger, message(1), KEY)
    refs = []
    for i in range(len(texts2)):
        texts2 = plan(ledger, message(1), KEY, refs[0].txid if refs else None)
        journal.will_send(op2.id, i, texts2[i])
        refs.append(ledger.publish(texts2[i]))
        journal.sent(op2.id, i, refs[-1].txid)
    before = ledger.tip()
    (entry2,) = recover(journal, ledger, KEY)
    assert ledger.tip() == before
    assert entry2.txids == tuple(r.txid for r in refs) and entry.sid == sid(0)


def test_a_finished_operation_sends_nothing_again(journal, ledger):
    op = _begin(journal, ledger)
    first = send(journal, op, ledger, KEY)
    tip = ledger.tip()
    assert send(journal, op, ledger, KEY) == first
    assert ledger.tip() == tip


def test_an_abandoned_operation_is_not_sent(journal, ledger):
    op = _begin(journal, ledger)
    journal.abandon(op.id, "changed my mind")
    with pytest.raises(JournalError, match="abandoned"):
        send(journal, op, ledger, KEY)
    assert ledger.tip().height == -1


def test_a_replanned_text_that_differs_is_refused_before_sending(journal, ledger):
    op = _begin(journal, ledger)
    journal.will_send(op.id, 0, "oip-mp(0,3,something else):x")  # not what the plan makes
    with pytest.raises(JournalError, match="differs"):
        send(journal, op, ledger, KEY)
    assert ledger.tip().height == -1


def test_wrong_ledger_or_key_is_refused(journal, ledger, tmp_path):
    op = _begin(journal, ledger)
    other = LocalLedger(tmp_path / "other.sqlite3", max_payload=MAX_PAYLOAD)
    with pytest.raises(JournalError, match="is for ledger"):
        send(journal, op, other, KEY)
    other.close()
    with pytest.raises(JournalError, match="is for publisher"):
        send(journal, op, ledger, OTHER_KEY)
    assert ledger.tip().height == -1


def test_edit_and_deactivate_go_through_send(journal, ledger):
    published = send(journal, _begin(journal, ledger, artifact={"v": 1}, cid="c1"), ledger, KEY)
    edit = journal.begin(
        sid(0), "edit", "json:edit", timestamp=10, since_height=0, artifact={"v": 2}
    )
    edited = send(journal, edit, ledger, KEY)
    assert (edited.artifact, edited.cid, edited.txids) == ({"v": 2}, "c1", published.txids)
    gone = send(
        journal,
        journal.begin(sid(0), "deactivate", "json:off", timestamp=11, since_height=0),
        ledger,
        KEY,
    )
    assert gone.state == "deactivated"
    assert [k for k, _, _ in gone.history] == ["publish", "edit", "deactivate"]
    assert _payloads(ledger)[-2:] == ["json:edit", "json:off"]


# -- the real crash test --------------------------------------------------------------------------

COUNT = 40
HOOK_POINTS = [
    f"{hook}:{k}"
    for hook in (
        "after_will_send",
        "after_publish",
        "after_sent",
        "before_finish",
        "after_begin",
        "before_begin",
    )
    for k in (1, 2, 3, 5)
]
_ENV = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONHASHSEED": "0"}


def _run(workdir: Path, crash_at: str = "", kill_after: float | None = None) -> int:
    cmd = [sys.executable, "-m", "tests.publish.outbox_crasher", str(workdir), str(COUNT)]
    proc = subprocess.Popen(
        cmd, cwd=REPO_ROOT, env={**_ENV, "ETDB_CRASH_AT": crash_at}, stderr=subprocess.PIPE
    )
    if kill_after is not None:
        try:
            proc.wait(kill_after)
        except subprocess.TimeoutExpired:
            proc.kill()  # SIGKILL at whatever instant it has reached
    _, err = proc.communicate(timeout=120)
    if proc.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"publisher failed ({proc.returncode}): {err.decode()[-2000:]}")
    return proc.returncode


def test_killed_at_any_point_publishes_each_message_exactly_once(tmp_path):
    rng = random.Random(4)
    killed = 0
    for point in HOOK_POINTS:
        code = _run(tmp_path, point)
        assert code == -signal.SIGKILL, f"the publisher never reached {point}"
        killed += 1
    for _ in range(6):  # kills at random instants (may land anywhere, or after the end)
        killed += _run(tmp_path, kill_after=rng.uniform(0.3, 0.9)) == -signal.SIGKILL
    assert killed >= 24
    for _ in range(3):
        if _run(tmp_path) == 0:
            break
    else:
        raise AssertionError("the publisher never finished")

    # From the ledger alone: each message's part 0 exactly once, every multipart complete.
    with LocalLedger(tmp_path / "ledger.sqlite3", max_payload=MAX_PAYLOAD) as ledger:
        entries = [e for b in ledger.blocks(0, ledger.tip().height) for e in b.entries]
        part0s = {plan(ledger, message(i), KEY)[0]: i for i in range(COUNT)}
        counts = {i: 0 for i in range(COUNT)}
        assembler, completed = MultipartAssembler(), {}
        for e in entries:
            if e.payload in part0s:
                counts[part0s[e.payload]] += 1
            done = assembler.add(parse_part(e.payload), e.txid)
            if done is not None:
                completed[done.txid] = done.data
        assert counts == {i: 1 for i in range(COUNT)}, "a message went out twice or never"
        assert assembler.pending() == {}, "an incomplete multipart is on the ledger"
        assert sorted(completed.values()) == sorted(message(i) for i in range(COUNT))
        assert len(entries) == sum(len(plan(ledger, message(i), KEY)) for i in range(COUNT))
        # The journal agrees with the ledger.
        with Journal.open(
            tmp_path / "journal.sqlite3", ledger_url=ledger.url, publisher=KEY.address
        ) as journal:
            assert journal.pending() == []
            by_txid = {e.txid: e.payload for e in entries}
            journaled = list(journal.entries())
            assert [j.sid for j in journaled] == [sid(i) for i in range(COUNT)]
            for i, j in enumerate(journaled):
                assert j.state == "published" and completed[j.record_txid] == message(i)
                texts = plan(ledger, message(i), KEY, j.record_txid)
                assert [by_txid[t] for t in j.txids] == texts
