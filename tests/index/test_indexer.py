"""The indexer's rules, one at a time, on the real embedded ledger and the real SQLite catalog.

The helpers at the top (keys, message builders, :class:`Chain`) are shared with
``test_indexer_scenarios.py`` and ``test_index_cli.py``.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from etdb.index.catalog import SqlCatalog, open_catalog
from etdb.index.check import CatalogSnapshot, compare, snapshot
from etdb.index.indexer import Indexer, IndexerError, LedgerMismatch, SettingsChanged
from etdb.ledger.local import LocalLedger, open_local
from etdb.ledger.local_schema import build_block, compute_txid
from etdb.ledger.messages import plan
from etdb.record import (
    Artifact,
    Edit,
    PrivateKey,
    decode,
    encode_deactivate,
    encode_edit,
    encode_publish,
    make_edit,
    sign_deactivate,
    sign_edit,
)
from etdb.record.signing import deactivate_preimage, multipart_preimage, sign_message
from tests.index.records import published, signed_artifact

OWNER = PrivateKey(bytes([1]) * 32)
OTHER = PrivateKey(bytes([2]) * 32)
T0 = 1_600_000_000  # artifact timestamps: T0 + n for record n
DAY = 86_400

# -- messages -----------------------------------------------------------------------------------


def artifact(key: PrivateKey, n: int, **overrides) -> Artifact:
    """Record ``n``: a real-size Research-Tomogram, signed by ``key`` (unique signature)."""
    overrides.setdefault("title", f"record {n}")
    overrides.setdefault("timestamp", T0 + n)
    overrides.setdefault("sid", f"ab2020-01-01-{n}")
    return Artifact.from_wire(signed_artifact(key, **overrides))


def publish(key: PrivateKey, n: int, **overrides) -> str:
    return encode_publish(artifact(key, n, **overrides))


def retitle(record_id: str, current: Artifact, title: str, timestamp: int, key=OWNER) -> str:
    """A real edit (etdb's own form: re-signed at the edit's timestamp) changing the title."""
    new = current.model_copy(deep=True)
    assert new.info is not None
    new.info.title = title
    edit, _ = make_edit(record_id, current, new, key, timestamp=timestamp)
    return encode_edit(edit)


def foreign_edit(record_id: str, key: PrivateKey, timestamp: int, title: str = "hijacked") -> str:
    patch = [{"op": "replace", "path": "/info/title", "value": title}]
    return encode_edit(sign_edit(record_id, patch, key, timestamp=timestamp))


def deactivate(record_id: str, key: PrivateKey, timestamp: int) -> str:
    return encode_deactivate(sign_deactivate(record_id, key, timestamp=timestamp))


def edited(current: Artifact, title: str, timestamp: int) -> Artifact:
    """What ``retitle`` makes of ``current`` (to chain edits)."""
    new = current.model_copy(deep=True)
    assert new.info is not None
    new.info.title = title
    _, patched = make_edit("0" * 64, current, new, OWNER, timestamp=timestamp)
    return patched


# -- the ledger ---------------------------------------------------------------------------------


class Chain:
    """An embedded ledger in a file, with the test-only surgery the scenarios need."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = f"local://{path}"
        self.ledger: LocalLedger = open_local(self.url)
        # The ledger makes its file on the first publish; predicting txids (next_txid) and
        # surgery need it, and its chain id, before that.
        with self.ledger._file.lock:
            self.ledger._file.create()
        # Same file, FLO's floData limit: messages.plan cuts real multiparts for it.
        self.flo = open_local(f"{self.url}?max_payload=1040")

    def close(self) -> None:
        self.ledger.close()
        self.flo.close()

    def block(self, *payloads: str) -> list[str]:
        """One block holding ``payloads``; their txids."""
        return [ref.txid for ref in self.ledger.publish_many(payloads)]

    def next_txid(self, index: int, payload: str) -> str:
        """The txid ``payload`` will get at ``index`` of the next block (txids commit to the
        parent block, so a part 0 can be referenced before it is published)."""
        tip = self.ledger.tip()
        parent = tip.hash if tip.height >= 0 else self._chain_id()
        return compute_txid(parent, index, None, payload)

    def parts(self, text: str, key: PrivateKey, part0_txid: str | None = None) -> list[str]:
        """``text`` cut into signed oip-mp parts at 1040 bytes (messages.plan)."""
        return plan(self.flo, text, key, part0_txid)

    def _sql(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, isolation_level=None)

    def _chain_id(self) -> str:
        conn = self._sql()
        try:
            return conn.execute("SELECT value FROM meta WHERE key='chain_id'").fetchone()[0]
        finally:
            conn.close()

    def block_at(self, when: int, *payloads: str) -> list[str]:
        """Append a valid block with block time ``when`` (to test expiry without waiting)."""
        conn = self._sql()
        try:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute("SELECT height, hash FROM blocks ORDER BY height DESC").fetchone()
            height, parent = (row[0] + 1, row[1]) if row else (0, self._chain_id())
            built = _insert(conn, height, parent, when, list(payloads))
            conn.execute("COMMIT")
        finally:
            conn.close()
        return [t for t, _, _ in built.entries]

    def fork(self, depth: int, blocks: list[list[str]]) -> list[list[str]]:
        """A reorganisation: drop the newest ``depth`` blocks, append ``blocks`` (a longer
        branch, usually) on the same parent. The approach of tests/ledger/test_local.py's
        ``replace_tail``, with payloads of our choosing. Returns the new txids per block."""
        assert len(blocks) > depth, "the new branch must be longer to win"
        conn = self._sql()
        try:
            conn.execute("BEGIN IMMEDIATE")
            (tip,) = conn.execute("SELECT max(height) FROM blocks").fetchone()
            cut = tip - depth + 1
            conn.execute("DELETE FROM entries WHERE height >= ?", (cut,))
            conn.execute("DELETE FROM blocks WHERE height >= ?", (cut,))
            parent, when = conn.execute(
                "SELECT hash, time FROM blocks WHERE height = ?", (cut - 1,)
            ).fetchone()
            out = []
            for i, payloads in enumerate(blocks):
                built = _insert(conn, cut + i, parent, when, payloads)
                parent = built.header.hash
                out.append([t for t, _, _ in built.entries])
            conn.execute("COMMIT")
        finally:
            conn.close()
        return out


