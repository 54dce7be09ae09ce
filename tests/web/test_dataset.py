"""The dataset page /tomogram/<id> over a real SQLite catalog filled through its store API.

Records are really signed (tests.index.records); the tampered one is inserted with the
catalog's ``signature_valid`` flag set, to show the page re-checks instead of trusting it.
Expected values come from the artifacts the fixtures build, not from literals copied from
the output.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from etdb.api import create_app
from etdb.config import Settings
from etdb.index.catalog import SqlCatalog, open_catalog
from etdb.index.store import AppliedEdit, Deactivation, Position
from etdb.record import PrivateKey
from tests.index.records import REAL_FILES, file_set, published, signed_artifact

KEY_A = PrivateKey(bytes(31) + b"\x0a")
KEY_B = PrivateKey(bytes(31) + b"\x0b")


def hexid(prefix: str) -> str:
    return (prefix + "0" * 64)[:64]


FULL_ID = hexid("da7a01")
PART1_ID = hexid("da7a02")
TWIN_1, TWIN_2 = hexid("abcdef01"), hexid("abcdef02")
TAMPERED_ID = hexid("7a3e01")
EDITED_ID = hexid("ed1701")
EDIT_TXID = hexid("ed17e1")
DEACTIVATED_ID = hexid("dead01")
DEACTIVATION_TXID = hexid("dead0e")
HOSTILE_ID = hexid("b0b001")
OTHER_LAB_ID = hexid("b1b101")
PLAIN_ID = hexid("c0c001")

HOSTILE_TEXT = "<script>alert('x')</script>"
HOSTILE_IMG = '"><img src=x onerror=alert(1)>'
NOTES = "Line one\nLine <two>\r\n\r\nLine three"

_TIMES = itertools.count(1_500_000_000, 10)


def sign(key: PrivateKey, **fields: Any) -> dict[str, Any]:
    """A signed record; distinct timestamps make distinct signatures (the catalog's key)."""
    return signed_artifact(key, timestamp=next(_TIMES), **fields)


FULL = sign(
    KEY_A,
    title="Sulfolobus solfac.P2+STIV",
    emdb="EMD-1234",
    notes=NOTES,
    magnification=22500,
    files=copy.deepcopy(REAL_FILES),
)


def _artifacts() -> dict[str, dict[str, Any]]:
    tampered = sign(KEY_A, title="Tampered", sid="tt-1")
    tampered["storage"]["location"] = "QmSomeOtherFolderThanTheSignedOne11111111111111"
    hostile_files = file_set("snapshot", "tiltSeries", stem="hh")
    hostile_files[0]["fNotes"] = HOSTILE_IMG
    hostile_files[1]["dname"] = HOSTILE_TEXT + ".mrc"
    hostile_files[1]["fname"] = 'raw/"><script>x</script>.mrc'
    hostile = sign(
        KEY_A,
        title=HOSTILE_TEXT,
        species=HOSTILE_IMG,
        microscopist=HOSTILE_TEXT,
        notes=f"{HOSTILE_TEXT}\n{HOSTILE_IMG}",
        emdb="javascript:alert(1)",
        sid="hh",
        files=hostile_files,
    )
    return {
        FULL_ID: FULL,
        TWIN_1: sign(KEY_A, title="Twin one", sid="tw-1", files=file_set("keyimg")),
        TWIN_2: sign(KEY_A, title="Twin two", sid="tw-2", files=file_set("keyimg")),
        TAMPERED_ID: tampered,
        EDITED_ID: sign(KEY_A, title="Before the edit", sid="ed-1"),
        DEACTIVATED_ID: sign(KEY_A, title="Withdrawn", sid="wd-1"),
        HOSTILE_ID: hostile,
        OTHER_LAB_ID: sign(KEY_B, title="Other lab", sid="ol-1"),
        PLAIN_ID: sign(KEY_A, title="No movie", sid="pl-1", files=file_set("keyimg", "thumbnail")),
    }


ARTIFACTS = _artifacts()


def fill(catalog: SqlCatalog) -> None:
    with catalog.transaction():
        for i, (record_id, art) in enumerate(ARTIFACTS.items()):
            txids = (record_id, PART1_ID) if record_id == FULL_ID else ()
            # signature_valid=True for every record, the tampered one included: the page must
            # find out by itself.
            catalog.add_record(published(art, id=record_id, txids=txids, height=100 + i))
        after = copy.deepcopy(ARTIFACTS[EDITED_ID])
        after["info"]["title"] = "After the edit"
        after["details"]["strain"] = "edited strain"
        catalog.apply_edit(
            AppliedEdit(
                txid=EDIT_TXID,
                record_id=EDITED_ID,
                timestamp=1_600_000_000,
                patch=[
                    {"op": "replace", "path": "/info/title", "value": "After the edit"},
                    {"op": "replace", "path": "/details/strain", "value": "edited strain"},
                ],
                artifact_after=after,
                position=Position(130, 0, f"{130:064x}", 1_600_000_060),
            )
        )
        catalog.deactivate(
            Deactivation(
                DEACTIVATION_TXID,
                DEACTIVATED_ID,
                1_600_000_100,
                Position(131, 0, f"{131:064x}", 1_600_000_120),
            )
        )
        catalog.set_meta("cursor", json.dumps({"height": 140, "hashes": []}))


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqlCatalog]:
    path = tmp_path_factory.mktemp("dataset") / "catalog.sqlite3"
    cat = open_catalog(f"sqlite:///{path}")
    fill(cat)
    yield cat
    cat.close()


