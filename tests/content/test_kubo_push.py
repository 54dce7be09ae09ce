"""Pushing DAGs to kubo (``etdb.content.kubo_push``, ``kubo_api``, ``etdb push``).

With real kubo v0.43.1 daemons (``tests/kubo``, marker ``kubo``): a multi-block, multi-file
dataset with a subfolder, imported by etdb under the CIDv1 and the CIDv0 profile, is pushed
into daemon A, which lists it pinned; daemon B, connected to A, fetches every file over
bitswap and gets the original bytes. Missing blocks, a gateway given for the API, an
unreachable node and a node that lies (a real HTTP server on loopback answering what kubo
never would, since a real kubo cannot be made to) are clear errors; the address parsing is
tested without kubo.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from etdb.cli import app
from etdb.content.blockstore import FSBlockstore
from etdb.content.car import car_blocks, read_car
from etdb.content.cid import CID
from etdb.content.errors import BlockNotFoundError
from etdb.content.kubo_api import KuboApi, KuboError, api_url, printable_api
from etdb.content.kubo_push import first_missing_block, push, root_cid
from etdb.content.unixfs import Importer
from tests.kubo.daemon import KuboDaemon
from tests.kubo.daemon import KuboError as DaemonError

PROFILES = ("kubo-v1", "unixfs-v0-2015")
#: Relative path -> content: > 1 MiB (several 256 KiB leaves), a subfolder, an empty file.
FILES: dict[str, bytes] = {
    "tilt/series.mrc": os.urandom(1_300_000),
    "tilt/series.rawtlt": b"".join(b"%d\n" % a for a in range(-60, 61, 2)),
    "keyimg.jpg": os.urandom(40_000),
    "notes/deeper/readme.txt": "µm and Å, a lab's notes\n".encode() * 50,
    "empty.txt": b"",
}


def write_dataset(root: Path, files: dict[str, bytes] = FILES) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def add(folder: Path, store: FSBlockstore, profile: str) -> CID:
    root = Importer(profile, store).add_path(folder).cid
    store.sync()
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- where kubo's API is (no kubo) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("http://127.0.0.1:5001", "http://127.0.0.1:5001"),
        ("http://127.0.0.1:5001/", "http://127.0.0.1:5001"),
        ("http://127.0.0.1:5001/api/v0", "http://127.0.0.1:5001"),
        ("  https://ipfs.lab.example.org  ", "https://ipfs.lab.example.org"),
        ("http://lab:s3cret@10.0.0.7:5001", "http://lab:s3cret@10.0.0.7:5001"),
        ("/ip4/127.0.0.1/tcp/5001", "http://127.0.0.1:5001"),
        ("/ip4/10.1.2.3/tcp/5001/http", "http://10.1.2.3:5001"),
        ("/ip6/::1/tcp/5001", "http://[::1]:5001"),
        ("/dns4/ipfs.lab.example.org/tcp/443/https", "https://ipfs.lab.example.org:443"),
        ("/dns/kubo/tcp/5001/tls/http", "https://kubo:5001"),
    ],
)
def test_api_url_takes_urls_and_kubo_multiaddrs(given, url):
    assert api_url(given) == url


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("", "empty"),
        ("127.0.0.1:5001", "not an http(s) URL"),
        ("ftp://127.0.0.1:5001", "not an http(s) URL"),
        ("http://127.0.0.1:99999", "not an http(s) URL"),
        ("http://127.0.0.1:5001/ipfs/bafy", "no path or query"),
        ("http://127.0.0.1:5001/?x=1", "no path or query"),
        ("http://127.0.0.1:5001\n", None),  # stripped, fine: see below
        ("/ip4/127.0.0.1/udp/5001/quic-v1", "not a TCP address"),
        ("/ip4/127.0.0.1", "not a TCP address"),
        ("/ip4/300.0.0.1/tcp/5001", "not a TCP address"),
        ("/ip4/127.0.0.1/tcp/0", "not a TCP address"),
        ("/ip4/127.0.0.1/tcp/65536", "not a TCP address"),
        ("/ip4/127.0.0.1/tcp/5001/ws", "not a TCP address"),
        ("/dns4/bad_host!/tcp/5001", "not a TCP address"),
        ("/unix/run/kubo.sock", "unix sockets are not supported"),
        ("/ip4/127.0.0.1/tcp/５００１", "not a TCP address"),  # full-width digits
    ],
)
def test_api_url_refuses_what_is_not_kubos_api(given, says):
    if says is None:
        assert api_url(given) == "http://127.0.0.1:5001"
        return
    with pytest.raises(ValueError, match="kubo") as caught:
        api_url(given)
    assert says in str(caught.value)


def test_printable_api_never_shows_the_password():
    assert printable_api("http://lab:s3cret@10.0.0.7:5001") == "http://lab:***@10.0.0.7:5001"
    assert printable_api("http://10.0.0.7:5001") == "http://10.0.0.7:5001"


def test_a_push_takes_a_root_cid_and_no_path():
    cid = CID.hash(b"x")
    assert root_cid(str(cid)) == cid
    for bad in (f"{cid}/a.txt", "not-a-cid", ""):
        with pytest.raises(ValueError, match="not a CID"):
            root_cid(bad)


# -- local checks (a real blockstore) ---------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
def test_first_missing_block_names_it(tmp_path, profile):
    with FSBlockstore(tmp_path / "blocks") as store:
        root = add(write_dataset(tmp_path / "ds"), store, profile)
        assert first_missing_block(store, root) is None
        blocks = [cid for cid, _ in car_blocks(store, root)]
        for victim in (blocks[-1], blocks[len(blocks) // 2], root):
            data = store.get(victim)
            store.delete(victim)
            assert first_missing_block(store, root) == victim
            store.put(victim, data)


# -- kubo unreachable, kubo lying (no real kubo needed) -----------------------------------------


def test_kubo_down_is_a_clear_error_naming_the_default_api(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with FSBlockstore(tmp_path / "blocks") as store, KuboApi(url) as kubo:
        root = add(write_dataset(tmp_path / "ds"), store, "kubo-v1")
        with pytest.raises(KuboError) as caught:
            push(kubo, store, root)
    said = str(caught.value)
    assert f"kubo unreachable at {url}" in said and "ipfs daemon" in said
    assert "/ip4/127.0.0.1/tcp/5001" in said and "http://127.0.0.1:5001" in said


class LyingKubo(BaseHTTPRequestHandler):
    """Answers like kubo's RPC API, except where ``server.lie`` says otherwise."""

    server: LyingServer

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        self._read_body()
        path = self.path.split("?")[0]
        answers = self.server.answers
        if path == "/api/v0/id":
            body = answers.get(
                "id", b'{"ID": "12D3KooWLm3EZdpjfJu8B8Y4uNHuMuw8aHXH4xj4zbxxL6VUsZBr"}'
            )
        elif path == "/api/v0/dag/import":
            body = self.server.lie(self.server.root, self.server.blocks)
        elif path == "/api/v0/pin/ls":
            body = answers.get("pin/ls", b"")
        else:
            body = b"404 page not found"
        status = 500 if body.startswith(b'{"Message"') else 200
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _read_body(self) -> None:
        """Read a chunked body and count the blocks of the CAR in its one part (etdb's own
        CAR reader, which also checks that the part is a valid CAR)."""
        if self.headers.get("Transfer-Encoding") != "chunked":
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            return
        data = bytearray()
        while size := int(self.rfile.readline().strip(), 16):
            data += self.rfile.read(size + 2)[:size]
        self.rfile.readline()
        boundary = bytes(data[2 : data.index(b"\r\n")])
        car = data[data.index(b"\r\n\r\n") + 4 : data.rindex(b"\r\n--" + boundary + b"--")]
        self.server.blocks = sum(1 for _ in read_car(io.BytesIO(car)))


