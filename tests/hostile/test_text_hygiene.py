"""Text hygiene (issue 11, scope 4): no record text can make a page or an API answer fail.

The rule (``record/decoding.py`` ``UNSAFE_TEXT``): NUL and the other C0 controls but tab, LF
and CR, and lone surrogates, are refused wherever a message carries them; they are never
cleaned, since signatures cover text. Other text, RTL overrides and 64 KB strings included
(under limits raised to allow them), reaches every output, which must answer without a 5xx.

Everything is real: signed records on the embedded ledger, the real indexer into a SQLite
catalog, the real FastAPI app (API, compat API and portal) over it. Before the fix, a title
with a ``"\\ud800"`` escape (titles are not signed) was indexed and gave HTTP 500 on
``/api/v1/records/<id>`` and on etdb-react's ``/api/v2/artifact/get/type`` listing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from etdb.api import create_app
from etdb.config import Settings
from etdb.index.catalog import open_catalog
from etdb.index.indexer import Indexer
from etdb.ledger.local import open_local
from etdb.record import encode_edit, sign_edit
from etdb.record.limits import RecordLimits
from tests.index.records import signed_artifact
from tests.index.test_indexer import OWNER, Chain, rejected

BIG = 64 * 1024
#: Limits raised so that 64 KB strings get in: the outputs must cope with them too.
ROOMY = RecordLimits(max_text=BIG + 100, max_notes=BIG + 100, max_payload_bytes=1_000_000)
RTL = "Vibrio \u202eelif.exe\u202c cholerae \u2067isolate\u2069"


def wire(n: int, **overrides) -> str:
    """A signed publish, JSON-escaped as json.dumps writes it (``"\\ud800"`` stays an
    escape: the signature covers location, address and timestamp, not these fields)."""
    art = signed_artifact(OWNER, timestamp=1_600_000_000 + n, sid=f"tx2020-01-01-{n}")
    for path, value in overrides.items():
        node = art
        *parents, last = path.split("/")
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[last] = value
    return "json:" + json.dumps({"oip042": {"publish": {"artifact": art}}})


#: Refused: (payload, what the reason names).
REFUSED = {
    "surrogate title": (wire(1, **{"info/title": "T\ud800x"}), "info.title: a lone surrogate"),
    "surrogate notes": (
        wire(2, **{"details/artNotes": "ok \udfff"}),
        "details.artNotes: a lone surrogate (U+DFFF)",
    ),
    "NUL title": (wire(3, **{"info/title": "a\x00b"}), "control character (U+0000)"),
    "escape in fname": (
        wire(4, **{"storage/files/0/fname": "x\x1b[31m.mrc"}),
        "storage.files[0].fname: a control character (U+001B)",
    ),
    "NUL key": (wire(5, **{"details/a\x00b": "v"}), "JSON key 'a\\x00b'"),
}
#: Accepted: shown as they are.
ACCEPTED = {
    "rtl": wire(10, **{"info/title": RTL, "storage/files/0/fname": "evil\u202egpj.exe"}),
    "64 KB": wire(
        11,
        **{
            "info/title": "T" * BIG,
            "details/artNotes": "<b>notes</b> & " * (BIG // 16),
            "storage/files/0/fname": "f" * BIG,
            "info/tags": "\u00e9" * 8_000,
        },
    ),
    "tab and newlines": wire(12, **{"info/title": "tab\there\r\nnext line"}),
}


@dataclass
class Served:
    client: TestClient
    accepted: dict[str, str]  # name -> record id
    refused: dict[str, str]  # name -> txid
    edit: str  # a refused edit's txid
    reasons: dict[str, tuple[str, str]]


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Served]:
    tmp: Path = tmp_path_factory.mktemp("hygiene")
    chain = Chain(tmp / "ledger.sqlite3")
    refused = dict(zip(REFUSED, chain.block(*(p for p, _ in REFUSED.values())), strict=True))
    roomy = open_local(f"{chain.url}?max_payload=1000000")  # the 64 KB record in one piece
    txids = [r.txid for r in roomy.publish_many(ACCEPTED.values())]
    accepted = dict(zip(ACCEPTED, txids, strict=True))
    roomy.close()
    patch = [{"op": "replace", "path": "/info/title", "value": "edited \ufffd"}]
    edit_text = encode_edit(sign_edit(accepted["rtl"], patch, OWNER, timestamp=1_700_000_000))
    # The encoder writes text as it is; a hostile sender writes the escape (an edit's
    # signature covers txid and timestamp only).
    edit_text = edit_text.replace("\ufffd", "\\ud800")
    assert "\\ud800" in edit_text
    (edit,) = chain.block(edit_text)
    # A raw NUL inside the JSON text itself (not an escape): invalid JSON, and its excerpt
    # is shown by /api/v1/rejections.
    chain.block('json:{"oip042":{"publish":{"artifact":{"info":{"title":"a\x00b"}}}}}')
    catalog = open_catalog(f"sqlite:///{tmp / 'catalog.sqlite3'}")
    Indexer(chain.ledger, catalog, limits=ROOMY).run()
    home = tmp / "home"
    home.mkdir()
    app = create_app(catalog, settings=Settings(home=home), ledger=chain.ledger)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Served(client, accepted, refused, edit, rejected(catalog))
    catalog.close()
    chain.close()


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_unsafe_text_is_refused_with_the_reason(served, name):
    kind, reason = served.reasons[served.refused[name]]
    assert kind == "publish" and REFUSED[name][1] in reason, reason


def test_an_edit_bringing_unsafe_text_is_refused(served):
    kind, reason = served.reasons[served.edit]
    assert kind == "edit" and "patch[0].value: a lone surrogate (U+D800)" in reason, reason


def _paths(served: Served) -> list[str]:
    ids = [*served.accepted.values(), *served.refused.values(), served.edit]
    paths = [
        "/",
        "/index.json",
        "/browse",
        "/browse.json",
        "/browse?q=vibrio",
        "/browse.json?species=Sulfolobus%20solfataricus",
        "/featured",
        "/api/v1/records",
        "/api/v1/records?q=TTTT",
        "/api/v1/records?format=csv",
        "/api/v1/records?format=ndjson",
        "/api/v1/summary",
        "/api/v1/publishers",
        "/api/v1/rejections",
        "/api/v1/status",
        "/api/v2/artifact/get/type",
        "/api/v2/artifact/get/type?t=*&st=*&results=*&page=1",
        "/api/v2/research/tomogram/summary",
    ]
    for rid in ids:
        paths += [
            f"/tomogram/{rid}",
            f"/tomogram/{rid}.json",
            f"/api/v1/records/{rid}",
            f"/api/v2/artifact/get?id={rid}",
            f"/api/v2/artifact/get?id={rid[:8]}",
        ]
    return paths


def _strings_with_nul(r) -> bool:
    """Whether a JSON answer holds a string with a NUL (written as the escape \\u0000)."""
    if not r.headers.get("content-type", "").startswith("application/json"):
        return False
    stack = [r.json()]
    while stack:
        node = stack.pop()
        if isinstance(node, str) and "\x00" in node:
            return True
        if isinstance(node, dict):
            stack.extend([*node.keys(), *node.values()])
        elif isinstance(node, list):
            stack.extend(node)
    return False


def test_no_output_fails_on_record_text(served):
    failures = []
    for path in _paths(served):
        r = served.client.get(path)
        if r.status_code >= 500:
            failures.append(f"{path}: {r.status_code} {r.text[:200]}")
            continue
        body = r.content.decode("utf-8")  # strict: no surrogate got out encoded somehow
        if "\x00" in body or _strings_with_nul(r):
            failures.append(f"{path}: a NUL reached the output")
    assert not failures, "\n".join(failures)


def test_accepted_text_is_shown_as_published(served):
    client = served.client
    rtl = client.get(f"/api/v1/records/{served.accepted['rtl']}").json()
    assert rtl["summary"]["title"] == RTL
    assert rtl["artifact"]["storage"]["files"][0]["fname"] == "evil\u202egpj.exe"
    big = client.get(f"/api/v1/records/{served.accepted['64 KB']}").json()
    assert big["summary"]["title"] == "T" * BIG
    page = client.get(f"/tomogram/{served.accepted['64 KB']}")
    assert page.status_code == 200 and "&lt;b&gt;notes&lt;/b&gt; &amp;" in page.text
    tabs = client.get(f"/api/v1/records/{served.accepted['tab and newlines']}").json()
    assert tabs["artifact"]["info"]["title"] == "tab\there\r\nnext line"
    assert client.get(f"/api/v1/records/{served.refused['NUL title']}").status_code == 404
