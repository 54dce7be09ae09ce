"""``find_payload``: is this exact text already on the ledger? On the embedded ledger (an
indexed lookup, migrated into older files), through the generic block scan, and the
``before_send`` hook of ``publish_message``. The Bitcoin-family and EVM lookups (mempool,
pending block) are tested against real nodes in ``test_litecoind.py`` and ``test_evm.py``."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from etdb.ledger.base import Block, Tip, TxRef
from etdb.ledger.local import LocalLedger
from etdb.ledger.local_schema import PAYLOAD_PREFIX_CHARS
from etdb.ledger.messages import find_payload, plan, publish_message
from etdb.record.multipart import parse_part
from etdb.record.signing import PrivateKey

KEY = PrivateKey(bytes(range(1, 33)))


class ScanOnly:
    """A real ledger seen only through the Ledger protocol (no ``find_payload`` of its own),
    as a third-party backend would be: exercises the generic block scan."""

    def __init__(self, ledger: LocalLedger) -> None:
        self._ledger = ledger
        self.url, self.max_payload, self.confirmations = ledger.url, ledger.max_payload, 1

    def tip(self) -> Tip:
        return self._ledger.tip()

    def blocks(self, start: int, stop: int) -> Iterator[Block]:
        return self._ledger.blocks(start, stop)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[LocalLedger]:
    with LocalLedger(tmp_path / "ledger.sqlite3", max_payload=1040) as opened:
        yield opened


def _plan_uses_prefix_index(path: Path, payload: str) -> bool:
    from etdb.ledger.local import _FIND_SQL

    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(f"EXPLAIN QUERY PLAN {_FIND_SQL}", (payload[:10], payload, 0))
        return any("entries_payload_prefix" in str(r) for r in rows)
    finally:
        conn.close()


@pytest.mark.parametrize("scan", [False, True], ids=["indexed", "block-scan"])
def test_found_with_its_height_only_at_or_above_since_height(ledger, scan):
    refs = ledger.publish_many(["text:a", "text:b"])
    later = ledger.publish("text:c")
    ledger.publish("text:a")  # the same text again, later
    searched = ScanOnly(ledger) if scan else ledger
    assert find_payload(searched, "text:b", since_height=0) == TxRef(refs[1].txid, 0)
    assert find_payload(searched, "text:c", since_height=later.height) == later
    assert find_payload(searched, "text:c", since_height=later.height + 1) is None
    # Several carry it: the oldest at or above since_height wins.
    assert find_payload(searched, "text:a", since_height=0) == refs[0]
    assert find_payload(searched, "text:a", since_height=1).height == 2
    assert find_payload(searched, "text:nowhere", since_height=0) is None
    assert find_payload(searched, "text:", since_height=0) is None  # a prefix is not a match


def test_long_payloads_sharing_the_indexed_prefix_are_told_apart(ledger):
    common = "json:" + "x" * PAYLOAD_PREFIX_CHARS
    first, second = ledger.publish_many([common + "first", common + "second"])
    assert find_payload(ledger, common + "second", since_height=0) == second
    assert find_payload(ledger, common + "first", since_height=0) == first
    assert find_payload(ledger, common, since_height=0) is None


def test_multipart_parts_are_found_part_by_part(ledger):
    payload = "json:" + "".join(f"{i:04}" for i in range(700))
    refs = publish_message(ledger, payload, KEY)
    texts = plan(ledger, payload, KEY, refs[0].txid)
    assert len(texts) == len(refs) >= 3
    for text, ref in zip(texts, refs, strict=True):
        assert find_payload(ledger, text, since_height=0) == ref
    # Part 1 planned with another part 0 txid is another text: not on the ledger.
    other = plan(ledger, payload, KEY, "ab" * 32)[1]
    assert find_payload(ledger, other, since_height=0) is None


def test_empty_or_missing_ledger_finds_nothing(tmp_path):
    missing = LocalLedger(tmp_path / "none.sqlite3")
    assert find_payload(missing, "text:a", since_height=0) is None
    assert not (tmp_path / "none.sqlite3").exists()  # searching creates nothing


def test_the_lookup_uses_the_prefix_index(ledger):
    ledger.publish("text:a")
    assert find_payload(ledger, "text:a", since_height=0) is not None
    assert _plan_uses_prefix_index(ledger.path, "text:a")


def test_a_ledger_file_from_before_the_index_gets_it_on_first_lookup(tmp_path):
    path = tmp_path / "old.sqlite3"
    with LocalLedger(path) as old:
        refs = old.publish_many(["text:a", "text:b"])
    conn = sqlite3.connect(path)  # make it look like a file written before the index existed
    conn.execute("DROP INDEX entries_payload_prefix")
    conn.commit()
    conn.close()
    assert not _plan_uses_prefix_index(path, "text:b")
    with LocalLedger(path) as reopened:
        assert reopened.verify().ok
        assert find_payload(reopened, "text:b", since_height=0) == refs[1]
        assert _plan_uses_prefix_index(path, "text:b")
        assert reopened.verify().ok  # an index changes no hash
        assert reopened.publish("text:c").height == 1


def test_sender_narrows_only_where_the_ledger_knows_senders(ledger):
    ref = ledger.publish("text:a")
    # The embedded ledger records no sender: a sender given does not hide the entry.
    assert find_payload(ledger, "text:a", since_height=0, sender="Fsomeone") == ref
    assert find_payload(ScanOnly(ledger), "text:a", since_height=0, sender="Fsomeone") == ref


def test_before_send_sees_each_exact_text_before_the_ledger_does(ledger):
    payload = "json:" + "y" * 2000
    seen: list[tuple[int, str, bool]] = []

    def before_send(index: int, text: str) -> None:
        seen.append((index, text, find_payload(ledger, text, since_height=0) is not None))

    refs = publish_message(ledger, payload, KEY, before_send=before_send)
    texts = plan(ledger, payload, KEY, refs[0].txid)
    assert seen == [(i, t, False) for i, t in enumerate(texts)]
    assert parse_part(seen[1][1]).reference == refs[0].txid


def test_before_send_failing_sends_nothing(ledger):
    def refuse(index: int, text: str) -> None:
        raise RuntimeError("journal full")

    with pytest.raises(RuntimeError, match="journal full"):
        publish_message(ledger, "text:small", KEY, before_send=refuse)
    assert ledger.tip().height == -1


def test_resuming_with_sent_parts_calls_before_send_for_the_rest_only(ledger):
    payload = "json:" + "z" * 2000
    first = publish_message(ledger, payload, KEY)
    fresh = LocalLedger(ledger.path.with_name("other.sqlite3"), max_payload=1040)
    part0 = fresh.publish(plan(fresh, payload, KEY)[0])
    indexes: list[int] = []
    refs = publish_message(
        fresh, payload, KEY, sent=[part0], before_send=lambda i, _t: indexes.append(i)
    )
    assert indexes == list(range(1, len(first)))
    assert refs[0] == part0 and len(refs) == len(first)
