"""/api/v2 shows the 2018 clients the files they can fetch: a folder entry (the pyramid) is left
out, everything else byte for byte as stored."""

from __future__ import annotations

import json

from etdb.api.compat_list import legacy_artifact, render
from etdb.index.query import CurrentArtifact

FILES = [
    {"fname": "rawdata/ts.mrc", "subtype": "tiltSeries", "type": "tomogram"},
    {"fname": "S1.ome.zarr", "subtype": "ZARR", "type": "preview", "fsize": 9},
    {"fname": "keyimg_S1.jpg", "subtype": "keyimg", "type": "tomogram"},
]


def artifact(files: list[dict[str, object]]) -> dict[str, object]:
    return {"title": "é", "storage": {"network": "IPFS", "location": "bafy", "files": files}}


def test_the_folder_entry_is_left_out_and_nothing_else() -> None:
    original = artifact(FILES)
    shown = legacy_artifact(original)
    assert [f["fname"] for f in shown["storage"]["files"]] == ["rawdata/ts.mrc", "keyimg_S1.jpg"]
    assert shown["storage"]["location"] == "bafy" and shown["title"] == "é"
    assert len(original["storage"]["files"]) == 3  # the stored record is not touched
    plain = artifact([FILES[0]])
    assert legacy_artifact(plain) is plain
    for odd in ({}, {"storage": None}, {"storage": {"files": "x"}}, {"storage": {"files": [1]}}):
        assert legacy_artifact(odd) == odd  # hostile shapes pass through as stored


def test_list_fragments_rewrite_only_records_with_a_folder_entry() -> None:
    stored = json.dumps(artifact([FILES[0]]), separators=(",", ":"))
    row = CurrentArtifact("ab" * 32, 1, "Fpub", False, stored)
    assert stored.encode() in render(row)  # as stored, byte for byte
    with_pyramid = CurrentArtifact("cd" * 32, 1, "Fpub", False, json.dumps(artifact(FILES)))
    body = json.loads(render(with_pyramid))
    assert [f["subtype"] for f in body["oip042"]["artifact"]["storage"]["files"]] == [
        "tiltSeries",
        "keyimg",
    ]
    assert (body["txid"], body["publisher"]) == ("cd" * 32, "Fpub")