def make_client(catalog: SqlCatalog, home: Path, **settings: str) -> TestClient:
    config = Settings(home=home, ledger="local:///nowhere/ledger.sqlite3", **settings)
    return TestClient(create_app(catalog, settings=config))


@pytest.fixture(scope="module")
def client(catalog: SqlCatalog, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with make_client(catalog, tmp_path_factory.mktemp("home")) as c:
        yield c


# -- a small DOM for assertions ---------------------------------------------------------------


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text for c in self.children)

    def all(self, tag: str | None = None, **attrs: str) -> list[Node]:
        found = []
        for c in self.children:
            if isinstance(c, Node):
                classes = c.attrs.get("class", "").split()
                ok = tag in (None, c.tag) and all(
                    (v in classes) if k == "cls" else c.attrs.get(k) == v for k, v in attrs.items()
                )
                if ok:
                    found.append(c)
                found.extend(c.all(tag, **attrs))
        return found

    def one(self, tag: str | None = None, **attrs: str) -> Node:
        found = self.all(tag, **attrs)
        assert len(found) == 1, f"{len(found)} <{tag} {attrs}>"
        return found[0]


_VOID = {"img", "br", "input", "meta", "link", "source", "hr"}


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def dom(html: str) -> Node:
    builder = _Builder()
    builder.feed(html)
    return builder.root


def page_of(client: TestClient, id: str, status: int = 200) -> Node:
    r = client.get(f"/tomogram/{id}")
    assert r.status_code == status, r.text[:500]
    assert r.headers["content-type"].startswith("text/html")
    return dom(r.text)


# -- the full record --------------------------------------------------------------------------


def test_header_and_key_movie(client: TestClient) -> None:
    doc = page_of(client, FULL_ID)
    h1 = doc.one("h1")
    assert FULL["details"]["speciesName"].strip() in h1.one(cls="species").text
    assert FULL["info"]["title"] in h1.text
    video = doc.one("video", id="key-movie")
    for flag in ("autoplay", "loop", "muted", "playsinline"):
        assert flag in video.attrs
    location = FULL["storage"]["location"]
    keyimg = next(f for f in REAL_FILES if f["subtype"] == "keyimg")
    assert video.attrs["poster"] == f"/ipfs/{location}/{keyimg['fname']}"
    sources = video.all("source")
    mp4 = next(f for f in REAL_FILES if f["fname"].endswith(".mp4"))
    assert [s.attrs["src"] for s in sources] == [f"/ipfs/{location}/{mp4['fname']}"]
    assert sources[0].attrs["type"] == "video/mp4"  # the FLV movie is not offered to <video>


def test_key_image_when_there_is_no_movie(client: TestClient) -> None:
    doc = page_of(client, PLAIN_ID)
    assert not doc.all("video")
    img = doc.one("img", id="key-image")
    assert img.attrs["alt"]
    keyimg = ARTIFACTS[PLAIN_ID]["storage"]["files"][0]
    assert keyimg["subtype"] == "keyimg"
    assert img.attrs["src"].endswith("/" + keyimg["fname"])


def test_metadata_panel(client: TestClient) -> None:
    doc = page_of(client, FULL_ID)
    rows = {
        div.attrs["data-field"]: div.one("dd") for div in doc.one("dl", id="metadata").all("div")
    }
    d = FULL["details"]
    assert rows["date"].text == "2014-01-14"  # details.date 1389657600 in UTC
    assert rows["microscopist"].text == d["microscopist"]
    assert rows["species"].attrs["class"] == "species"
    assert rows["species"].text == d["speciesName"].strip()
    assert rows["strain"].text == d["strain"]
    taxon = rows["taxid"].one("a")
    assert taxon.attrs["href"].endswith(f"id={d['NCBItaxID']}")
    assert "noopener" in taxon.attrs["rel"] and "noreferrer" in taxon.attrs["rel"]
    tilt = rows["tilt"].text
    assert tilt.startswith("Single axis")
    assert f"{d['tiltMin']}° to {d['tiltMax']}°" in tilt
    assert f"step {d['tiltStep']}°" in tilt and "constant increment: yes" in tilt
    assert rows["dosage"].text == f"{d['dosage']} e⁻/Å²"
    assert rows["defocus"].text == f"{d['defocus']} µm"
    assert rows["magnification"].text == "22,500×"
    assert rows["scope"].text == d["scopeName"]
    assert rows["acquisition"].text == "UCSFTomo"  # the tilt series file's software
    assert rows["processing"].text == "Raptor"  # the reconstruction's
    emdb = rows["emdb"].one("a")
    assert emdb.text == "EMD-1234" and emdb.attrs["href"].endswith("/EMD-1234")
    assert rows["notes"].attrs["class"] == "notes"
    assert rows["notes"].text == NOTES  # line breaks kept as text (CSS pre-line shows them)


