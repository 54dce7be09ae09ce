"""The registry of searchable fields: everything that names a filter derives from it.

The proof that adding a filter is one entry: a fresh Python process adds one range field to
``etdb.index.fields.FIELDS`` (before anything reads it) and nothing else, then finds the
catalog column and its index, the flattened value, the search filter (memory index and SQL),
the API parameters (OpenAPI included), the portal's form inputs and the download flags, and
uses them: a record carrying the value is indexed into a real SQLite catalog and selected
through the API, the portal and the flag table; `etdb download`, `search` and `mirror` offer it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

from etdb.api.params import SIGNATURE
from etdb.client.selection import FILTERS
from etdb.index import fields
from etdb.index.flatten import COLUMNS, flatten
from etdb.index.memindex import CATS, NUMS
from etdb.index.query import FACETS, SearchQuery
from etdb.index.schema import records
from etdb.web.browse import RANGES
from etdb.web.scope import PortalScope
from tests.index.records import make_artifact

ROOT = Path(__file__).resolve().parents[2]


def test_names_are_unique_and_every_column_exists() -> None:
    names = [f.name for f in fields.FIELDS]
    assert len(names) == len(set(names))
    for f in fields.column_fields():
        assert f.name in records.c, f.name
    assert set(COLUMNS) >= {f.name for f in fields.flat_columns()}


def test_every_consumer_reads_the_registry() -> None:
    assert list(FACETS) == [f.name for f in fields.FIELDS if f.facet]
    assert fields.range_names() == NUMS
    assert set(CATS) | set(NUMS) == {f.name for f in fields.column_fields()}
    query_fields = {f.name for f in dataclasses.fields(SearchQuery)}
    assert {f.name for f in fields.filter_fields()} <= query_fields
    params = set(SIGNATURE.parameters)
    assert {p for f in fields.FIELDS for p in f.params} <= params
    flags = {name for name, _ in FILTERS}
    assert {p for f in fields.FIELDS if f.column for p in f.params} <= flags
    assert {stem for stem, _, _ in RANGES} == {f.name for f in fields.of_kind("range") if f.form}
    scoped = {f.name for f in dataclasses.fields(PortalScope)}  # type: ignore[arg-type]
    assert scoped == set(fields.text_names()) | {"taxid", "tilt_axis"}


def test_flatten_reads_each_field_at_its_path() -> None:
    flat = flatten(make_artifact(tiltMin=-60, NCBItaxID=273057, scopeName=" Titan  Krios "))
    assert flat.columns["tilt_min"] == -60.0
    assert flat.columns["taxid"] == 273057
    assert flat.columns["scope"] == "Titan Krios"


#: Run in a fresh process: the registry gains one range field, then everything is imported.
SCRIPT = r"""
import json, sys
from etdb.index import fields

fields.FIELDS = (*fields.FIELDS, fields.Field(
    "pixel_size", "range", "Pixel size", "pixel size", ("details", "pixelSize"), "float",
    unit="Å", indexed=True,
))

import sqlalchemy as sa
from fastapi.testclient import TestClient

from etdb.api import create_app
from etdb.client.selection import FILTER_HELP, FILTERS, api_params
from etdb.config import Settings
from etdb.index.catalog import open_catalog
from etdb.index.flatten import flatten
from etdb.index.query import Range, SearchQuery
from tests.index.records import make_artifact, published

home, = sys.argv[1:]
out = {}
sizes = {"a" * 64: 1.5, "b" * 64: 2.5, "c" * 64: None}
# A registry path may name a key etdb does not know (any JSON): what is not a number is NULL.
hostile = ("2.5", True, {"a": 1}, [1], 10**400, float("nan"))
sizes |= {f"d{i}".ljust(64, "0"): value for i, value in enumerate(hostile)}
url = f"sqlite:///{home}/catalog.sqlite3"
catalog = open_catalog(url)
with catalog.transaction():
    for i, (ident, size) in enumerate(sizes.items()):
        art = make_artifact(title=f"record {i}")
        if size is not None:
            art["details"]["pixelSize"] = size
        catalog.add_record(published(art, id=ident, height=10 + i))
out["flat"] = flatten(catalog.get("b" * 64).artifact).columns["pixel_size"]
out["hostile"] = [flatten(catalog.get(i).artifact).columns["pixel_size"] for i in list(sizes)[3:]]
everything = SearchQuery(pixel_size=Range(-1e308, 1e308))
out["any_size"] = [r.id[0] for r in catalog.search(everything).items]
engine = sa.create_engine(url)
inspector = sa.inspect(engine)
out["column"] = [c["name"] for c in inspector.get_columns("records")].count("pixel_size")
out["index"] = "records_pixel_size" in [i["name"] for i in inspector.get_indexes("records")]
wide = SearchQuery(pixel_size=Range(2.0, 3.0))
out["memory"] = [r.id[0] for r in catalog.search(wide).items]
out["sql"] = [r.id[0] for r in open_catalog(url, memory_index=False).search(wide).items]

settings = Settings(home=home, ledger="local://user:secret@/nowhere/ledger.sqlite3")
client = TestClient(create_app(catalog, settings=settings))
api = client.get("/api/v1/records", params={"pixel_size_to": "2"}).json()
out["api"] = [r["id"][0] for r in api["items"]]
out["api_bad"] = client.get("/api/v1/records", params={"pixel_size_from": "x"}).status_code
spec = client.app.openapi()["paths"]["/api/v1/records"]["get"]["parameters"]
out["openapi"] = [p["name"] for p in spec if p["name"].startswith("pixel")]
page = client.get("/browse", params={"pixel_size_from": "2"})
out["portal"] = [page.status_code, 'name="pixel_size_from"' in page.text, "Pixel size" in page.text]
out["portal_json"] = [r["id"][0] for r in client.get(
    "/browse.json", params={"pixel_size_from": "2"}).json()["items"]]
out["flags"] = [n for n, _ in FILTERS if n.startswith("pixel")]
out["flag_help"] = FILTER_HELP["pixel_size_from"]
out["sent"] = api_params({"pixel_size_from": "2", "pixel_size_to": "3"})
from typer.testing import CliRunner
from etdb.cli import app
out["commands"] = {
    name: "--pixel-size-from" in CliRunner().invoke(app, [name, "--help"], terminal_width=200).output
    for name in ("download", "search", "mirror")
}
print(json.dumps(out))
"""


def test_a_new_range_filter_is_one_registry_entry(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["flat"] == 2.5
    assert out["hostile"] == [None] * 6  # stored NULL, matched by no range
    assert sorted(out["any_size"]) == ["a", "b"]
    assert out["column"] == 1 and out["index"] is True  # catalog column, filter index
    assert out["memory"] == out["sql"] == ["b"]  # the search, both paths
    assert out["api"] == ["a"] and out["api_bad"] == 400
    assert out["openapi"] == ["pixel_size_from", "pixel_size_to"]
    assert out["portal"] == [200, True, True]  # the form's inputs, labelled
    assert out["portal_json"] == ["b"]
    assert out["flags"] == ["pixel_size_from", "pixel_size_to"]
    assert out["flag_help"] == "Pixel size >= (Å)."
    assert out["sent"] == [["pixel_size_from", "2"], ["pixel_size_to", "3"]]
    assert out["commands"] == {"download": True, "search": True, "mirror": True}
