"""`etdb search` end to end: a real `etdb serve` over `etdb demo` data, the real command in a
subprocess, its rows compared with the node's own /api/v1 answers; and a lying server (a real
HTTP server on loopback) whose rows are hostile."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from etdb.client.search import MAX_CELL, row
from tests.client.nodes import ETDB, Node, free_port, make_demo_home, node_env


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    home = tmp_path_factory.mktemp("search") / "node"
    make_demo_home(home, datasets=3)
    running = Node(home).start()
    yield running
    running.stop()


def etdb(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``etdb ARGS`` in ``home``, on a 200-column "terminal" (a table fits; rows are whole)."""
    return subprocess.run([*ETDB, *args], env=node_env(home) | {"COLUMNS": "200", **env},
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


def search(node: Node, *args: str) -> subprocess.CompletedProcess[str]:
    return etdb(node.home, "search", "--server", node.url, *args)


def api(node: Node, **params: str) -> dict[str, Any]:
    return httpx.get(f"{node.url}/api/v1/records", params=params, timeout=30).json()


def test_json_lists_what_the_api_lists(node: Node) -> None:
    done = search(node, "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    expected = api(node)
    assert out["total"] == expected["total"] == 3
    assert [i["id"] for i in out["items"]] == [i["id"] for i in expected["items"]]


def test_query_filters_sort_and_limit_reach_the_api(node: Node) -> None:
    species = api(node)["items"][0]["species"]
    done = search(node, species.split()[0], "--species", species, "--json")
    assert done.returncode == 0, done.stderr
    hits = json.loads(done.stdout)["items"]
    assert hits and {h["species"] for h in hits} == {species}
    everything = api(node, sort="species", order="desc")["items"]
    done = search(node, "--sort", "species", "--order", "desc", "--limit", "2", "--json")
    out = json.loads(done.stdout)
    assert [i["id"] for i in out["items"]] == [i["id"] for i in everything[:2]]
    assert (out["count"], out["total"]) == (2, 3)


def test_table_shows_each_record(node: Node) -> None:
    done = search(node)
    assert done.returncode == 0, done.stderr
    for item in api(node)["items"]:
        assert item["sid"] in done.stdout and item["id"][:12] in done.stdout
    assert "3 records match" in done.stdout


def test_default_server_is_the_local_node(node: Node) -> None:
    done = etdb(node.home, "search", "--json", ETDB_PORT=str(node.port))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["server"] == node.url


def test_default_server_uses_the_port_setting_as_serve_reads_it(node: Node) -> None:
    # Settings accept " 8780 " (a port setting is read as a number, as `etdb serve` binds it);
    # the default --server once pasted the raw text into the URL and refused its own default.
    done = etdb(node.home, "search", "--json", ETDB_PORT=f" {node.port} ")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["server"] == node.url


def test_bad_values_name_the_flag(node: Node) -> None:
    done = search(node, "--date-from", "not-a-date")
    assert done.returncode == 1 and "--date-from" in done.stderr
    done = search(node, "--sort", "size")
    assert done.returncode == 2 and "--sort" in done.stderr
    done = etdb(node.home, "search", "--server", "ftp://x")
    assert done.returncode == 2 and "--server" in done.stderr


def test_a_node_that_is_down_is_an_error_not_a_traceback(node: Node, tmp_path: Path) -> None:
    done = etdb(node.home, "search", "--server", f"http://127.0.0.1:{free_port()}")
    assert done.returncode == 1 and "error:" in done.stderr and "Traceback" not in done.stderr


# -- a lying server ---------------------------------------------------------------------------

HOSTILE = [
    {"id": "[/]" * 50, "title": "[bold red]x[/][/]", "species": 7, "date": 10**30, "sid": None,
     "total_bytes": True},
    {"id": "a" * 64, "title": "line\nbreak\tand " + "t" * 10_000, "species": ["list"],
     "date": "2020", "sid": "[link=file:///etc/passwd]s[/link]", "total_bytes": -1},
    "not an object",
]  # fmt: skip


class Liar(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        items = HOSTILE * 400  # far more than asked for
        body = json.dumps({"items": items, "total": 10**9, "next": "again"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def liar() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Liar)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_lying_server_cannot_break_the_table(liar: str, tmp_path: Path) -> None:
    done = etdb(tmp_path, "search", "--server", liar, "--limit", "5")
    assert done.returncode == 0, done.stderr
    assert "[bold red]x[/][/]" in done.stdout  # shown as text, not taken as markup
    done = etdb(tmp_path, "search", "--server", liar, "--limit", "5", "--json")
    out = json.loads(done.stdout)
    assert out["count"] == len(out["items"]) <= 5


def test_rows_are_bounded_text_whatever_was_sent() -> None:
    for item in (h for h in HOSTILE if isinstance(h, dict)):
        cells = row(item)
        assert all(isinstance(c, str) and len(c) <= MAX_CELL and "\n" not in c for c in cells)
    assert row(HOSTILE[0])[2:4] == ("", "") and row(HOSTILE[0])[5] == ""
