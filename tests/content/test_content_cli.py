"""`etdb add / cat / get / car export / car import` through the CLI (typer CliRunner)."""

import json
import os
import random

import pytest
from typer.testing import CliRunner

from etdb.cli import app
from etdb.config import load_settings
from etdb.content.blockstore import FSBlockstore
from etdb.content.cid import CID
from tests.content.references import write_mixed_tree

runner = CliRunner()

# kubo --cid-version=1 and kubo defaults for the mixed tree are in ipfs.md, but for a tree
# without symlinks; these are plain files whose CIDs are published kubo vectors.
HELLO_V0 = "Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD"
HELLO_V1 = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"


def run(*args: str, ok: bool = True):
    result = runner.invoke(app, list(args))
    if ok:
        assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result


def one_line_error(result, *needles: str) -> None:
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    for n in needles:
        assert n in result.stderr


@pytest.fixture
def tree(tmp_path):
    path = write_mixed_tree(tmp_path / "tree", seed=3)
    (path / "big.bin").write_bytes(random.Random(3).randbytes(700_000))
    return path


def test_add_prints_each_entry_then_root_last(etdb_home, tree):
    result = run("add", str(tree))
    lines = result.stdout.splitlines()
    root = lines[-1]
    CID.decode(root)
    assert lines[-2] == f"added {root} tree"
    added = {line.split(" ", 2)[2]: line.split(" ", 2)[1] for line in lines[:-1]}
    assert "tree/ünïcödé dir/файл.txt" in added and "tree/empty dir" in added
    assert "tree/.hidden.txt" not in added  # kubo skips dotfiles without --hidden
    # Children before their folder, as kubo prints.
    names = [line.split(" ", 2)[2] for line in lines[:-1]]
    assert names.index("tree/a/b/c/deep.txt") < names.index("tree/a/b/c") < names.index("tree/a")
    store = FSBlockstore(load_settings().blockstore_path)
    assert store.has(CID.decode(root)) and store.verify().ok
    assert os.listdir(store.root / ".temp") == []  # synced before the CID was printed


def test_add_quiet_json_profiles_and_only_hash(etdb_home, tmp_path):
    hello = tmp_path / "hello.txt"
    hello.write_bytes(b"hello world")
    assert run("add", "-q", str(hello)).stdout == HELLO_V1 + "\n"
    assert run("add", "-q", "--cid-version", "0", str(hello)).stdout == HELLO_V0 + "\n"
    out = json.loads(run("add", "--json", "--profile", "unixfs-v0-2015", str(hello)).stdout)
    assert out["cid"] == HELLO_V0 and out["size"] == 11 and out["profile"] == "unixfs-v0-2015"
    other = tmp_path / "other.txt"
    other.write_bytes(b"not stored")
    cid = run("add", "-q", "--only-hash", str(other)).stdout.strip()
    assert not FSBlockstore(load_settings().blockstore_path).has(CID.decode(cid))
    one_line_error(run("add", "--profile", "nope", str(hello), ok=False), "nope")
    one_line_error(run("add", str(tmp_path / "absent"), ok=False), "absent")


def test_cat(etdb_home, tree):
    root = run("add", "-q", str(tree)).stdout.strip()
    big = (tree / "big.bin").read_bytes()
    assert run("cat", f"{root}/big.bin").stdout_bytes == big
    got = run("cat", f"{root}/big.bin", "--offset", "262143", "--length", "3").stdout_bytes
    assert got == big[262143:262146]
    one_line_error(run("cat", root, ok=False), "directory")
    one_line_error(run("cat", f"{root}/missing", ok=False), "missing")
    one_line_error(run("cat", "garbage", ok=False))


def test_get_tree_and_file(etdb_home, tree, tmp_path):
    root = run("add", "-q", "--hidden", str(tree)).stdout.strip()
    dest = tmp_path / "out"
    run("get", root, "-o", str(dest))
    for p in tree.rglob("*"):
        q = dest / p.relative_to(tree)
        assert q.is_dir() if p.is_dir() else q.read_bytes() == p.read_bytes()
    report = json.loads(run("get", f"{root}/a/b", "-o", str(tmp_path / "ab"), "--json").stdout)
    assert report["files"] == 2 and (tmp_path / "ab" / "c" / "deep.txt").read_bytes() == b"deep\n"
    one_line_error(run("get", root, "-o", str(dest), ok=False), "exists")


def test_corruption_is_a_clear_error(etdb_home, tree, tmp_path):
    root = run("add", "-q", str(tree)).stdout.strip()
    store = FSBlockstore(load_settings().blockstore_path)
    leaf = CID.hash((tree / "apple.txt").read_bytes())
    path = store.path_of(leaf)
    path.write_bytes(b"tampered\n")
    one_line_error(run("cat", f"{root}/apple.txt", ok=False), str(leaf), str(path))
    one_line_error(run("get", root, "-o", str(tmp_path / "o"), ok=False), str(leaf))
    one_line_error(run("car", "export", root, "-o", str(tmp_path / "x.car"), ok=False), str(leaf))
    assert not (tmp_path / "x.car").exists()  # no truncated CAR left behind


def test_car_export_import_round_trip(etdb_home, tree, tmp_path, monkeypatch):
    root = run("add", "-q", str(tree)).stdout.strip()
    car = tmp_path / "tree.car"
    info = json.loads(run("car", "export", root, "-o", str(car), "--json").stdout)
    assert info["bytes"] == car.stat().st_size
    entity = tmp_path / "entity.car"
    run("car", "export", f"{root}/big.bin", "-o", str(entity), "--entity-bytes", "0:10")
    assert entity.stat().st_size < 300_000  # the first leaf only, not the whole file
    # A fresh home: importing the CAR restores everything.
    monkeypatch.setenv("ETDB_HOME", str(tmp_path / "home2"))
    assert run("car", "import", str(car)).stdout == root + "\n"
    assert json.loads(run("car", "import", str(car), "--json").stdout) == {"roots": [root]}
    assert run("cat", f"{root}/big.bin").stdout_bytes == (tree / "big.bin").read_bytes()
    bad = tmp_path / "bad.car"
    data = bytearray(car.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    one_line_error(run("car", "import", str(bad), ok=False), "offset")
    one_line_error(run("car", "import", str(tree / "apple.txt"), ok=False))
