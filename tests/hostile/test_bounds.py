"""Bounds on record fields (issue 11, scope 3): sizes that overflow the catalog, records of any
size, integers beyond 64 bits, and `etdb index --check` on a catalog that cannot be built.

Everything runs on the real embedded ledger (``local://``), real SQLite catalogs (PostgreSQL
too where noted) and the real ``etdb`` CLI. Before the fix, two validly signed records with
``fsize`` 2^63-1 crashed every indexer at the same block (OverflowError summing ``_bytes``)
while ``etdb index --check`` exited 0; a signed edit with a timestamp beyond 64 bits crashed
it too; records of any size entered the catalog; the publisher built them.
"""

from __future__ import annotations

import json
import sqlite3
from itertools import count

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from etdb.cli import app
from etdb.index.catalog import open_catalog
from etdb.index.indexer import Indexer
from etdb.index.query import SearchQuery
from etdb.publish.dataset import DatasetError, build_artifact
from etdb.record import encode_edit, sign_edit
from etdb.record.limits import (
    DEFAULT_LIMITS,
    INT64_MAX,
    JS_SAFE_MAX,
    SIGNING_ALLOWANCE,
    RecordLimits,
    record_bytes,
)
from tests.index.conftest import VARIANTS, catalog_for
from tests.index.records import REAL_FILES, file_set, published, signed_artifact, txid
from tests.index.test_indexer import OWNER, Chain, publish, rejected

runner = CliRunner()
HUGE = [dict(f, fsize=INT64_MAX) for f in file_set("tiltSeries", "reconstruction")]


def etdb(*args: str, code: int = 0, env: dict[str, str] | None = None) -> str:
    result = runner.invoke(app, list(args), env=env)
    assert result.exit_code == code, result.output
    return result.output


def send(chain: Chain, text: str, at_least: int = 1) -> str:
    """``text`` in one block: as it is, or (over the embedded ledger's 64 KiB a transaction)
    as signed oip-mp parts, FLO's 1040 bytes each. The message's id: part 0's txid."""
    if len(text) <= 60_000:
        return chain.block(text)[0]
    part0 = chain.next_txid(0, chain.parts(text, OWNER)[0])
    parts = chain.parts(text, OWNER, part0)
    assert len(parts) >= at_least
    assert chain.block(*parts)[0] == part0
    return part0


@pytest.fixture
def chain(etdb_home):
    c = Chain(etdb_home / "ledger.sqlite3")  # the default `ledger` setting, local://
    yield c
    c.close()


# -- 1. fsize 2^63-1: the catalog stays buildable -------------------------------------------------


def test_max_sizes_do_not_make_the_catalog_unbuildable(chain, etdb_home):
    # Two validly signed records of 2 x (2^63-1) bytes each, then an ordinary one.
    chain.block(publish(OWNER, 1, files=HUGE), publish(OWNER, 2, files=HUGE))
    chain.block(publish(OWNER, 3))
    out = etdb("index")  # was: indexer: failed: OverflowError, at this block, forever
    assert "1 records" in out and "2 rejected" in out
    reasons = [r["reason"] for r in json.loads(etdb("index", "rejections", "--json"))]
    assert len(reasons) == 2
    assert all("record_max_file_size" in r and str(INT64_MAX) in r for r in reasons)
    assert "1 records" in etdb("index", "--rebuild")
    assert "equals a fresh rebuild to height 1" in etdb("index", "--check")


@pytest.mark.parametrize("variant", VARIANTS)
def test_byte_sums_cannot_overflow_whatever_got_in(variant, tmp_path):
    # Records written straight through the store (as by a catalog built before limits, or
    # with the largest limits): the per-catalog sum is exact, on both backends.
    with catalog_for(variant, tmp_path) as catalog:
        with catalog.transaction():
            for n in range(3):
                art = signed_artifact(OWNER, timestamp=1_600_000_000 + n, files=HUGE)
                catalog.add_record(published(art, height=n))
        with catalog.transaction():  # a second transaction adds to the stored sums
            art = signed_artifact(OWNER, timestamp=1_600_000_009, files=HUGE)
            catalog.add_record(published(art, height=9))
        assert catalog.summary().total_bytes == 4 * INT64_MAX
        assert catalog.summary().records == 4
        assert catalog.search(SearchQuery(facets=("species",))).total == 4