class LyingServer(ThreadingHTTPServer):
    daemon_threads = True
    lie: Callable[[str, int], bytes]
    answers: dict[str, bytes]
    root = ""
    blocks = 0


@pytest.fixture
def liar() -> Iterator[LyingServer]:
    server = LyingServer(("127.0.0.1", 0), LyingKubo)
    server.answers = {}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def root_line(root: str, error: str = "") -> str:
    return json.dumps({"Root": {"Cid": {"/": root}, "PinErrorMsg": error}})


def stats_line(blocks: int) -> str:
    return json.dumps({"Stats": {"BlockCount": blocks, "BlockBytesCount": 1}})


PINNED = '{"Keys": {"%s": {"Type": "recursive", "Name": ""}}}'
LIES: dict[str, tuple[Callable[[str, int], str], str, str]] = {
    "pin error": (lambda r, n: root_line(r, "merkledag: not found") + "\n" + stats_line(n),
                  PINNED, "could not pin it: merkledag: not found"),
    "another root": (lambda r, n: root_line(str(CID.hash(b"other"))) + "\n" + stats_line(n),
                     PINNED, "did not report"),
    "blocks lost": (lambda r, n: root_line(r) + "\n" + stats_line(n - 1), PINNED,
                    "blocks of"),
    "not JSON": (lambda r, n: "<html>proxy error</html>", PINNED, "not JSON"),
    "refused": (lambda r, n: '{"Message": "import failed: \\u001b[31mno space left\\u0007",'
                '"Code": 0, "Type": "error"}', PINNED, "refused the push of"),
    "not pinned after all": (lambda r, n: root_line(r) + "\n" + stats_line(n),
                             '{"Message": "path is not pinned", "Code": 0}', "does not list it"),
    "error line": (lambda r, n: root_line(r) + "\n" + stats_line(n) + '\n{"Message": '
                   '"provide: context canceled", "Code": 0, "Type": "error"}', PINNED,
                   "reported an error importing"),
    "huge answer": (lambda r, n: root_line(r) + "\n" + " " * (2 << 20), PINNED, "over"),
    "nested too deep": (lambda r, n: "[" * 200_000 + "]" * 200_000, PINNED, "not JSON"),
    "refusal nested too deep": (lambda r, n: '{"Message": ' + "[" * 200_000 + "]" * 200_000
                                + "}", PINNED, "HTTP 500"),
}  # fmt: skip