def _insert(conn: sqlite3.Connection, height: int, parent: str, when: int, payloads: list[str]):
    built = build_block(height, parent, when, payloads)
    h = built.header
    conn.execute(
        "INSERT INTO blocks VALUES (?,?,?,?,?)",
        (h.height, h.hash, h.parent_hash, h.time, h.tx_root),
    )
    conn.executemany(
        "INSERT INTO entries (height, idx, txid, sender, payload) VALUES (?,?,?,?,?)",
        [(height, i, t, s, p) for i, (t, s, p) in enumerate(built.entries)],
    )
    return built


# -- reading the catalog --------------------------------------------------------------------------


def titles(store) -> dict[str, tuple[str, bool]]:
    """id -> (current title, deactivated), every record."""
    return {
        rid: (json.loads(art)["info"]["title"], off)
        for rid, (art, off) in snapshot(store).records.items()
    }


def rejected(store) -> dict[str, tuple[str, str]]:
    """txid -> (kind, reason) of every rejection (each txid is rejected at most once here)."""
    rows = store.rejections(limit=1000)
    out = {r.txid: (r.kind, r.reason) for r in rows}
    assert len(out) == len(rows), "a txid was rejected twice"
    return out


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def chain(tmp_path) -> Iterator[Chain]:
    c = Chain(tmp_path / "ledger.sqlite3")
    yield c
    c.close()


@pytest.fixture
def store(tmp_path) -> Iterator[SqlCatalog]:
    cat = open_catalog(f"sqlite:///{tmp_path / 'catalog.sqlite3'}")
    yield cat
    cat.close()


def run(chain: Chain, store, **kw):
    return Indexer(chain.ledger, store, **kw).run()


# -- blocks, cursor, idempotency ----------------------------------------------------------------


def test_empty_ledger_then_blocks_then_nothing_new(chain, store):
    report = run(chain, store)
    assert (report.blocks, report.height, store.indexed_height()) == (0, -1, -1)
    a = chain.block(publish(OWNER, 1), "hello")
    report = run(chain, store)
    assert (report.blocks, report.records, report.rejections, report.height) == (1, 1, 1, 0)
    assert titles(store) == {a[0]: ("record 1", False)}
    assert json.loads(store.get_meta("cursor"))["height"] == 0
    again = run(chain, store)
    assert (again.blocks, again.records, again.rejections) == (0, 0, 0)
    assert titles(store) == {a[0]: ("record 1", False)}


