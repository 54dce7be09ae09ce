"""`etdb download` end to end: real `etdb serve` nodes over `etdb demo` data, the real command
in a subprocess, bytes compared with the publishing node's own blockstore."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from etdb.content.blockstore import FSBlockstore
from etdb.content.cid import CID, RAW
from etdb.content.exporter import read_range
from etdb.content.filefetch import plan_file
from tests.client.nodes import ETDB, free_port, make_demo_home, node_env


class Server:
    """`etdb serve --no-index --access-log`: its log shows every block a download asked for."""

    def __init__(self, home: Path) -> None:
        self.home, self.port = home, free_port()
        self.log = home / f"serve-{self.port}.log"
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [*ETDB, "serve", "--no-index", "--access-log", "--port", str(self.port)],
                env=node_env(home), stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if httpx.get(f"{self.url}/api/v1/status", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError(f"etdb serve did not start: {self.log.read_text()}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requested(self, since: int = 0) -> list[str]:
        """CIDs of the blocks requested after byte ``since`` of the log: raw blocks, and the
        leaves a CAR request's ``entity-bytes`` range covers (the downloader's runs)."""
        text = self.log.read_bytes()[since:].decode(errors="replace")
        out: list[str] = []
        for line in text.splitlines():
            if "/ipfs/" not in line:
                continue
            cid, _, query = line.split("/ipfs/", 1)[1].split(" ", 1)[0].partition("?")
            params = parse_qs(query)
            if params.get("format") == ["raw"]:
                out.append(cid)
            elif params.get("format") == ["car"] and "entity-bytes" in params:
                first, last = (int(n) for n in params["entity-bytes"][0].split(":"))
                with FSBlockstore(self.home / "blocks") as store:
                    leaves = plan_file(store, cid).leaves
                out += [str(leaf.cid) for leaf in leaves
                        if leaf.offset <= last and leaf.offset + leaf.size > first]  # fmt: skip
        return out

    def requests(self, since: int = 0) -> int:
        """Block and CAR requests answered after byte ``since`` of the log (progress)."""
        return self.log.read_bytes()[since:].count(b"/ipfs/")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("download") / "node"
    make_demo_home(home, datasets=3)
    return home


@pytest.fixture(scope="module")
def server(home: Path) -> Iterator[Server]:
    node = Server(home)
    yield node
    node.stop()


def download(
    server: Server, dest: Path, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ETDB, "download", "--server", server.url, "--dest", str(dest), "--yes", "--json", *args],
        env=node_env(dest.parent), capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def records(server: Server, **params: str) -> list[dict[str, Any]]:
    items = httpx.get(f"{server.url}/api/v1/records", params=params).json()["items"]
    return [httpx.get(f"{server.url}/api/v1/records/{i['id']}").json() for i in items]


def check_files(home: Path, dest: Path) -> dict[str, Any]:
    """Every done file of the manifest holds the bytes the publisher's blockstore holds for
    its record's `location/fname`, and its CID is the one that path names in the DAG."""
    manifest = json.loads((dest / "metadata.json").read_text())
    with FSBlockstore(home / "blocks") as store:
        for f in manifest["files"]:
            location = manifest["records"][f["record"]]["artifact"]["storage"]["location"]
            path = f"{location}/{f['fname']}"
            if f["status"] != "done":
                continue
            assert f["verified"] and f["cid"] == str(plan_file(store, path).cid)
            assert (dest / f["path"]).read_bytes() == read_range(store, path, 0), f["path"]
    return manifest


