"""FolderSource: dataset folders with dataset.toml, or one catalog.csv / catalog.yaml."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from etdb.publish.source import DatasetProblem, SourceDataset, SourceError, SourceFile
from etdb.publish.sources import FolderSource, open_source
from tests.publish.sources.records import make_folder, round_trip, utc

GOOD_TOML = """
title = "Sulfolobus \\"P2\\" cell"
date = 2014-01-14
speciesName = "Sulfolobus solfataricus"
NCBItaxID = 2287
tiltStep = "1.5 deg"
defocus = -10
tags = ["phantom", "test"]
swAcquisition = "SerialEM"
public = false

[fileNotes]
"rawdata/ts.mrc" = "the tilt series"

[[files]]
path = "movies/overview.mp4"
subtype = "preview"
notes = "an overview"
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, "utf-8")
    return path


def test_dataset_folders(tmp_path: Path) -> None:
    write(tmp_path / "ab2014-01-14-1" / "dataset.toml", GOOD_TOML)
    write(tmp_path / "zz" / "dataset.toml", 'sid = "aa-first"\ndate = "2015-01-01"\n')
    write(tmp_path / "bad-toml" / "dataset.toml", 'title = "unterminated\n')
    write(tmp_path / "bad-key" / "dataset.toml", 'speciesname = "x"\nNCBItaxID = "abc"\n')
    write(tmp_path / "bad-file" / "dataset.toml", '[[files]]\npath = "../x"\n')
    (tmp_path / "no-toml").mkdir()
    (tmp_path / ".hidden").mkdir()
    source = open_source(str(tmp_path))
    assert isinstance(source, FolderSource) and source.name == str(tmp_path)
    got = list(source.datasets())
    assert [(type(x).__name__, x.sid) for x in got] == [
        ("SourceDataset", "aa-first"),
        ("SourceDataset", "ab2014-01-14-1"),
        ("DatasetProblem", "bad-file"),
        ("DatasetProblem", "bad-key"),
        ("DatasetProblem", "bad-toml"),
        ("DatasetProblem", "no-toml"),
    ]
    folder = tmp_path / "ab2014-01-14-1"
    assert got[1] == SourceDataset(
        "ab2014-01-14-1",
        {
            "sid": "ab2014-01-14-1",
            "title": 'Sulfolobus "P2" cell',
            "date": utc("2014-01-14T00:00:00"),
            "speciesName": "Sulfolobus solfataricus",
            "NCBItaxID": 2287,
            "tiltStep": 1.5,
            "defocus": -10.0,
            "tags": ["phantom", "test"],
            "swAcquisition": "SerialEM",
            "fileNotes": {"rawdata/ts.mrc": "the tilt series"},
        },
        folder,
        False,
        (SourceFile("movies/overview.mp4", "preview", "an overview"),),
        str(folder / "dataset.toml"),
    )
    assert got[0].folder == tmp_path / "zz" and got[0].public is True and got[0].files is None
    assert got[2].reason == "files[1].path '../x': '..' is not allowed"
    assert got[3] == DatasetProblem(
        "bad-key",
        str(tmp_path / "bad-key" / "dataset.toml"),
        "speciesname: not a metadata key (did you mean speciesName?); "
        "NCBItaxID: 'abc' is not an integer",
    )
    assert got[4].reason.startswith("not valid TOML: ") and "line 1" in got[4].reason
    assert got[5].reason == "no dataset.toml"
    assert [x.sid for x in source.datasets(only=["aa-first", "nope"])] == ["aa-first"]

    make_folder(got[1], "rawdata/ts.mrc")
    art = round_trip(got[1])
    assert art.files_of("preview")[0].fNotes == "an overview"
    assert art.tilt_series.fNotes == "the tilt series"
    assert art.tilt_series.software == "SerialEM"


CSV = (
    "folder,sid,title,date,speciesName,NCBItaxID,tiltStep,public,microscopist\n"
    'ds/one,,"A ""quoted"", title",2014-01-14,E. coli,562,2 deg,yes,"Ann\nMultiline"\n'
    "ds/two,two-sid,,2015-02-02 10:00:00,Ψ bacterium,abc,,no,\n"
    "ds/three,,,1420070400,B. subtilis,,,,\n"
    "../outside,,,2015-01-01,X,,,,\n"
    "ds/four,,,2015-01-01,X,,,,,extra\n"
)


