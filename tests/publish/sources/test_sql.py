"""SqlSource with the packaged Caltech mapping on a Caltech-style database: MariaDB (as the
lab ran it), SQLite and PostgreSQL read the same rows into the same datasets, and every good
dataset becomes a record ``build_artifact`` accepts and that round-trips."""

from __future__ import annotations

from pathlib import Path

import pytest

from etdb.publish.listing import dataset_listing
from etdb.publish.source import DatasetProblem, Source, SourceDataset, SourceError, SourceFile
from etdb.publish.sources import SqlSource, open_source
from etdb.publish.sources.mapping import packaged_mapping
from tests.publish.sources.conftest import LONG_NOTES, ODD, LabDatabase
from tests.publish.sources.records import folder_root, make_folder, round_trip, utc

JENSEN = {
    "description": "Auto imported from etdb",
    "tags": "etdb,jensen.lab,tomogram,electron.tomography",
    "institution": "Caltech",
    "lab": "Jensen Lab",
}
HAS = {"keyimg": True, "keymov": True}  # TiltSeriesData.keyimg/keymov 1..4
NONE = {"keyimg": False, "keymov": False}  # 0 or NULL: the lab has neither
KINDS = ", ".join(packaged_mapping("caltech").spec.files.kinds)  # type: ignore[union-attr]


def expected(root: Path) -> list[SourceDataset | DatasetProblem]:
    """What the rows of caltech_schema.sql (and conftest.ODD) must read as, in order."""
    sid1, sid2, sid3, sid5 = "ab2014-01-14-1", "ab2014-02-01-2", "ab2015-03-03-3", "cd2016-05-05-5"
    return [
        DatasetProblem(None, "datasets query", "1 rows have no sid (sid is NULL)"),
        SourceDataset(
            sid1,
            {
                **JENSEN,
                "sid": sid1,
                "title": "Sulfolobus solfataricus P2 cell",
                "date": utc("2014-01-14T10:20:30"),
                "NCBItaxID": 2287,
                "scopeName": "Caltech Polara",
                "speciesName": "Sulfolobus solfataricus",
                "strain": "P2",
                "tiltSingleDual": 1,
                "defocus": -10.0,
                "dosage": 180.5,
                "tiltConstant": 1.0,
                "tiltMin": -60.0,
                "tiltMax": 60.0,
                "tiltStep": 1.0,
                "magnification": 22500.0,
                "emdb": "EMD-1234",
                "microscopist": "Grace Jensen",
                "scopeNotes": "300 kV FEG",
                "speciesNotes": "hyperthermophile",
                "tiltSeriesNotes": "frozen-hydrated",
                "swAcquisition": "UCSFTomo",
                "swReconstruction": "Raptor",
            },
            root / sid1,
            True,
            (
                SourceFile(
                    f"3dimage_11/{sid1}_full.rec", "reconstruction", None, f"{sid1}_full.rec"
                ),
                SourceFile("3dimage_12/ribosome.mrc", "subvolume", None, "ribosome.mrc"),
                SourceFile("3dimage_13/align.xf", "other", None, "align.xf"),
                SourceFile(
                    "AutoCaps/cap1.jpg",
                    "snapshot",
                    None,
                    "cap1.jpg",
                    None,
                    root / "Caps",
                    "cap1.jpg",
                ),
                SourceFile("file_30/slice.jpg", "snapshot", "a slice", "slice.jpg"),
                SourceFile("file_32/slices.mp4", "preview", None, "slices.mp4"),
                SourceFile("file_33/README.txt", "other", "read me", "README.txt"),
                SourceFile(f"rawdata/{sid1}.mrc", "tiltSeries", "the tilt series", f"{sid1}.mrc"),
            ),
            "TiltSeriesData DEF_id=1",
            key_media=HAS,
            files_only=True,
        ),
        SourceDataset(
            sid2,
            {
                **JENSEN,
                "sid": sid2,
                "date": utc("2014-02-01T00:00:00"),
                "NCBItaxID": 155892,
                "scopeName": "Titan Krios",
                "speciesName": "Caulobacter crescentus",
                "microscopist": "Ana Müller-Núñez",
                "swAcquisition": "SerialEM, IMOD",
            },
            root / sid2,
            True,
            (),
            "TiltSeriesData DEF_id=2",
            key_media=NONE,
            files_only=True,
        ),
        SourceDataset(
            sid3,
            {
                **JENSEN,
                "sid": sid3,
                "title": "Not public yet",
                "date": utc("2015-03-03T00:00:00"),
                "NCBItaxID": 155892,
                "speciesName": "Caulobacter crescentus",
                "tiltSingleDual": 2,
                "defocus": -8.5,
                "tiltConstant": 0.0,
                "tiltMin": -45.0,
                "tiltMax": 45.0,
                "tiltStep": 1.5,
                "microscopist": "Grace Jensen",
            },
            root / sid3,
            False,
            (),
            "TiltSeriesData DEF_id=3",
            key_media=NONE,
            files_only=True,
        ),
        DatasetProblem(
            "ab2015-04-04-4",
            "TiltSeriesData DEF_id=4",
            "NCBItaxID: 'abc' is not an integer (column tax_id)",
        ),
        SourceDataset(
            sid5,
            {
                **JENSEN,
                "sid": sid5,
                "title": ODD["title"],
                "date": utc(ODD["date"]),
                "NCBItaxID": 562,
                "speciesName": ODD["species"],
                "strain": ODD["strain"],
                "tiltSingleDual": 1,
                "tiltStep": 2.0,
                "microscopist": "Ana Müller-Núñez",
                "speciesNotes": LONG_NOTES,
                "tiltSeriesNotes": "",
            },
            root / sid5,
            True,
            (SourceFile(f"rawdata/{ODD['file']}", "tiltSeries", None, ODD["file"]),),
            "TiltSeriesData DEF_id=5",
            key_media=NONE,
            files_only=True,
        ),
        DatasetProblem(
            "ef2017-06-06-6",
            "TiltSeriesData DEF_id=6",
            "ThreeDFile DEF_id=20: file path 'rawdata/../escape.mrc': '..' is not allowed; "
            f"DataFile DEF_id=34: unknown file kind 'DataFile:hologram' (files.kinds has {KINDS})",
        ),
        DatasetProblem(
            "gh2018-08-08-8", "datasets query", "2 rows have this sid; sids must be unique"
        ),
    ]