# -- 2. every limit is a rejection with its reason ---------------------------------------------------


def _deep(levels: int) -> dict:
    node: dict = {"leaf": 1}
    for _ in range(levels):
        node = {"x": node}
    return node


OVER_LIMITS = {
    "title": (dict(title="t" * 1_025), "info.title: 1,025 characters", "record_max_text"),
    "notes": (dict(notes="n" * 16_385), "details.artNotes: 16,385", "record_max_notes"),
    "fname": (
        dict(files=[dict(REAL_FILES[0], fname="f" * 1_025)]),
        "storage.files.fname",
        "record_max_text",
    ),
    "files": (
        dict(files=[dict(REAL_FILES[0], fname=f"s{i}.jpg", fsize=1) for i in range(1_001)]),
        "1,001 files",
        "record_max_files",
    ),
    "file size": (dict(files=[dict(REAL_FILES[0], fsize=2**44 + 1)]), "fsize", "file_size"),
    "negative size": (dict(files=[dict(REAL_FILES[0], fsize=-1)]), "fsize: -1", "file_size"),
    "total": (
        dict(files=[dict(REAL_FILES[0], fname=f"{i}", fsize=2**44) for i in range(65)]),
        "bytes in all",
        "record_max_total_size",
    ),
    "payload": (
        dict(description="d" * 16_000, extra={f"k{i}": "v" * 16_000 for i in range(17)}),
        "bytes",
        "record_max_payload_bytes",
    ),
    "depth": (dict(extra={"deep": _deep(20)}), "nested deeper than 16", "record_max_depth"),
    "integer": (dict(extra={"big": 2**64}), "18446744073709551616", "64-bit"),
}


@pytest.mark.parametrize("case", sorted(OVER_LIMITS))
def test_records_over_a_limit_are_rejected_with_the_reason(case, tmp_path):
    overrides, where, setting = OVER_LIMITS[case]
    overrides = dict(overrides)
    extra = overrides.pop("extra", {})
    art = signed_artifact(OWNER, timestamp=1_600_000_001, **overrides)
    art.update(extra)  # unknown keys: not signed, kept as published
    chain = Chain(tmp_path / "ledger.sqlite3")
    text = "json:" + json.dumps({"oip042": {"publish": {"artifact": art}}})
    tx = send(chain, text)
    (ok,) = chain.block(publish(OWNER, 2))
    catalog = open_catalog(f"sqlite:///{tmp_path / 'catalog.sqlite3'}")
    try:
        report = Indexer(chain.ledger, catalog).run()
        assert report.records == 1 and report.rejections == 1
        kind, reason = rejected(catalog)[tx]
        assert kind == "publish" and reason.startswith("over the record limits: ")
        assert where in reason and setting in reason, reason
        assert catalog.get(ok) is not None and catalog.get(tx) is None
    finally:
        catalog.close()
        chain.close()


def test_a_signed_edit_beyond_64_bits_is_rejected_not_a_crash(tmp_path):
    chain = Chain(tmp_path / "ledger.sqlite3")
    (record,) = chain.block(publish(OWNER, 1))
    patch = [{"op": "replace", "path": "/info/title", "value": "later"}]
    (edit,) = chain.block(encode_edit(sign_edit(record, patch, OWNER, timestamp=2**64)))
    catalog = open_catalog(f"sqlite:///{tmp_path / 'catalog.sqlite3'}")
    try:
        report = Indexer(chain.ledger, catalog).run()  # was: OverflowError storing the edit
        assert report.rejections == 1 and report.edits == 0
        assert "beyond what a catalog stores" in rejected(catalog)[edit][1]
    finally:
        catalog.close()
        chain.close()


