"""The contract every ledger backend passes: one suite, run against each backend.

A backend's test module subclasses :class:`LedgerContract` and provides a ``backend`` fixture
returning a :class:`Harness` for a fresh, empty ledger (a new SQLite file, a new regtest node,
a new EVM node...). What a backend cannot do (bad credentials on a file, stopping a file) it
declares by returning ``None`` / raising ``NotImplementedError`` in the harness; those tests
then skip with that reason, which is about the backend, not a missing external component.
"""

from __future__ import annotations

import abc

import pytest

from etdb.ledger import (
    BlockEvent,
    Cursor,
    Ledger,
    LedgerAuthError,
    LedgerUnavailable,
    PayloadTooLarge,
    Rollback,
    follow,
)
from etdb.ledger.messages import publish_message
from etdb.record.multipart import MultipartAssembler, parse_part
from etdb.record.signing import PrivateKey


def _key() -> PrivateKey:
    # A fixed key so runs are reproducible; it guards nothing.
    return PrivateKey(bytes([0x11]) * 32)


class Harness(abc.ABC):
    """Drives one backend for the contract tests."""

    ledger: Ledger

    @abc.abstractmethod
    def reopen(self) -> Ledger:
        """A second, independent handle on the same ledger (as after a restart)."""

    @abc.abstractmethod
    def mine(self, blocks: int = 1) -> None:
        """Put pending transactions into blocks (a no-op where publishing makes the block)."""

    @abc.abstractmethod
    def fork(self, depth: int) -> None:
        """Replace the newest ``depth`` blocks by a longer branch without their payloads."""

    def bad_credentials(self) -> Ledger | None:
        """A handle with wrong credentials, or None where the backend has none."""
        return None

    def stop_node(self) -> None:
        raise NotImplementedError("this backend has no node to stop")

    def start_node(self) -> None:
        raise NotImplementedError("this backend has no node to start")


def _payloads(n: int, tag: str) -> list[str]:
    return [f'json:{{"test":"{tag}","n":{i},"pad":"{"x" * 40}"}}' for i in range(n)]


def _entries(ledger: Ledger, cursor: Cursor | None = None):
    out, last = [], cursor or Cursor()
    for event in follow(ledger, cursor):
        assert isinstance(event, BlockEvent), event
        out.extend(event.block.entries)
        last = event.cursor
    return out, last


