"""etdb's kubo RPC against kubo v0.43.1's own, request for request.

A real kubo daemon (``tests/kubo``) and a real ``etdb serve`` hold the same folder, added by
``ipfs add -r`` (CIDv0 and ``--cid-version=1``) and by etdb's importer (the CIDs must agree).
Every request goes to both; the answers must have the same status, the headers clients read,
the same JSON (to the byte for ``ls``), the same bytes for ``cat``, and tars with the same
members, field for field and byte for byte but for the times (kubo stamps each entry "now").
With the times taken from kubo's own archive, ``archive=true`` is byte-identical.

The one deliberate difference: symlinks that climb out of the folder or are absolute are left
out of etdb's tars (``content/tarstream.py``); kubo's members for them are dropped before
comparing. kubo is asked with ``offline=true`` where a block is absent (it would search the
network); etdb, which never does, ignores the option.
"""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from etdb.content.blockstore import FSBlockstore
from etdb.content.cid import CID
from etdb.content.exporter import resolve_node
from etdb.content.tarstream import TarFormat, tar_stream
from etdb.content.unixfs import Importer
from tests.content.peers_harness import EtdbNode
from tests.kubo.daemon import KuboDaemon
from tests.web.kubo_rpc_dataset import (
    FILES,
    LEAF,
    LONG_DIRS,
    SAFE_LINKS,
    UNSAFE_LINKS,
    write_dataset,
)

pytestmark = pytest.mark.kubo

WAIT = 120.0
#: Base names of the symlinks etdb leaves out of a tar (kubo keeps them).
UNSAFE_NAMES = {rel.rsplit("/", 1)[-1].encode() for rel in UNSAFE_LINKS}
#: Headers kubo's clients read (go-ipfs-cmds, ipfs-api, kubo-rpc-client).
CLIENT_HEADERS = ("content-type", "x-stream-output", "x-chunked-output", "x-content-length")


@dataclass(frozen=True)
class Pair:
    kubo: KuboDaemon
    etdb: EtdbNode
    store: Path
    v1: str
    v0: str

    def both(
        self, command: str, *args: str, **options: str
    ) -> tuple[httpx.Response, httpx.Response]:
        """(kubo's answer, etdb's answer) to the same POST /api/v0/<command>."""
        params = [("arg", a) for a in args] + [(k.replace("_", "-"), v) for k, v in options.items()]
        return tuple(  # type: ignore[return-value]
            httpx.post(f"{base}/api/v0/{command}", params=params, timeout=WAIT)
            for base in (self.kubo.api_url, self.etdb.url)
        )