def test_an_edit_may_not_grow_a_record_over_the_limits(tmp_path):
    chain = Chain(tmp_path / "ledger.sqlite3")
    (record,) = chain.block(publish(OWNER, 1))
    patch = [{"op": "add", "path": "/details/artNotes", "value": "n" * 20_000}]
    (edit,) = chain.block(encode_edit(sign_edit(record, patch, OWNER, timestamp=1_700_000_000)))
    catalog = open_catalog(f"sqlite:///{tmp_path / 'catalog.sqlite3'}")
    try:
        Indexer(chain.ledger, catalog).run()
        kind, reason = rejected(catalog)[edit]
        assert kind == "edit" and "details.artNotes: 20,000 characters" in reason
    finally:
        catalog.close()
        chain.close()


def test_a_157_part_record_is_rejected_and_pages_stay_small(chain, etdb_home):
    # The attack: one multipart record of ~160 KB of title made /, /browse and the API list
    # ~10 MB each. Its title is over record_max_text: it never reaches a page.
    assert send(chain, publish(OWNER, 1, title="A" * 150_000), at_least=157)
    chain.block(publish(OWNER, 2))
    assert "1 records" in etdb("index")
    rows = json.loads(etdb("index", "rejections", "--json"))
    assert any("info.title: 150,000 characters" in r["reason"] for r in rows)


# -- 3. the limits are settings, and part of what a catalog was built with ---------------------------


def test_limits_are_settings_and_other_limits_ask_for_a_rebuild(chain, etdb_home):
    one, three = file_set("tiltSeries"), file_set(*["snapshot"] * 3)
    chain.block(publish(OWNER, 1, files=one), publish(OWNER, 2, files=three))
    assert "1 records" in etdb("index", env={"ETDB_RECORD_MAX_FILES": "2"})
    assert "record_max_files" in etdb("index", "rejections", env={"ETDB_RECORD_MAX_FILES": "2"})
    out = etdb("index", code=1)  # the default limits: this catalog holds other records
    assert "rebuild it (etdb index --rebuild)" in out and '"max_files":2' in out
    assert "2 records" in etdb("index", "--rebuild")
    bad = etdb("index", code=1, env={"ETDB_RECORD_MAX_FILES": "0"})
    assert "record_max_files" in bad and "Traceback" not in bad


# -- 4. etdb index --check fails when the catalog cannot be built ------------------------------------


def test_check_fails_when_the_catalog_cannot_be_built(chain, etdb_home):
    chain.block(publish(OWNER, 1))
    etdb("index")
    chain.block(publish(OWNER, 2))
    # A ledger file damaged after block 0 (block 1's time is text; a payload stored as bytes,
    # the first way found, is now read: tests/hostile/test_ledger_rows.py): every indexer
    # stops at block 1, every run. Everything indexed so far still equals a rebuild; before
    # the fix --check said so and exited 0.
    db = sqlite3.connect(etdb_home / "ledger.sqlite3")
    with db:
        db.execute("UPDATE blocks SET time = 'soon' WHERE height = 1")
    db.close()
    assert runner.invoke(app, ["index"]).exit_code != 0
    out = etdb("index", "--check", code=1)
    assert "the catalog cannot be built: indexing fails after block 0 (CorruptLedgerError" in out
    report = json.loads(etdb("index", "--check", "--json", code=1))["check"]
    assert not report["equal"] and report["differences"][0].startswith("the catalog cannot")


# -- 5. the publisher refuses to build such a record --------------------------------------------------


METADATA = {"speciesName": "Vibrio cholerae", "date": 1_330_819_200, "sid": "av2012-03-04-1"}
LOCATION = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"


@pytest.mark.parametrize(
    ("metadata", "files", "reason"),
    [
        ({"title": "t" * 2_000}, REAL_FILES, "info.title: 2,000 characters"),
        ({"title": "bad\x00title"}, REAL_FILES, "control character (U+0000)"),
        ({}, [dict(REAL_FILES[0], fname=f"{i}") for i in range(1_001)], "record_max_files"),
        ({}, [dict(REAL_FILES[0], fsize=2**45)], "record_max_file_size"),
    ],
)
def test_the_publisher_refuses_to_build_a_record_over_the_limits(metadata, files, reason):
    with pytest.raises(DatasetError, match="record limits") as caught:
        build_artifact({**METADATA, **metadata}, LOCATION, files)
    assert reason in str(caught.value)
    assert build_artifact(METADATA, LOCATION, REAL_FILES).info.title == "Vibrio cholerae"


