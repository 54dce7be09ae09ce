"""Forged copies of a real record (issue 11): another signature spelling, other metadata.

OIP 0.4.2 signs only ``location-floAddress-timestamp``. An attacker re-publishes a victim's
record with another title and a signature string that still verifies: (a) the unused low bits
of the base64's last character flipped, (b) the high-S twin ``(r, n - s)`` with the recovery id
flipped. Before the fix both were indexed as the victim's records (replays were found by
signature text) and verified as "valid". Checked to fail without the fix: (a) and (b) on the
commit before it (7ec08e7), where the forged copies were indexed and verify_publish said valid;
the supersede and reorg cases need metaSignature, which did not exist before.

Real components: the embedded ledger, SQLite catalogs, the indexer, the publisher's signing.
"""

from __future__ import annotations

import base64
import json

from etdb.index.catalog import open_catalog
from etdb.index.indexer import Indexer
from etdb.index.query import SearchQuery
from etdb.record import Artifact, encode_publish, sign_artifact, verify_publish
from etdb.record.signing import CURVE_ORDER
from tests.index.records import make_artifact
from tests.index.test_indexer import OWNER, Chain, deactivate, foreign_edit

_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def low_bits(signature: str) -> str:
    """The same 65 bytes, spelled with other unused low bits in the last base64 character."""
    assert signature.endswith("=") and not signature.endswith("==")  # 65 bytes: 87 chars + "="
    last = _B64.index(signature[-2])
    return signature[:-2] + _B64[last ^ 0b01] + "="


def high_s(signature: str) -> str:
    """The twin (r, n - s) with the recovery id flipped (header 31 <-> 32): verifies too."""
    raw = base64.b64decode(signature)
    s = int.from_bytes(raw[33:], "big")
    header = 31 + ((raw[0] - 31) ^ 1)
    return base64.b64encode(
        bytes([header]) + raw[1:33] + (CURVE_ORDER - s).to_bytes(32, "big")
    ).decode()


def genuine(meta: bool = False, **overrides) -> Artifact:
    draft = Artifact.from_wire(make_artifact(publisher=None, **overrides))
    if meta:
        return sign_artifact(draft, OWNER, timestamp=1_600_000_001, meta=True)
    return sign_artifact(draft, OWNER, timestamp=1_600_000_001)


def forged(real: Artifact, signature: str, title: str = "forged") -> Artifact:
    doc = real.to_wire()
    doc["info"]["title"] = title
    doc.pop("metaSignature", None)
    doc["signature"] = signature
    return Artifact.from_wire(doc)


def index(chain: Chain, tmp_path, name: str = "catalog") -> tuple[Indexer, object]:
    catalog = open_catalog(f"sqlite:///{tmp_path / (name + '.sqlite3')}")
    indexer = Indexer(chain.ledger, catalog)
    indexer.run()
    return indexer, catalog


def ids_in(catalog) -> list[str]:
    return [i.id for i in catalog.search(SearchQuery(include_deactivated=True)).items]


def reasons(catalog) -> dict[str, str]:
    return {r.txid: r.reason for r in catalog.rejections(limit=1000)}


def test_malleated_copies_after_the_genuine_record_are_rejected(tmp_path):
    chain = Chain(tmp_path / "ledger.sqlite3")
    real = genuine()
    [real_id] = chain.block(encode_publish(real))
    bits, twin = low_bits(real.signature), high_s(real.signature)
    assert bits != real.signature and twin != real.signature
    ids = chain.block(encode_publish(forged(real, bits)), encode_publish(forged(real, twin)))
    indexer, catalog = index(chain, tmp_path)
    assert ids_in(catalog) == [real_id]
    detail = catalog.get(real_id)
    assert detail is not None and detail.artifact["info"]["title"] != "forged"
    assert catalog.get(ids[0]) is None and catalog.get(ids[1]) is None
    why = reasons(catalog)
    assert "non-canonical signature (base64 text" in why[ids[0]]
    assert "non-canonical signature (high S)" in why[ids[1]]
    assert indexer.check().equal


def test_malleated_signatures_do_not_verify():
    """What `etdb record check TXID` and the portal's provenance box call."""
    real = genuine()
    assert verify_publish(real).valid
    for spelling in (low_bits(real.signature), high_s(real.signature)):
        result = verify_publish(forged(real, spelling))
        assert not result.valid and "non-canonical signature" in result.reason


def test_malleated_copy_before_the_genuine_record_is_rejected(tmp_path):
    chain = Chain(tmp_path / "ledger.sqlite3")
    real = genuine()
    [forged_id] = chain.block(encode_publish(forged(real, high_s(real.signature))))
    [real_id] = chain.block(encode_publish(real))
    indexer, catalog = index(chain, tmp_path)
    assert catalog.get(forged_id) is None
    detail = catalog.get(real_id)
    assert detail is not None and detail.summary.title != "forged"
    assert indexer.check().equal