def test_replays_are_caught_on_a_fresh_catalog_a_later_run_and_a_foreign_one(
    chain, store, tmp_path
):
    text = publish(OWNER, 1)
    first, again = chain.block(text, text)  # a fresh catalog: signatures kept in memory
    run(chain, store)
    (later,) = chain.block(text)  # a later run: the store is asked
    run(chain, store)
    assert rejected(store) == {
        again: ("publish", f"replay of record {first}"),
        later: ("publish", f"replay of record {first}"),
    }
    # A catalog holding records the indexer did not write (no cursor): the store is asked.
    other = open_catalog(f"sqlite:///{tmp_path / 'other.sqlite3'}")
    with other.transaction():
        other.add_record(published(decode(text).artifact.to_wire(), id="cd" * 32))
    run(chain, other)
    assert rejected(other)[first] == ("publish", f"replay of record {'cd' * 32}")
    other.close()


def test_limit_blocks_and_small_commits_give_the_same_catalog(chain, tmp_path):
    # Multiparts whose parts span blocks, runs and commits, and one that never completes.
    sets = []
    for n in (100, 101, 102):
        text = publish(OWNER, n)
        key = chain.next_txid(0, chain.parts(text, OWNER)[0])
        chain.block(chain.parts(text, OWNER)[0])
        sets.append(chain.parts(text, OWNER, key)[1:])
    for n in range(12):
        chain.block(publish(OWNER, n), f"junk {n}", *(p[n] for p in sets[:2] if n < len(p)))
    whole = open_catalog(f"sqlite:///{tmp_path / 'whole.sqlite3'}")
    steps = open_catalog(f"sqlite:///{tmp_path / 'steps.sqlite3'}")
    Indexer(chain.ledger, whole).run()
    indexer = Indexer(chain.ledger, steps, commit_blocks=1)
    heights = []
    while (r := indexer.run(limit_blocks=5)).blocks:
        heights.append(r.height)
    assert heights == [4, 9, 14]
    assert snapshot(whole) == snapshot(steps)
    assert len(snapshot(whole).records) == 14 and whole.pending_multiparts() == 1
    whole.close()
    steps.close()


