"""The standing property suite: validly signed hostile payloads through the real indexer.

Every example writes a fresh embedded ledger (``local://``, blocks appended as the ledger's own
hashing makes them, with fixed block times so txids and runs reproduce) holding a random
mixture, from ``payloads.py``, of publishes with hostile contents, edits (valid and hostile,
re-signed or not), deactivations, multipart sets (complete, incomplete, out of order, mixed
signers, an index twice), verbatim replays and signature malleations of earlier messages,
spread over blocks, with reorganisations. It is indexed block by block into a real SQLite
catalog (several ``run(limit_blocks=...)``, the catalog sometimes closed and reopened in
between, reorgs followed) and then:

1. the indexer never raised: every run returned (payloads end as records, edits,
   deactivations, waiting parts or rejections with a reason);
2. incremental == rebuild: ``Indexer.check()`` (a rebuild from block 0 into another catalog,
   compared through the read interface) reports no difference;
3. every stored record reads back (``store.get``, search with every facet) and its API record,
   portal page and the page's JSON twin answer through the real FastAPI app without a 5xx.

CI runs :data:`EXAMPLES` examples of at least :data:`MIN_PAYLOADS` payloads each, derandomized
(a failure reproduces on every machine); the test counts the payloads written and fails if
fewer than :data:`TOTAL` were.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from etdb.api import create_app
from etdb.config import Settings
from etdb.index.catalog import SqlCatalog, open_catalog
from etdb.index.check import snapshot
from etdb.index.indexer import DEFAULT_EXPIRY, Indexer, IndexReport
from etdb.index.query import FACETS, SearchQuery
from etdb.ledger.local_schema import compute_txid
from etdb.record import MultipartError, PrivateKey, split
from etdb.record.multipart import sign_part
from tests.hostile import payloads as p
from tests.index.test_indexer import Chain

EXAMPLES = 200
MIN_PAYLOADS = 50
TOTAL = 10_000
assert EXAMPLES * MIN_PAYLOADS >= TOTAL
BLOCK_SECONDS = 600
MAX_SPLIT = 12_000  # longest text sent as a multipart (bytes)
MAX_PARTS = 12  # about the most parts a multipart gets (parts take a block's room)
JUNK = ("", "json:", "json:{}", "hello etdb", "oip-mp(", "oip-mp(0,1,x,,y):z",
        '{"oip042":{"transfer":{}}}', "json:" + "[" * 5000, "text:\ud800".encode(
            "utf-8", "replace").decode())  # fmt: skip
KINDS = ("publish",) * 5 + ("edit",) * 5 + ("deactivate",) * 2 + ("multipart", "multipart") + (
    "parts", "parts", "replay", "malleate", "malleate", "copy", "junk")  # fmt: skip

fed: list[int] = []  # payloads written per example (every example, shrinking included)
outcomes: Counter[str] = Counter()  # what the indexer made of them, over all examples
#: Each outcome at least this often over the whole run, so the generators cannot silently
#: degrade into payloads the indexer rejects at the first check (about half of what the
#: derandomized run gives: 1,717 records, 193 edits, 233 deactivations, 8,706 rejections,
#: 63 rollbacks, 73 multipart records, 141 edited records of 16,269 payloads).
MIN_OUTCOMES = {"records": 800, "edits": 90, "deactivations": 100, "rejections": 4_000,
                "rollbacks": 30, "multipart records": 35, "edited records": 70}  # fmt: skip


@dataclass
class Multipart:
    """A multipart set being laid out: part 0's text is known before its txid."""

    text: str
    key: PrivateKey
    size: int
    clean: bool
    parts: list[str] = field(default_factory=list)
    here: int = 0  # parts 1..here go in part 0's block


