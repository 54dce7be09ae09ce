"""The lab's latin1 tables on real MariaDB: µ, ° and Å are stored as one latin1 byte each
(not as UTF-8 pairs the server merely passes through) and etdb's record reads them back as
the right Unicode characters, in the dataset's fields, its notes and its files' notes."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from etdb.publish.source import SourceDataset
from etdb.publish.sources import open_source
from tests.publish.sources.conftest import LabDatabase
from tests.publish.sources.records import folder_root, make_folder, round_trip

pytestmark = pytest.mark.mariadb

SID = "ij2010-01-10-10"  # its rows in caltech_schema.sql: TiltSeriesData 10, SpeciesData 5
# (table, column, DEF_id) -> the text the row holds and the latin1 bytes each odd letter is.
STORED = {
    ("TiltSeriesData", "title", 10): "Å-thin µ-section at 45°",
    ("TiltSeriesData", "TXT_notes", 10): "Tilt ±60°, 2 µm",
    ("SpeciesData", "SpeciesName", 5): "Ångström coccus",
    ("SpeciesData", "strain", 5): "µ-1",
    ("ThreeDFile", "TXT_notes", 40): "µ-scale, 1 Å/px, ±60°",
}
LATIN1 = {"µ": "B5", "°": "B0", "Å": "C5"}


def test_latin1_columns_hold_one_byte_per_letter(mariadb_lab: LabDatabase) -> None:
    engine = sa.create_engine(mariadb_lab.url)
    try:
        with engine.connect() as conn:
            for (table, column, row_id), text in STORED.items():
                charset = conn.execute(
                    sa.text(
                        "SELECT CHARACTER_SET_NAME FROM information_schema.COLUMNS"
                        " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :t"
                        " AND COLUMN_NAME = :c"
                    ),
                    {"t": table, "c": column},
                ).scalar_one()
                assert charset == "latin1", (table, column)
                stored = conn.execute(
                    sa.text(f"SELECT HEX(`{column}`) FROM `{table}` WHERE DEF_id = :i"),
                    {"i": row_id},
                ).scalar_one()
                assert stored == text.encode("latin1").hex().upper(), (table, column)
                for letter, byte in LATIN1.items():
                    if letter in text:  # the letter is that one byte, not UTF-8's two
                        assert byte in _bytes(stored), (table, column, letter)
                        assert letter.encode("utf-8").hex().upper() not in stored
    finally:
        engine.dispose()


def _bytes(hex_text: str) -> list[str]:
    return [hex_text[i : i + 2] for i in range(0, len(hex_text), 2)]


def test_the_record_reads_them_back_as_unicode(mariadb_lab: LabDatabase, tmp_path) -> None:
    source = open_source(mariadb_lab.mapping, url=mariadb_lab.url, base=folder_root(tmp_path))
    try:
        (ds,) = [d for d in source.datasets(only=[SID]) if isinstance(d, SourceDataset)]
    finally:
        source.close()
    make_folder(ds)
    record = round_trip(ds)
    details = record.details
    assert record.info.title == STORED[("TiltSeriesData", "title", 10)]
    assert details.speciesName == STORED[("SpeciesData", "SpeciesName", 5)]
    assert details.strain == STORED[("SpeciesData", "strain", 5)]
    assert "Tilt series notes: Tilt ±60°, 2 µm" in details.artNotes
    assert "Species notes: grows at 80 °C, 0.5 µm wide" in details.artNotes
    notes = {f.fname: f.fNotes for f in record.files}
    assert notes["rawdata/ij10.mrc"] == STORED[("ThreeDFile", "TXT_notes", 40)]