def _same(got: list, want: list) -> None:
    # The rows of the first fixture; the real-schema rows (ij…, kl…) have tests of their own.
    got = [g for g in got if g.sid is None or not g.sid.startswith(("ij", "kl"))]
    assert [type(x).__name__ + str(x.sid) for x in got] == [
        type(x).__name__ + str(x.sid) for x in want
    ]
    for g, w in zip(got, want, strict=True):
        if isinstance(w, DatasetProblem):
            # The order of a dataset's problems follows the files query's row order.
            assert (g.sid, g.origin) == (w.sid, w.origin)
            assert sorted(g.reason.split("; ")) == sorted(w.reason.split("; "))
        else:
            assert g == w


def _open(lab: LabDatabase, root: Path, **kw) -> SqlSource:
    source = open_source(lab.mapping, url=lab.url, base=root)
    assert isinstance(source, SqlSource) and isinstance(source, Source)
    if kw:
        source._chunk_size = kw["chunk_size"]
    return source


def test_caltech_rows_become_these_datasets(lab: LabDatabase, tmp_path: Path) -> None:
    root = folder_root(tmp_path)
    source = _open(lab, root)
    try:
        got = list(source.datasets())
    finally:
        source.close()
    _same(got, expected(root))


def test_every_dataset_makes_a_record_as_go_etdb_did(lab: LabDatabase, tmp_path: Path) -> None:
    root = folder_root(tmp_path)
    source = _open(lab, root)
    try:
        rows = [d for d in source.datasets() if isinstance(d, SourceDataset)]
        found = {d.sid: d for d in rows if not d.sid.startswith(("ij", "kl"))}
    finally:
        source.close()
    assert len(found) == 4
    make_folder(found["ab2014-02-01-2"], "rawdata/ts.mrc")
    for sid in ("ab2014-01-14-1", "ab2015-03-03-3", "cd2016-05-05-5"):
        make_folder(found[sid])
    arts = {sid: round_trip(ds) for sid, ds in found.items()}

    full = arts["ab2014-01-14-1"]
    assert full.details.artNotes == (
        "Scope notes: 300 kV FEG\nSpecies notes: hyperthermophile\n"
        "Tilt series notes: frozen-hydrated\n"
    )
    assert full.tilt_series.software == "UCSFTomo"
    assert full.reconstruction.software == "Raptor"
    assert [f.subtype for f in full.files_of("snapshot")] == ["snapshot", "snapshot"]
    assert {f.fname: f.fNotes for f in full.files if f.fNotes} == {
        "rawdata/ab2014-01-14-1.mrc": "the tilt series",
        "file_30/slice.jpg": "a slice",
        "file_33/README.txt": "read me",
    }
    assert full.files_of("thumbnail", "image")[0].fname == "keyimg_ab2014-01-14-1_s.jpg"
    assert full.info.tags == "etdb,jensen.lab,tomogram,electron.tomography"  # go-etdb's order
    assert full.info.description == "Auto imported from etdb"

    sparse = arts["ab2014-02-01-2"]
    assert sparse.info.title == "Caulobacter crescentus"  # no DB title: the species
    # rawdata/ts.mrc is only on disk: the database is the authority, so it is reported only.
    assert sparse.tilt_series is None
    assert "rawdata/ts.mrc" in dataset_listing(found["ab2014-02-01-2"]).warnings[0]
    assert sparse.details.artNotes is None and sparse.details.tiltStep is None

    odd = arts["cd2016-05-05-5"]
    assert (odd.info.title, odd.details.speciesName) == (ODD["title"], ODD["species"])
    assert odd.details.artNotes == f"Species notes: {LONG_NOTES}\n"
    assert odd.tilt_series.dname == ODD["file"]