@pytest.fixture(scope="module")
def pair(kubo: KuboDaemon, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    base = tmp_path_factory.mktemp("rpc-parity")
    folder = write_dataset(base / "et2024-06-06-1")
    v1 = kubo.cli("add", "-r", "-Q", "--cid-version=1", str(folder)).stdout.decode().strip()
    v0 = kubo.cli("add", "-r", "-Q", str(folder)).stdout.decode().strip()
    with FSBlockstore(base / "blocks") as store:
        ours = (
            Importer("kubo-v1", store).add_path(folder).cid,
            Importer("unixfs-v0-2015", store).add_path(folder).cid,
        )
    assert (str(ours[0]), str(ours[1])) == (v1, v0)  # same DAGs: comparing answers means something
    with EtdbNode(base / "blocks", base / "home") as node:
        yield Pair(kubo, node, base / "blocks", v1, v0)


def same_head(theirs: httpx.Response, ours: httpx.Response) -> None:
    assert ours.status_code == theirs.status_code, (theirs.text[:300], ours.text[:300])
    for name in CLIENT_HEADERS:
        assert ours.headers.get(name) == theirs.headers.get(name), name


# -- tars, header by header -----------------------------------------------------------------------


def raw_members(data: bytes) -> list[tuple[object, ...]]:
    """Every header block's fields but the times and checksum, PAX records but ``mtime``,
    member data: a tar to the byte, except when it was written."""
    out: list[tuple[object, ...]] = []
    at = 0
    while at < len(data):
        block = data[at : at + 512]
        if block == bytes(512):
            out.append(("end",))
            at += 512
            continue
        size = int(block[124:136].rstrip(b"\0 ") or b"0", 8)
        body = data[at + 512 : at + 512 + size]
        fields = (block[:124], block[156:512])  # all but size (below), mtime and checksum
        if block[156:157] == b"x":
            records = tuple(r for r in body.split(b"\n") if r and b" mtime=" not in r)
            out.append(("pax", fields, records))
        else:
            out.append(("member", fields, block[124:136], body))
        at += 512 + -(-size // 512) * 512
    return out


def _name(member: tuple[object, ...]) -> bytes:
    return member[1][0][:100].rstrip(b"\0") if member[0] != "end" else b""  # type: ignore[index]


def without_unsafe_links(members: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    """kubo's members minus the unsafe symlinks (and the PAX extension before each)."""
    out: list[tuple[object, ...]] = []
    for member in members:
        if member[0] == "member" and _name(member).rsplit(b"/", 1)[-1] in UNSAFE_NAMES:
            if out and out[-1][0] == "pax":
                out.pop()
            continue
        out.append(member)
    return out


PATHS = ["", "/notes.txt", "/tilt", "/tilt/series.mrc", "/link-notes", f"/{LONG_DIRS}"]


@pytest.mark.parametrize("archive", ["false", "true"])
@pytest.mark.parametrize("rel", PATHS)
def test_get_is_kubos_tar(pair: Pair, rel: str, archive: str) -> None:
    for cid in (pair.v1, pair.v0):
        theirs, ours = pair.both("get", f"{cid}{rel}", archive=archive)
        same_head(theirs, ours)
        assert ours.headers["trailer"] == theirs.headers["trailer"] == "X-Stream-Error"
        assert raw_members(ours.content) == without_unsafe_links(raw_members(theirs.content))


def test_get_compressed_is_kubos_content(pair: Pair) -> None:
    """gzip streams differ in their header (Go writes OS 255), so compare what they hold."""
    theirs, ours = pair.both("get", f"{pair.v1}/tilt/series.mrc", compress="true")
    same_head(theirs, ours)
    assert gzip.decompress(ours.content) == gzip.decompress(theirs.content)
    theirs, ours = pair.both("get", pair.v0, compress="true", archive="true")
    same_head(theirs, ours)
    with (
        tarfile.open(fileobj=io.BytesIO(theirs.content), mode="r:gz") as a,
        tarfile.open(fileobj=io.BytesIO(ours.content), mode="r:gz") as b,
    ):
        unsafe = tuple(UNSAFE_LINKS)
        kept = [
            (m.name, m.type, m.size, m.mode, m.linkname) for m in a if not m.name.endswith(unsafe)
        ]
        assert kept == [(m.name, m.type, m.size, m.mode, m.linkname) for m in b]


def _kubo_archive(pair: Pair, path: str) -> tuple[bytes, int]:
    """kubo's archive of ``path`` and its one mtime (asked again in the rare case a second
    ticked while kubo wrote it)."""
    for _ in range(5):
        body = httpx.post(
            f"{pair.kubo.api_url}/api/v0/get", params={"arg": path, "archive": "true"}, timeout=WAIT
        ).content
        with tarfile.open(fileobj=io.BytesIO(body)) as tar:
            times = {m.mtime for m in tar.getmembers()}
        if len(times) == 1:
            return body, int(times.pop())
    raise AssertionError("kubo's archive entries never shared one second")


def _without_unsafe_blocks(tar: bytes) -> bytes:
    """A USTAR archive without the unsafe symlinks' members (one header block each)."""
    blocks = [tar[i : i + 512] for i in range(0, len(tar), 512)]
    return b"".join(
        b for b in blocks if b[:100].rstrip(b"\0").rsplit(b"/", 1)[-1] not in UNSAFE_NAMES
    )


@pytest.mark.parametrize("which", ["v1", "v0"])
def test_archive_is_byte_identical_given_kubos_time(pair: Pair, which: str) -> None:
    cid = getattr(pair, which)
    theirs, mtime = _kubo_archive(pair, cid)
    with FSBlockstore(pair.store, create=False) as store:
        ours = b"".join(
            tar_stream(
                store, resolve_node(store, CID.decode(cid)), cid, TarFormat.USTAR,
                now_ns=mtime * 10**9,
            )
        )  # fmt: skip
    assert ours == _without_unsafe_blocks(theirs)


# -- cat, ls, version -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "length"),
    [(None, None), (LEAF - 7, 30), (0, 1), (17, 4), (18, 3), (10**9, None), (None, 0), (3, 0)],
)
def test_cat_is_kubos_bytes(pair: Pair, offset: int | None, length: int | None) -> None:
    options = {k: str(v) for k, v in (("offset", offset), ("length", length)) if v is not None}
    for paths in (["tilt/series.mrc"], ["notes.txt", "tilt/series.mrc", "link-notes"]):
        theirs, ours = pair.both("cat", *(f"{pair.v0}/{p}" for p in paths), **options)
        same_head(theirs, ours)
        assert ours.content == theirs.content


LS_CASES = [
    ([""], {}),
    ([""], {"stream": "true"}),
    ([""], {"resolve_type": "false", "size": "false"}),
    ([""], {"resolve_type": "false"}),
    ([""], {"sort_size": "true"}),
    ([""], {"headers": "true", "long": "true", "human": "true"}),
    (["/tilt", f"/{LONG_DIRS}"], {}),
    (["/tilt/series.mrc"], {}),
    (["/notes.txt", "/link-notes"], {}),
]


@pytest.mark.parametrize(("rels", "options"), LS_CASES)
def test_ls_is_kubos_json_to_the_byte(pair: Pair, rels: list[str], options: dict[str, str]) -> None:
    for cid in (pair.v1, pair.v0):
        theirs, ours = pair.both("ls", *(f"{cid}{rel}" for rel in rels), **options)
        same_head(theirs, ours)
        assert ours.content == theirs.content


def test_version_has_kubos_shape(pair: Pair) -> None:
    theirs, ours = pair.both("version")
    same_head(theirs, ours)
    assert list(ours.json()) == list(theirs.json())


# -- errors ---------------------------------------------------------------------------------------


def test_errors_are_kubos(pair: Pair) -> None:
    absent = str(CID.hash(b"a block nobody stored"))
    v1 = pair.v1
    cases: list[tuple[str, list[str], dict[str, str]]] = [
        ("cat", [f"{v1}/nope"], {}),
        ("get", [f"{v1}/tilt/nope"], {}),
        ("ls", [f"{v1}/nope"], {}),
        ("cat", [absent], {"offline": "true"}),
        ("get", [absent], {"offline": "true"}),
        ("ls", [absent], {"offline": "true"}),
        ("cat", [v1], {}),
        ("cat", [f"{v1}/notes.txt"], {"offset": "-1"}),
        ("cat", [f"{v1}/notes.txt"], {"length": "-3"}),
        ("cat", ["not-a-cid"], {"length": "0"}),
        ("cat", [f"{v1}/notes.txt"], {"offset": "abc"}),
        ("cat", [f"{v1}/notes.txt"], {"offset": ""}),
        ("cat", [f"{v1}/notes.txt"], {"offset": str(2**63)}),
        ("cat", [f"{v1}/notes.txt"], {"offset": "0x1_0"}),
        ("get", [f"{v1}/notes.txt"], {"archive": "maybe"}),
        ("get", [f"{v1}/notes.txt"], {"encoding": "yaml"}),
        ("get", [v1], {"compress": "true"}),
        ("get", [v1], {"compress": "true", "compression_level": "0"}),
        ("get", [v1], {"compress": "true", "compression_level": "x"}),
        ("ls", [v1], {"sort_size": "true", "stream": "true"}),
        ("ls", [v1], {"sort_size": "true", "size": "false"}),
        ("cat", [], {}),
        ("get", [], {}),
        ("ls", [], {}),
        ("nonexistent", [], {}),
        ("cat/x/y", [], {}),
    ]
    for command, args, options in cases:
        theirs, ours = pair.both(command, *args, **options)
        same_head(theirs, ours)
        assert ours.content == theirs.content, (command, args, options)


def test_invalid_paths_fail_alike(pair: Pair) -> None:
    """kubo's reason for a malformed path is its parser's; etdb's is its own: same shape."""
    for arg in ("notacid", "", f"{pair.v1}/../../x", "/ipfs/"):
        theirs, ours = pair.both("cat", arg)
        same_head(theirs, ours)
        assert ours.json()["Message"].startswith(f'invalid path "{arg}"')
        assert (ours.json()["Code"], ours.json()["Type"]) == (theirs.json()["Code"], "error")


def test_methods_other_than_post_are_refused_alike(pair: Pair) -> None:
    for method in ("GET", "PUT", "DELETE"):
        theirs, ours = (
            httpx.request(method, f"{base}/api/v0/cat", params={"arg": pair.v1}, timeout=WAIT)
            for base in (pair.kubo.api_url, pair.etdb.url)
        )
        assert (
            (ours.status_code, ours.content)
            == (theirs.status_code, theirs.content)
            == (
                405,
                b"405 - Method Not Allowed\n",
            )
        )
        assert ours.headers["allow"] == theirs.headers["allow"]


# -- kubo's own command line, pointed at etdb ------------------------------------------------------


def test_kubos_own_cli_downloads_from_etdb(pair: Pair, tmp_path: Path) -> None:
    """``ipfs --api <etdb>``: kubo's client (go-ipfs-cmds) and its tar extractor (boxo's, which
    refuses unsafe paths) take etdb's answers as a kubo node's."""
    env = {**os.environ, "IPFS_PATH": str(tmp_path / "no-repo")}
    api = ["--api", f"/ip4/127.0.0.1/tcp/{pair.etdb.port}"]

    def ipfs(*args: str) -> bytes:
        done = subprocess.run(
            [str(pair.kubo.binary), *api, *args], env=env, capture_output=True, timeout=WAIT
        )
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        return done.stdout

    for cid in (pair.v1, pair.v0):
        dest = tmp_path / cid
        ipfs("get", "-o", str(dest), cid)
        for rel, data in FILES.items():
            assert (dest / rel).read_bytes() == data, rel
        for rel, target in SAFE_LINKS.items():
            assert os.readlink(dest / rel) == target
        assert not any(os.path.lexists(dest / rel) for rel in UNSAFE_LINKS)
    series = FILES["tilt/series.mrc"]
    got = ipfs("cat", "--offset", str(LEAF - 3), "--length", "9", f"{pair.v1}/tilt/series.mrc")
    assert got == series[LEAF - 3 : LEAF + 6]
    listed = ipfs("ls", f"{pair.v0}/tilt").decode().splitlines()
    assert sorted(line.split()[-1] for line in listed) == ["empty.dat", "link-up", "series.mrc"]