def test_a_store_failure_mid_block_commits_nothing_of_it(chain, store, monkeypatch):
    chain.block(publish(OWNER, 1))
    run(chain, store)
    chain.block(publish(OWNER, 2), "junk", publish(OWNER, 3))
    calls = []

    def broken(record):
        calls.append(record.id)
        if len(calls) == 2:
            raise RuntimeError("disk on fire")
        return type(store).add_record(store, record)

    monkeypatch.setattr(store, "add_record", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        run(chain, store)
    assert store.indexed_height() == 0
    assert len(titles(store)) == 1 and rejected(store) == {}
    monkeypatch.undo()
    assert run(chain, store).records == 2
    assert len(titles(store)) == 3 and len(rejected(store)) == 1


def test_two_indexers_on_one_catalog_do_not_both_write(chain, store):
    for n in range(4):
        chain.block(publish(OWNER, n))
    other = Indexer(chain.ledger, store, commit_blocks=1)

    def meanwhile(report):
        if report.height == 0:
            other.run(limit_blocks=1)  # another indexer commits block 1 in between

    with pytest.raises(IndexerError, match="another `etdb index` or `etdb serve`"):
        Indexer(chain.ledger, store, commit_blocks=1).run(progress=meanwhile)
    assert store.indexed_height() == 1
    run(chain, store)
    assert len(titles(store)) == 4 and rejected(store) == {}


def test_a_bug_in_the_record_package_is_a_rejection_not_a_crash(chain, store, monkeypatch):
    import etdb.index.validate as validate

    def explode(text, *, strict=True):
        raise TypeError("unexpected thing")

    monkeypatch.setattr(validate, "decode", explode)
    txid = chain.block(publish(OWNER, 1))[0]
    report = run(chain, store)
    assert report.rejections == 1
    kind, reason = rejected(store)[txid]
    assert kind == "publish" and "TypeError: unexpected thing" in reason


# -- which ledger, which settings ---------------------------------------------------------------


def test_a_catalog_refuses_another_ledger_until_rebuilt(chain, store, tmp_path):
    chain.block(publish(OWNER, 1))
    run(chain, store)
    other = Chain(tmp_path / "other.sqlite3")
    b = other.block(publish(OWNER, 2))
    with pytest.raises(LedgerMismatch, match=r"built from local://.*ledger\.sqlite3.*--rebuild"):
        Indexer(other.ledger, store).run()
    report = Indexer(other.ledger, store).rebuild()
    assert report.records == 1 and titles(store) == {b[0]: ("record 2", False)}
    other.close()


def test_changed_settings_need_a_rebuild(chain, store):
    chain.block(publish(OWNER, 1), publish(OTHER, 2))
    run(chain, store)
    with pytest.raises(SettingsChanged, match="publishers"):
        run(chain, store, publishers=frozenset({OWNER.address}))
    with pytest.raises(SettingsChanged, match="multipart_expiry"):
        run(chain, store, multipart_expiry=60)
    Indexer(chain.ledger, store, publishers=frozenset({OWNER.address})).rebuild()
    assert len(titles(store)) == 1


def test_allow_list(chain, store):
    ok, foreign = chain.block(publish(OWNER, 1), publish(OTHER, 2))
    run(chain, store, publishers=frozenset({OWNER.address}))
    assert list(titles(store)) == [ok]
    assert rejected(store) == {
        foreign: ("publish", f"publisher {OTHER.address} not in the allow-list")
    }


# -- edits and deactivations: the replay rules --------------------------------------------------


def test_edit_and_deactivation_signatures_cannot_be_replayed(chain, store):
    (a,) = chain.block(publish(OWNER, 1))
    art = artifact(OWNER, 1)
    first = retitle(a, art, "first", T0 + 100)
    # Same signature and timestamp, another patch: the signature does not cover the patch.
    body = json.loads(first.removeprefix("json:"))
    body["oip042"]["edit"]["artifact"]["patch"] = [
        {"op": "replace", "path": "/info/title", "value": "evil"}
    ]
    evil = "json:" + json.dumps(body)
    # A legacy (2018) edit signs artifactID-publisher-timestamp: a deactivation's preimage.
    legacy_sig = sign_message(OWNER, deactivate_preimage(a, OWNER.address, T0 + 200))
    legacy = encode_edit(
        Edit(a, T0 + 200, [{"op": "replace", "path": "/info/tags", "value": "x"}], legacy_sig, True)
    )
    replayed_as_deactivation = encode_deactivate(sign_deactivate(a, OWNER, timestamp=T0 + 200))
    # A deactivation's signature (never published) made into a newer-form edit.
    deactivation_sig = sign_message(OWNER, deactivate_preimage(a, OWNER.address, T0 + 300))
    cross = encode_edit(Edit(a, T0 + 300, [], deactivation_sig, False))
    ids = chain.block(first, evil, legacy, replayed_as_deactivation, cross)
    run(chain, store)
    assert titles(store) == {a: ("first", False)}
    got = rejected(store)
    assert got[ids[1]] == (
        "edit",
        f"edit timestamp {T0 + 100} is not after the latest edit of record {a} ({T0 + 100}): "
        "a replayed or out-of-order edit",
    )
    assert ids[2] not in got  # the legacy edit itself is fine (tags only, signature intact)
    assert got[ids[3]][1].startswith(f"deactivate timestamp {T0 + 200} is not after")
    assert got[ids[4]][1].startswith("the edit's signature covers the legacy preimage")


def test_records_are_kept_as_published_and_edits_patch_that_document(chain, store):
    wire = artifact(OWNER, 1).to_wire()
    details = dict(wire["details"])
    details["NBCItaxID"] = details.pop("NCBItaxID")  # go-etdb's spelling before May 2018
    published_doc = {"labExtra": {"x": 1}, **{**wire, "details": details}}
    signature = published_doc.pop("signature")
    # The signature beside the artifact (decode moves it in), keys in another order.
    text = "json:" + json.dumps(
        {"oip042": {"publish": {"signature": signature, "artifact": published_doc}}}
    )
    (a,) = chain.block(text)
    ops = [{"op": "replace", "path": "/artifact/details/NBCItaxID", "value": 42}]
    (e,) = chain.block(encode_edit(sign_edit(a, ops, OWNER, timestamp=T0 + 10)))
    run(chain, store)
    assert rejected(store) == {}
    detail = store.get(a)
    assert detail is not None
    assert detail.original == {**published_doc, "signature": signature}
    assert list(detail.original) == [*published_doc, "signature"]
    assert detail.artifact["details"]["NBCItaxID"] == 42
    assert detail.provenance.edits[0]["txid"] == e


def test_edits_must_keep_a_valid_complete_record(chain, store):
    (a,) = chain.block(publish(OWNER, 1))
    art = artifact(OWNER, 1)

    def patch_edit(ops, ts):
        return encode_edit(sign_edit(a, ops, OWNER, timestamp=ts))

    moved = patch_edit([{"op": "replace", "path": "/storage/location", "value": "QmX"}], T0 + 10)
    gutted = patch_edit([{"op": "remove", "path": "/details/speciesName"}], T0 + 11)
    handed = patch_edit([{"op": "replace", "path": "/floAddress", "value": OTHER.address}], T0 + 12)
    broken = patch_edit([{"op": "remove", "path": "/nowhere"}], T0 + 13)
    ids = chain.block(moved, gutted, handed, broken)
    run(chain, store)
    got = rejected(store)
    assert got[ids[0]][1].startswith("the edited record is not valid: bad signature")
    assert got[ids[1]] == (
        "edit",
        "the edited record is not valid: missing mandatory field: details.speciesName",
    )
    assert got[ids[2]][1] == (
        f"the edit changes floAddress from {OWNER.address} to {OTHER.address}: "
        "records cannot change hands by an edit"
    )
    assert got[ids[3]][0] == "edit" and "/nowhere" in got[ids[3]][1]
    assert titles(store) == {a: (art.info.title, False)}


# -- multipart ----------------------------------------------------------------------------------


def _part(key: PrivateKey, part: int, top: int, reference: str, data: str) -> str:
    sig = sign_message(key, multipart_preimage(part, top, key.address, reference, data))
    return f"oip-mp({part},{top},{key.address},{reference},{sig}):{data}"


def test_multipart_strays_duplicates_and_late_parts(chain, store):
    text = publish(OWNER, 1)
    first = chain.parts(text, OWNER)
    key = chain.next_txid(0, first[0])
    parts = chain.parts(text, OWNER, key)
    assert len(parts) >= 3
    stray = _part(OTHER, 1, len(parts) - 1, key, "not yours")  # another signer, same key
    wrong_top = _part(OWNER, 1, len(parts), key, "x")  # disagrees with part 0 on the last index
    b1 = chain.block(parts[0], stray, parts[1], parts[1], wrong_top)
    b2 = chain.block(*parts[2:])
    late = chain.block(parts[1])
    report = run(chain, store)
    assert report.records == 1
    assert titles(store) == {key: ("record 1", False)}
    detail = store.get(key)
    assert detail is not None and detail.provenance.txids == (b1[0], b1[2], *b2)
    assert detail.provenance.block_height == 1  # where the last part arrived
    got = rejected(store)
    assert got[b1[1]] == (
        "multipart",
        f"multipart part 1 of {key} is signed by {OTHER.address}, but part 0 by {OWNER.address}",
    )
    assert got[b1[3]] == (
        "multipart",
        f"multipart part 1 of {key} duplicate of the part already sent in {b1[2]}",
    )
    assert got[b1[4]][1].startswith(f"multipart part 1 of {key} says the last part is")
    assert got[late[0]] == (
        "multipart",
        f"multipart part 1 refers to record {key}, already indexed",
    )
    assert store.pending_multiparts() == 0


def test_a_stray_waiting_before_part_0_is_rejected_when_the_set_completes(chain, store):
    text = publish(OWNER, 1)
    key = chain.next_txid(1, chain.parts(text, OWNER)[0])
    parts = chain.parts(text, OWNER, key)
    stray = _part(OTHER, 1, len(parts) - 1, key, "early and foreign")
    ids = chain.block(stray, parts[0], *parts[1:])
    run(chain, store)
    assert list(titles(store)) == [key]
    assert rejected(store)[ids[0]][1] == (
        f"multipart part 1 of {key} is signed by {OTHER.address}, but part 0 by {OWNER.address}"
    )


def test_a_badly_signed_part_and_a_joined_non_message(chain, store):
    key = chain.next_txid(0, _part(OWNER, 0, 1, "", "hello "))
    p0 = _part(OWNER, 0, 1, "", "hello ")
    forged = p0.replace("hello ", "HELLO ")
    ids = chain.block(p0, forged, _part(OWNER, 1, 1, key, "world"))
    assert ids[0] == key
    run(chain, store)
    got = rejected(store)
    assert got[ids[1]][0] == "multipart" and "bad signature" in got[ids[1]][1]
    # The joined text is not an OIP message: rejected under part 0's txid, where it completed.
    assert got[key][0] == "unknown" and "floData starts with 'hello world'" in got[key][1]
    rows = {r.txid: r for r in store.rejections()}
    assert (rows[key].height, rows[key].index) == (0, 2)


def test_incomplete_multiparts_expire_with_one_rejection_per_part(chain, store):
    text = publish(OWNER, 1)
    key = chain.next_txid(0, chain.parts(text, OWNER)[0])
    parts = chain.parts(text, OWNER, key)
    n = len(parts)
    start = T0
    ids = chain.block_at(start, parts[0])
    ids += chain.block_at(start + DAY, parts[2])
    run(chain, store, multipart_expiry=7 * DAY)
    assert store.pending_multiparts() == 1 and rejected(store) == {}
    chain.block_at(start + 7 * DAY, "still in time")  # 7 days exactly: not yet expired
    run(chain, store, multipart_expiry=7 * DAY)
    assert store.pending_multiparts() == 1
    (late,) = chain.block_at(start + 7 * DAY + 1, parts[1])
    run(chain, store, multipart_expiry=7 * DAY)
    missing = "1, 3" if n == 4 else f"1, 3-{n - 1}"
    reason = (
        f"multipart incomplete after {7 * DAY} s: missing parts {missing} of 0-{n - 1} (key {key})"
    )
    got = rejected(store)
    assert {t: got[t] for t in ids} == {t: ("multipart", reason) for t in ids}
    rows = {r.txid: r for r in store.rejections()}
    assert rows[ids[0]].height == 3 and rows[ids[0]].index == -1  # decided by block 3's time
    # The part that arrived after the set expired starts a new wait of its own.
    assert late not in got and store.pending_multiparts() == 1


# -- reorganisations ----------------------------------------------------------------------------


def test_a_multipart_completed_above_a_fork_completes_again_on_the_new_branch(chain, store):
    text = publish(OWNER, 1)
    key = chain.next_txid(0, chain.parts(text, OWNER)[0])
    parts = chain.parts(text, OWNER, key)
    chain.block(*parts[:-1])
    chain.block(parts[-1], publish(OWNER, 2))
    run(chain, store)
    assert len(titles(store)) == 2 and store.pending_multiparts() == 0
    # The last part is mined again on the new branch, record 2 is not.
    new = chain.fork(1, [["filler"], [parts[-1]]])
    report = run(chain, store)
    assert report.rollbacks == 1
    assert titles(store) == {key: ("record 1", False)}
    detail = store.get(key)
    assert detail is not None and detail.provenance.txids[-1] == new[1][0]
    assert rejected(store)[new[0][0]][0] == "unknown"


def test_two_reorgs_in_a_row_still_put_back_consumed_parts(chain, store):
    texts = [publish(OWNER, 1), publish(OWNER, 2)]
    keys = [chain.next_txid(i, chain.parts(t, OWNER)[0]) for i, t in enumerate(texts)]
    a, b = (chain.parts(t, OWNER, k) for t, k in zip(texts, keys, strict=True))
    chain.block(a[0], b[0])
    chain.block(*a[1:])  # completes A
    chain.block("mid")
    chain.block(*b[1:])  # completes B; blocks 1-3 are one commit, with one note
    run(chain, store)
    # Orphans B's completion only (and mines it again): A's note must stay.
    chain.fork(1, [["t", *b[1:]], ["u"]])
    assert run(chain, store).rollbacks == 1
    assert set(titles(store)) == set(keys)
    chain.fork(4, [["x"], list(a[1:]), list(b[1:]), ["y"], ["z"]])  # now A's too
    assert run(chain, store).rollbacks == 1
    assert set(titles(store)) == set(keys) and store.pending_multiparts() == 0


def test_an_expiry_undone_by_a_reorg_is_redone_exactly(chain, store, tmp_path):
    text = publish(OWNER, 1)
    key = chain.next_txid(0, chain.parts(text, OWNER)[0])
    parts = chain.parts(text, OWNER, key)
    chain.block_at(T0, parts[0])
    chain.block_at(T0 + 10 * DAY, "expires it")
    run(chain, store, multipart_expiry=DAY)
    assert store.pending_multiparts() == 0 and len(rejected(store)) == 2
    # The new branch brings the missing parts in time instead: the record completes.
    chain.fork(1, [list(parts[1:]), ["after"]])
    run(chain, store, multipart_expiry=DAY)
    assert titles(store) == {key: ("record 1", False)}
    assert [r.reason for r in store.rejections()][-1].startswith("not an OIP 0.4.2 message")
    fresh = open_catalog(f"sqlite:///{tmp_path / 'fresh.sqlite3'}")
    Indexer(chain.ledger, fresh, multipart_expiry=DAY).run()
    assert snapshot(fresh) == snapshot(store)
    fresh.close()


# -- following ----------------------------------------------------------------------------------


def test_follow_forever_picks_up_new_blocks_until_stopped(chain, store):
    chain.block(publish(OWNER, 1))
    stop = threading.Event()
    seen = []

    def progress(report):
        seen.append(report.height)
        if report.height >= 1:
            stop.set()

    indexer = Indexer(chain.ledger, store)
    worker = threading.Thread(
        target=indexer.follow_forever, args=(0.05, stop), kwargs={"progress": progress}
    )
    worker.start()
    chain.block(publish(OWNER, 2))
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert len(titles(store)) == 2 and seen[-1] == 1


def test_a_stop_event_ends_a_run_after_the_current_commit(chain, store):
    for n in range(5):
        chain.block(publish(OWNER, n))
    stop = threading.Event()
    stop.set()
    report = Indexer(chain.ledger, store, commit_blocks=2).run(stop=stop)
    assert (report.blocks, report.height, store.indexed_height()) == (2, 1, 1)


def test_status_and_check(chain, store):
    chain.block(publish(OWNER, 1), "junk")
    chain.block(chain.parts(publish(OWNER, 2), OWNER)[0])
    indexer = Indexer(chain.ledger, store)
    indexer.run()
    chain.block(publish(OWNER, 3))
    status = indexer.status()
    assert (status.ledger_tip, status.indexed_height, status.lag) == (2, 1, 1)
    assert (status.records, status.rejected, status.pending_multiparts) == (1, 1, 1)
    assert status.ledger_url == chain.ledger.url
    check = indexer.check()
    assert check.equal and (check.height, check.records, check.rejections) == (1, 1, 1)


def test_check_reports_a_catalog_altered_behind_the_indexers_back(chain, store, tmp_path):
    (a, junk, b) = chain.block(publish(OWNER, 1), "junk", publish(OWNER, 2))
    indexer = Indexer(chain.ledger, store)
    indexer.run()
    db = sqlite3.connect(tmp_path / "catalog.sqlite3")
    with db:
        db.execute("UPDATE records SET deactivated = 1 WHERE id = ?", (a,))
        db.execute("DELETE FROM records WHERE id = ?", (b,))
        db.execute("DELETE FROM rejections")
    db.close()
    check = indexer.check()
    assert not check.equal and check.total_differences == 4
    assert set(check.differences) == {
        f"record {a}: deactivated in the catalog, active in a rebuild",
        f"record {b}: missing from the catalog",
        "rejections: 0 in the catalog, 1 in a rebuild",
        f"rejection of {junk} [unknown] missing from the catalog (1x): "
        "not an OIP 0.4.2 message: floData starts with 'junk', expected the 'json:' prefix "
        "or a JSON object",
    }


def test_compare_names_what_differs():
    def snap(records, rejections=(), pending=0):
        return CatalogSnapshot(records, Counter(rejections), pending)

    art = json.dumps({"info": {"title": "x"}, "timestamp": 1})
    other = json.dumps({"info": {"title": "y"}, "timestamp": 1})
    assert compare(snap({"a": (art, False)}), snap({"a": (art, False)})) == []
    assert compare(
        snap({"a": (art, False), "c": (art, False)}, [("t", "edit", "why")], 1),
        snap({"a": (other, True), "b": (art, False)}),
    ) == [
        "record c: in the catalog, not in a rebuild",
        "record b: missing from the catalog",
        "record a: current artifact differs (info)",
        "record a: active in the catalog, deactivated in a rebuild",
        "rejections: 1 in the catalog, 0 in a rebuild",
        "rejection of t [edit] only in the catalog (1x): why",
        "waiting multipart messages: 1 in the catalog, 0 in a rebuild",
    ]


def test_publish_decodes_to_what_was_signed():
    # Guard for the helpers: distinct records have distinct signatures (no accidental replay).
    sigs = {decode(publish(OWNER, n)).artifact.signature for n in range(3)}
    assert len(sigs) == 3
