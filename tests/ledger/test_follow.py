"""``follow`` and ``Cursor`` semantics, exercised on the embedded ledger (real reorgs in the
file, see ``test_local.replace_tail``)."""

from __future__ import annotations

import importlib
import json

import pytest

from etdb.ledger import BlockEvent, Cursor, DeepReorgError, Rollback, follow
from etdb.ledger.local import LocalLedger, open_local
from tests.ledger.test_local import replace_tail

# The package re-exports the function `follow`, which hides the submodule's name.
follow_module = importlib.import_module("etdb.ledger.follow")


def _ledger(tmp_path, blocks: int = 0, options: str = "") -> LocalLedger:
    led = open_local(f"local://{tmp_path}/follow.sqlite3{options}")
    for i in range(blocks):
        led.publish(f"p{i}")
    return led


def _heights(events) -> list[int]:
    return [e.block.height for e in events if isinstance(e, BlockEvent)]


def _drain(led, cursor=None, **kw) -> tuple[list, Cursor]:
    events = list(follow(led, cursor, **kw))
    last = cursor or Cursor()
    for e in events:
        last = e.cursor
    return events, last


def test_empty_ledger_yields_nothing(tmp_path):
    assert list(follow(_ledger(tmp_path))) == []


def test_everything_in_order_then_nothing_new(tmp_path):
    led = _ledger(tmp_path, 5)
    events, cursor = _drain(led)
    assert _heights(events) == [0, 1, 2, 3, 4]
    assert cursor.height == 4 and cursor.block_hash == led.tip().hash
    assert list(follow(led, cursor)) == []
    led.publish("new")
    assert _heights(follow(led, cursor)) == [5]


def test_limit_caps_blocks_per_call(tmp_path):
    led = _ledger(tmp_path, 7)
    first, cursor = _drain(led, limit=3)
    assert _heights(first) == [0, 1, 2]
    second, cursor = _drain(led, cursor, limit=3)
    assert _heights(second) == [3, 4, 5]
    rest, _ = _drain(led, cursor, limit=3)
    assert _heights(rest) == [6]


def test_limit_across_internal_batches(tmp_path, monkeypatch):
    monkeypatch.setattr(follow_module, "BATCH", 2)
    led = _ledger(tmp_path, 9)
    events, _ = _drain(led, limit=5)
    assert _heights(events) == [0, 1, 2, 3, 4]
    events, _ = _drain(led)
    assert _heights(events) == list(range(9))


def test_confirmations_hide_the_newest_blocks(tmp_path):
    led = _ledger(tmp_path, 5)
    events, cursor = _drain(led, confirmations=3)
    assert _heights(events) == [0, 1, 2]  # heights 3 and 4 have 2 and 1 confirmations
    led.publish("x")
    assert _heights(follow(led, cursor, confirmations=3)) == [3]


def test_confirmations_default_to_the_ledgers(tmp_path):
    led = _ledger(tmp_path, 4, "?confirmations=2")
    assert _heights(follow(led)) == [0, 1, 2]
    assert _heights(follow(led, confirmations=1)) == [0, 1, 2, 3]


def test_confirmations_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="at least 1"):
        list(follow(_ledger(tmp_path, 1), confirmations=0))


def test_rollback_on_reorg_then_the_new_branch(tmp_path):
    led = _ledger(tmp_path, 6)
    _, cursor = _drain(led)
    replace_tail(led.path, 2)  # heights 4, 5 replaced by 4, 5, 6
    events = list(follow(led, cursor))
    assert isinstance(events[0], Rollback)
    assert events[0].from_height == 4 and events[0].cursor.height == 3
    assert _heights(events[1:]) == [4, 5, 6]
    assert all("fork filler" in e.block.entries[0].payload for e in events[1:])
    assert events[-1].cursor.block_hash == led.tip().hash


def test_reorg_of_the_whole_chain_starts_over(tmp_path):
    led = _ledger(tmp_path, 3)
    _, cursor = _drain(led)
    replace_tail(led.path, 3)  # even block 0 is replaced
    events = list(follow(led, cursor))
    assert isinstance(events[0], Rollback) and events[0].from_height == 0
    assert events[0].cursor == Cursor()
    assert _heights(events[1:]) == [0, 1, 2, 3]


def test_reorg_between_two_batches_of_one_call(tmp_path, monkeypatch):
    # The chain changes while follow() is between two reads: the parent-hash check catches it.
    monkeypatch.setattr(follow_module, "BATCH", 2)
    led = _ledger(tmp_path, 6)
    gen = follow(led)
    first = [next(gen), next(gen)]
    assert _heights(first) == [0, 1]
    replace_tail(led.path, 5)  # heights 1..5 replaced by 1..6
    rest = list(gen)
    assert isinstance(rest[0], Rollback) and rest[0].from_height == 1
    again, _ = _drain(led, rest[0].cursor)
    assert _heights(again) == [1, 2, 3, 4, 5, 6]


def test_deep_reorg_beyond_history(tmp_path):
    led = _ledger(tmp_path, 10)
    _, cursor = _drain(led, Cursor(history=3))
    assert [h for h, _ in cursor.recent] == [7, 8, 9]
    replace_tail(led.path, 5)  # forks at height 5, below the oldest remembered (7)
    with pytest.raises(DeepReorgError) as caught:
        list(follow(led, cursor))
    assert caught.value.oldest == 7
    assert "rebuild" in str(caught.value)


def test_shallow_reorg_within_history_is_fine(tmp_path):
    led = _ledger(tmp_path, 10)
    _, cursor = _drain(led, Cursor(history=3))
    replace_tail(led.path, 2)  # forks at 8: block 7 is remembered and still there
    events = list(follow(led, cursor))
    assert isinstance(events[0], Rollback) and events[0].from_height == 8


def test_cursor_json_round_trip(tmp_path):
    led = _ledger(tmp_path, 4)
    _, cursor = _drain(led, Cursor(history=2))
    doc = json.loads(json.dumps(cursor.to_json()))
    restored = Cursor.from_json(doc)
    assert restored == cursor
    assert restored.recent == ((2, led.block_hash(2)), (3, led.block_hash(3)))
    assert Cursor.from_json({"height": -1, "block_hash": ""}) == Cursor()


def test_cursor_rewind():
    c = Cursor()
    for h in range(5):
        c = c.advance(_FakeBlock(h, f"h{h}"))
    assert c.rewind(2) == Cursor(2, "h2", ((0, "h0"), (1, "h1"), (2, "h2")))
    assert c.rewind(-1) == Cursor()


class _FakeBlock:
    def __init__(self, height: int, hash_: str) -> None:
        self.height, self.hash = height, hash_


def test_unknown_scheme_error_never_shows_the_password():
    import pytest

    from etdb.ledger import LedgerConfigError, open_ledger

    with pytest.raises(LedgerConfigError) as info:
        open_ledger("doge+http://user:s3cret@127.0.0.1:1/")
    assert "s3cret" not in str(info.value) and "doge+http" in str(info.value)