class Scenario:
    """One ledger, one catalog, one indexer, and the generator's memory of what it sent."""

    def __init__(self, folder: Path, data: Any) -> None:
        self.folder, self.data = folder, data
        self.chain = Chain(folder / "ledger.sqlite3")
        self.url = f"sqlite:///{folder / 'catalog.sqlite3'}"
        self.catalog: SqlCatalog = open_catalog(self.url)
        self.options = dict(
            publishers=data.draw(
                st.sampled_from((None, frozenset(k.address for k in p.KEYS[:2]))), label="allow"
            ),
            multipart_expiry=data.draw(st.sampled_from((DEFAULT_EXPIRY, 6_000, 1_800))),
            commit_blocks=data.draw(st.sampled_from((1, 3, 200)), label="commit blocks"),
        )
        self.indexer = Indexer(self.chain.ledger, self.catalog, **self.options)
        self.records: list[tuple[str, PrivateKey]] = []  # (txid, signer) of publishes sent
        self.clean: list[tuple[str, PrivateKey]] = []  # those without hostile changes
        self.sent: list[str] = []
        self.waiting: list[str] = []  # multipart parts still to send
        self.made = 0  # records drawn (their timestamps and locations are unique)
        self.stamp = p.T0 + 10_000_000  # edit and deactivation timestamps
        self.when = 1_700_000_000
        self.unindexable = 0  # blocks to write before the next run (a longer branch)

    def close(self) -> None:
        self.catalog.close()
        self.chain.close()

    # -- the ledger ---------------------------------------------------------------------------

    def key(self) -> PrivateKey:
        return p.KEYS[max(0, self.data.draw(st.integers(-3, 2), label="signer"))]

    def next_stamp(self) -> int:
        if self.data.draw(st.integers(0, 9), label="stale stamp") == 9:
            return self.stamp - self.data.draw(st.integers(0, 5))
        self.stamp += 1
        return self.stamp

    def target(self) -> tuple[str, PrivateKey]:
        """A record to edit or deactivate, mostly one that was published clean."""
        pick = self.data.draw(st.integers(0, 9), label="target kind")
        pool = self.clean if pick < 7 and self.clean else self.records
        if not pool or pick == 9:
            return compute_txid("00" * 32, self.made, None, "nothing"), p.KEYS[0]
        rid, owner = self.data.draw(st.sampled_from(pool), label="target")
        foreign = self.data.draw(st.integers(0, 4), label="foreign") == 4
        return rid, self.key() if foreign else owner

    def slot(self, kind: str) -> list[Any]:
        """The entries one drawn action adds to the block being laid out."""
        data = self.data
        if kind == "publish":
            self.made += 1
            key = self.key()
            return [("publish", *p.draw_publish(data, key, self.made), key)]
        if kind == "copy" and self.made:  # record n again (same identity), other metadata
            n = data.draw(st.integers(1, self.made), label="copy of")
            return [("publish", *p.draw_publish(data, p.KEYS[0], n), p.KEYS[0])]
        if kind in ("edit", "deactivate"):
            rid, key = self.target()
            draw = p.draw_edit if kind == "edit" else p.draw_deactivate
            return [draw(data, rid, key, self.next_stamp())]
        if kind == "multipart":
            self.made += 1
            key = self.key()
            text, clean = p.draw_publish(data, key, self.made)
            length = len(text.encode())
            if length > MAX_SPLIT:  # splitting is slow for long non-ASCII text: send it whole
                return [("publish", text, clean, key)]
            size = min(
                max(data.draw(st.sampled_from((150, 400, 900))), length // MAX_PARTS), length // 2
            )
            mp = Multipart(text, key, max(size, 4), clean)
            try:
                mp.parts = split(text, mp.key, part0_txid="0" * 64, part0_size=size, part_size=size)
            except MultipartError:
                return [text]  # fits one part after all
            mp.here = data.draw(st.integers(0, min(3, len(mp.parts) - 1)), label="parts here")
            return [mp] + [(mp, i) for i in range(1, 1 + mp.here)]
        if kind == "parts":
            count = data.draw(st.integers(1, 40), label="parts")
            out, self.waiting = self.waiting[:count], self.waiting[count:]
            return out
        if kind == "replay" and self.sent:
            return [data.draw(st.sampled_from(self.sent), label="replayed")]
        if kind == "malleate" and self.sent:
            mangled = p.malleate(data, data.draw(st.sampled_from(self.sent), label="malleated"))
            return [mangled] if mangled is not None else []
        return [data.draw(st.sampled_from(JUNK), label="junk")]

    def write_block(self) -> int:
        """Draw, lay out and append one block; the number of payloads in it."""
        slots: list[Any] = []
        for _ in range(self.data.draw(st.integers(3, 12), label="actions")):
            slots += self.slot(self.data.draw(st.sampled_from(KINDS), label="kind"))
        order = self.data.draw(st.permutations(range(len(slots))), label="order")
        slots = [slots[i] for i in order] or ["hello"]
        texts = self._fill(slots)
        txids = self.chain.block_at(self.when, *texts)
        for t, slot in zip(txids, slots, strict=True):
            if isinstance(slot, Multipart) or (isinstance(slot, tuple) and slot[0] == "publish"):
                self.records.append((t, self._signer(slot)))
                if isinstance(slot, tuple) and slot[2] and self.fits(slot):
                    self.clean.append(self.records[-1])
        self.sent += texts
        self.when += BLOCK_SECONDS * self.data.draw(st.sampled_from((1, 1, 1, 3, 12)))
        return len(texts)

    def _signer(self, slot: Any) -> PrivateKey:
        return slot.key if isinstance(slot, Multipart) else slot[3]

    def fits(self, slot: Any) -> bool:
        """Whether the allow-list lets the slot's signer publish."""
        allowed = self.options["publishers"]
        return allowed is None or p.address(self._signer(slot)) in allowed

    def _fill(self, slots: list[Any]) -> list[str]:
        """Texts in block order: part 0s first get their txids (which commit to the parent
        block and the position), then their sibling parts can name them."""
        tip = self.chain.ledger.tip()
        parent = tip.hash if tip.height >= 0 else self.chain._chain_id()
        texts: list[str | None] = [None] * len(slots)
        for i, slot in enumerate(slots):
            if isinstance(slot, Multipart):
                texts[i] = slot.parts[0]
                txid = compute_txid(parent, i, None, slot.parts[0])
                slot.parts = split(
                    slot.text, slot.key, part0_txid=txid, part0_size=slot.size, part_size=slot.size
                )
                self._queue_rest(slot, txid)
            elif isinstance(slot, str):
                texts[i] = slot
            elif isinstance(slot[0], str):
                texts[i] = slot[1]
        for i, slot in enumerate(slots):
            if texts[i] is None:
                mp, index = slot
                texts[i] = mp.parts[index]
        return [t for t in texts if t is not None]

    def _queue_rest(self, mp: Multipart, txid: str) -> None:
        """The parts not sent with part 0: some dropped, doubled, or signed by another key."""
        data = self.data
        for i, text in list(enumerate(mp.parts))[1 + mp.here :]:
            fate = data.draw(st.integers(0, 39), label="part fate")
            if fate == 39:
                continue  # never sent: the set stays incomplete
            if fate == 38:
                self.waiting.append(text)  # the same index twice
            if fate == 37:
                other = p.KEYS[(p.KEYS.index(mp.key) + 1) % len(p.KEYS)]
                chunk = text.partition("):")[2]
                text = sign_part(other, i, len(mp.parts) - 1, txid, chunk or "x", limit=10**6)
            self.waiting.append(text)
        order = data.draw(st.permutations(range(len(self.waiting))), label="waiting order")
        self.waiting = [self.waiting[i] for i in order]

    def reorg(self) -> None:
        """Drop the newest blocks; the next ones written form the longer branch."""
        tip = self.chain.ledger.tip().height
        if tip < 2:
            return
        depth = self.data.draw(st.integers(1, min(3, tip)), label="reorg depth")
        conn = sqlite3.connect(self.chain.path, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("DELETE FROM entries WHERE height > ?", (tip - depth,))
            conn.execute("DELETE FROM blocks WHERE height > ?", (tip - depth,))
            conn.execute("COMMIT")
        finally:
            conn.close()
        self.unindexable = depth + 1

    # -- the catalog --------------------------------------------------------------------------

    def index_some(self) -> None:
        action = self.data.draw(st.integers(0, 3), label="index")
        if self.unindexable or action == 3:
            return
        if action == 2:  # as another `etdb index` run would: a new handle, a new indexer
            self.catalog.close()
            self.catalog = open_catalog(self.url)
            self.indexer = Indexer(self.chain.ledger, self.catalog, **self.options)
        self.run(self.data.draw(st.integers(1, 4), label="limit"))

    def index_all(self) -> None:
        while self.run(5).blocks:
            pass

    def run(self, limit: int) -> IndexReport:
        report = self.indexer.run(limit_blocks=limit)
        for name in ("records", "edits", "deactivations", "rejections", "rollbacks"):
            outcomes[name] += getattr(report, name)
        return report


# -- property 3: every stored record reads back and renders -----------------------------------


def check_reads(scenario: Scenario) -> None:
    store = scenario.catalog
    ids = sorted(snapshot(store).records)
    everything = SearchQuery(include_deactivated=True, facets=tuple(FACETS), limit=5)
    assert store.search(everything).total == len(ids)
    app = create_app(store, settings=Settings(home=scenario.folder / "home"), export_rows=5)
    with TestClient(app) as client:
        for url in (
            f"/api/v1/records?facets={','.join(FACETS)}&include_deactivated=true",
            "/api/v1/records?format=ndjson",
            "/api/v1/summary",
            "/api/v1/publishers",
            "/api/v1/rejections?limit=500",
            "/browse.json",
            "/browse",
        ):
            answered(client, url)
        for rid in ids:
            detail = store.get(rid)
            assert detail is not None, rid
            outcomes["multipart records"] += len(detail.provenance.txids) > 1
            outcomes["edited records"] += bool(detail.provenance.edits)
            words = " ".join(str(detail.summary.title).split()[:3])
            found = store.search(SearchQuery(q=words or None, facets=tuple(FACETS), limit=5))
            assert found.total >= 0
            text = urlencode({"q": sendable(words)})
            for url in (
                f"/api/v1/records/{rid}",
                f"/tomogram/{rid}",
                f"/tomogram/{rid}.json",
                f"/api/v1/records?{text}&facets={','.join(FACETS)}",
                f"/browse?{text}",
            ):
                answered(client, url)


def sendable(text: str) -> str:
    """``text`` as a URL can carry it (a lone surrogate cannot be percent-encoded)."""
    return text.encode("utf-8", "replace").decode("utf-8")


def answered(client: TestClient, url: str) -> None:
    response = client.get(url)
    assert response.status_code < 500, f"GET {url}: {response.status_code} {response.text[:500]}"


# -- the property -----------------------------------------------------------------------------


def run_scenario(data: Any) -> None:
    with tempfile.TemporaryDirectory(prefix="etdb-hostile-") as tmp:
        scenario = Scenario(Path(tmp), data)
        try:
            target = data.draw(st.integers(MIN_PAYLOADS, MIN_PAYLOADS + 30), label="payloads")
            written = 0
            while written < target or scenario.unindexable:
                written += scenario.write_block()
                scenario.unindexable = max(0, scenario.unindexable - 1)
                if not scenario.unindexable and data.draw(st.integers(0, 5), label="reorg") == 5:
                    scenario.reorg()
                scenario.index_some()
            fed.append(written)
            scenario.index_all()
            report = scenario.indexer.check()
            assert report.equal, report.differences
            check_reads(scenario)
        finally:
            scenario.close()


@pytest.mark.slow
def test_signed_hostile_payloads_never_crash_and_rebuild_the_same():
    fed.clear()
    outcomes.clear()
    # No deadline: one example writes a ledger, indexes it twice (incrementally, then the
    # rebuild of check()) and renders every record, about a second on a busy machine.
    exercise = settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None)(
        given(st.data())(run_scenario)
    )
    exercise()
    assert sum(fed) >= TOTAL, f"only {sum(fed)} payloads in {len(fed)} examples"
    scarce = {
        name: outcomes[name] for name, least in MIN_OUTCOMES.items() if outcomes[name] < least
    }
    assert not scarce, f"outcomes rarer than {MIN_OUTCOMES}: {scarce}"
