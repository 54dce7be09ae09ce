"""Whole ledgers through the indexer: one ledger holding every kind of message (on SQLite and
PostgreSQL, exact expected catalog), a reorganisation, and kill -9 at random moments."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from etdb.index.catalog import open_catalog
from etdb.index.check import snapshot
from etdb.index.indexer import Indexer
from etdb.record import decode, verify_publish
from etdb.record.signing import publish_preimage, sign_message
from tests.conftest import REPO_ROOT
from tests.index.records import REAL_FILES
from tests.index.test_indexer import (
    OTHER,
    OWNER,
    T0,
    Chain,
    artifact,
    deactivate,
    edited,
    foreign_edit,
    publish,
    rejected,
    retitle,
    titles,
)


def _forged_publishes() -> tuple[str, str, str, str]:
    """(moved location, signed by another key, wrong types, missing a mandatory field), with
    the reasons verify_publish gives for the first two."""
    art = artifact(OWNER, 3).to_wire()
    moved = {**art, "storage": {**art["storage"], "location": "QmForgedLocationForgedLocation"}}
    art4 = artifact(OWNER, 4).to_wire()
    preimage = publish_preimage(art4["storage"]["location"], OWNER.address, art4["timestamp"])
    by_other = {**art4, "signature": sign_message(OTHER, preimage)}
    art5 = artifact(OWNER, 5).to_wire()
    wrong_types = {**art5, "details": {**art5["details"], "date": "2014-01-14"}}
    art6 = artifact(OWNER, 6).to_wire()
    details = {k: v for k, v in art6["details"].items() if k != "speciesName"}
    missing = {**art6, "details": details}

    def envelope(a: dict) -> str:
        return "json:" + json.dumps({"oip042": {"publish": {"artifact": a}}})

    return envelope(moved), envelope(by_other), envelope(wrong_types), envelope(missing)


def _reason(text: str) -> str:
    """What verify_publish says about a decodable publish (independent of the indexer)."""
    return verify_publish(decode(text).artifact).reason


def test_one_ledger_with_every_kind_of_message(tmp_path, catalog_url):
    chain = Chain(tmp_path / "ledger.sqlite3")
    a_text, b_text = publish(OWNER, 1), publish(OWNER, 2)
    moved, by_other, wrong_types, missing = _forged_publishes()
    truncated = publish(OWNER, 7)[:150]
    transfer = 'json:{"oip042":{"transfer":{"artifact":{"txid":"00"}}}}'
    # A real-size record (the real rr2014-01-14-5 file list): 4 parts at FLO's 1040 bytes.
    m_text = publish(OWNER, 20, files=REAL_FILES)
    assert 2400 < len(m_text) < 3200
    probe = chain.parts(m_text, OWNER)
    assert len(probe) == 4

    # Block 0: publishes, forgeries, a replay, malformed payloads.
    b0 = chain.block(
        a_text,
        b_text,
        moved,
        by_other,
        a_text,  # replayed: the very same signed artifact again
        "hello etdb",
        truncated,
        wrong_types,
        missing,
        transfer,
        publish(OTHER, 8),
    )
    a, b, c = b0[0], b0[1], b0[10]
    # Block 1: multipart parts 3 and 1 before part 0 (part 0's txid is known in advance
    # because txids commit to the parent block), and a multipart that never completes.
    m_key = chain.next_txid(2, probe[0])
    m = chain.parts(m_text, OWNER, m_key)
    lonely = chain.parts(publish(OWNER, 21, files=REAL_FILES), OWNER)[0]
    b1 = chain.block(m[3], m[1], m[0], lonely)
    assert b1[2] == m_key
    # Block 2: edits.
    art_a, art_b = artifact(OWNER, 1), artifact(OWNER, 2)
    b_v2 = edited(art_b, "record 2 v2", T0 + 101)
    b2 = chain.block(
        retitle(a, art_a, "record 1 (edited)", T0 + 100),
        foreign_edit(b, OTHER, T0 + 100),
        retitle("ab" * 32, art_a, "no such record", T0 + 100),
        retitle(b, art_b, "record 2 v2", T0 + 101),
    )
    # Block 3: the second edit of B, the last multipart part, deactivations.
    b3 = chain.block(
        retitle(b, b_v2, "record 2 v3", T0 + 102),
        m[2],
        deactivate(a, OTHER, T0 + 103),
        deactivate(b, OWNER, T0 + 103),
    )
    # Block 4: an edit after the deactivation.
    b_v3 = edited(b_v2, "record 2 v3", T0 + 102)
    b4 = chain.block(retitle(b, b_v3, "record 2 v4", T0 + 104))
    # Block 5, to be orphaned: a publish, an edit of A, a rejection.
    a_v1 = edited(art_a, "record 1 (edited)", T0 + 100)
    b5 = chain.block(
        publish(OWNER, 30),
        retitle(a, a_v1, "record 1 (orphaned edit)", T0 + 105),
        "orphaned junk",
    )

    catalog = open_catalog(catalog_url)
    indexer = Indexer(chain.ledger, catalog)
    first = indexer.run()
    assert (first.blocks, first.records, first.edits, first.deactivations) == (6, 5, 4, 1)
    assert titles(catalog)[a] == ("record 1 (orphaned edit)", False)
    assert b5[0] in titles(catalog) and b5[2] in rejected(catalog)

    # The reorganisation: block 5 is replaced by a longer branch with another publish.
    new = chain.fork(1, [[publish(OWNER, 31)], ["filler"]])
    second = indexer.run()
    assert (second.rollbacks, second.blocks, second.records) == (1, 2, 1)

    assert titles(catalog) == {
        a: ("record 1 (edited)", False),
        b: ("record 2 v3", True),
        c: ("record 8", False),
        m_key: ("record 20", False),
        new[0][0]: ("record 31", False),
    }
    detail = catalog.get(m_key)
    assert detail is not None
    assert detail.provenance.txids == (b1[2], b1[1], b3[1], b1[0])
    assert (detail.provenance.block_height, detail.artifact["storage"]["files"]) == (3, REAL_FILES)
    assert [e["txid"] for e in catalog.get(b).provenance.edits] == [b2[3], b3[0]]
    assert catalog.get(b).provenance.deactivated_by == b3[3]

    not_oip = "not an OIP 0.4.2 message: floData starts with {!r}, expected the 'json:' prefix or a JSON object"
    expected = {
        b0[2]: ("publish", _reason(moved)),
        b0[3]: ("publish", _reason(by_other)),
        b0[4]: ("publish", f"replay of record {a}"),
        b0[5]: ("unknown", not_oip.format("hello etdb")),
        b0[7]: ("publish", "details.date: expected an integer, got the string '2014-01-14'"),
        b0[8]: ("publish", "missing mandatory field: details.speciesName"),
        b0[9]: ("unknown", "OIP 0.4.2 'transfer' messages are not supported"),
        b2[1]: ("edit", None),
        b2[2]: ("edit", f"edit of unknown record {'ab' * 32}"),
        b3[2]: ("deactivate", None),
        b4[0]: ("edit", f"edit of record {b}, which is deactivated"),
        new[1][0]: ("unknown", not_oip.format("filler")),
    }
    got = rejected(catalog)
    assert got.keys() == expected.keys() | {b0[6]}
    for txid, (kind, reason) in expected.items():
        assert got[txid][0] == kind, txid
        if reason is not None:
            assert got[txid][1] == reason, txid
    # The forgeries: the signature recovers another address than the publisher's.
    assert got[b0[2]][1].startswith("bad signature: over the preimage 'QmForgedLocation")
    assert f"it recovers {OTHER.address}, not {OWNER.address}" in got[b0[3]][1]
    assert f"it recovers {OTHER.address}, not {OWNER.address}" in got[b2[1]][1]
    # OTHER signed "A-<its own address>-ts": over the owner's preimage it recovers nobody's.
    assert got[b3[2]][1].startswith(f"bad signature: over the preimage '{a}-{OWNER.address}-")
    assert got[b0[6]] == ("unknown", got[b0[6]][1])
    assert got[b0[6]][1].startswith("not valid JSON: ")
    assert catalog.pending_multiparts() == 1  # `lonely`, waiting for its other parts

    # The same catalog as a fresh SQLite rebuild; running again changes nothing.
    assert indexer.check().equal
    before = snapshot(catalog)
    assert indexer.run().blocks == 0 and snapshot(catalog) == before
    catalog.close()
    chain.close()


# -- kill -9 ------------------------------------------------------------------------------------

_WORKER = textwrap.dedent(
    """
    import sys
    from etdb.index.catalog import open_catalog
    from etdb.index.indexer import Indexer
    from etdb.ledger.local import open_local

    ledger, catalog = open_local(sys.argv[1]), open_catalog(sys.argv[2])
    print("ready", flush=True)
    Indexer(ledger, catalog, commit_blocks=int(sys.argv[3])).run()
    """
)


def _big_ledger(chain: Chain, records: int, seed: int) -> None:
    """``records`` records in blocks of 1-6, with junk, replays, truncated JSON and
    multiparts (completing in the same or later blocks) mixed in, then edits and
    deactivations of some of them."""
    rng = random.Random(seed)
    published: list[tuple[str, int]] = []  # (txid, n) of single-transaction publishes
    block: list[str] = []
    numbers: list[int | None] = []  # record number of each single-transaction publish
    waiting: list[str] = []  # multipart parts still to send
    recent: list[str] = []
    for n in range(records):
        text = publish(OWNER, n)
        roll = rng.random()
        if roll < 0.03:
            key = chain.next_txid(len(block), chain.parts(text, OWNER)[0])
            parts = chain.parts(text, OWNER, key)
            block.append(parts[0])
            numbers.append(None)
            waiting.extend(parts[1:])
        else:
            block.append(text)
            numbers.append(n)
        if roll > 0.97 and recent:
            block.append(rng.choice(["junk", recent[0], recent[-1][:100]]))
            numbers.append(None)
        recent = [*recent[-5:], text]
        if len(block) >= rng.randint(1, 6) or n == records - 1:
            k = len(waiting) if n == records - 1 else rng.randint(0, len(waiting))
            txids = chain.block(*block, *waiting[:k])
            waiting = waiting[k:]
            published += [(t, m) for t, m in zip(txids, numbers, strict=False) if m is not None]
            block, numbers = [], []
    picked = rng.sample(published, 40)
    changes = [
        retitle(t, artifact(OWNER, m), f"edited {i}", T0 + 10_000 + i)
        for i, (t, m) in enumerate(picked[:30])
    ]
    changes += [deactivate(t, OWNER, T0 + 20_000) for t, _ in picked[30:]]
    for i in range(0, len(changes), 7):
        chain.block(*changes[i : i + 7])


@pytest.mark.slow
def test_kill_9_at_random_moments_then_restart_gives_the_uninterrupted_catalog(tmp_path):
    chain = Chain(tmp_path / "ledger.sqlite3")
    _big_ledger(chain, 3000, seed=7)
    reference = open_catalog(f"sqlite:///{tmp_path / 'reference.sqlite3'}")
    Indexer(chain.ledger, reference).run()
    want = snapshot(reference)
    assert len(want.records) > 2900 and want.rejections and want.pending_multiparts == 0

    url = f"sqlite:///{tmp_path / 'killed.sqlite3'}"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")}
    rng = random.Random(11)
    kills, heights = 0, []
    # Kill up to 8 times at random moments, then let the last run finish.
    for attempt in range(9):
        proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER, chain.url, url, "25"],
            stdout=subprocess.PIPE,
            env=env,
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        if attempt < 8:
            time.sleep(rng.uniform(0.05, 0.5))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
        proc.wait(timeout=120)
        catalog = open_catalog(url)
        heights.append(catalog.indexed_height())
        catalog.close()
        if proc.returncode == 0:
            break
    assert proc.returncode == 0, heights
    assert kills >= 3 and len(set(heights[:-1])) >= 2, heights  # killed at several places
    catalog = open_catalog(url)
    assert snapshot(catalog) == want
    assert catalog.rejections(limit=1000) == reference.rejections(limit=1000)
    report = Indexer(chain.ledger, catalog).run()
    assert report.blocks == 0 and snapshot(catalog) == want  # idempotent
    catalog.close()
    reference.close()
    chain.close()