class LedgerContract:
    """Shared behaviour of every backend. Subclasses provide the ``backend`` fixture."""

    @pytest.fixture
    def key(self) -> PrivateKey:
        return _key()

    def test_empty_or_fresh_tip(self, backend: Harness):
        tip = backend.ledger.tip()
        assert tip.height >= -1
        assert backend.ledger.block_hash(tip.height + 1000) is None

    def test_publish_and_read_back_in_order(self, backend: Harness):
        ledger = backend.ledger
        payloads = _payloads(5, "order")
        refs = []
        for p in payloads:
            refs.append(ledger.publish(p))
            backend.mine()
        entries, _ = _entries(ledger)
        ours = [e for e in entries if e.payload in payloads]
        assert [e.payload for e in ours] == payloads
        assert [e.txid for e in ours] == [r.txid for r in refs]
        positions = [(e.height, e.index) for e in ours]
        assert positions == sorted(positions) and len(set(positions)) == len(positions)
        for e in ours:
            assert ledger.block_hash(e.height) == e.block_hash
            status = ledger.transaction(e.txid)
            assert status is not None and status.confirmations >= 1
            assert status.height == e.height

    def test_many_payloads_in_one_block_keep_their_order(self, backend: Harness):
        payloads = _payloads(4, "batch")
        refs = [backend.ledger.publish(p) for p in payloads]
        backend.mine()
        entries, _ = _entries(backend.ledger)
        by_txid = {e.txid: e for e in entries}
        got = [by_txid[r.txid] for r in refs]
        assert [e.payload for e in got] == payloads

    def test_unknown_transaction(self, backend: Harness):
        assert backend.ledger.transaction("ab" * 32) is None

    def test_payload_too_large_is_refused(self, backend: Harness):
        with pytest.raises(PayloadTooLarge):
            backend.ledger.publish("x" * (backend.ledger.max_payload + 1))

    def test_multipart_message_reassembles(self, backend: Harness, key: PrivateKey):
        ledger = backend.ledger
        message = "json:" + "é" * 40 + "y" * (2 * ledger.max_payload + 123)
        refs = publish_message(ledger, message, key)
        assert len(refs) >= 3
        backend.mine()
        entries, _ = _entries(ledger)
        assembler = MultipartAssembler()
        done = []
        by_txid = {e.txid: e for e in entries}
        for ref in refs:
            entry = by_txid[ref.txid]
            result = assembler.add(parse_part(entry.payload), entry.txid)
            if result is not None:
                done.append(result)
        assert [d.data for d in done] == [message]
        assert done[0].txid == refs[0].txid

    def test_resume_multipart_sends_nothing_twice(self, backend: Harness, key: PrivateKey):
        ledger = backend.ledger
        message = "json:" + "z" * (2 * ledger.max_payload)
        first = publish_message(ledger, message, key)
        backend.mine()
        again = publish_message(ledger, message, key, sent=first)
        assert again == first  # every part already sent: nothing new goes out

    def test_restart_from_cursor(self, backend: Harness):
        ledger = backend.ledger
        for p in _payloads(2, "before"):
            ledger.publish(p)
            backend.mine()
        _, cursor = _entries(ledger)
        after = _payloads(2, "after")
        for p in after:
            ledger.publish(p)
            backend.mine()
        reopened = backend.reopen()
        restored = Cursor.from_json(cursor.to_json())
        rest, _ = _entries(reopened, restored)
        assert [e.payload for e in rest if "after" in e.payload] == after
        assert not [e for e in rest if "before" in e.payload]

    def test_reorg_is_reported_and_rolled_back(self, backend: Harness):
        ledger = backend.ledger
        for p in _payloads(3, "keep"):
            ledger.publish(p)
            backend.mine()
        lost = _payloads(2, "orphan")
        for p in lost:
            ledger.publish(p)
            backend.mine()
        entries, cursor = _entries(ledger, None)
        orphan_heights = {e.height for e in entries if "orphan" in e.payload}
        depth = cursor.height - min(orphan_heights) + 1
        backend.fork(depth)
        events = list(follow(ledger, cursor))
        assert isinstance(events[0], Rollback)
        assert events[0].from_height == min(orphan_heights)
        replayed = [e for ev in events[1:] if isinstance(ev, BlockEvent) for e in ev.block.entries]
        assert not [e for e in replayed if e.payload in lost and e.height in orphan_heights]

    def test_bad_credentials_are_a_clear_error(self, backend: Harness):
        bad = backend.bad_credentials()
        if bad is None:
            pytest.skip("this backend has no credentials")
        with pytest.raises(LedgerAuthError):
            bad.tip()

    def test_node_down_mid_scan_then_resume(self, backend: Harness):
        ledger = backend.ledger
        for p in _payloads(3, "down"):
            ledger.publish(p)
            backend.mine()
        _, cursor = _entries(ledger)
        try:
            backend.stop_node()
        except NotImplementedError as exc:
            pytest.skip(str(exc))
        try:
            with pytest.raises(LedgerUnavailable):
                list(follow(ledger, Cursor()))
        finally:
            backend.start_node()
        ledger = backend.reopen()
        ledger.publish(_payloads(1, "back")[0])
        backend.mine()
        rest, _ = _entries(ledger, cursor)
        assert [e.payload for e in rest if "back" in e.payload] == _payloads(1, "back")

    def test_fee_estimate(self, backend: Harness):
        one = backend.ledger.estimate_fee(1000, 1)
        many = backend.ledger.estimate_fee(10_000, 10)
        assert one.transactions == 1 and many.transactions == 10
        assert one.total >= 0 and many.total >= one.total
        assert one.unit and one.basis