def test_only_and_small_chunks_give_the_same_datasets(lab: LabDatabase, tmp_path: Path) -> None:
    root = folder_root(tmp_path)
    want = expected(root)
    source = _open(lab, root, chunk_size=2)
    try:
        _same(list(source.datasets()), want)
        picked = {"ab2015-03-03-3", "gh2018-08-08-8", "ef2017-06-06-6", "no-such-sid"}
        _same(list(source.datasets(only=picked)), [w for w in want if w.sid in picked])
        assert list(source.datasets(only=[])) == []
    finally:
        source.close()


@pytest.mark.mariadb
def test_unreachable_database_names_it_without_the_password(tmp_path: Path) -> None:
    source = open_source("caltech", url="mysql+pymysql://etdb:s3cret@127.0.0.1:1/tomography")
    assert source.name == "caltech (packaged) (mysql+pymysql://etdb:***@127.0.0.1:1/tomography)"
    with pytest.raises(SourceError) as err:
        list(source.datasets())
    text = str(err.value)
    assert "s3cret" not in text
    assert text.startswith(f"{source.name}: the datasets query failed: ")
    assert "127.0.0.1" in text
    source.close()


def test_password_comes_from_the_named_variable(monkeypatch, mariadb_lab: LabDatabase) -> None:
    monkeypatch.setenv("ETDB_SOURCE_PASSWORD", "wrong-password")
    source = open_source("caltech", url=mariadb_lab.url)
    with pytest.raises(SourceError) as err:
        next(iter(source.datasets()))
    assert "Access denied" in str(err.value) and "wrong-password" not in str(err.value)
    source.close()


def test_a_failing_query_or_missing_column_is_a_source_error(tmp_path: Path, sqlite_lab) -> None:
    mapping = tmp_path / "lab.toml"
    mapping.write_text(
        '[datasets]\nquery = "SELECT tiltseriesID AS sid, title FROM TiltSeriesData"\n'
        '[fields]\nspeciesName = "species"\n'
    )
    source = open_source(str(mapping), url=sqlite_lab.url)
    with pytest.raises(
        SourceError, match=r"returns no column 'species' \(it returns: sid, title\)"
    ):
        list(source.datasets())
    mapping.write_text('[datasets]\nquery = "SELECT * FROM NoSuchTable"\n')
    source = open_source(str(mapping), url=sqlite_lab.url)
    with pytest.raises(SourceError, match="datasets query failed: no such table: NoSuchTable"):
        list(source.datasets())
    source.close()


def test_a_files_query_without_sids_is_filtered_for_it(tmp_path: Path, sqlite_lab) -> None:
    # Integer sids, no public column (all public), a files query etdb wraps and filters.
    mapping = tmp_path / "lab.toml"
    mapping.write_text(
        "[datasets]\n"
        'query = "SELECT DEF_id AS id, title FROM TiltSeriesData WHERE DEF_id IN (1, 3)"\n'
        'sid = "ID"\nfolder = "series-{sid}"\n'
        '[fields]\ntitle = { template = "{title} (#{id})" }\n'
        "[files]\n"
        'query = "SELECT t.DEF_id AS series, f.filename FROM ThreeDFile f JOIN TiltSeriesData t'
        ' ON t.tiltseriesID = f.`REF|TiltSeriesData|tiltseries`"\n'
        'sid = "series"\nkind = "3d"\n'
        '[files.kinds.3d]\npath = "{filename}"\n'
    )
    source = open_source(str(mapping), url=sqlite_lab.url)
    try:
        got = list(source.datasets())
    finally:
        source.close()
    names = ("ab2014-01-14-1.mrc", "ab2014-01-14-1_full.rec", "align.xf", "ribosome.mrc")
    assert got == [
        SourceDataset(
            "1",
            {"sid": "1", "title": "Sulfolobus solfataricus P2 cell (#1)"},
            tmp_path / "series-1",
            True,
            tuple(SourceFile(n) for n in (*names, "withdrawn.mrc")),
            "sid=1",
        ),
        SourceDataset(
            "3",
            {"sid": "3", "title": "Not public yet (#3)"},
            tmp_path / "series-3",
            True,
            (),
            "sid=3",
        ),
    ]