def test_files_table_and_snapshots(client: TestClient) -> None:
    doc = page_of(client, FULL_ID)
    location = FULL["storage"]["location"]
    rows = doc.one("table", id="files").one("tbody").all("tr")
    assert len(rows) == len(REAL_FILES)
    for row, f in zip(rows, REAL_FILES, strict=True):
        assert row.attrs["data-subtype"] == f["subtype"]
        link = row.one("a", cls="download")
        assert link.attrs["href"] == f"/ipfs/{location}/{f['fname']}"
        assert link.attrs["download"] == f.get("dname", f["fname"])
    tilt = doc.one("tr", **{"data-subtype": "tiltSeries"})
    cells = [td.text for td in tilt.all("td")]
    assert cells[1] == "Tilt series" and cells[2] == "3.2 GB"
    snaps = [f for f in REAL_FILES if f["subtype"] == "snapshot"]
    imgs = doc.one("section", id="snapshots").all("img")
    assert [i.attrs["src"] for i in imgs] == [f"/ipfs/{location}/{f['fname']}" for f in snaps]
    assert all(i.attrs["alt"] for i in imgs)
    assert imgs[0].attrs["alt"] == snaps[0]["fNotes"]


def test_share_links(client: TestClient) -> None:
    doc = page_of(client, FULL_ID)
    links = doc.all("a", cls="share")
    hrefs = [a.attrs["href"] for a in links]
    assert f"http://testserver/tomogram/{FULL_ID}" in hrefs
    mail = next(h for h in hrefs if h.startswith("mailto:"))
    assert quote(f"http://testserver/tomogram/{FULL_ID}", safe="") in mail
    assert all(h.startswith(("http://testserver/", "mailto:")) for h in hrefs)


def test_slice_viewer_present_only_with_an_mrc_file(client: TestClient) -> None:
    section = page_of(client, FULL_ID).one("section", id="slice-viewer")
    options = section.one("select", id="slice-file").all("option")
    assert len(options) == 2  # the reconstruction and the tilt series
    assert not page_of(client, PLAIN_ID).all("section", id="slice-viewer")


# -- provenance -------------------------------------------------------------------------------


def test_provenance_of_a_valid_multipart_record(client: TestClient) -> None:
    prov = page_of(client, FULL_ID).one("section", id="provenance")
    status = prov.one(id="signature-status")
    assert status.text == "verified" and status.attrs["class"] == "ok"
    publisher = prov.one("a", cls="publisher")
    assert publisher.attrs["href"] == f"/browse?publisher={KEY_A.address}"
    assert [c.text for c in prov.one("ul", cls="txids").all("code")] == [FULL_ID, PART1_ID]
    command = prov.one("code", id="verify-command").text
    assert command == f"etdb record check {FULL_ID} --content"


def test_verify_command_is_real(client: TestClient) -> None:
    """The command exists with those options (tests/record/test_record_check.py runs it)."""
    from typer.testing import CliRunner

    from etdb.cli import app

    result = CliRunner().invoke(app, ["record", "check", "--help"])
    assert result.exit_code == 0 and "--content" in result.stdout
    command = page_of(client, PLAIN_ID).one("code", id="verify-command").text
    assert command == f"etdb record check {PLAIN_ID} --content"


def test_tampered_record_shows_the_failure(client: TestClient) -> None:
    doc = page_of(client, TAMPERED_ID)
    status = doc.one(id="signature-status")
    assert "bad" in status.attrs["class"]
    assert "verified" not in status.text
    body = client.get(f"/tomogram/{TAMPERED_ID}.json").json()
    assert body["signature"]["valid"] is False
    assert body["signature"]["reason"]
    assert body["provenance"]["signature_valid_when_indexed"] is True  # the catalog's claim


def test_edit_history(client: TestClient) -> None:
    doc = page_of(client, EDITED_ID)
    assert "After the edit" in doc.one("h1").text
    edits = doc.one("ol", id="edits").all("li")
    assert len(edits) == 1
    codes = [c.text for c in edits[0].all("code")]
    assert codes == [EDIT_TXID, "/info/title", "/details/strain"]
    assert doc.one(id="signature-status").text == "verified"  # the original's signature
    assert page_of(client, FULL_ID).one(id="edits-none")


