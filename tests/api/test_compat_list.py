"""/api/v2's full list (what etdb-react loads on every page view) follows the catalog
incrementally: an unchanged catalog is served as it was, a block re-renders only the records it
wrote, a reorganisation starts again; every body equals one built from scratch.

Real SQLite and PostgreSQL catalogs written through the store API (as the indexer writes),
the real app over HTTP (Starlette's test client).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from etdb.api import create_app
from etdb.api.compat_list import Fragments
from etdb.config import Settings
from etdb.index.catalog import SqlCatalog
from etdb.index.query import SearchQuery
from etdb.index.store import AppliedEdit, Deactivation, Position
from tests.api.conftest import ACTIVE, EDITED_ID, HEIGHT, KEY_A, fill, hexid
from tests.index.conftest import catalog_for
from tests.index.records import make_artifact, published, signed_artifact

LIST = "/api/v2/artifact/get/type?t=*&st=*&results=*&page=1"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlCatalog]:
    with catalog_for(request.param, tmp_path) as cat:
        fill(cat)
        yield cat


def client_for(catalog: SqlCatalog, home: Path, **extra: Any) -> TestClient:
    app = create_app(catalog, settings=Settings(home=home))
    app.state.etdb.height_ttl = 0  # read the indexed height on every request
    app.state.etdb.extra.update(extra)
    # bodies as built (the gzip copy is kept beside them: test_gzip_is_compressed_once)
    return TestClient(app, headers={"Accept-Encoding": "identity"})


def state(client: TestClient) -> tuple[Fragments, Any]:
    extra = client.app.state.etdb.extra  # type: ignore[attr-defined]
    return extra["compat_fragments"], extra["compat_bodies"]


def from_scratch(catalog: SqlCatalog, home: Path) -> bytes:
    with client_for(catalog, home) as fresh:
        return fresh.get(LIST).content


def block(catalog: SqlCatalog, height: int, *records: Any) -> None:
    """One indexed block: its records (if any) and the indexer's cursor."""
    with catalog.transaction():
        for record in records:
            catalog.add_record(record)
        catalog.set_meta("cursor", json.dumps({"height": height, "hashes": []}))


def new_record(n: int, height: int) -> Any:
    art = signed_artifact(KEY_A, title=f"new {n}", sid=f"new-{n}", timestamp=1_700_000_000 + n)
    return published(art, id=hexid(f"0ee{n:03x}"), height=height)


def test_list_follows_the_catalog_incrementally(catalog: SqlCatalog, tmp_path: Path) -> None:
    with client_for(catalog, tmp_path) as client:
        first = client.get(LIST)
        fragments, bodies = state(client)
        assert first.json()["count"] == ACTIVE and fragments.rendered == ACTIVE
        for result in first.json()["results"]:  # the stored JSON, embedded, reads back as is
            detail = catalog.get(result["txid"])
            assert detail is not None and result["oip042"]["artifact"] == detail.artifact

        # unchanged: the same bytes, nothing built
        assert client.get(LIST).content == first.content and bodies.builds == 1

        # a block without records: a new ETag, the same body, still nothing built or rendered
        block(catalog, HEIGHT + 1)
        again = client.get(LIST)
        assert again.headers["etag"] != first.headers["etag"]
        assert again.content == first.content and bodies.builds == 1
        assert fragments.rendered == ACTIVE

        # a block with one record: that record is rendered, nothing else
        block(catalog, HEIGHT + 2, new_record(1, HEIGHT + 2))
        added = client.get(LIST)
        assert fragments.rendered == ACTIVE + 1
        assert added.json()["results"][0]["txid"] == hexid("0ee001")
        assert added.content == from_scratch(catalog, tmp_path)

        # an edit re-renders the edited record only
        current = catalog.record_state(EDITED_ID)
        assert current is not None
        after = json.loads(json.dumps(current.artifact))
        after["info"]["title"] = "edited once more"
        catalog.apply_edit(
            AppliedEdit(hexid("e1e1e1"), EDITED_ID, 1_700_000_100, [], after, pos(HEIGHT + 3))
        )
        edited = client.get(LIST)
        assert fragments.rendered == ACTIVE + 2
        titles = {
            r["txid"]: r["oip042"]["artifact"]["info"]["title"] for r in edited.json()["results"]
        }
        assert titles[EDITED_ID] == "edited once more"
        assert edited.content == from_scratch(catalog, tmp_path)

        # a deactivation: the record leaves the list, nothing is rendered
        catalog.deactivate(Deactivation(hexid("d1d1d1"), EDITED_ID, 1_700_000_200, pos(HEIGHT + 4)))
        gone = client.get(LIST).json()
        assert EDITED_ID not in {r["txid"] for r in gone["results"]}
        assert gone["count"] == gone["total"] == ACTIVE and fragments.rendered == ACTIVE + 2

        # a reorganisation deletes records (new epoch): every fragment is dropped and rebuilt
        catalog.rollback(HEIGHT + 2)
        back = client.get(LIST)
        assert back.content == from_scratch(catalog, tmp_path) == first.content
        assert fragments.rendered == ACTIVE + 2 + ACTIVE