@pytest.mark.parametrize("lie", sorted(LIES))
def test_a_node_that_lies_about_the_import_is_not_believed(tmp_path, liar, lie):
    answer, pin_ls, says = LIES[lie]
    with FSBlockstore(tmp_path / "blocks") as store:
        root = add(write_dataset(tmp_path / "ds"), store, "kubo-v1")
        liar.root = str(root)
        liar.lie = lambda r, n: answer(r, n).encode()
        liar.answers["pin/ls"] = (pin_ls % root if "%s" in pin_ls else pin_ls).encode()
        api = KuboApi(f"http://127.0.0.1:{liar.server_address[1]}")
        with api, pytest.raises(KuboError) as caught:
            push(api, store, root)
    said = str(caught.value)
    assert says in said
    assert "\x1b" not in said and "\x07" not in said  # its words, made printable


def test_an_honest_answer_is_believed(tmp_path, liar):
    # The same server telling the truth: the lies above fail for what they say, nothing else.
    with FSBlockstore(tmp_path / "blocks") as store:
        root = add(write_dataset(tmp_path / "ds"), store, "kubo-v1")
        liar.root = str(root)
        liar.lie = lambda r, n: (root_line(r) + "\n" + stats_line(n)).encode()
        liar.answers["pin/ls"] = (PINNED % root).encode()
        with KuboApi(f"http://127.0.0.1:{liar.server_address[1]}") as kubo:
            result = push(kubo, store, root)
    assert result.blocks == liar.blocks == len(list(car_blocks(store, root)))


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (b'{"ID": "<script>alert(1)</script>"}', "without a peer ID"),
        (b'{"ID": 12}', "without a peer ID"),
        (b"[" * 200_000 + b"]" * 200_000, "no JSON"),
    ],
)
def test_a_peer_id_that_is_not_one_is_refused(liar, answer, says):
    liar.answers["id"] = answer
    api = KuboApi(f"http://127.0.0.1:{liar.server_address[1]}")
    with api, pytest.raises(KuboError, match=says):
        api.peer_id()


# -- real kubo ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> dict[str, tuple[CID, Path]]:
    """The dataset imported by etdb under each profile, in one blockstore: profile -> root."""
    tmp = tmp_path_factory.mktemp("push")
    folder = write_dataset(tmp / "ds")
    store_path = tmp / "blocks"
    with FSBlockstore(store_path) as store:
        return {p: (add(folder, store, p), store_path) for p in PROFILES}


@pytest.mark.kubo
@pytest.mark.parametrize("profile", PROFILES)
def test_pushed_dataset_is_pinned_and_a_second_node_fetches_it(datasets, kubo_pair, profile):
    a, b = kubo_pair
    root, store_path = datasets[profile]
    assert (root.version == 0) is (profile == "unixfs-v0-2015")
    sizes: list[int] = []
    with FSBlockstore(store_path) as store, KuboApi(a.api_url) as kubo:
        result = push(kubo, store, root, on_block=sizes.append)
        blocks = list(car_blocks(store, root))
    assert result.node == a.peer_id and result.root == str(root)
    assert result.blocks == len(blocks) == len(sizes) > len(FILES) + 4  # several leaves
    assert result.bytes == sum(sizes) == sum(len(block) for _, block in blocks)
    pins = json.loads(a.cli("pin", "ls", "--type=recursive", "--enc=json").stdout)["Keys"]
    assert str(root) in pins or str(root.to_v1()) in pins
    # B never had it: everything comes from A over bitswap (B is connected to A only).
    with pytest.raises(DaemonError):
        b.cli("block", "stat", "--offline", str(root))
    for rel, data in FILES.items():
        if data or root.version == 0:
            assert b.cli("cat", f"{root}/{rel}", timeout=120).stdout == data, rel
        # else: an empty file with raw leaves is a 0-byte block, which kubo's bitswap server
        # never sends (boxo bitswap/server/internal/decision/engine.go: "isWantBlock :=
        # blockSize != 0 && ..."), so no kubo can fetch it from another: kubo's limit, not ours.
    got = b.repo.parent / f"get-{profile}"
    b.cli("get", "-o", str(got), f"{root}/notes", timeout=120)
    for rel, data in FILES.items():
        if rel.startswith("notes/"):
            assert (got / rel.removeprefix("notes/")).read_bytes() == data
    shutil.rmtree(got)