def test_deactivated_banner(client: TestClient) -> None:
    doc = page_of(client, DEACTIVATED_ID)
    banner = doc.one(id="deactivated-banner")
    assert "Deactivated" in banner.text and DEACTIVATION_TXID in banner.text
    assert not page_of(client, FULL_ID).all(id="deactivated-banner")


# -- ids --------------------------------------------------------------------------------------


def test_prefix_and_any_txid_find_the_record(client: TestClient) -> None:
    for id in (FULL_ID[:6], FULL_ID[:10].upper(), PART1_ID):
        assert FULL["info"]["title"] in page_of(client, id).one("h1").text


def test_ambiguous_prefix_lists_candidates(client: TestClient) -> None:
    doc = page_of(client, "abcdef", status=409)
    hrefs = sorted(a.attrs["href"] for a in doc.all("a", cls="candidate"))
    assert hrefs == [f"/tomogram/{TWIN_1}", f"/tomogram/{TWIN_2}"]
    body = client.get("/tomogram/abcdef.json").json()
    assert sorted(c["id"] for c in body["error"]["candidates"]) == [TWIN_1, TWIN_2]


@pytest.mark.parametrize("id", [hexid("999999"), "abc", "not-hex-at-all", "ggggggg"])
def test_unknown_or_malformed_id_is_the_404_page(client: TestClient, id: str) -> None:
    doc = page_of(client, id, status=404)
    assert doc.one("h1").text == "Page not found"


def test_outside_the_portal_scope_is_404(
    catalog: SqlCatalog, tmp_path_factory: pytest.TempPathFactory
) -> None:
    home = tmp_path_factory.mktemp("scoped")
    with make_client(catalog, home, portal_publishers=KEY_A.address) as scoped:
        assert scoped.get(f"/tomogram/{OTHER_LAB_ID}").status_code == 404
        assert scoped.get(f"/tomogram/{FULL_ID}").status_code == 200
    with make_client(catalog, home, portal_publishers=KEY_B.address) as other:
        # both twins are outside: the ambiguous prefix finds nothing to offer
        assert other.get("/tomogram/abcdef").status_code == 404


# -- hostile records ------------------------------------------------------------------------


def test_hostile_fields_render_inert(client: TestClient) -> None:
    r = client.get(f"/tomogram/{HOSTILE_ID}")
    assert r.status_code == 200
    html = r.text
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "javascript:" not in html.replace("javascript:alert(1)</bdi></dd>", "")
    doc = dom(html)
    assert HOSTILE_TEXT in doc.one("h1").text  # shown as text
    scripts = [s.attrs.get("src", "") for s in doc.all("script")]
    assert "/static/dataset.js?v=" + _v() in scripts
    assert all(src.startswith("/static/") for src in scripts)  # no inline script at all
    emdb = doc.one("div", **{"data-field": "emdb"})
    assert not emdb.all("a")  # not an EMDB code: no link
    link = doc.one("tr", **{"data-subtype": "tiltSeries"}).one("a", cls="download")
    assert link.attrs["href"].endswith("/raw/%22%3E%3Cscript%3Ex%3C/script%3E.mrc")
    assert "style=" not in html
    assert "sandbox" not in r.headers["content-security-policy"]
    assert "script-src 'self'" in r.headers["content-security-policy"]


def _v() -> str:
    from etdb import __version__

    return __version__


# -- the JSON twin ----------------------------------------------------------------------------


def test_json_twin(client: TestClient) -> None:
    by_suffix = client.get(f"/tomogram/{FULL_ID}.json")
    by_accept = client.get(f"/tomogram/{FULL_ID[:8]}", headers={"Accept": "application/json"})
    assert by_suffix.status_code == by_accept.status_code == 200
    body = by_suffix.json()
    assert body == by_accept.json()
    assert body["id"] == FULL_ID
    assert body["record"] == FULL
    assert body["signature"] == {
        "valid": True,
        "address": KEY_A.address,
        "reason": body["signature"]["reason"],
    }
    assert body["provenance"]["txids"] == [FULL_ID, PART1_ID]
    location = FULL["storage"]["location"]
    assert [f["url"] for f in body["files"]] == [
        f"/ipfs/{location}/{f['fname']}" for f in REAL_FILES
    ]
    assert [f["size"] for f in body["files"]] == [f["fsize"] for f in REAL_FILES]
    edited = client.get(f"/tomogram/{EDITED_ID}.json").json()
    assert edited["provenance"]["edits"][0]["changed"] == ["/info/title", "/details/strain"]
    assert client.get(f"/tomogram/{hexid('999999')}.json").status_code == 404
