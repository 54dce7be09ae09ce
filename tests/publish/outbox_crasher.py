"""A publisher that SIGKILLs itself on cue, for the crash test in ``test_outbox.py``.

    ETDB_CRASH_AT=sent:3 python -m tests.publish.outbox_crasher WORKDIR N

Recovers what an earlier run left pending, then journals and sends messages ``0..N-1`` (each
3-4 multipart parts on a ``max_payload=1040`` embedded ledger) that the journal does not know
yet. ``ETDB_CRASH_AT=hook:k`` kills the process at the k-th call of ``hook`` in this run:

* ``before_begin``   before a message is journaled
* ``after_begin``    journaled, nothing sent
* ``after_will_send`` the intent is durable, the ledger has not seen the part
* ``after_publish``  the ledger committed the part, the journal has no txid for it
* ``after_sent``     the txid is durable (between parts, or after the last)
* ``before_finish``  every part sent, the operation not finished

Exits 0 once every message is finished.
"""

from __future__ import annotations

import os
import signal
import sys
from collections import Counter
from pathlib import Path

from etdb.ledger.base import TxRef
from etdb.ledger.local import LocalLedger
from etdb.publish.journal import Journal, JournalEntry
from etdb.publish.outbox import recover, send
from etdb.record.signing import PrivateKey

KEY = PrivateKey(bytes(range(101, 133)))
MAX_PAYLOAD = 1040
TIMESTAMP = 1_700_000_000


def message(i: int) -> str:
    """Message i: 1,900 to 2,600 bytes (3 or 4 parts of at most 1040), unique per i."""
    body = "".join(f"{i:03}-{n:04};" for n in range(200 + (i % 8) * 10))
    return f'json:{{"oip042":{{"publish":{{"n":{i},"data":"{body}"}}}}}}'


def sid(i: int) -> str:
    return f"ds{i:03}"


class _Kill:
    def __init__(self, spec: str) -> None:
        hook, _, k = spec.partition(":")
        self.hook, self.at = hook, int(k or 0)
        self.calls: Counter[str] = Counter()

    def __call__(self, hook: str) -> None:
        self.calls[hook] += 1
        if hook == self.hook and self.calls[hook] == self.at:
            os.kill(os.getpid(), signal.SIGKILL)


KILL = _Kill(os.environ.get("ETDB_CRASH_AT", ""))


class CrashingLedger(LocalLedger):
    def publish(self, payload: str) -> TxRef:
        ref = super().publish(payload)  # committed and fsynced
        KILL("after_publish")
        return ref


class CrashingJournal(Journal):
    def will_send(self, op_id: int, index: int, text: str) -> None:
        super().will_send(op_id, index, text)
        KILL("after_will_send")

    def sent(self, op_id: int, index: int, txid: str) -> None:
        super().sent(op_id, index, txid)
        KILL("after_sent")

    def finish(self, op_id: int) -> JournalEntry:
        KILL("before_finish")
        return super().finish(op_id)


def main(workdir: Path, count: int) -> int:
    ledger = CrashingLedger(workdir / "ledger.sqlite3", max_payload=MAX_PAYLOAD)
    with CrashingJournal.open(
        workdir / "journal.sqlite3", ledger_url=ledger.url, publisher=KEY.address
    ) as journal:
        recover(journal, ledger, KEY)
        for i in range(count):
            if journal.get(sid(i)) is not None:
                continue
            KILL("before_begin")
            op = journal.begin(
                sid(i),
                "publish",
                message(i),
                timestamp=TIMESTAMP + i,
                since_height=ledger.tip().height + 1,
            )
            KILL("after_begin")
            send(journal, op, ledger, KEY)
    ledger.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), int(sys.argv[2])))
