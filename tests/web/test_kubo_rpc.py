"""kubo's RPC, read-only subset, on a real ``etdb serve``: answers, errors and hostile requests.

The node is a real ``etdb serve --no-index`` subprocess (``tests.content.peers_harness``) with
``gateway_streams=LIMIT``, over a blockstore holding the dataset of ``kubo_rpc_dataset``
(imported as ``kubo-v1``, CIDv1, and as ``unixfs-v0-2015``, the CIDv0 ETDB-Caltech's records
use) and its hostile DAGs. Clients are httpx and raw sockets on loopback; expected bytes and
names come from the files on disk, tars are read by Python's tarfile. What kubo itself answers
is compared in ``test_kubo_rpc_parity.py``; the real npm clients are in
``test_kubo_rpc_clients.py``. Waits are generous "eventually" polls, never speed assertions.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import socket
import tarfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from etdb import __version__
from etdb.content.blockstore import FSBlockstore
from etdb.content.cid import CID
from etdb.content.tarstream import MAX_PATH
from etdb.content.unixfs import Importer
from etdb.web.kubo_rpc import MAX_LISTING, MAX_LISTING_BYTES
from tests.content.peers_harness import EtdbNode
from tests.web.kubo_rpc_dataset import (
    FILES,
    LEAF,
    SAFE_LINKS,
    UNSAFE_LINKS,
    Hostile,
    build_hostile,
    write_dataset,
)

LIMIT = 2  # the node's gateway_streams
WAIT = 60.0  # "eventually": generous, for a loaded 2-core machine
BAD_NAMES = ["..", "a/b", "esc\x1b[2Jape", "..\\..\\x", "new\nline"]
ZERO_TIME = "0001-01-01T00:00:00Z"


@dataclass(frozen=True)
class Served:
    node: EtdbNode
    v1: str  # the dataset's root, CIDv1 (kubo-v1)
    v0: str  # the same folder as CIDv0 (unixfs-v0-2015)
    store: Path
    hostile: Hostile


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    base = tmp_path_factory.mktemp("kubo-rpc")
    folder = write_dataset(base / "et2024-05-05-1")
    with FSBlockstore(base / "blocks") as store:
        v1 = Importer("kubo-v1", store).add_path(folder).cid
        v0 = Importer("unixfs-v0-2015", store).add_path(folder).cid
        hostile = build_hostile(store, BAD_NAMES, MAX_LISTING + 1)
    settings = {"gateway_streams": str(LIMIT)}
    with EtdbNode(base / "blocks", base / "home", settings) as node:
        yield Served(node, str(v1), str(v0), base / "blocks", hostile)


def rpc(served: Served, command: str, *args: str, **options: str) -> httpx.Response:
    params = [("arg", a) for a in args] + [(k.replace("_", "-"), v) for k, v in options.items()]
    return httpx.post(f"{served.node.url}/api/v0/{command}", params=params, timeout=WAIT)


def tar_of(body: bytes, mode: str = "r") -> dict[str, tuple[tarfile.TarInfo, bytes | None]]:
    out = {}
    with tarfile.open(fileobj=io.BytesIO(body), mode=mode) as tar:
        for member in tar.getmembers():
            data = tar.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
            out[member.name] = (member, data)
    return out


def kubo_error(r: httpx.Response, status: int, code: int, message: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"Message": message, "Code": code, "Type": "error"}


def plain_error(r: httpx.Response, status: int, text: str) -> None:
    assert (r.status_code, r.text) == (status, text + "\n")
    assert r.headers["content-type"] == "text/plain; charset=utf-8"


def streamed(r: httpx.Response, content_type: str, length: int | None) -> None:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == content_type
    assert r.headers["x-stream-output"] == "1"
    assert r.headers["trailer"] == "X-Stream-Error"
    if length is not None:
        assert r.headers["x-content-length"] == str(length)


# -- version -----------------------------------------------------------------------------------


def test_version_is_etdbs_own_in_kubos_shape(served: Served) -> None:
    r = rpc(served, "version")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert list(body) == ["Version", "Commit", "Repo", "System", "Golang"]
    assert body["Version"] == __version__ and all(isinstance(v, str) for v in body.values())
    exposed = r.headers["access-control-expose-headers"]
    assert {"X-Stream-Output", "X-Chunked-Output", "X-Content-Length"} <= set(exposed.split(", "))
    assert rpc(served, "version", enc="text").text == f"etdb version {__version__}\n"


# -- get ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["{cid}/{rel}", "/ipfs/{cid}/{rel}", "ipfs://{cid}/{rel}"])
@pytest.mark.parametrize("rel", ["notes.txt", "tilt/series.mrc", "tilt/empty.dat"])
def test_get_of_a_file_is_a_tar_of_that_file(served: Served, form: str, rel: str) -> None:
    for cid in (served.v1, served.v0):
        r = rpc(served, "get", form.format(cid=cid, rel=rel))
        streamed(r, "application/x-tar", len(FILES[rel]))
        members = tar_of(r.content)
        name = rel.rsplit("/", 1)[-1]
        assert list(members) == [name]
        assert members[name][0].mode == 0o644 and members[name][1] == FILES[rel]


@pytest.mark.parametrize("archive", ["false", "true"])
def test_get_of_a_folder_is_the_whole_tree(served: Served, archive: str) -> None:
    for cid in (served.v1, served.v0):
        r = rpc(served, "get", cid, archive=archive)
        streamed(r, "application/x-tar", None)
        assert int(r.headers["x-content-length"]) > sum(len(b) for b in FILES.values())
        members = tar_of(r.content)
        for rel, data in FILES.items():
            assert members[f"{cid}/{rel}"][1] == data, rel
        links = {n: m.linkname for n, (m, _) in members.items() if m.issym()}
        assert links == {f"{cid}/{rel}": target for rel, target in SAFE_LINKS.items()}
        assert not any(n.endswith(tuple(UNSAFE_LINKS)) for n in members)  # left out
        dirs = {n for n, (m, _) in members.items() if m.isdir()}
        assert {cid, f"{cid}/tilt"} <= dirs
        plain = [m for m, _ in members.values() if not m.pax_headers]
        assert (archive == "true") == bool(plain)  # USTAR where it fits, else PAX throughout


def test_get_compressed(served: Served) -> None:
    r = rpc(served, "get", f"{served.v1}/tilt/series.mrc", compress="true")
    streamed(r, "application/gzip", len(FILES["tilt/series.mrc"]))
    assert gzip.decompress(r.content) == FILES["tilt/series.mrc"]  # the file itself, gzipped
    r = rpc(served, "get", served.v1, compress="true", archive="true", compression_level="1")
    streamed(r, "application/gzip", None)
    assert tar_of(r.content, "r:gz")[f"{served.v1}/notes.txt"][1] == FILES["notes.txt"]
    kubo_error(rpc(served, "get", served.v1, compress="true"), 500, 0, "file is not regular")
    bad_level = rpc(served, "get", served.v1, compress="true", compression_level="10")
    kubo_error(bad_level, 500, 0, "compression level must be between 1 and 9")
    ignored = rpc(served, "get", f"{served.v1}/notes.txt", compression_level="0")
    assert tar_of(ignored.content)["notes.txt"][1] == FILES["notes.txt"]  # no compress: unused


# -- cat ----------------------------------------------------------------------------------------


def test_cat_whole_files_and_symlinks(served: Served) -> None:
    for rel, data in FILES.items():
        r = rpc(served, "cat", f"{served.v0}/{rel}")
        streamed(r, "text/plain", len(data))
        assert r.content == data
    assert rpc(served, "cat", f"{served.v1}/link-notes").content == b"notes.txt"  # its target


@pytest.mark.parametrize(
    ("offset", "length"),
    [(LEAF - 10, 30), (0, 1), (1_299_999, 5), (5, 20), (18, 4), (17, None), (10**9, None)],
)
def test_cat_offset_and_length_across_leaves_and_files(
    served: Served, offset: int, length: int | None
) -> None:
    """One path, and several (kubo's offset skips whole files first): always the slice of the
    concatenation."""
    paths = ["notes.txt", "tilt/series.mrc"]
    both = FILES["notes.txt"] + FILES["tilt/series.mrc"]
    options = {"offset": str(offset)} | ({} if length is None else {"length": str(length)})
    end = None if length is None else offset + length
    one = rpc(served, "cat", f"{served.v1}/tilt/series.mrc", **options)
    streamed(one, "text/plain", len(FILES["tilt/series.mrc"][offset:end]))
    assert one.content == FILES["tilt/series.mrc"][offset:end]
    two = rpc(served, "cat", *(f"{served.v1}/{p}" for p in paths), **options)
    assert two.content == both[offset:end]
    assert two.headers["x-content-length"] == str(len(both[offset:end]))


def test_cat_options_parse_as_go_parses_them(served: Served) -> None:
    path = f"{served.v1}/tilt/series.mrc"
    data = FILES["tilt/series.mrc"]
    assert rpc(served, "cat", path, offset="0x10", length="0b11").content == data[16:19]
    assert rpc(served, "cat", path, o="1_0", l="010").content == data[10:18]  # aliases, octal
    assert rpc(served, "cat", path, offset=str(2**63 - 1)).content == b""
    plain_error(
        rpc(served, "cat", path, offset=str(2**63)),
        400,
        f'could not convert value "{2**63}" to type "int64" (for option "-offset")',
    )
    plain_error(
        rpc(served, "cat", path, length=" 5"),
        400,
        'could not convert value " 5" to type "int64" (for option "-length")',
    )
    plain_error(
        rpc(served, "cat", path, offset=""),
        400,
        'could not convert empty value to type "int64" (for option "-offset")',
    )
    kubo_error(rpc(served, "cat", path, offset="-1"), 500, 0, "cannot specify negative offset")
    kubo_error(rpc(served, "cat", path, length="-1"), 500, 0, "cannot specify negative length")
    empty = rpc(served, "cat", "not-even-a-cid", length="0")  # kubo reads nothing, resolves none
    streamed(empty, "text/plain", 0)
    assert empty.content == b""


# -- ls -----------------------------------------------------------------------------------------


def _top_level() -> dict[str, tuple[int, int, str]]:
    """name -> (Type, Size, Target) of the dataset's top-level entries, from the disk."""
    out: dict[str, tuple[int, int, str]] = {}
    for rel, data in FILES.items():
        head, sep, _ = rel.partition("/")
        out[head] = (1, 0, "") if sep else (2, len(data), "")
    for rel, target in {**SAFE_LINKS, **UNSAFE_LINKS}.items():
        if "/" not in rel:
            out[rel] = (4, len(target), target)
    return out


def test_ls_lists_kinds_sizes_and_targets_sorted(served: Served) -> None:
    for cid in (served.v1, served.v0):
        r = rpc(served, "ls", cid)
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        assert "x-chunked-output" not in r.headers
        (obj,) = r.json()["Objects"]
        assert obj["Hash"] == cid
        links = obj["Links"]
        assert [link["Name"] for link in links] == sorted(_top_level(), key=str.encode)
        for link in links:
            assert list(link) == ["Name", "Hash", "Size", "Type", "Target", "Mode", "ModTime"]
            assert (link["Type"], link["Size"], link["Target"]) == _top_level()[link["Name"]]
            assert (link["Mode"], link["ModTime"]) == (0, ZERO_TIME)
            CID.decode(link["Hash"])


def test_ls_stream_unresolved_sorted_by_size_and_several_paths(served: Served) -> None:
    whole = rpc(served, "ls", served.v1).json()["Objects"][0]["Links"]
    r = rpc(served, "ls", served.v1, stream="true")
    assert r.status_code == 200 and r.headers["x-chunked-output"] == "1"
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert all(len(o["Objects"]) == 1 and len(o["Objects"][0]["Links"]) == 1 for o in lines)
    streamed_links = [o["Objects"][0]["Links"][0] for o in lines]
    assert sorted(streamed_links, key=lambda e: e["Name"]) == sorted(whole, key=lambda e: e["Name"])
    by_size = rpc(served, "ls", served.v1, sort_size="true").json()["Objects"][0]["Links"]
    assert [e["Size"] for e in by_size] == sorted((e["Size"] for e in whole), reverse=True)
    bare = rpc(served, "ls", served.v0, resolve_type="false", size="false").json()
    assert {(e["Type"], e["Size"]) for e in bare["Objects"][0]["Links"]} == {(0, 0)}  # not read
    two = rpc(served, "ls", served.v1, f"{served.v1}/tilt").json()["Objects"]
    assert [o["Hash"] for o in two] == [served.v1, f"{served.v1}/tilt"]
    assert {e["Name"] for e in two[1]["Links"]} == {"series.mrc", "empty.dat", "link-up"}
    kubo_error(
        rpc(served, "ls", served.v1, sort_size="true", stream="true"),
        400,
        1,
        "cannot use --sort-size with --stream",
    )
    kubo_error(
        rpc(served, "ls", served.v1, sort_size="true", size="false"),
        400,
        1,
        "cannot use --sort-size with --size=false",
    )


def test_ls_of_a_file_lists_its_chunks(served: Served) -> None:
    (obj,) = rpc(served, "ls", f"{served.v0}/tilt/series.mrc").json()["Objects"]
    sizes = [(e["Name"], e["Type"]) for e in obj["Links"]]
    assert sizes == [("", 2)] * len(sizes) and len(sizes) == -(-1_300_000 // LEAF)
    assert sum(e["Size"] for e in obj["Links"]) == len(FILES["tilt/series.mrc"])
    assert rpc(served, "ls", f"{served.v1}/notes.txt").json()["Objects"][0]["Links"] == []


def test_a_node_with_an_upstream_serves_what_it_never_stored(
    served: Served, tmp_path: Path
) -> None:
    """The RPC reads what the gateway's accessor gives: through upstream peers (``peers``),
    every block verified, a file's range read ahead, nothing stored in the blockstore."""
    home = tmp_path / "reader"
    settings = {"peers": served.node.url, "peer_cache": str(home / "cache")}
    with EtdbNode(tmp_path / "no-blocks", home, settings) as reader:
        base = f"{reader.url}/api/v0"
        for rel, data in FILES.items():
            r = httpx.post(f"{base}/cat", params={"arg": f"{served.v0}/{rel}"}, timeout=WAIT)
            assert r.status_code == 200 and r.content == data, rel
        r = httpx.post(f"{base}/get", params={"arg": served.v1}, timeout=WAIT)
        members = tar_of(r.content)
        assert all(members[f"{served.v1}/{rel}"][1] == data for rel, data in FILES.items())
        r = httpx.post(f"{base}/ls", params={"arg": served.v1}, timeout=WAIT)
        assert r.json() == rpc(served, "ls", served.v1).json()
    assert not (tmp_path / "no-blocks").exists()


# -- errors, paths, methods ---------------------------------------------------------------------


def test_command_errors_are_kubos_json(served: Served) -> None:
    absent = CID.hash(b"a block nobody stored")
    for command in ("get", "cat", "ls"):
        kubo_error(
            rpc(served, command, f"{served.v1}/nope"),
            500,
            0,
            f'no link named "nope" under {served.v1}',
        )
        kubo_error(
            rpc(served, command, str(absent)),
            500,
            0,
            f"block was not found locally (offline): ipld: could not find {absent}",
        )
        bad = rpc(served, command, "notacid")
        assert bad.status_code == 500 and bad.json()["Message"].startswith('invalid path "notacid"')
        ipns = rpc(served, command, "/ipns/example.org")
        assert ipns.status_code == 500 and "IPNS" in ipns.json()["Message"]
        plain_error(rpc(served, command), 400, 'argument "ipfs-path" is required')
    kubo_error(rpc(served, "cat", served.v1), 500, 0, "this dag node is a directory")


def test_option_errors_are_kubos_plain_text(served: Served) -> None:
    path = f"{served.v1}/notes.txt"
    plain_error(
        rpc(served, "get", path, archive="maybe"),
        400,
        'could not convert value "maybe" to type "bool" (for option "-archive")',
    )
    plain_error(rpc(served, "get", path, encoding="yaml"), 400, "invalid encoding: yaml")
    r = httpx.post(
        f"{served.node.url}/api/v0/cat",
        params=[("arg", path), ("offset", "1"), ("offset", "2")],
        timeout=WAIT,
    )
    plain_error(r, 400, "expected key offset to have only a single value, received [1 2]")
    unknown = rpc(served, "cat", path, whatever="x", stream_channels="true")
    assert unknown.content == FILES["notes.txt"]  # undeclared options are ignored, as by kubo
    inline = httpx.post(f"{served.node.url}/api/v0/ls/{served.v1}", timeout=WAIT)
    assert inline.json()["Objects"][0]["Hash"] == served.v1  # /api/v0/ls/<arg>, as kubo reads it


def test_paths_are_names_inside_the_dag_never_files(served: Served) -> None:
    """``..`` is folded lexically (as Go's path.Clean does) and can never leave the CID."""
    assert rpc(served, "cat", f"{served.v1}/tilt/../notes.txt").content == FILES["notes.txt"]
    assert rpc(served, "cat", f"{served.v1}/./tilt//empty.dat").content == b""
    for arg in (f"{served.v1}/../../../etc/passwd", "/etc/passwd", "../../etc/passwd", ""):
        r = rpc(served, "cat", arg)
        assert r.status_code == 500 and r.json()["Message"].startswith("invalid path"), arg


def test_nothing_writes_and_other_paths_are_not_found(served: Served) -> None:
    before = sorted(p.name for p in served.store.rglob("*"))
    for path in (
        "add", "pin/add", "pin/rm", "block/put", "dag/import", "dag/put", "files/write",
        "files/cp", "files/rm", "key/gen", "config", "config/replace", "repo/gc", "name/publish",
        "shutdown", "files/stat", "cat/a/b", "", "commands",
    ):  # fmt: skip
        r = httpx.post(
            f"{served.node.url}/api/v0/{path}",
            params={"arg": served.v1},
            files={"file": ("x.txt", b"data nobody may store")},
            timeout=WAIT,
        )
        plain_error(r, 404, "404 page not found")
    for method in ("GET", "PUT", "DELETE", "PATCH"):
        r = httpx.request(method, f"{served.node.url}/api/v0/cat", params={"arg": served.v1})
        plain_error(r, 405, "405 - Method Not Allowed")
        assert r.headers["allow"] == "OPTIONS, POST"
    head = httpx.head(f"{served.node.url}/api/v0/version")
    assert head.status_code == 405
    assert sorted(p.name for p in served.store.rglob("*")) == before


# -- hostile content ----------------------------------------------------------------------------


def read_cut(served: Served, command: str, **params: str) -> tuple[httpx.Response, bytes, bool]:
    """The answer's head, the bytes received, and whether the body was cut (not completed)."""
    got = bytearray()
    query = [(k.replace("_", "-"), v) for k, v in params.items()]
    with httpx.stream(
        "POST", f"{served.node.url}/api/v0/{command}", params=query, timeout=WAIT
    ) as r:
        try:
            for chunk in r.iter_raw():
                got += chunk
        except httpx.RemoteProtocolError:
            return r, bytes(got), True
    return r, bytes(got), False


def names_in(partial: bytes) -> list[str]:
    """Member names of a tar that may be cut short (tarfile's stream mode, tolerant)."""
    names = []
    try:
        with tarfile.open(fileobj=io.BytesIO(partial), mode="r|") as tar:
            names = [m.name for m in tar]
    except tarfile.ReadError:
        pass  # the cut left half a header: what was read before it is in `names`... or not
    return names


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_an_unsafe_name_in_a_dag_cuts_the_tar_before_it(served: Served, bad: str) -> None:
    root = str(served.hostile.names[bad])
    r, body, cut = read_cut(served, "get", arg=root)
    assert r.status_code == 200 and cut  # never a complete-looking archive
    with tarfile.open(fileobj=io.BytesIO(body), mode="r|") as tar:
        names = [m.name for m in tar]
    assert names == [root, f"{root}/sub", f"{root}/sub/ok.txt"]
    assert bad.encode() not in body


def test_a_path_deeper_than_max_path_cuts_the_tar(served: Served) -> None:
    r, body, cut = read_cut(served, "get", arg=str(served.hostile.deep))
    assert r.status_code == 200 and cut
    with tarfile.open(fileobj=io.BytesIO(body), mode="r|") as tar:
        assert all(len(m.name.encode()) <= MAX_PATH for m in tar)


def test_a_block_missing_mid_file_cuts_the_stream(served: Served) -> None:
    hostile = served.hostile
    r, body, cut = read_cut(served, "cat", arg=str(hostile.missing_leaf))
    assert r.status_code == 200 and cut
    assert r.headers["x-content-length"] == str(LEAF + 20)
    assert hostile.missing_leaf_first.startswith(body)  # what came is right, then nothing
    r, body, cut = read_cut(served, "get", arg=str(hostile.missing_leaf))
    assert r.status_code == 200 and cut
    headers = 3 * 512  # PAX extension header, its records, the member's header
    assert len(body) <= headers + LEAF and hostile.missing_leaf_first.startswith(body[headers:])


def test_a_listed_entry_missing(served: Served) -> None:
    root = str(served.hostile.missing_child)
    absent = rpc(served, "ls", root)
    assert absent.status_code == 500 and "block was not found" in absent.json()["Message"]
    r, body, cut = read_cut(served, "ls", arg=root, stream="true")
    assert r.status_code == 200 and cut
    assert [json.loads(x)["Objects"][0]["Links"][0]["Name"] for x in body.splitlines()] == [
        "here.txt"
    ]
    r, body, cut = read_cut(served, "get", arg=root)
    assert cut and names_in(body) == [root, f"{root}/here.txt"]


def test_listings_without_stream_are_bounded(served: Served) -> None:
    hostile = served.hostile
    wide = rpc(served, "ls", str(hostile.wide))
    kubo_error(wide, 500, 0, f"more than {MAX_LISTING} entries to list: ask with stream=true")
    heavy = rpc(served, "ls", str(hostile.heavy))
    kubo_error(heavy, 500, 0, f"listing read over {MAX_LISTING_BYTES} bytes: ask with stream=true")
    with httpx.stream(
        "POST",
        f"{served.node.url}/api/v0/ls",
        params={"arg": str(hostile.wide), "stream": "true"},
        timeout=WAIT,
    ) as r:
        lines = r.iter_lines()
        first = [json.loads(next(lines)) for _ in range(3)]  # then the client goes
    assert [o["Objects"][0]["Links"][0]["Name"] for o in first] == ["e000000", "e000001", "e000002"]


# -- slots: vanishing and crawling clients ------------------------------------------------------


def _open(served: Served, command: str, arg: str, *, rcvbuf: int | None = None) -> socket.socket:
    """A raw HTTP/1.1 POST; returns once sent. The caller reads (or does not) and closes."""
    sock = socket.socket()
    if rcvbuf is not None:  # before connect, so the advertised window stays small
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(WAIT)
    sock.connect(("127.0.0.1", served.node.port))
    request = f"POST /api/v0/{command}?arg={arg} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    sock.sendall(f"{request}Content-Length: 0\r\n\r\n".encode())
    return sock


def _head(sock: socket.socket) -> tuple[int, bytes]:
    got = b""
    while b"\r\n\r\n" not in got:
        part = sock.recv(4096)
        if not part:
            raise ConnectionError(f"closed before the headers: {got!r}")
        got += part
    return int(got.split(b" ", 2)[1]), got


def _vanish(sock: socket.socket, *, reset: bool) -> None:
    if reset:  # RST, as a killed process's socket; else FIN, as curl --max-time
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()


def _eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    pytest.fail(f"not within {WAIT:.0f} s: {what}")


def _all_limit_cats_succeed(served: Served) -> bool:
    path = f"{served.v1}/tilt/series.mrc"
    with ThreadPoolExecutor(LIMIT) as pool:
        results = list(pool.map(lambda _: rpc(served, "cat", path), range(LIMIT)))
    return all(r.status_code == 200 and r.content == FILES["tilt/series.mrc"] for r in results)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _quiet(pid: int) -> bool:
    """Under a quarter of a core used over one second (an idle uvicorn uses ~0)."""
    before = _cpu_seconds(pid)
    time.sleep(1.0)
    return _cpu_seconds(pid) - before < 0.25


def test_vanished_clients_give_their_slots_back(served: Served) -> None:
    """3 x LIMIT clients start a tar or a cat of the 1 TiB file, read a little and vanish (FIN
    or RST); then LIMIT downloads all succeed and the server stops working."""
    huge = str(served.hostile.huge)
    statuses = []
    for i in range(3 * LIMIT):
        sock = _open(served, "get" if i % 2 else "cat", huge)
        status, got = _head(sock)
        statuses.append(status)
        if status == 200:
            assert f"x-content-length: {served.hostile.huge_size}".encode() in got.lower()
            while len(got) < 300_000:  # a little of the body
                got += sock.recv(65536)
        _vanish(sock, reset=i % 3 == 1)
    assert statuses.count(200) >= LIMIT
    _eventually(lambda: _all_limit_cats_succeed(served), "LIMIT downloads all 200")
    _eventually(lambda: _quiet(served.node.proc.pid), "the server's CPU goes quiet")


def test_busy_is_429_in_kubos_shape(served: Served) -> None:
    """LIMIT crawling readers of the 1 TiB file hold every slot: the next stream is refused
    with kubo's error shape (Code 3, rate limited) and Retry-After, not queued."""
    stalled: list[socket.socket] = []
    try:
        deadline = time.monotonic() + WAIT
        while len(stalled) < LIMIT:
            sock = _open(served, "cat", str(served.hostile.huge), rcvbuf=4096)
            status, _ = _head(sock)
            if status == 200:
                stalled.append(sock)
                continue
            sock.close()  # a slot of an earlier test not yet back: try again
            assert status == 429 and time.monotonic() < deadline
            time.sleep(0.2)
        r = rpc(served, "cat", f"{served.v1}/notes.txt")
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        body: dict[str, Any] = r.json()
        assert body["Code"] == 3 and body["Type"] == "error"
    finally:
        for sock in stalled:
            _vanish(sock, reset=True)
    _eventually(
        lambda: rpc(served, "cat", f"{served.v1}/notes.txt").content == FILES["notes.txt"],
        "a slot comes back",
    )
