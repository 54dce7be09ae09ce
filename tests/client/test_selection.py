"""Selection inputs of `etdb download`: flags, file types, filter files, layouts, manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer.main

from etdb.client.layout import Layout, LayoutError
from etdb.client.manifest import MANIFEST, FileEntry, Manifest, ManifestError
from etdb.client.selection import (
    DEFAULT_FILE_TYPES,
    FILE_TYPES,
    SelectionError,
    api_params,
    file_category,
    load_filter,
    needs_record,
    parse_file_types,
    parse_filter,
    record_view,
    server_params,
)
from etdb.index.query import SearchQuery
from etdb.web.selection import API_PARAMS, NOT_ON_PAGE, PRESENTATION, download_command

RECORD = {
    "summary": {"id": "ab" * 32, "publisher": "FPub", "species": "Vibrio cholerae", "sid": "x1"},
    "artifact": {
        "floAddress": "FPub",
        "details": {
            "speciesName": "Vibrio  cholerae ",
            "microscopist": "Gavin Murphy",
            "NCBItaxID": 666,
            "tiltMin": -60,
            "sid": "x1",
            "date": 1389657600,
        },
        "storage": {"location": "bafyroot", "files": []},
    },
}


def test_every_flag_of_the_browse_pages_command_is_accepted() -> None:
    """The portal prints `etdb download` with one flag per API parameter: all must parse."""
    params = [(n, "1") for n in API_PARAMS if n not in PRESENTATION and n not in NOT_ON_PAGE]
    site = "http://node.example:8080"
    command = download_command(params, SearchQuery(include_deactivated=True), site)
    words = command.split()[2:]
    click_command = typer.main.get_command(_download_app())
    ctx = click_command.make_context("download", list(words))
    assert ctx.params["server"] == site  # pasted anywhere, it selects from the page's site
    for name, _ in params:
        value = ctx.params[name]
        assert value in ("1", ["1"], True), (name, value)
    # and every one of them reaches the API under its own name
    sent = dict(api_params(ctx.params))
    assert set(sent) == {n for n, _ in params} - {"file_type"}


def _download_app() -> typer.Typer:
    from etdb.commands.download import download

    app = typer.Typer()
    app.command()(download)
    return app


def test_api_params_repeat_keep_order_and_drop_empty() -> None:
    got = api_params(
        {"species": ["A", "B"], "q": "flagella", "date_to": "", "taxid": [], "emdb": None}
        | {"include_deactivated": True, "tilt_axis": "dual"}
    )
    assert got == [("q", "flagella"), ("species", "A"), ("species", "B"),
                   ("tilt_axis", "dual"), ("include_deactivated", "true")]  # fmt: skip


def test_file_types() -> None:
    assert parse_file_types(None) == frozenset(DEFAULT_FILE_TYPES) == set(FILE_TYPES) - {"zarr"}
    assert parse_file_types(["all"]) == frozenset(FILE_TYPES)
    assert parse_file_types(["zarr"]) == {"zarr"} and file_category("zarr") == "zarr"
    assert parse_file_types(["tiltSeries,keyimg", "Reconstruction"]) == {
        "tiltseries", "keyimg", "reconstruction"}  # fmt: skip
    assert parse_file_types(["Images", "Videos"]) == {"keyimg", "snapshot", "keymov"}
    with pytest.raises(SelectionError, match="--file-type: unknown type 'movies'"):
        parse_file_types(["keyimg,movies"])
    assert file_category("tiltSeries") == "tiltseries"
    assert file_category("preview") == "other"
    assert file_category(None) == "other"


def test_filter_stack_and_or_not() -> None:
    stack = [
        {"type": "filter", "searchOn": "artifact.details.speciesName", "searchType": "exact",
         "searchFor": "Vibrio cholerae"},
        {"type": "OR", "args": [
            {"type": "filter", "searchOn": "artifact.details.microscopist",
             "searchType": "contains", "searchFor": "Murph"},
            {"type": "filter", "searchOn": "artifact.details.lab", "searchType": "exact",
             "searchFor": "Jensen Lab"}]},
        {"type": "filter", "searchOn": "artifact.details.tiltMin", "searchType": "between",
         "searchFor": "-61;-59"},
        {"type": "NOT", "args": [{"type": "filter", "searchOn": "txid", "searchType":
                                  "startsWith", "searchFor": "ff"}]},
    ]  # fmt: skip
    group = parse_filter(stack)
    view = record_view(RECORD)
    assert group.holds(view)
    stack[1]["args"][0]["searchFor"] = "murph"  # contains is case-sensitive
    assert not parse_filter(stack).holds(view)
    stack[1]["args"][0]["not"] = True
    assert parse_filter(stack).holds(view)
    missing = [{"type": "filter", "searchOn": "artifact.details.emdb", "searchType": "exact",
                "searchFor": "EMD-1"}]  # fmt: skip
    assert not parse_filter(missing).holds(view)  # an absent field fails its test


@pytest.mark.parametrize(
    ("stack", "message"),
    [
        ({"type": "filter"}, r"filter: must be a JSON list"),
        ([{"type": "XOR", "args": []}], r"filter\[0\]\.type: must be filter, AND, OR or NOT"),
        ([{"type": "OR", "args": []}], r"filter\[0\]\.args: a OR entry needs a non-empty list"),
        ([{"type": "filter", "searchOn": "a..b", "searchType": "exact", "searchFor": "x"}],
         r"filter\[0\]\.searchOn"),
        ([{"type": "AND", "args": [{"type": "filter", "searchOn": "a", "searchType": "near",
                                    "searchFor": 1}]}], r"filter\[0\]\.args\[0\]\.searchType"),
        ([{"type": "filter", "searchOn": "a", "searchType": "between", "searchFor": "1"}],
         r'between needs "low;high"'),
        ([{"type": "filter", "searchOn": "a", "searchType": "regex", "searchFor": "("}],
         r"bad regex"),
    ],
)  # fmt: skip
def test_filter_errors_name_the_entry(stack: object, message: str) -> None:
    with pytest.raises(SelectionError, match=message):
        parse_filter(stack)


def test_filter_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "q.json"
    bad.write_text("[{", encoding="utf-8")
    with pytest.raises(SelectionError, match=r"--filter-file .*q\.json: not JSON"):
        load_filter(bad)
    with pytest.raises(SelectionError, match="No such file"):
        load_filter(tmp_path / "absent.json")


def test_server_params_only_safe_equalities() -> None:
    group = parse_filter([
        {"type": "filter", "searchOn": "artifact.details.speciesName", "searchType": "exact",
         "searchFor": "Vibrio cholerae"},
        {"type": "filter", "searchOn": "artifact.details.NCBItaxID", "searchType": "exactValue",
         "searchFor": 666},
        {"type": "filter", "not": True, "searchOn": "artifact.details.lab",
         "searchType": "exact", "searchFor": "Other Lab"},
        {"type": "filter", "searchOn": "artifact.details.microscopist",
         "searchType": "contains", "searchFor": "Gavin"},
    ])  # fmt: skip
    assert server_params(group, ()) == [("species", "Vibrio cholerae"), ("taxid", "666")]
    # a flag already names species: sending the file's too would mean "either"
    assert server_params(group, {"species"}) == [("taxid", "666")]
    assert needs_record(group)  # NCBItaxID is not in a search summary
    summary_only = parse_filter([{"type": "filter", "searchOn": "artifact.details.sid",
                                  "searchType": "exact", "searchFor": "x1"}])  # fmt: skip
    assert not needs_record(summary_only)
    assert summary_only.holds(record_view(RECORD["summary"]))


def test_layout_paths_are_safe_and_templated() -> None:
    file = {"fname": "rawdata/../a.mrc", "dname": "../../etc/passwd", "subtype": "tiltSeries"}
    default = Layout()
    assert default.path(RECORD, file, "tiltseries") == "Vibrio cholerae/x1/.._.._etc_passwd"
    keep = Layout("{date}/{type}/{path}")
    assert keep.path(RECORD, file, "tiltseries") == "2014-01-14/tiltseries/rawdata/_/a.mrc"
    with pytest.raises(LayoutError, match=r"unknown placeholder \{specie\}"):
        Layout("{specie}/{name}")
    with pytest.raises(LayoutError, match=r"needs \{name\} or \{path\}"):
        Layout("{species}")
    with pytest.raises(LayoutError, match="relative"):
        Layout("/tmp/{name}")


def test_manifest_roundtrip_merge_and_bad_files(tmp_path: Path) -> None:
    m = Manifest.load(tmp_path)
    assert m.files == []
    entry = FileEntry("r1", "a.mrc", "S/x/a.mrc", "tiltseries", 10)
    m.merge({"r1": {"summary": {}}}, [entry])
    entry.status, entry.verified, entry.cid = "done", True, "bafyfile"
    m.save()
    assert not list(tmp_path.glob(".metadata.*"))  # no temporary left behind
    again = Manifest.load(tmp_path)
    replanned = again.merge({}, [FileEntry("r1", "a.mrc", "S/x/a.mrc", "tiltseries", 10)])
    assert replanned[0].status == "done" and replanned[0].cid == "bafyfile"
    assert not replanned[0].is_complete(tmp_path)  # the file itself is missing
    (tmp_path / "S/x").mkdir(parents=True)
    (tmp_path / "S/x/a.mrc").write_bytes(b"0123456789")
    assert replanned[0].is_complete(tmp_path)
    (tmp_path / "S/x/a.mrc").write_bytes(b"short")
    assert not replanned[0].is_complete(tmp_path)
    # another layout puts the file elsewhere: a fresh entry replaces the old one
    moved = again.merge({}, [FileEntry("r1", "a.mrc", "elsewhere/a.mrc", "tiltseries", 10)])
    assert moved[0].status == "pending" and len(again.files) == 1
    (tmp_path / MANIFEST).write_text(json.dumps({"version": 99}), encoding="utf-8")
    with pytest.raises(ManifestError, match="not an etdb download manifest"):
        Manifest.load(tmp_path)
    (tmp_path / MANIFEST).write_text("{", encoding="utf-8")
    with pytest.raises(ManifestError, match="not JSON"):
        Manifest.load(tmp_path)