def test_the_publisher_leaves_room_for_the_signature():
    draft = record_bytes(build_artifact(METADATA, LOCATION, REAL_FILES).to_wire())
    tight = RecordLimits(max_payload_bytes=draft + SIGNING_ALLOWANCE - 1)
    with pytest.raises(DatasetError, match="once signed"):
        build_artifact(METADATA, LOCATION, REAL_FILES, limits=tight)
    roomy = RecordLimits(max_payload_bytes=draft + SIGNING_ALLOWANCE)
    assert build_artifact(METADATA, LOCATION, REAL_FILES, limits=roomy).info is not None


# -- 6. property: whatever the validator accepts, the catalog can hold and aggregate ------------------

_size = st.one_of(
    st.sampled_from([0, 1, JS_SAFE_MAX, 2**44, 2**50, INT64_MAX, 2**63, 2**64]),
    st.integers(-(2**70), 2**70),
)
_file = st.fixed_dictionaries(
    {"fname": st.text(min_size=1, max_size=30), "fsize": _size, "subtype": st.just("snapshot")}
)
_limits = st.sampled_from(
    [DEFAULT_LIMITS, RecordLimits(max_file_size=JS_SAFE_MAX, max_total_size=JS_SAFE_MAX)]
)
_ids = count()


@pytest.fixture(scope="module")
def shared_catalog(tmp_path_factory):
    catalog = open_catalog(f"sqlite:///{tmp_path_factory.mktemp('bounds') / 'c.sqlite3'}")
    yield catalog
    catalog.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    files=st.lists(_file, max_size=6),
    title=st.text(min_size=1, max_size=40),
    taxid=_size,
    limits=_limits,
)
def test_whatever_the_validator_accepts_the_catalog_can_hold(
    shared_catalog, files, title, taxid, limits
):
    n = next(_ids)
    art = signed_artifact(OWNER, timestamp=1_600_000_000 + n, title=title, files=files)
    art["details"]["NCBItaxID"] = taxid
    if limits.problem(art) is not None:
        return
    before = shared_catalog.summary()
    with shared_catalog.transaction():
        shared_catalog.add_record(published(art, id=txid(("bounds", n)), height=n))
    after = shared_catalog.summary()
    assert after.records == before.records + 1
    assert after.total_bytes == before.total_bytes + sum(f["fsize"] for f in files)
    page = shared_catalog.search(SearchQuery(facets=("species", "taxid", "file_type")))
    assert page.total == after.records
    assert shared_catalog.get(txid(("bounds", n))) is not None


def test_the_property_test_reaches_the_largest_accepted_sizes(shared_catalog):
    # The property above must not pass by rejecting everything: the largest sizes the
    # widest limits accept go in, many times over 2^63 in all.
    widest = RecordLimits(max_file_size=JS_SAFE_MAX, max_total_size=JS_SAFE_MAX)
    files = [dict(REAL_FILES[0], fsize=JS_SAFE_MAX)]
    before = shared_catalog.summary().total_bytes
    with shared_catalog.transaction():
        for n in range(1_100):  # 1,100 x (2^53-1) > 2^63
            art = signed_artifact(OWNER, timestamp=1_500_000_000 + n, files=files)
            assert widest.problem(art) is None
            shared_catalog.add_record(published(art, id=txid(("widest", n)), height=n))
    assert shared_catalog.summary().total_bytes == before + 1_100 * JS_SAFE_MAX > INT64_MAX


def test_etdb_publish_applies_the_limit_settings(etdb_home, tmp_path, monkeypatch):
    from tests.publish.test_publish_cli import PASS, add_key, ledger_entries, write_dataset

    monkeypatch.setenv("ETDB_KEY_PASSPHRASE", PASS)
    add_key(etdb_home, "lab")
    write_dataset(tmp_path / "lab", "ab2020-01-01-1", 1)  # names over 10 characters
    result = runner.invoke(
        app,
        ["publish", str(tmp_path / "lab"), "--no-media", "--yes", "--json"],
        env={"ETDB_RECORD_MAX_TEXT": "10"},
    )
    assert "characters, over the limit of 10 (record_max_text)" in result.stdout
    assert ledger_entries(etdb_home) == 0  # nothing signed or sent
