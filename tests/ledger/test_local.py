"""The embedded ledger: the shared contract, plus its file format, integrity checks,
export/import, multi-process concurrency and crash safety."""

from __future__ import annotations

import io
import itertools
import json
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from etdb.ledger import (
    BlockEvent,
    CorruptLedgerError,
    Cursor,
    Ledger,
    LedgerConfigError,
    LedgerUnavailable,
    PayloadTooLarge,
    UnknownBlock,
    follow,
    open_ledger,
)
from etdb.ledger.local import (
    DEFAULT_MAX_PAYLOAD,
    LedgerImportError,
    LocalLedger,
    open_local,
    parse_local_url,
)
from etdb.ledger.local_schema import build_block, compute_block_hash, compute_txid, is_hash
from tests.ledger.contract import Harness, LedgerContract

# -- test-only chain surgery (the product never rewrites a block) ----------------------------


def replace_tail(path: Path, depth: int, tag: str = "fork") -> None:
    """A real reorg in the file: drop the newest ``depth`` blocks and append ``depth + 1``
    valid blocks with other payloads on the same parent."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        (tip,) = conn.execute("SELECT max(height) FROM blocks").fetchone()
        cut = tip - depth + 1
        conn.execute("DELETE FROM entries WHERE height >= ?", (cut,))
        conn.execute("DELETE FROM blocks WHERE height >= ?", (cut,))
        row = conn.execute("SELECT hash, time FROM blocks WHERE height = ?", (cut - 1,)).fetchone()
        if row is None:
            chain_id = conn.execute("SELECT value FROM meta WHERE key='chain_id'").fetchone()[0]
            row = (chain_id, 0)
        parent, when = row
        for height in range(cut, cut + depth + 1):
            built = build_block(height, parent, when, [f"{tag} filler at {height}"])
            h = built.header
            conn.execute(
                "INSERT INTO blocks VALUES (?,?,?,?,?)",
                (h.height, h.hash, h.parent_hash, h.time, h.tx_root),
            )
            conn.executemany(
                "INSERT INTO entries (height, idx, txid, sender, payload) VALUES (?,?,?,?,?)",
                [(height, i, t, s, p) for i, (t, s, p) in enumerate(built.entries)],
            )
            parent = h.hash
        conn.execute("COMMIT")
    finally:
        conn.close()


def tamper(path: Path, sql: str, args: tuple = ()) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(sql, args)
    finally:
        conn.close()


class LocalHarness(Harness):
    # FLO's floData limit: small enough for the contract's multipart tests to cut parts.
    def __init__(self, path: Path, options: str = "max_payload=1040") -> None:
        self.path = path
        self.url = f"local://{path}?{options}"
        self.ledger = open_local(self.url)

    def reopen(self) -> LocalLedger:
        return open_local(self.url)

    def mine(self, blocks: int = 1) -> None:
        pass  # every publish makes its block

    def fork(self, depth: int) -> None:
        replace_tail(self.path, depth)

    def stop_node(self) -> None:
        # chmod would not stop root; moving the file away does.
        self.path.rename(self.path.with_suffix(".stopped"))

    def start_node(self) -> None:
        self.path.with_suffix(".stopped").rename(self.path)


class TestLocalLedgerContract(LedgerContract):
    @pytest.fixture
    def backend(self, tmp_path):
        harness = LocalHarness(tmp_path / "ledger.sqlite3")
        yield harness
        harness.ledger.close()


@pytest.fixture
def ledger(tmp_path):
    with open_local(f"local://{tmp_path}/l.sqlite3") as led:
        yield led


def _payloads(n: int, tag: str = "p") -> list[str]:
    return [f'json:{{"{tag}":{i}}}' for i in range(n)]


# -- URLs -------------------------------------------------------------------------------------


def test_url_forms(tmp_path):
    assert parse_local_url("local://", tmp_path) == (
        tmp_path / "ledger.sqlite3",
        DEFAULT_MAX_PAYLOAD,
        1,
    )
    assert parse_local_url("local:///abs/x.sqlite3", tmp_path)[0] == Path("/abs/x.sqlite3")
    assert parse_local_url("local:sub/x.sqlite3", tmp_path)[0] == tmp_path / "sub/x.sqlite3"
    assert parse_local_url("local:///a%20b.db?max_payload=1040&confirmations=6", None) == (
        Path("/a b.db"),
        1040,
        6,
    )
    led = open_ledger(f"local:///{tmp_path}/x.sqlite3?confirmations=3", tmp_path)
    assert isinstance(led, LocalLedger) and isinstance(led, Ledger) and led.confirmations == 3
    assert led.url == f"local://{tmp_path}/x.sqlite3?confirmations=3"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("local://host/x", "names a host"),
        ("local://?max_payload=0", "max_payload='0' must be an integer"),
        ("local://?max_payload=ten", "must be an integer"),
        ("local://?confirmations=0", "confirmations='0'"),
        ("local://?wallet=w", "unknown option 'wallet'"),
        ("local://#frag", "fragment"),
    ],
)
def test_bad_urls(tmp_path, url, message):
    with pytest.raises(LedgerConfigError, match=message):
        open_ledger(url, tmp_path)


# -- files --------------------------------------------------------------------------------------


def test_reading_a_missing_file_creates_nothing(tmp_path):
    path = tmp_path / "sub" / "l.sqlite3"
    led = open_local(f"local://{path}")
    assert led.tip().height == -1 and led.block_hash(0) is None
    assert list(led.blocks(0, 10)) == [] and led.verify().ok
    with pytest.raises(UnknownBlock):
        led.block(0)
    assert not path.parent.exists()
    led.publish("first")  # the first write creates folder, file and schema
    assert path.exists() and led.tip().height == 0


def test_vanished_file_is_unavailable_not_a_new_chain(tmp_path):
    path = tmp_path / "l.sqlite3"
    led = open_local(f"local://{path}")
    led.publish("x")
    path.rename(tmp_path / "moved")
    with pytest.raises(LedgerUnavailable, match="has gone"):
        led.tip()
    with pytest.raises(LedgerUnavailable):
        led.publish("y")
    assert not path.exists()  # no empty chain was started in its place
    (tmp_path / "moved").rename(path)
    assert led.tip().height == 0


def test_file_replaced_under_a_handle_needs_a_reopen(tmp_path):
    a, b = tmp_path / "a.sqlite3", tmp_path / "b.sqlite3"
    led = open_local(f"local://{a}")
    led.publish("on a")
    other = open_local(f"local://{b}")
    other.publish_many(["on b", "on b"])
    other.publish("on b again")
    other.close()
    os.replace(b, a)  # e.g. restored from a backup
    # Not silently read through a connection to the old file (nor the new file paired with
    # the old one's WAL): the handle refuses until reopened.
    with pytest.raises(LedgerUnavailable, match="replaced"):
        led.tip()
    with pytest.raises(LedgerUnavailable, match="replaced"):
        led.publish("more")


def test_a_writer_that_keeps_the_lock_makes_others_unavailable(tmp_path, monkeypatch):
    import etdb.ledger.local_file as local_file

    monkeypatch.setattr(local_file, "BUSY_TIMEOUT", 0.2)
    path = tmp_path / "l.sqlite3"
    led = open_local(f"local://{path}")
    led.publish("first")
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # a writer holding the lock
    try:
        with pytest.raises(LedgerUnavailable, match="locked by another writer"):
            led.publish("second")
        assert led.tip().height == 0  # readers are not blocked (WAL)
    finally:
        other.execute("ROLLBACK")
        other.close()
    led.publish("second")
    assert led.tip().height == 1


def test_not_a_ledger(tmp_path):
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(CorruptLedgerError):
        open_local(f"local://{junk}")
    other = tmp_path / "other.sqlite3"
    sqlite3.connect(other).execute("CREATE TABLE t(x)").connection.close()
    with pytest.raises(CorruptLedgerError, match="not an etdb ledger"):
        open_local(f"local://{other}")


# -- chain ------------------------------------------------------------------------------------


def test_hash_linked_blocks_and_txids(ledger):
    refs = [ledger.publish("same") for _ in range(3)]
    assert len({r.txid for r in refs}) == 3  # identical payloads, distinct txids
    blocks = list(ledger.blocks(0, 10))
    assert [b.height for b in blocks] == [0, 1, 2]
    for prev, block in itertools.pairwise(blocks):
        assert block.parent_hash == prev.hash
    for b in blocks:
        assert all(is_hash(x) for x in (b.hash, b.parent_hash, b.entries[0].txid))
        e = b.entries[0]
        assert e.txid == compute_txid(b.parent_hash, 0, None, "same")
    assert ledger.transaction(refs[0].txid).confirmations == 3
    assert ledger.transaction(refs[2].txid.upper()).confirmations == 1
    assert ledger.transaction("not hex") is None


def test_publish_many_is_one_block(ledger):
    refs = ledger.publish_many(_payloads(5))
    assert {r.height for r in refs} == {0}
    block = ledger.block(0)
    assert [e.payload for e in block.entries] == _payloads(5)
    assert [e.index for e in block.entries] == list(range(5))
    assert ledger.publish_many([]) == []


def test_oversized_payload_in_a_batch_writes_nothing(tmp_path):
    led = open_local(f"local://{tmp_path}/l.sqlite3?max_payload=10")
    with pytest.raises(PayloadTooLarge, match="max_payload of 10"):
        led.publish_many(["short", "é" * 6])  # 12 UTF-8 bytes
    assert led.tip().height == -1


def test_block_times_never_go_backwards(ledger, monkeypatch):
    import etdb.ledger.local as local

    ledger.publish("now")
    monkeypatch.setattr(local.time, "time", lambda: 1000.0)  # the clock jumps back
    ledger.publish("later")
    a, b = ledger.blocks(0, 1)
    assert b.time == a.time and ledger.verify().ok


def test_fee_is_zero(ledger):
    fee = ledger.estimate_fee(10_000, 10)
    assert fee.total == 0 and fee.unit == "none" and fee.transactions == 10


def test_threads_share_one_handle(ledger):
    def work(tag):
        for p in _payloads(20, tag):
            ledger.publish(p)

    threads = [threading.Thread(target=work, args=(t,)) for t in "abc"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ledger.tip().height == 59 and ledger.verify().ok


# -- verify -------------------------------------------------------------------------------------


def _chain(ledger: LocalLedger, blocks: int = 6) -> None:
    for i in range(blocks):
        ledger.publish_many(_payloads(2, f"b{i}"))


def test_verify_ok(ledger):
    _chain(ledger)
    report = ledger.verify()
    assert report.ok and report.blocks == 6 and report.entries == 12
    assert report.tip == ledger.tip()
    assert str(report).startswith("OK: 6 blocks")


def test_verify_detects_tampered_payload(ledger):
    _chain(ledger)
    tamper(ledger.path, "UPDATE entries SET payload = 'evil' WHERE height = 3 AND idx = 1")
    tamper(ledger.path, "UPDATE entries SET payload = 'evil' WHERE height = 5 AND idx = 0")
    report = ledger.verify()
    assert not report.ok and report.broken_height == 3  # the first broken link
    assert "entry 1" in report.problem and "txid" in report.problem
    assert report.blocks == 3


def test_verify_detects_tampered_block_hash(ledger):
    _chain(ledger)
    tamper(ledger.path, "UPDATE blocks SET hash = ? WHERE height = 2", ("ab" * 32,))
    report = ledger.verify()
    assert (report.ok, report.broken_height) == (False, 2)
    assert "block hash" in report.problem


def test_verify_detects_rewritten_entry_with_consistent_txid(ledger):
    # Recomputing the txid is not enough: the tx_root (then the block hash) still differ.
    _chain(ledger)
    parent = ledger.block(4).parent_hash
    tamper(
        ledger.path,
        "UPDATE entries SET payload = 'evil', txid = ? WHERE height = 4 AND idx = 0",
        (compute_txid(parent, 0, None, "evil"),),
    )
    report = ledger.verify()
    assert report.broken_height == 4 and "tx_root" in report.problem


def test_verify_detects_deleted_block(ledger):
    _chain(ledger)
    tamper(ledger.path, "DELETE FROM blocks WHERE height = 2")
    report = ledger.verify()
    assert report.broken_height == 2 and "missing" in report.problem


def test_verify_detects_entries_beyond_the_tip(ledger):
    _chain(ledger)
    tamper(ledger.path, "DELETE FROM blocks WHERE height = 5")
    report = ledger.verify()
    assert report.broken_height == 5 and "has no block" in report.problem


def test_verify_detects_a_forged_block_on_a_wrong_parent(ledger):
    _chain(ledger, 3)
    built = build_block(3, "cd" * 32, 0, ["forged"])
    h = built.header
    tamper(
        ledger.path,
        "INSERT INTO blocks VALUES (?,?,?,?,?)",
        (3, h.hash, h.parent_hash, 0, h.tx_root),
    )
    report = ledger.verify()
    assert report.broken_height == 3 and "parent hash" in report.problem
    assert h.hash == compute_block_hash(3, "cd" * 32, 0, h.tx_root)


def test_verify_after_a_test_reorg(ledger):
    _chain(ledger)
    replace_tail(ledger.path, 2)
    assert ledger.verify().ok and ledger.tip().height == 6


# -- export / import ----------------------------------------------------------------------------


def _export(ledger: LocalLedger) -> str:
    out = io.StringIO()
    ledger.export(out)
    return out.getvalue()


def test_export_import_round_trip(ledger, tmp_path):
    _chain(ledger)
    ledger.publish("ünïcödé\nand a newline")
    text = _export(ledger)
    header = json.loads(text.splitlines()[0])
    assert header["format"] == "etdb-local-ledger" and header["height"] == 6
    target = open_local(f"local://{tmp_path}/copy.sqlite3")
    report = target.import_(io.StringIO(text))
    assert (report.blocks, report.entries, report.matched) == (7, 13, 0)
    assert target.tip() == ledger.tip()
    assert list(target.blocks(0, 100)) == list(ledger.blocks(0, 100))
    assert target.verify().ok
    # Importing again matches everything and adds nothing.
    again = target.import_(io.StringIO(text))
    assert (again.matched, again.blocks) == (7, 0)


def test_import_onto_a_prefix_appends_the_rest(ledger, tmp_path):
    _chain(ledger, 3)
    early = _export(ledger)
    _chain(ledger, 3)
    target = open_local(f"local://{tmp_path}/copy.sqlite3")
    target.import_(io.StringIO(early))
    report = target.import_(io.StringIO(_export(ledger)))
    assert (report.matched, report.blocks) == (3, 3)
    assert target.tip() == ledger.tip()
    target.publish("local work continues on the same chain")
    assert target.verify().ok


def _assert_import_fails(target: LocalLedger, text: str, match: str) -> None:
    before = _export(target) if target.tip().height >= 0 else None
    with pytest.raises(LedgerImportError, match=match):
        target.import_(io.StringIO(text))
    after = _export(target) if target.tip().height >= 0 else None
    assert before == after  # nothing written


def test_import_of_a_tampered_export_fails_and_writes_nothing(ledger, tmp_path):
    _chain(ledger, 2)
    early = _export(ledger)
    _chain(ledger, 4)
    lines = _export(ledger).splitlines()
    block = json.loads(lines[4])  # height 3
    block["entries"][0]["payload"] = "evil"
    lines[4] = json.dumps(block)
    tampered = "\n".join(lines)
    empty = open_local(f"local://{tmp_path}/copy.sqlite3")
    _assert_import_fails(empty, tampered, r"damaged at height 3 \(line 5\)")
    assert empty.tip().height == -1
    prefix = open_local(f"local://{tmp_path}/prefix.sqlite3")
    prefix.import_(io.StringIO(early))
    _assert_import_fails(prefix, tampered, "damaged at height 3")
    assert prefix.tip().height == 1


def test_import_refuses_a_divergent_chain(ledger, tmp_path):
    _chain(ledger, 3)
    other = open_local(f"local://{tmp_path}/other.sqlite3")
    _chain(other, 3)
    _assert_import_fails(other, _export(ledger), "different chains")
    # Same chain id, different blocks from height 2 on: refused at that height.
    copy = open_local(f"local://{tmp_path}/copy.sqlite3")
    copy.import_(io.StringIO(_export(ledger)))
    replace_tail(copy.path, 1)
    _assert_import_fails(copy, _export(ledger), "at height 2 this ledger has block")


def test_import_refuses_a_truncated_export(ledger, tmp_path):
    _chain(ledger)
    text = "\n".join(_export(ledger).splitlines()[:-2])
    target = open_local(f"local://{tmp_path}/copy.sqlite3")
    _assert_import_fails(target, text, "incomplete")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "empty"),
        ("not json\n", "not JSON"),
        ('{"format": "other"}\n', "not an etdb ledger export"),
        ('{"format": "etdb-local-ledger", "version": 9}\n', "version 9"),
    ],
)
def test_import_rejects_garbage(tmp_path, text, match):
    target = open_local(f"local://{tmp_path}/copy.sqlite3")
    with pytest.raises(LedgerImportError, match=match):
        target.import_(io.StringIO(text))


def test_export_of_nothing(tmp_path):
    from etdb.ledger import LedgerError

    with pytest.raises(LedgerError, match="nothing to export"):
        open_local(f"local://{tmp_path}/none.sqlite3").export(io.StringIO())


# -- several processes ----------------------------------------------------------------------


def _writer(url: str, n: int) -> None:
    led = open_local(url)
    for i in range(n):
        if i % 10 == 9:
            led.publish_many([f"w{i}", f"w{i}b"])
        else:
            led.publish(f"w{i}")


def _reader(url: str, n: int, queue) -> None:
    """Follow until every payload arrived; report what was seen, in order."""
    led = open_local(url)
    cursor, seen, problems = Cursor(), [], []
    want = n + n // 10
    while len(seen) < want:
        for event in follow(led, cursor):
            if not isinstance(event, BlockEvent):
                problems.append(f"unexpected {event}")
                continue
            block = event.block
            if block.height > 0 and block.parent_hash != cursor.block_hash:
                problems.append(f"broken link at {block.height}")
            if not block.entries:
                problems.append(f"empty block {block.height}")
            seen.extend(e.payload for e in block.entries)
            cursor = event.cursor
    report = led.verify()
    queue.put((seen, problems, report.ok))


def _expected(n: int) -> list[str]:
    out = []
    for i in range(n):
        out += [f"w{i}", f"w{i}b"] if i % 10 == 9 else [f"w{i}"]
    return out


def test_readers_in_other_processes_see_a_whole_chain(tmp_path):
    url = f"local://{tmp_path}/shared.sqlite3"
    open_local(url).publish_many([])  # nothing: the file appears with the first block
    n = 300
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    readers = [ctx.Process(target=_reader, args=(url, n, queue)) for _ in range(2)]
    for r in readers:
        r.start()
    writer = ctx.Process(target=_writer, args=(url, n))
    writer.start()
    writer.join(60)
    results = [queue.get(timeout=60) for _ in readers]
    for r in readers:
        r.join(10)
    assert writer.exitcode == 0
    for seen, problems, ok in results:
        assert problems == [] and ok
        assert seen == _expected(n)


def test_two_writers_interleave_into_one_valid_chain(tmp_path):
    url = f"local://{tmp_path}/shared.sqlite3"
    handles = [open_local(url), open_local(url)]  # two connections, as two processes

    def work(led, tag):
        for i in range(40):
            led.publish(f"{tag}{i}")

    threads = [
        threading.Thread(target=work, args=(h, t)) for h, t in zip(handles, "ab", strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    led = handles[0]
    assert led.tip().height == 79 and led.verify().ok
    payloads = [e.payload for b in led.blocks(0, 100) for e in b.entries]
    assert [p for p in payloads if p[0] == "a"] == [f"a{i}" for i in range(40)]


_CRASH_SCRIPT = """
import sys
from etdb.ledger.local import open_local
led = open_local(sys.argv[1])
i = 0
while True:
    if i % 7 == 6:
        refs = led.publish_many([f"c{i}-{k}" + "x" * 900 for k in range(50)])
    else:
        refs = [led.publish(f"c{i}" + "x" * 900)]
    for r in refs:
        sys.stdout.write(r.txid + "\\n")
    sys.stdout.flush()
    i += 1
"""


def test_sigkill_mid_publish_loses_no_acknowledged_txid(tmp_path):
    url = f"local://{tmp_path}/crash.sqlite3"
    proc = subprocess.Popen(
        [sys.executable, "-c", _CRASH_SCRIPT, url], stdout=subprocess.PIPE, text=True
    )
    acked = []
    try:
        while len(acked) < 400:
            line = proc.stdout.readline()
            assert line, "the publisher died early"
            acked.append(line.strip())
    finally:
        proc.send_signal(signal.SIGKILL)
        rest, _ = proc.communicate(timeout=30)
    acked += [t for t in rest.splitlines() if len(t) == 64]  # printed before the kill
    led = open_local(url)
    assert led.verify().ok
    for txid in acked:
        assert led.transaction(txid) is not None, txid
    led.publish("life goes on")
    assert led.verify().ok
