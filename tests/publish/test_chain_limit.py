"""Long chains of unconfirmed transactions on a real Litecoin Core regtest node (default limit 25).

The node runs with Bitcoin Core's default ``-limitancestorcount=25``/``-limitdescendantcount=25``
(the harness's own defaults are raised for benchmarks, so they are put back here). A miner is a
background thread calling ``generatetoaddress``, as a real miner would find blocks meanwhile.
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from etdb.index.catalog import open_catalog
from etdb.index.indexer import Indexer
from etdb.ledger import open_ledger
from etdb.ledger.rpc_errors import ChainTooLong
from etdb.publish.events import WaitingForConfirmations
from etdb.publish.journal import Journal
from etdb.publish.pipeline import Action, Publisher
from tests.conftest import skip_or_fail
from tests.ledger.litecoind import litecoind_available, start_litecoind
from tests.publish.test_pipeline import Lab, ListSource, dataset

pytestmark = pytest.mark.litecoind
DEFAULT_LIMITS = ("-limitancestorcount=25", "-limitdescendantcount=25")


@pytest.fixture
def node(tmp_path):
    reason = litecoind_available()
    if reason:
        skip_or_fail(reason)
    started = start_litecoind(tmp_path / "node", extra_args=DEFAULT_LIMITS)
    yield started
    started.close()


class Miner:
    """Mines a block every ``every`` seconds from a thread until stopped."""

    def __init__(self, node, every: float = 0.5) -> None:
        self.node, self.every = node, every
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        rpc = self.node.rpc(wallet=None)  # a client of its own: not shared across threads
        while not self.stop.wait(self.every):
            rpc.call("generatetoaddress", 1, self.node.address)

    def __enter__(self) -> Miner:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


def _fill_chains(ledger) -> int:
    """Publish until the node refuses; returns how many went."""
    sent = 0
    while True:
        try:
            ledger.publish(f"text:chain {sent}")
        except ChainTooLong:
            return sent
        sent += 1


def test_refusal_and_precheck_both_say_chain_too_long(node):
    # The node's own refusal (the check off): two coinbase coins, so two chains of 25.
    unchecked = open_ledger(node.ledger_url(chain_limit=0))
    assert _fill_chains(unchecked) == 50
    with pytest.raises(ChainTooLong, match="limit: 25") as refused:
        unchecked.publish("text:one more")
    assert refused.value.unconfirmed == 25
    # The check before sending: the same error, and the wallet built nothing.
    checked = open_ledger(node.ledger_url())
    pool = node.call("getrawmempool")
    with pytest.raises(ChainTooLong, match="nothing was sent") as seen:
        checked.publish("text:one more")
    assert seen.value.unconfirmed == 25 and node.call("getrawmempool") == pool
    node.mine(1)
    assert checked.publish("text:after a block").txid
    for ledger in (unchecked, checked):
        ledger.close()


def _lab(tmp_path, node) -> Lab:
    lab = Lab(tmp_path / "lab")
    lab.ledger.close()
    lab.ledger = open_ledger(node.ledger_url())
    lab.journal.close()
    lab.journal_path = tmp_path / "lab" / "btc-journal.sqlite3"
    lab.journal = Journal.open(
        lab.journal_path, ledger_url=lab.ledger.url, publisher=lab.key.address
    )
    return lab


@pytest.mark.slow
def test_200_datasets_publish_in_one_run_while_a_miner_mines(tmp_path, node):
    lab = _lab(tmp_path, node)
    source = ListSource([dataset(tmp_path, f"ds-{i:03d}") for i in range(200)])
    events: list = []
    publisher = Publisher(source, lab.config(), on_event=events.append, chain_wait=120)
    with Miner(node, every=8.0):  # slower than 25 sends: the limit is reached
        summary = publisher.run(publisher.plan())
        waits = [e for e in events if isinstance(e, WaitingForConfirmations)]
        node_height = node.call("getblockcount")
    assert summary.failed == () and summary.counts[Action.NEW] == 200
    assert summary.transactions >= 200
    assert waits, "200 datasets never reached the chain limit: the test proves nothing"
    assert "waiting for 25 unconfirmed transactions" in waits[0].text
    node.mine(1)
    assert node_height > 0
    catalog = open_catalog(f"sqlite:///{tmp_path / 'cat.sqlite3'}")
    Indexer(lab.ledger, catalog).run()
    payloads = Counter(e.payload for e in lab.entries())
    assert max(payloads.values()) == 1  # nothing sent twice
    records = [catalog.get(entry.record_txid) for entry in lab.journal.entries()]
    assert len(records) == 200 and all(r is not None for r in records)
    catalog.close()
    lab.close()


def test_a_short_wait_without_a_miner_stops_clearly_and_a_rerun_after_a_block_finishes(
    tmp_path, node
):
    # No miner: the wallet's two chains of 25 fill up (~3 transactions a dataset here, so 24
    # datasets need two blocks' worth) and nothing confirms them.
    lab = _lab(tmp_path, node)
    source = ListSource([dataset(tmp_path, f"ds-{i:02d}") for i in range(24)])
    events: list = []
    first = Publisher(source, lab.config(), on_event=events.append, chain_wait=2)
    summary = first.run(first.plan())
    assert [e for e in events if isinstance(e, WaitingForConfirmations)]
    [(where, reason)] = summary.failed
    assert where == "(run stopped)"
    assert "no block confirmed them within 2 s" in reason
    assert "publish_chain_wait" in reason and "run again to resume" in reason
    done_first = summary.counts[Action.NEW]
    assert 0 < done_first < 24
    # One block makes room for the rest; the re-run resends nothing already sent.
    node.mine(1)
    again = Publisher(source, lab.config(), on_event=events.append, chain_wait=2)
    summary = again.run(again.plan())
    assert summary.failed == ()
    assert summary.counts[Action.NEW] + summary.recovered + done_first == 24
    node.mine(1)
    payloads = Counter(e.payload for e in lab.entries())
    assert max(payloads.values()) == 1  # nothing sent twice
    catalog = open_catalog(f"sqlite:///{tmp_path / 'cat.sqlite3'}")
    Indexer(lab.ledger, catalog).run()
    records = [catalog.get(entry.record_txid) for entry in lab.journal.entries()]
    assert len(records) == 24 and all(r is not None for r in records)
    catalog.close()
    lab.close()