def test_fragments_stay_within_their_budget(catalog: SqlCatalog, tmp_path: Path) -> None:
    """A list larger than the fragment budget is still whole; memory stays within it."""
    with client_for(catalog, tmp_path) as full:
        body = full.get(LIST).content
        budget = len(body) // 3
    small = Fragments(max_bytes=budget)
    with client_for(catalog, tmp_path, compat_fragments=small) as client:
        assert client.get(LIST).content == body
        assert 0 < small.nbytes <= budget and len(small) < ACTIVE
        block(catalog, HEIGHT + 1, new_record(2, HEIGHT + 1))
        assert client.get(LIST).content == from_scratch(catalog, tmp_path)
        assert small.nbytes <= budget


def test_gzip_is_compressed_once_per_body(catalog: SqlCatalog, tmp_path: Path) -> None:
    with client_for(catalog, tmp_path) as client:
        plain = client.get(LIST).content
        _, bodies = state(client)
        builds = bodies.builds
        for _ in range(3):
            r = client.get(LIST, headers={"Accept-Encoding": "gzip, deflate"})
            assert r.headers["content-encoding"] == "gzip" and r.content == plain
            assert "accept-encoding" in r.headers["vary"].lower()
        assert bodies.builds == builds + 1  # compressed once, not by the middleware each time


def test_changes_and_current_artifacts(catalog: SqlCatalog) -> None:
    """The store's side: what was written since a version; artifacts as stored."""
    start = catalog.changes(None, 10)
    assert start.ids is None  # no version seen yet: read everything
    assert catalog.changes(start.version, 10).ids == ()
    block(catalog, HEIGHT + 1)  # no record: no new version
    assert catalog.changes(start.version, 10) == start.__class__(start.version, ())
    block(catalog, HEIGHT + 2, new_record(3, HEIGHT + 2))
    one = catalog.changes(start.version, 10)
    assert one.ids == ((hexid("0ee003"), one.version[0]),) and one.version[0] > start.version[0]
    block(catalog, HEIGHT + 3, *(new_record(n, HEIGHT + 3) for n in (4, 5, 6)))
    assert catalog.changes(one.version, 2).ids is None  # more than the limit: reload all
    assert len(catalog.changes(one.version, 3).ids or ()) == 3
    catalog.rollback(HEIGHT + 2)
    assert catalog.changes(one.version, 10).ids is None  # records deleted: a new epoch

    wanted = [EDITED_ID, hexid("dead01"), hexid("0ee003"), hexid("abcdef01")]
    rows = {r.id: r for r in catalog.current_artifacts(wanted)}
    assert set(rows) == {EDITED_ID, hexid("dead01"), hexid("abcdef01")}  # 0ee003 rolled back
    assert rows[hexid("dead01")].deactivated and not rows[EDITED_ID].deactivated
    for record_id, row in rows.items():
        detail = catalog.get(record_id)
        assert detail is not None and json.loads(row.artifact_json) == detail.artifact
        assert row.artifact_json.isascii()
    assert json.loads(rows[EDITED_ID].artifact_json)["info"]["title"].endswith("(edited)")
    assert catalog.current_artifacts([]) == []


def test_publishers_name_their_first_record(catalog: SqlCatalog) -> None:
    """/publisher/get/all's txid and block: each publisher's first active record by timestamp."""
    for p in catalog.publishers():
        first = catalog.search(SearchQuery(publisher=(p.address,), sort="published", order="asc"))
        detail = catalog.get(first.items[0].id)
        assert detail is not None and p.first_txid == detail.summary.id
        assert p.first_height == detail.provenance.block_height
        assert p.first_published == detail.summary.published


def pos(height: int) -> Position:
    return Position(height, 0, f"{height:064x}", 1_500_000_000 + height * 60)


def test_results_are_rendered_from_stored_json() -> None:
    from etdb.api.compat_list import render
    from etdb.index.query import CurrentArtifact

    art = make_artifact(title='quote " and µ')
    stored = json.dumps(art, separators=(",", ":"))  # as the catalog stores it
    out = json.loads(render(CurrentArtifact("ab" * 32, 7, 'F"x', False, stored)))
    assert out == {"oip042": {"artifact": art}, "txid": "ab" * 32, "publisher": 'F"x'}