def test_malleated_edit_and_deactivation_signatures_are_rejected(tmp_path):
    chain = Chain(tmp_path / "ledger.sqlite3")
    real = genuine()
    [real_id] = chain.block(encode_publish(real))
    edit = json.loads(foreign_edit(real_id, OWNER, 1_600_000_100).removeprefix("json:"))
    edit["oip042"]["edit"]["signature"] = high_s(edit["oip042"]["edit"]["signature"])
    off = json.loads(deactivate(real_id, OWNER, 1_600_000_200).removeprefix("json:"))
    body = off["oip042"]["deactivate"]["artifact"]
    body["signature"] = low_bits(body["signature"])
    ids = chain.block("json:" + json.dumps(edit), "json:" + json.dumps(off))
    _, catalog = index(chain, tmp_path)
    detail = catalog.get(real_id)
    assert detail is not None and not detail.provenance.deactivated
    assert detail.provenance.edits == ()
    why = reasons(catalog)
    assert "non-canonical signature (high S)" in why[ids[0]]
    assert "non-canonical signature (base64 text" in why[ids[1]]


# -- metaSignature: among copies of one identity, a metadata-signed one wins ----------------------


def test_same_signature_copy_first_is_superseded_by_the_metadata_signed_record(tmp_path):
    """The attacker copies the genuine record (same canonical signature, other title, its
    metaSignature dropped) into an earlier block (front-running): it holds the identity until
    the genuine metadata-signed record arrives, which replaces it. The copy stays visible,
    superseded; a rebuild agrees."""
    chain = Chain(tmp_path / "ledger.sqlite3")
    real = genuine(meta=True)
    assert real.metaSignature
    [forged_id] = chain.block(encode_publish(forged(real, real.signature)))
    [real_id] = chain.block(encode_publish(real))
    indexer, catalog = index(chain, tmp_path)
    detail = catalog.get(real_id)
    assert detail is not None and detail.provenance.metadata_signed
    assert not detail.provenance.deactivated and detail.summary.title != "forged"
    copy = catalog.get(forged_id)
    assert copy is not None and copy.provenance.superseded_by == real_id
    assert copy.provenance.deactivated and not copy.provenance.metadata_signed
    assert ids_in_active(catalog) == [real_id]
    assert indexer.check().equal


def test_copy_after_a_metadata_signed_record_is_a_replay(tmp_path):
    chain = Chain(tmp_path / "ledger.sqlite3")
    real = genuine(meta=True)
    [real_id] = chain.block(encode_publish(real))
    with_meta = forged(real, real.signature).to_wire()
    with_meta["metaSignature"] = real.metaSignature  # the genuine one, over other metadata
    [bad_meta] = chain.block(encode_publish(Artifact.from_wire(with_meta)))
    [plain] = chain.block(encode_publish(forged(real, real.signature)))
    indexer, catalog = index(chain, tmp_path)
    why = reasons(catalog)
    assert "metaSignature does not verify" in why[bad_meta]
    assert why[plain] == f"replay of record {real_id}"
    assert ids_in_active(catalog) == [real_id]
    assert indexer.check().equal


def test_reorg_of_the_superseding_block_restores_the_earlier_copy(tmp_path):
    """The indexer's rollback is per height: undoing the block that carried the metadata-signed
    record gives back the catalog as it was before it, the earlier copy active again."""
    chain = Chain(tmp_path / "ledger.sqlite3")
    real = genuine(meta=True)
    [first_id] = chain.block(encode_publish(forged(real, real.signature)))
    catalog = open_catalog(f"sqlite:///{tmp_path / 'catalog.sqlite3'}")
    indexer = Indexer(chain.ledger, catalog)
    indexer.run()
    before = catalog.get(first_id)
    assert before is not None and not before.provenance.deactivated
    [real_id] = chain.block(encode_publish(real))
    indexer.run()
    assert ids_in_active(catalog) == [real_id]
    # The block with the genuine record is orphaned by a longer branch without it.
    chain.fork(1, [["not a record"], ["still not a record"]])
    indexer.run()
    assert ids_in_active(catalog) == [first_id]
    after = catalog.get(first_id)
    assert after is not None and after.provenance.superseded_by is None
    assert catalog.get(real_id) is None
    assert indexer.check().equal


def ids_in_active(catalog) -> list[str]:
    return [i.id for i in catalog.search(SearchQuery()).items]


# -- adoption after a lost journal ----------------------------------------------------------------


def test_adoption_refuses_several_records_claiming_one_dataset(tmp_path):
    """Two records of ours claim one sid (different identities): it is not adopted, its
    conflict names both txids, so the lab decides (etdb publish reports it as that dataset's
    problem: tests/publish/test_publish_adoption.py). A forged copy of one of them is no candidate
    (it is not in the catalog), so it cannot be adopted and edited."""
    from etdb.publish.known import catalog_records

    chain = Chain(tmp_path / "ledger.sqlite3")
    one = genuine(meta=True, sid="ab-7")
    two = sign_artifact(
        Artifact.from_wire(make_artifact(publisher=None, sid="ab-7", title="again")),
        OWNER,
        timestamp=1_600_000_050,
        meta=True,
    )
    [one_id] = chain.block(encode_publish(one))
    [forged_id] = chain.block(encode_publish(forged(one, high_s(one.signature))))
    _, catalog = index(chain, tmp_path)
    adoptable = catalog_records(catalog, OWNER.address).adoptable
    assert adoptable["ab-7"].record_txid == one_id and adoptable["ab-7"].metadata_signed
    assert forged_id not in {k.record_txid for k in adoptable.values()}
    [two_id] = chain.block(encode_publish(two))
    Indexer(chain.ledger, catalog).run()
    claims = catalog_records(catalog, OWNER.address)
    assert "ab-7" not in claims.adoptable
    assert one_id in claims.conflicts["ab-7"] and two_id in claims.conflicts["ab-7"]
