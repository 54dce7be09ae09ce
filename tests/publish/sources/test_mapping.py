"""Mapping files are parsed strictly: every mistake is a SourceError naming the file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from etdb.publish.source import ClassifyRule, SourceError
from etdb.publish.sources import FolderSource, SqlSource, open_source, packaged_mappings
from etdb.publish.sources.mapping import Template, load_mapping

MINIMAL = '[database]\nurl = "sqlite:///lab.sqlite3"\n[datasets]\nquery = "SELECT 1 AS sid"\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lab.toml"
    path.write_text(text, "utf-8")
    return path


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('[datasets]\nquery = "x"\nquerry = "y"\n', "datasets.querry: unknown key"),
        ('[datasets]\nsid = "sid"\n', "datasets.query: missing key"),
        ("[dataset]\n", "dataset: unknown key"),
        ('[fields]\nspeciesname = "species"\n', "did you mean speciesName?"),
        ('[fields]\nsid = "id"\n', "'sid' comes from datasets.sid"),
        ('[fields]\ntitle = { colum = "t" }\n', "fields.title.colum: unknown key"),
        ('[fields]\ntitle = { column = "t", value = "x" }\n', "exactly one of column, value"),
        ('[fields]\nNCBItaxID = { value = "abc" }\n', "NCBItaxID: 'abc' is not an integer"),
        ('[fields]\ntitle = { template = "{a.b}" }\n', "placeholder {a.b} must be a column"),
        ('[[classify]]\npattern = "*.st"\nsubtype = "tiltseries"\n', "unknown subtype"),
        (
            '[files]\nquery = "q"\nkind = "{k}"\n[files.kinds.a]\npath = "{f}"\nsubtype = "movie"\n',
            "files.kinds.a.subtype: unknown subtype 'movie'",
        ),
    ],
)
def test_mistakes_name_the_file_and_key(tmp_path: Path, extra: str, message: str) -> None:
    if extra.startswith("[datasets]"):
        text = extra
    else:
        text = '[datasets]\nquery = "SELECT 1 AS sid"\n' + extra
    path = write(tmp_path, text)
    with pytest.raises(SourceError) as err:
        load_mapping(path)
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)


def test_not_toml(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"lab\.toml: not valid TOML"):
        load_mapping(write(tmp_path, "[datasets\n"))


def test_password_from_environment_never_shown(tmp_path: Path, monkeypatch) -> None:
    path = write(
        tmp_path,
        '[database]\nurl = "mysql://lab@db.example/tomo"\npassword_env = "LAB_DB_PW"\n'
        '[datasets]\nquery = "SELECT 1 AS sid"\n',
    )
    monkeypatch.delenv("LAB_DB_PW", raising=False)  # a database that needs no password
    assert open_source(str(path)).name == f"{path} (mysql+pymysql://lab@db.example/tomo)"
    monkeypatch.setenv("LAB_DB_PW", "hunter2")
    source = open_source(str(path))
    assert isinstance(source, SqlSource)
    assert source.name == f"{path} (mysql+pymysql://lab:***@db.example/tomo)"
    assert source._url.password == "hunter2"
    # A URL with its own password keeps it; the override replaces the mapping's URL.
    source = open_source(str(path), url="postgresql://u:pw@h/db")
    assert source.name == f"{path} (postgresql+psycopg://u:***@h/db)"
    assert source._url.password == "pw"


def test_url_from_environment_or_missing(tmp_path: Path, monkeypatch) -> None:
    path = write(
        tmp_path,
        '[database]\nurl_env = "LAB_DB_URL"\n[datasets]\nquery = "SELECT 1 AS sid"\n',
    )
    monkeypatch.delenv("LAB_DB_URL", raising=False)
    with pytest.raises(
        SourceError, match=r"no database URL: give database.url or set \$LAB_DB_URL"
    ):
        open_source(str(path))
    monkeypatch.setenv("LAB_DB_URL", "sqlite:////srv/lab.db")
    assert open_source(str(path)).name == f"{path} (sqlite:////srv/lab.db)"
    with pytest.raises(SourceError, match="the url option: not a database URL"):
        open_source(str(path), url="not a url")


def test_relative_paths_are_relative_to_the_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + 'root = "data"\nfolder = "{sid}/tomo"\n')
    source = open_source(str(path))
    assert source._url.database == str(tmp_path / "lab.sqlite3")
    assert source._root == tmp_path / "data"
    assert open_source(str(path), base=tmp_path / "elsewhere")._root == tmp_path / "elsewhere"


def test_classify_rules(tmp_path: Path) -> None:
    text = MINIMAL + '[[classify]]\npattern = "*.st"\nsubtype = "tiltSeries"\n'
    text += '[[classify]]\npattern = "movies/*"\nsubtype = "preview"\n'
    source = open_source(str(write(tmp_path, text)))
    assert source.rules == (ClassifyRule("*.st", "tiltSeries"), ClassifyRule("movies/*", "preview"))


def test_packaged_names(tmp_path: Path, monkeypatch) -> None:
    assert "caltech" in packaged_mappings()
    with pytest.raises(SourceError, match=r"no packaged mapping named 'nope' \(packaged: caltech"):
        open_source("nope")
    with pytest.raises(SourceError, match="no such mapping file or folder"):
        open_source(str(tmp_path / "missing.toml"))
    monkeypatch.setenv("ETDB_SOURCE_PASSWORD", "")
    monkeypatch.setenv("ETDB_SOURCE_URL", "mysql+pymysql://etdb@db/tomography")
    caltech = open_source("caltech")
    assert caltech.name == "caltech (packaged) (mysql+pymysql://etdb:***@db/tomography)"
    assert str(caltech._root) == "/services/tomography/data"
    assert isinstance(open_source(str(tmp_path)), FolderSource)


def test_templates() -> None:
    tpl = Template("3dimage_{id}/{filename}")
    assert tpl.names == ("id", "filename")
    assert tpl.render({"id": 7, "filename": "a b.rec"}) == "3dimage_7/a b.rec"
    assert tpl.render({"id": 7, "filename": None}) is None
    assert Template("{id:05d}").render({"id": 7}) == "00007"
    with pytest.raises(ValueError, match="must be a column name"):
        Template("{0}{}")


def test_the_documented_example_parses(tmp_path: Path) -> None:
    doc = (Path(__file__).parents[3] / "docs" / "publishing.md").read_text("utf-8")
    section = doc.split("## Sources and mapping files", 1)[1]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    mapping = load_mapping(write(tmp_path, example))
    assert mapping.spec.files is not None and set(mapping.spec.files.kinds) == {"stack", "volume"}
    assert mapping.rules == (ClassifyRule("movies/*.mp4", "preview"),)