@pytest.fixture(scope="module")
def kubo(kubo_pair) -> KuboDaemon:
    """Node A of the pair: one daemon fewer to start for the tests that need only one."""
    return kubo_pair[0]


@pytest.mark.kubo
def test_pushing_again_is_harmless(datasets, kubo):
    root, store_path = datasets["kubo-v1"]
    with FSBlockstore(store_path) as store, KuboApi(kubo.api_url) as api:
        first, second = push(api, store, root), push(api, store, root)
    assert (first.blocks, first.bytes) == (second.blocks, second.bytes)
    assert kubo.cli("pin", "ls", "--type=recursive", str(root)).stdout.split()[0].decode() == str(
        root
    )


@pytest.mark.kubo
@pytest.mark.parametrize("check_first", [True, False])
def test_missing_blocks_are_named_and_nothing_is_pinned(tmp_path, kubo, check_first):
    with FSBlockstore(tmp_path / "blocks") as store, KuboApi(kubo.api_url) as api:
        root = add(write_dataset(tmp_path / "ds", {**FILES, "own.bin": os.urandom(600_000)}),
                   store, "kubo-v1")  # fmt: skip
        blocks = [cid for cid, _ in car_blocks(store, root)]
        victim = blocks[-2]
        store.delete(victim)
        with pytest.raises(BlockNotFoundError) as caught:
            push(api, store, root, check_first=check_first)
        assert caught.value.cid == victim and str(victim) in str(caught.value)
        if check_first:  # found before anything was sent: kubo never saw the root
            assert "nothing sent" in str(caught.value)
            with pytest.raises(DaemonError):
                kubo.cli("block", "stat", "--offline", str(root))
        else:  # the stream was cut at the hole: kubo pinned nothing
            assert "kubo pinned nothing" in str(caught.value)
        assert not api.pinned(root)


@pytest.mark.kubo
def test_the_gateway_given_for_the_api_is_a_clear_error(datasets, kubo):
    root, store_path = datasets["kubo-v1"]
    api = KuboApi(kubo.gateway_url)
    with FSBlockstore(store_path) as store, api, pytest.raises(KuboError, match="RPC") as caught:
        push(api, store, root)
    assert "is not kubo's RPC API" in str(caught.value)
    assert "Addresses.API" in str(caught.value) and "8080" in str(caught.value)


@pytest.mark.kubo
def test_etdb_push_command(datasets, kubo, etdb_home):
    root, store_path = datasets["unixfs-v0-2015"]
    multiaddr = f"/ip4/127.0.0.1/tcp/{kubo.api_url.rsplit(':', 1)[1]}"
    env = {"ETDB_BLOCKSTORE": str(store_path)}
    runner = CliRunner()
    result = runner.invoke(app, ["push", str(root), "--ipfs-api", multiaddr, "--json"], env=env)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["failed"] == [] and out["pushed"][0]["root"] == str(root)
    assert out["pushed"][0]["node"] == kubo.peer_id
    # Through the setting; one good CID, one the blockstore lacks: exit 1, the good one pushed.
    absent = CID.hash(b"never added", version=0)
    env["ETDB_IPFS_API"] = kubo.api_url
    result = runner.invoke(app, ["push", str(root), str(absent), "--json"], env=env)
    assert result.exit_code == 1, result.output
    out = json.loads(result.stdout)
    assert [p["root"] for p in out["pushed"]] == [str(root)]
    assert (
        out["failed"][0]["cid"] == str(absent)
        and f"block {absent} not found" in (out["failed"][0]["reason"])
    )
    result = runner.invoke(app, ["push", f"{root}/tilt", "--ipfs-api", kubo.api_url], env=env)
    assert result.exit_code == 2 and "not a CID" in result.output
    result = runner.invoke(app, ["push", str(root), "--ipfs-api", "localhost:5001"], env=env)
    assert result.exit_code == 2 and "--ipfs-api" in result.output
