"""`etdb publish` after a lost journal when two catalog records claim one dataset.

The lab's records are adopted from the catalog (``publish/known.py``). If several active
records of the publisher claim one ``sid`` (published twice, e.g. from two machines), that
dataset is not adopted: before, ``AdoptionConflict`` stopped the whole run (nothing else was
published); now it is that dataset's problem, naming both txids, the rest of the run goes on
and the exit status is 1, as for any dataset that could not be published.

Real components, as tests/publish/test_publish_cli.py: a folder source, the embedded ledger,
journal, blockstore and catalog in a fresh ETDB_HOME; the second record is signed with the
lab's own key and sent to the same ledger.
"""

from __future__ import annotations

import re
from pathlib import Path

from etdb.ledger.local import open_local
from etdb.publish.keystore import Keystore
from etdb.record import Artifact, encode_publish, sign_artifact
from tests.index.records import make_artifact
from tests.publish import test_publish_cli as cli
from tests.publish.test_publish_cli import (
    PASS,
    SIDS,
    address,
    catalog_sids,
    ledger_entries,
    publish,
    write_dataset,
)

home, lab = cli.home, cli.lab  # the CLI tests' fixtures: a fresh ETDB_HOME with a key, a lab


def _publish_again_elsewhere(home: Path, sid: str) -> str:
    """A second record for ``sid`` by the lab's key (another identity: other location and
    time), as a second machine with its own journal would send it. Its txid."""
    key = Keystore(home / "keys").load("lab", PASS)
    draft = Artifact.from_wire(make_artifact(publisher=None, sid=sid, title="again"))
    record = sign_artifact(draft, key, timestamp=1_700_000_000, meta=True)
    ledger = open_local(f"local://{home / 'ledger.sqlite3'}")
    try:
        return ledger.publish(encode_publish(record)).txid
    finally:
        ledger.close()


def _lose_journal(home: Path) -> None:
    for name in ("journal.sqlite3", "journal.sqlite3-wal", "journal.sqlite3-shm"):
        (home / "publish" / name).unlink(missing_ok=True)


def test_a_dataset_two_records_claim_is_reported_and_the_rest_publishes(home, lab):
    first = publish(str(lab))
    assert first["summary"]["counts"]["new"] == len(SIDS)
    twice = SIDS[0]
    second = _publish_again_elsewhere(home, twice)
    _lose_journal(home)
    write_dataset(lab, "zz-new", 5)  # a new dataset in the same run
    sent = ledger_entries(home)

    out = publish(str(lab), code=1)

    (failed,) = out["summary"]["failed"]
    assert failed["sid"] == twice
    assert "2 records there claim this dataset" in failed["reason"]
    named = set(re.findall(r"\b[0-9a-f]{64}\b", failed["reason"]))
    assert len(named) == 2 and second in named  # the first record and the second one
    assert "etdb record check" in failed["reason"]
    problems = [d for d in out["plan"]["datasets"] if d["action"] == "problem"]
    assert [d["sid"] for d in problems] == [twice]
    assert out["summary"]["counts"]["new"] == 1  # zz-new went
    assert ledger_entries(home) == sent + 1  # and nothing else was sent
    sids = catalog_sids(home, address(home))
    assert sids["zz-new"] is True and all(sids[s] for s in SIDS)
    # The others were adopted: a further run has nothing to do for them (only the conflict).
    again = publish(str(lab), code=1)
    assert again["summary"] is None  # nothing to run: exit 1 for the problem in the plan
    assert [d["sid"] for d in again["plan"]["datasets"] if d["action"] == "problem"] == [twice]
    assert again["plan"]["counts"].get("new", 0) == 0
    assert ledger_entries(home) == sent + 1
