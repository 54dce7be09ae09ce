"""The per-response budget of gateway streams: its limits hold exactly, no earlier, no later.

Blocks are real (hashed, in a real in-memory blockstore); the limits come from the module's
constants, so a change of a constant moves the test with it.
"""

from __future__ import annotations

import pytest

from etdb.content.cid import CID, RAW
from etdb.content.memstore import MemoryBlockstore
from etdb.web.gateway_budget import (
    DUP_RATIO,
    DUP_SPARE_BLOCKS,
    MAX_IDLE_BYTES,
    MAX_IDLE_READS,
    BudgetSpent,
    ResponseBudget,
    StreamStopped,
    limit_duplicates,
)
from etdb.web.gateway_stream import batched


def _block(i: int, size: int = 16) -> tuple[CID, bytes]:
    data = i.to_bytes(8, "big") + bytes(size - 8)
    return CID.hash(data, codec=RAW), data


def test_idle_reads_are_bounded_and_output_resets_them() -> None:
    store = MemoryBlockstore()
    cid, block = _block(1)
    store.put(cid, block)
    budget = ResponseBudget()
    guarded = budget.guard(store)
    for _ in range(MAX_IDLE_READS):
        assert guarded.get(cid) == block
    assert list(budget.metered([b"", b"x"])) == [b"x"]  # a byte of body: the counters restart
    for _ in range(MAX_IDLE_READS):
        guarded.get(cid)
    with pytest.raises(BudgetSpent, match="without sending a byte"):
        guarded.get(cid)


def test_idle_bytes_are_bounded() -> None:
    store = MemoryBlockstore()
    cid, block = _block(2, size=4 << 20)
    store.put(cid, block)
    guarded = ResponseBudget().guard(store)
    for _ in range(MAX_IDLE_BYTES // len(block)):
        guarded.get(cid)
    with pytest.raises(BudgetSpent):
        guarded.get(cid)


def test_stop_ends_reads_and_pieces() -> None:
    store = MemoryBlockstore()
    cid, block = _block(3)
    store.put(cid, block)
    budget = ResponseBudget()
    pieces = budget.metered(iter([b"a", b"b"]))
    assert next(pieces) == b"a"
    budget.stop()
    with pytest.raises(StreamStopped):
        budget.guard(store).get(cid)
    with pytest.raises(StreamStopped):
        next(pieces)


@pytest.mark.parametrize("distinct", [1, 41, 3000])
def test_duplicates_up_to_the_ratio_then_ended(distinct: int) -> None:
    blocks = [_block(i) for i in range(distinct)]
    allowed = DUP_RATIO * distinct + DUP_SPARE_BLOCKS

    def walk(repeats: int):
        yield from blocks
        for i in range(repeats):
            yield blocks[i % distinct]

    assert len(list(limit_duplicates(walk(allowed)))) == distinct + allowed
    sent = []
    with pytest.raises(BudgetSpent, match="dups=y"):
        for item in limit_duplicates(walk(allowed + 1)):
            sent.append(item)
    assert len(sent) == distinct + allowed


def test_batched_sends_what_it_has_before_an_error() -> None:
    def pieces():
        yield b"good "
        yield b"bytes"
        raise BudgetSpent("spent")

    chunks = batched(pieces())
    assert next(chunks) == b"good bytes"
    with pytest.raises(BudgetSpent):
        next(chunks)