def test_csv_catalog(tmp_path: Path) -> None:
    catalog = write(tmp_path / "catalog.csv", CSV)
    source = open_source(str(tmp_path))
    assert isinstance(source, FolderSource) and source.name == str(catalog)
    got = {x.origin: x for x in source.datasets()}
    line = f"{catalog}, line"
    assert got[f"{line} 3"] == SourceDataset(
        "one",
        {
            "sid": "one",
            "title": 'A "quoted", title',
            "date": utc("2014-01-14T00:00:00"),
            "speciesName": "E. coli",
            "NCBItaxID": 562,
            "tiltStep": 2.0,
            "microscopist": "Ann\nMultiline",
        },
        tmp_path / "ds" / "one",
        True,
        None,
        f"{line} 3",
    )
    assert got[f"{line} 4"] == DatasetProblem(
        "two-sid", f"{line} 4", "NCBItaxID: 'abc' is not an integer"
    )
    three = got[f"{line} 5"]
    assert (three.sid, three.metadata["date"], three.public) == ("three", 1420070400, True)
    assert got[f"{line} 6"].reason == "folder '../outside': '..' is not allowed"
    assert got[f"{line} 7"].reason == "1 more cells than the header"
    assert open_source(str(catalog)).name == str(catalog)  # the catalog file itself


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("sid,title\n", "the header has no 'folder' column"),
        ("folder,speciesname\n", "column 'speciesname': not a metadata key (did you mean"),
        ("folder,files\n", "a CSV catalog cannot list files"),
        ("folder,title,title\n", "column 'title' appears twice"),
    ],
)
def test_csv_header_mistakes(tmp_path: Path, header: str, message: str) -> None:
    write(tmp_path / "catalog.csv", header + "x,y,z\n")
    with pytest.raises(SourceError, match=re.escape(message)):
        list(FolderSource(tmp_path).datasets())


YAML = """\
datasets:
  - folder: one
    title: "Ψ 'quoted' \\\\ title"
    date: 2014-01-14
    speciesName: E. coli
    tiltSingleDual: 2
    public: false
    files:
      - path: rawdata/ts.st
        subtype: tiltSeries
        display_name: ts.st
  - just a string
  - folder: two
    date: 2015-01-01
    speciesName: X
    files:
      - path: a.mrc
        subtype: volume
"""


def test_yaml_catalog(tmp_path: Path) -> None:
    catalog = write(tmp_path / "catalog.yml", YAML)
    got = list(FolderSource(tmp_path).datasets())
    assert got == [
        DatasetProblem(None, f"{catalog}, line 12", "expected a mapping, got 'just a string'"),
        SourceDataset(
            "one",
            {
                "sid": "one",
                "title": "Ψ 'quoted' \\ title",
                "date": utc("2014-01-14T00:00:00"),
                "speciesName": "E. coli",
                "tiltSingleDual": 2,
            },
            tmp_path / "one",
            False,
            (SourceFile("rawdata/ts.st", "tiltSeries", display_name="ts.st"),),
            f"{catalog}, line 2",
        ),
        DatasetProblem("two", f"{catalog}, line 13", "files[1].subtype: unknown subtype 'volume'"),
    ]
    make_folder(got[1])
    assert round_trip(got[1]).tilt_series.fname == "rawdata/ts.st"


def test_yaml_list_and_duplicate_sids(tmp_path: Path) -> None:
    catalog = write(
        tmp_path / "catalog.yaml",
        "- {folder: a, sid: same, date: 2015-01-01}\n- {folder: b, sid: same, date: 2015-01-01}\n",
    )
    got = list(FolderSource(catalog).datasets())
    assert got == [
        DatasetProblem("same", f"{catalog}, line 1", "another dataset has the same sid"),
        DatasetProblem("same", f"{catalog}, line 2", "another dataset has the same sid"),
    ]


def test_unreadable_catalogs(tmp_path: Path) -> None:
    write(tmp_path / "catalog.yaml", "- [unclosed\n")
    with pytest.raises(SourceError, match=r"catalog\.yaml: cannot read the catalog"):
        list(FolderSource(tmp_path).datasets())
    write(tmp_path / "catalog.yaml", "title: not a list\n")
    with pytest.raises(SourceError, match="expected a list of datasets"):
        list(FolderSource(tmp_path).datasets())
    write(tmp_path / "catalog.csv", "folder\n")
    with pytest.raises(SourceError, match=r"has catalog\.csv and catalog\.yaml; keep one"):
        FolderSource(tmp_path)
    with pytest.raises(SourceError, match="a folder source has no database URL"):
        open_source(str(tmp_path), url="sqlite://")