def test_download_types_layout_and_bytes(home: Path, server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    done = download(server, dest, "--file-type", "reconstruction,keyimg", "--species",
                    "Vibrio cholerae")  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    (vibrio,) = records(server, species="Vibrio cholerae")
    wanted = [f for f in vibrio["artifact"]["storage"]["files"]
              if f["subtype"] in ("reconstruction", "keyimg")]  # fmt: skip
    sid = vibrio["artifact"]["details"]["sid"]
    assert sorted(f["path"] for d in report["datasets"] for f in d["files"]) == sorted(
        f"Vibrio cholerae/{sid}/{f['dname']}" for f in wanted
    )
    assert report["summary"]["done"] == len(wanted) and not report["summary"]["failed"]
    manifest = check_files(home, dest)
    assert {f["status"] for f in manifest["files"]} == {"done"}
    assert sorted(p.name for p in dest.rglob("*") if p.is_file()) == sorted(
        ["metadata.json", *(f["dname"] for f in wanted)]
    )
    # a second run trusts the verified files: nothing is fetched again
    since = server.log.stat().st_size
    again = download(server, dest, "--file-type", "reconstruction,keyimg", "--species",
                     "Vibrio cholerae")  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["summary"]["skipped"] == len(wanted)
    assert server.requested(since) == []


def test_dry_run_lists_and_changes_nothing(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    done = download(server, dest, "--dry-run", "--file-type", "thumbnail")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert not dest.exists()
    expected = [f for r in records(server) for f in r["artifact"]["storage"]["files"]
                if f["subtype"] == "thumbnail"]  # fmt: skip
    assert report["files"] == len(expected) == 3
    assert report["total_bytes"] == sum(f["fsize"] for f in expected)


def test_filter_file_is_applied(home: Path, server: Server, tmp_path: Path) -> None:
    every = records(server)
    first, second = every[0]["artifact"]["details"], every[1]["artifact"]["details"]
    stack = [{"type": "OR", "args": [
        {"type": "filter", "searchOn": "artifact.details.speciesName", "searchType": "exact",
         "searchFor": first["speciesName"]},
        {"type": "filter", "searchOn": "artifact.details.microscopist",
         "searchType": "contains", "searchFor": second["microscopist"][2:8]}]},
        {"type": "filter", "searchOn": "artifact.details.NCBItaxID", "searchType": "greaterThan",
         "searchFor": -1}]  # fmt: skip
    queries = tmp_path / "queryStack.json"
    queries.write_text(json.dumps(stack))
    done = download(server, tmp_path / "out", "--dry-run", "--filter-file", str(queries))
    assert done.returncode == 0, done.stderr
    chosen = {d["sid"] for d in json.loads(done.stdout)["datasets"]}
    assert chosen == {first["sid"], second["sid"]}
    stack[1]["searchType"] = "lessThan"  # no taxid is below -1
    queries.write_text(json.dumps(stack))
    done = download(server, tmp_path / "out", "--dry-run", "--filter-file", str(queries))
    assert json.loads(done.stdout)["datasets"] == []


def test_bad_input_is_named_and_foreign_files_are_kept(server: Server, tmp_path: Path) -> None:
    bad = download(server, tmp_path / "out", "--date-from", "yesterday-ish")
    assert bad.returncode == 1 and "--date-from" in bad.stderr, bad.stderr
    assert not (tmp_path / "out").exists()
    (vibrio,) = records(server, species="Vibrio cholerae")
    keyimg = next(f for f in vibrio["artifact"]["storage"]["files"] if f["subtype"] == "keyimg")
    mine = tmp_path / "out" / "Vibrio cholerae" / vibrio["artifact"]["details"]["sid"]
    mine.mkdir(parents=True)
    (mine / keyimg["dname"]).write_bytes(b"my own notes")
    done = download(
        server, tmp_path / "out", "--species", "Vibrio cholerae", "--file-type", "keyimg"
    )
    assert done.returncode == 1
    assert (mine / keyimg["dname"]).read_bytes() == b"my own notes"
    (entry,) = json.loads((tmp_path / "out" / "metadata.json").read_text())["files"]
    assert entry["status"] == "failed" and "move it away" in entry["reason"]


def test_a_dead_peer_is_survived(home: Path, server: Server, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    done = download(server, tmp_path / "out", "--peer", dead, "--peer", server.url,
                    "--file-type", "reconstruction")  # fmt: skip
    assert done.returncode == 0, done.stderr
    check_files(home, tmp_path / "out")
    peers = {p["url"]: p for p in json.loads(done.stdout)["summary"]["peers"]}
    assert peers[server.url]["blocks"] > 0 and peers[dead]["blocks"] == 0


def _verified_leaves(home: Path, dest: Path, manifest: dict[str, Any]) -> set[str]:
    """Leaf CIDs a re-run must not fetch: those of complete files and those a `.part.json`
    journal records as written (filefetch's format: a bitmap over the plan's leaves)."""
    import base64

    leaves: set[str] = set()
    with FSBlockstore(home / "blocks") as store:
        for f in manifest["files"]:
            location = manifest["records"][f["record"]]["artifact"]["storage"]["location"]
            plan = plan_file(store, f"{location}/{f['fname']}")
            target = dest / f["path"]
            if f["status"] == "done" and target.is_file():
                leaves |= {str(leaf.cid) for leaf in plan.leaves}
                continue
            journal = target.with_name(target.name + ".part.json")
            if journal.exists():
                done = base64.b64decode(json.loads(journal.read_text())["done"])
                leaves |= {str(leaf.cid) for i, leaf in enumerate(plan.leaves)
                           if done[i >> 3] >> (i & 7) & 1}  # fmt: skip
    return leaves


def test_resume_after_random_kills(home: Path, server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    args = ("--file-type", "tiltseries,reconstruction", "--concurrency", "1")
    rng = random.Random(7)
    interrupted = protected = 0
    for attempt in range(12):
        since = server.log.stat().st_size
        must_not_fetch: set[str] = set()
        if (dest / "metadata.json").exists():
            manifest = json.loads((dest / "metadata.json").read_text())
            must_not_fetch = _verified_leaves(home, dest, manifest)
            protected += bool(must_not_fetch)
        proc = subprocess.Popen(
            [*ETDB, "download", "--server", server.url, "--dest", str(dest), "--yes", "--json",
             *args], env=node_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        last = interrupted >= 5
        if not last:
            # Kill on progress, not on a timer (a download can finish before any timer fires):
            # after a random number of requests of this run reached the server. A file costs
            # 4 (3 raw blocks resolving its path, 1 CAR): 5 or 6 means one file is done.
            kill_at = rng.randint(3, 6)
            while proc.poll() is None and server.requests(since) < kill_at:
                time.sleep(0.005)
            proc.send_signal(rng.choice([signal.SIGKILL, signal.SIGINT]))
        _, err = proc.communicate(timeout=120)
        fetched = set(server.requested(since))
        assert not fetched & must_not_fetch, f"run {attempt} fetched verified blocks again"
        if proc.returncode == 0:
            if last:
                break
            continue  # finished before the signal: count only real interruptions
        # 130: Ctrl-C handled; -SIGINT: Ctrl-C while Python was still starting up
        assert proc.returncode in (-signal.SIGKILL, -signal.SIGINT, 130), err
        interrupted += 1
    assert interrupted >= 5 and proc.returncode == 0, err
    assert protected >= 2  # re-runs had verified blocks to keep (the check above had teeth)
    manifest = check_files(home, dest)
    assert {f["status"] for f in manifest["files"]} == {"done"}
    assert not list(dest.rglob("*.part*"))


def _pyramid(server: Server) -> tuple[dict[str, Any], dict[str, Any]]:
    (vibrio,) = records(server, species="Vibrio cholerae")
    (entry,) = [f for f in vibrio["artifact"]["storage"]["files"] if f["subtype"] == "zarr"]
    return vibrio, entry


def test_a_pyramid_folder_entry_downloads_verified(
    home: Path, server: Server, tmp_path: Path
) -> None:
    import zarr

    from etdb.content.export_tree import export
    from etdb.content.exporter import resolve
    from etdb.mrc.ngff import read_multiscales

    vibrio, entry = _pyramid(server)
    # the pyramid is derived: not fetched unless named
    listed = download(server, tmp_path / "plain", "--dry-run", "--species", "Vibrio cholerae")
    assert "zarr" not in {f["type"] for d in json.loads(listed.stdout)["datasets"]
                          for f in d["files"]}  # fmt: skip
    dest = tmp_path / "out"
    done = download(server, dest, "--file-type", "zarr", "--species", "Vibrio cholerae")
    assert done.returncode == 0, done.stderr
    folder = dest / "Vibrio cholerae" / vibrio["artifact"]["details"]["sid"] / entry["dname"]
    # the same files, byte for byte, as the publisher's DAG holds
    path = f"{vibrio['artifact']['storage']['location']}/{entry['fname']}"
    with FSBlockstore(home / "blocks") as store:
        export(store, path, tmp_path / "published")
        cid = resolve(store, path)[0]
    mine = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    theirs = {p.relative_to(tmp_path / "published"): p.read_bytes()
              for p in (tmp_path / "published").rglob("*") if p.is_file()}  # fmt: skip
    assert mine == theirs and len(mine) > 3
    (manifest_entry,) = json.loads((dest / "metadata.json").read_text())["files"]
    assert manifest_entry["cid"] == str(cid) and manifest_entry["files"] == len(mine)
    assert manifest_entry["size"] == sum(len(b) for b in mine.values()) == entry["fsize"]
    assert manifest_entry["status"] == "done" and manifest_entry["verified"]
    # an OME-Zarr reader opens it
    levels = read_multiscales(zarr.open_group(str(folder), mode="r").attrs.asdict())
    assert zarr.open_array(str(folder / levels.paths[0]), mode="r").ndim == 3
    # a re-run trusts it; a removed chunk is fetched alone; a foreign file is kept, reported
    since = server.log.stat().st_size
    again = download(server, dest, "--file-type", "zarr", "--species", "Vibrio cholerae")
    assert json.loads(again.stdout)["summary"]["skipped"] == 1 and not server.requested(since)
    chunk = max((p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")
                 and p.stat().st_size < 256 << 10), key=str)  # one raw block  # fmt: skip
    body = chunk.read_bytes()
    chunk.unlink()
    since = server.log.stat().st_size
    again = download(server, dest, "--file-type", "zarr", "--species", "Vibrio cholerae")
    assert again.returncode == 0, again.stderr
    assert chunk.read_bytes() == body
    # only the chunk's data was fetched again (the rest: the listing's and plans' nodes)
    leaves = {c for c in server.requested(since) if CID.decode(c).codec == RAW}
    assert leaves == {str(CID.hash(body))}
    chunk.write_bytes(b"my own notes")
    again = download(server, dest, "--file-type", "zarr", "--species", "Vibrio cholerae")
    assert again.returncode == 1 and chunk.read_bytes() == b"my own notes"
    assert "move it away" in json.loads(again.stdout)["summary"]["failed"][0]["reason"]
