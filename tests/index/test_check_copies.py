"""``Indexer.check()`` compares each record's copy state too (metadata_signed, superseded_by).

Before, the check compared records by artifact and deactivation only, so a catalog whose
``metadata_signed`` flag or ``superseded_by`` link was altered by hand still checked equal to
a rebuild. Real embedded ledger, indexer and SQLite catalogs; the alterations are SQL, as a
bad restore or a hand edit would make them.
"""

from __future__ import annotations

import sqlite3
from collections import Counter

from etdb.index.catalog import open_catalog
from etdb.index.check import CatalogSnapshot, CopyState, compare
from etdb.index.indexer import Indexer
from etdb.record import encode_publish
from tests.hostile.test_forged_copies import forged, genuine
from tests.index.test_indexer import Chain


def _superseded_scenario(tmp_path):
    """A copy of a record (front-running) superseded by the genuine metadata-signed record."""
    chain = Chain(tmp_path / "ledger.sqlite3")
    real = genuine(meta=True)
    [copy_id] = chain.block(encode_publish(forged(real, real.signature)))
    [real_id] = chain.block(encode_publish(real))
    catalog = open_catalog(f"sqlite:///{tmp_path / 'catalog.sqlite3'}")
    indexer = Indexer(chain.ledger, catalog)
    indexer.run()
    return chain, catalog, indexer, real_id, copy_id


def _alter(tmp_path, statement: str, *args: object) -> None:
    db = sqlite3.connect(tmp_path / "catalog.sqlite3")
    with db:
        assert db.execute(statement, args).rowcount == 1
    db.close()


def test_a_superseded_copy_checks_equal(tmp_path):
    chain, catalog, indexer, real_id, copy_id = _superseded_scenario(tmp_path)
    try:
        copy = catalog.get(copy_id)
        assert copy is not None and copy.provenance.superseded_by == real_id
        check = indexer.check()
        assert check.equal, check.differences
        assert check.records == 2
    finally:
        catalog.close()
        chain.close()


def test_an_altered_metadata_signed_flag_is_a_difference(tmp_path):
    chain, catalog, indexer, real_id, _ = _superseded_scenario(tmp_path)
    try:
        _alter(tmp_path, "UPDATE records SET metadata_signed = 0 WHERE id = ?", real_id)
        check = indexer.check()
        assert not check.equal
        assert check.differences == [
            f"record {real_id}: location only in the catalog, metadata signed in a rebuild"
        ]
    finally:
        catalog.close()
        chain.close()


def test_an_altered_superseded_by_is_a_difference(tmp_path):
    chain, catalog, indexer, real_id, copy_id = _superseded_scenario(tmp_path)
    try:
        other = "f" * 64
        _alter(tmp_path, "UPDATE records SET superseded_by = ? WHERE id = ?", other, copy_id)
        check = indexer.check()
        assert check.differences == [
            f"record {copy_id}: superseded by {other} in the catalog, "
            f"superseded by {real_id} in a rebuild"
        ]
    finally:
        catalog.close()
        chain.close()


def test_compare_names_copy_state_differences():
    art = '{"timestamp":1}'

    def snap(signed: bool, by: str | None) -> CatalogSnapshot:
        return CatalogSnapshot({"a": (art, False)}, Counter(), 0, {"a": CopyState(signed, by)})

    assert compare(snap(True, None), snap(True, None)) == []
    assert compare(snap(False, "b"), snap(True, None)) == [
        "record a: location only in the catalog, metadata signed in a rebuild",
        "record a: superseded by b in the catalog, not superseded in a rebuild",
    ]
