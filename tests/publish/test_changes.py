"""Change detection: the stat fingerprint of a folder and the fingerprint/diff of a record."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from etdb.publish.changes import changed_paths, content_fingerprint, record_fingerprint
from etdb.record import PrivateKey, sign_artifact
from tests.publish.test_dataset import META, SID, make_folder


def fp(folder: Path, **kw) -> str:
    return content_fingerprint(folder, profile=kw.pop("profile", "kubo-v1"), **kw)


def test_content_fingerprint_follows_what_the_importer_would_add(tmp_path):
    folder = make_folder(tmp_path)
    base = fp(folder)
    assert base.startswith("sha256:") and fp(folder) == base
    (folder / ".DS_Store").write_bytes(b"ignored, as the importer ignores it")
    assert fp(folder) == base
    target = folder / "rawdata" / "ts.mrc"
    stamp = target.stat().st_mtime_ns
    os.utime(target, ns=(stamp, stamp + 1))
    touched = fp(folder)
    assert touched != base  # a new mtime: re-read (the CID may still come out the same)
    target.write_bytes(target.read_bytes() + b"x")
    os.utime(target, ns=(stamp, stamp + 1))
    assert fp(folder) not in (base, touched)  # same mtime, other size


@pytest.mark.parametrize("change", ["add", "rename", "link", "retarget", "empty dir"])
def test_every_kind_of_change_shows(tmp_path, change):
    folder = make_folder(tmp_path)
    (folder / "link").symlink_to("rawdata/ts.mrc")
    before = fp(folder)
    if change == "add":
        (folder / "new.txt").write_bytes(b"")
    elif change == "rename":
        (folder / "AutoCaps" / "shot1.jpg").rename(folder / "AutoCaps" / "shot2.jpg")
    elif change == "link":
        (folder / "link2").symlink_to("rawdata/ts.mrc")
    elif change == "retarget":
        (folder / "link").unlink()
        (folder / "link").symlink_to("rawdata/ts.rawtlt")
    else:
        (folder / "rawdata" / "sub").mkdir()
        (folder / "rawdata" / "sub" / "x").write_bytes(b"")
    assert fp(folder) != before


def test_profile_and_overlay_are_part_of_the_content(tmp_path):
    folder = make_folder(tmp_path)
    extra = tmp_path / "keymov_x.mp4"
    extra.write_bytes(b"movie")
    assert fp(folder, profile="unixfs-v0-2015") != fp(folder)
    with_media = fp(folder, overlay={"keymov_x.mp4": extra})
    assert with_media != fp(folder)
    extra.write_bytes(b"another movie")
    assert fp(folder, overlay={"keymov_x.mp4": extra}) != with_media


def test_a_missing_folder_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        fp(tmp_path / "nope")


def wire(**details) -> dict:
    return {
        "type": "research",
        "subtype": "tomogram",
        "info": {"title": "t"},
        "details": {"sid": SID, "date": 1, "tiltMin": -60.0, **details},
        "storage": {"network": "ipfs", "location": "bafkqaaa",
                    "files": [{"fname": "a", "fsize": 1}, {"fname": "b/c~d", "fsize": 2}]},
    }  # fmt: skip


def test_record_fingerprint_ignores_signing_and_number_spelling():
    from etdb.publish.dataset import build_artifact

    artifact = build_artifact(META, "bafkqaaa", [])
    key = PrivateKey(bytes([3]) * 32)
    one = sign_artifact(artifact, key, timestamp=1)
    two = sign_artifact(artifact, key, timestamp=2)
    assert one.signature != two.signature
    assert record_fingerprint(one) == record_fingerprint(two) == record_fingerprint(artifact)
    assert record_fingerprint(wire()) == record_fingerprint(wire(tiltMin=-60))  # Go writes -60
    assert record_fingerprint(wire()) != record_fingerprint(wire(tiltMin=-60.5))
    changed = build_artifact({**META, "strain": "P3"}, "bafkqaaa", [])
    assert record_fingerprint(changed) != record_fingerprint(artifact)


def test_changed_paths_name_the_record_fields():
    old = wire()
    new = wire(tiltStep=2, tiltMin=-60)
    new["storage"]["location"] = "bafkqaab"
    new["storage"]["files"][1]["fsize"] = 3
    new["storage"]["files"].append({"fname": "e"})
    new["timestamp"] = 5  # signing keys never count
    assert changed_paths(old, new) == (
        "details.tiltStep",
        "storage.location",
        "storage.files[1].fsize",
        "storage.files[+]",
    )
    assert changed_paths(old, wire()) == ()
