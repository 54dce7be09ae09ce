"""Operability: `etdb serve` refuses unusable settings, its indexer survives and reports
failures, and no command line input ends in a traceback.

Everything runs for real: `etdb serve` and `etdb` as subprocesses (the installed entry point's
code path), a real embedded ledger file, real SQLite catalogs, HTTP on loopback.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.test_serve import SPECIES, free_port, publish, wait_for

ETDB = (sys.executable, "-c", "from etdb.cli import main; main()")


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETDB_")}
    return env | {"ETDB_HOME": str(home)} | extra


def run_etdb(
    *args: str, env: dict[str, str], timeout: float = 60, stdin: bytes = b""
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*ETDB, *args], env=env, capture_output=True, timeout=timeout, input=stdin
    )


# -- etdb serve refuses settings it cannot use -----------------------------------------------


@pytest.fixture
def ledger_file(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.sqlite3"
    publish(path, SPECIES[0], 1)
    return path


def refused(tmp_path: Path, *args: str, **env: str) -> str:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    port = str(free_port())
    done = run_etdb("serve", "--port", port, *args, env=clean_env(home, **env), timeout=60)
    err = done.stderr.decode()
    assert done.returncode == 2, (done.returncode, err)
    assert "Traceback" not in err and err.startswith("error: "), err
    assert len(err.strip().splitlines()) == 1, err
    return err


def test_serve_refuses_a_ledger_url_it_cannot_open(tmp_path: Path) -> None:
    assert "ledger" in refused(tmp_path, "--ledger", "nosuch://x")
    (tmp_path / "notadb").write_bytes(b"this is not a database" * 100)
    err = refused(tmp_path, "--ledger", f"local://{tmp_path / 'notadb'}")
    assert "is damaged or not an etdb ledger" in err


def test_serve_refuses_an_unreachable_ledger_node(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    err = refused(tmp_path, "--ledger", f"flo+http://u:secret@127.0.0.1:{port}")
    assert "cannot be read" in err and "secret" not in err


def test_serve_refuses_a_catalog_it_cannot_open(tmp_path: Path, ledger_file: Path) -> None:
    ledger = f"local://{ledger_file}"
    (tmp_path / "notadb").write_bytes(b"this is not a database" * 100)
    err = refused(tmp_path, "--ledger", ledger, "--catalog", f"sqlite:///{tmp_path / 'notadb'}")
    assert "catalog" in err
    err = refused(tmp_path, "--ledger", ledger, "--catalog", "postgresql://u:pw@127.0.0.1:1/x")
    assert "catalog" in err and ":pw@" not in err


def test_serve_refuses_a_catalog_of_another_ledger(tmp_path: Path, ledger_file: Path) -> None:
    from etdb.index.catalog import open_catalog
    from etdb.index.indexer import Indexer
    from etdb.ledger.local import open_local

    other = tmp_path / "other.sqlite3"
    publish(other, SPECIES[1], 2)
    catalog = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    with open_local(f"local://{other}") as ledger:
        store = open_catalog(catalog)
        Indexer(ledger, store).run()
        store.close()
    err = refused(tmp_path, "--ledger", f"local://{ledger_file}", "--catalog", catalog)
    assert "this catalog was built from" in err


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("ETDB_PUBLISHERS", "not-an-address", "publishers: 'not-an-address' is not"),
        ("ETDB_MULTIPART_EXPIRY", "next week", "multipart_expiry='next week' is not"),
        ("ETDB_MULTIPART_EXPIRY", "-5", "multipart_expiry='-5' is not"),
        ("ETDB_PORT", "eighty", "port='eighty' is not"),
        ("ETDB_LEDGR", "local://", "unknown setting 'ledgr' (did you mean 'ledger'?)"),
    ],
)
def test_serve_refuses_bad_settings(tmp_path: Path, name: str, value: str, message: str) -> None:
    assert message in refused(tmp_path, **{name: value})


def test_serve_refuses_an_address_it_cannot_listen_on(tmp_path: Path) -> None:
    assert "cannot listen on" in refused(tmp_path, "--host", "no-such-host.invalid")
    with __import__("socket").create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        home = tmp_path / "home"
        home.mkdir(exist_ok=True)
        done = run_etdb("serve", "--port", str(port), env=clean_env(home))
    assert done.returncode == 2 and b"cannot listen on" in done.stderr


def test_serve_refuses_an_empty_etdb_home(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    env["ETDB_HOME"] = ""
    done = run_etdb("serve", "--port", str(free_port()), env=env)
    assert done.returncode == 2 and b"ETDB_HOME is set but empty" in done.stderr


# -- the indexer fails, says so, retries, recovers -------------------------------------------


@pytest.fixture
def serving(tmp_path: Path, ledger_file: Path) -> Iterator[tuple[str, Path]]:
    home = tmp_path / "home"
    home.mkdir()
    port = free_port()
    proc = subprocess.Popen(
        [
            *ETDB,
            "serve",
            "--port",
            str(port),
            "--ledger",
            f"local://{ledger_file}",
            "--catalog",
            f"sqlite:///{tmp_path / 'catalog.sqlite3'}",
        ],
        env=clean_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}", ledger_file
    finally:
        proc.kill()
        proc.wait()


def set_block0_hash(ledger_file: Path, value: str | None) -> str:
    """Rewrite block 0's hash in the ledger file, as a lying or swapped ledger would show."""
    with sqlite3.connect(ledger_file) as conn:
        (old,) = conn.execute("SELECT hash FROM blocks WHERE height = 0").fetchone()
        if value is not None:
            conn.execute("UPDATE blocks SET hash = ? WHERE height = 0", (value,))
    conn.close()
    return old


def test_failed_indexer_is_reported_retried_and_recovers(serving: tuple[str, Path]) -> None:
    base, ledger_file = serving
    with httpx.Client(base_url=base, timeout=5) as http:

        def status_is(state: str) -> httpx.Response | None:
            r = http.get("/api/v1/status")
            return r if r.json()["indexer"] == state and r.json()["records"] == 1 else None

        wait_for(lambda: status_is("running"), "the record to be indexed")
        assert http.get("/api/v1/health").text == "ok\n"
        assert http.head("/api/v1/health").status_code == 200

        original = set_block0_hash(ledger_file, "f" * 64)  # the ledger now shows another chain
        failed = wait_for(lambda: status_is("failed"), "the indexer to report its failure")
        assert failed.status_code == 503
        body = failed.json()
        assert body["indexer_error"].startswith("LedgerMismatch: ")
        assert body["indexer_failures"] >= 1 and body["indexer_next_retry"]
        health = http.get("/api/v1/health")
        assert health.status_code == 503 and health.text.startswith("indexer failed: LedgerM")
        wait_for(lambda: http.get("/api/v1/status").json()["indexer_failures"] >= 2, "a second try")

        set_block0_hash(ledger_file, original)  # the cause is fixed: the next retry recovers
        recovered = wait_for(lambda: status_is("running"), "the indexer to recover")
        assert recovered.status_code == 200 and recovered.json()["indexer_error"] is None
        assert http.get("/api/v1/health").status_code == 200
        publish(ledger_file, SPECIES[2], 3)
        wait_for(lambda: http.get("/api/v1/status").json()["records"] == 2, "a new block")


# -- no traceback from any command line ------------------------------------------------------


@pytest.fixture(scope="module")
def cli_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder with one key ``k``, and hostile files beside it."""
    from typer.testing import CliRunner

    from etdb.cli import app

    root = tmp_path_factory.mktemp("cli")
    (root / "home").mkdir()
    (root / "dir").mkdir()
    (root / "binary").write_bytes(b"\xff\xfe\x00garbage\x00" * 50)
    (root / "nul.txt").write_bytes(b'json:{"a":\x00}')
    (root / "big.txt").write_text("x" * 5_000_000)  # more multipart parts than oipd assembles
    env = {"ETDB_HOME": str(root / "home"), "ETDB_KEY_PASSPHRASE": "pw"}
    assert CliRunner().invoke(app, ["key", "new", "k"], env=env).exit_code == 0
    return root


HUGE = str(10**25)
#: (arguments, what the one-line error must say); {root} is the folder of hostile files.
HOSTILE_INVOCATIONS: list[tuple[list[str], str]] = [
    # the three known tracebacks
    (["ledger", "publish", "{root}/big.txt", "--key", "k"], "oipd assembles at most 1000"),
    (["ledger", "cost", "--records", HUGE, "--bytes", HUGE], "cannot be published"),
    (["ledger", "cost", "--records", "1", "--bytes", str(10**8)], "cannot be published"),
    (["download", "--peer", "notaurl", "--id", "abcdef", "--yes"], "--peer: peer 'notaurl'"),
    # bad URLs
    (["download", "--server", "notaurl", "--id", "abcdef"], "--server: "),
    (["download", "--peer", "http://h:99999/", "--id", "abcdef"], "is not an http"),
    (["mirror", "--peer", "notaurl", "--once"], "--server: "),  # the first peer lists
    (["mirror", "--server", "", "--peer", "http://[::1", "--once"], "--"),
    (["verify", "--repair", "--peer", "ftp://x"], "--peer: "),
    (["ledger", "info", "--ledger", "http://[::1"], "is not a URL"),
    (["ledger", "info", "--ledger", "flo+http://u:pw@h:99999/"], "port"),
    (["ledger", "read", "--ledger", "http://h:99999/"], "ledger"),
    (["index", "status", "--ledger", "http://[::1"], "is not a URL"),
    # files that are missing, folders, binary, NUL bytes
    (["record", "verify", "/nonexistent/x"], "error"),
    (["record", "verify", "{root}/dir"], "error"),
    (["record", "verify", "{root}/binary"], "error"),
    (["record", "verify", "{root}/nul.txt"], "error"),
    (["ledger", "publish", "{root}/dir"], "error"),
    (["ledger", "publish", "{root}/binary"], "error"),
    (["ledger", "import", "{root}/dir"], "error"),
    (["ledger", "import", "{root}/binary"], "error"),
    (["car", "import", "{root}/binary"], "error"),
    (["car", "import", "{root}/dir"], "error"),
    (["add", "/nonexistent/x"], "error"),
    (["key", "import", "k2", "--wif-file", "{root}/binary"], "error"),
    (["key", "import", "k2", "--wif-file", "{root}/dir"], "is a directory"),
    # empty strings, huge and negative numbers
    (["cat", ""], "error"),
    (["get", "notacid", "-o", "{root}/out"], "error"),
    (["cat", "bafkqaaa", "--offset", "-1"], ""),
    (["car", "export", "bafkqaaa", "-o", "{root}/x.car", "--entity-bytes", HUGE], ""),
    (["key", "show", ""], "error"),
    (["key", "new", ""], "error"),
    (["key", "delete", "nosuchkey", "--yes"], "error"),
    (["record", "sign", "{root}/nul.txt", "--key", "k"], "error"),
    (["index", "rejections", "--limit", "-1"], ""),
    (["serve", "--port", "-1"], "out of range"),
    (["serve", "--workers", HUGE], ""),
    (["demo", "--datasets", "-5"], ""),
    (["publish", "{root}/binary", "--dry-run"], "error"),
    (["publish", "/nonexistent/x", "--dry-run"], "error"),
]


@pytest.mark.parametrize(
    ("args", "message"),
    HOSTILE_INVOCATIONS,
    ids=lambda v: " ".join(v) if isinstance(v, list) else v,
)
def test_no_traceback_from_hostile_arguments(cli_home: Path, args: list[str], message: str) -> None:
    """In process (CliRunner over the real app, real files): fast enough for a big table."""
    from typer.testing import CliRunner

    from etdb.cli import app

    argv = [a.replace("{root}", str(cli_home)) for a in args]
    env = {"ETDB_HOME": str(cli_home / "home"), "ETDB_KEY_PASSPHRASE": "pw"}
    result = CliRunner().invoke(app, argv, env=env, input="")
    crash = result.exception if not isinstance(result.exception, SystemExit) else None
    assert crash is None, f"{type(crash).__name__}: {crash}"
    output = result.output
    assert result.exit_code in (1, 2), (result.exit_code, output)
    assert "Traceback" not in output and output.strip(), output
    assert message in output, output


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        ([b"download", b"--species", b"\xff\xfe"], {}, b"is not valid UTF-8"),
        ([b"add", b"/tmp/caf\xe9-missing"], {}, b"is not valid UTF-8"),
        ([b"key", b"list"], {"ETDB_HOME": ""}, b"ETDB_HOME is set but empty"),
        ([b"key", b"list"], {"ETDB_LEDGR": "x"}, b"did you mean 'ledger'?"),
        ([b"ledger", b"cost", b"--records", b"1", b"--bytes", HUGE.encode()], {}, b"cannot be"),
    ],
)
def test_no_traceback_through_the_entry_point(
    tmp_path: Path, argv: list[bytes], env: dict[str, str], message: bytes
) -> None:
    """As a shell runs it: argv bytes that are not UTF-8, the environment, exit status."""
    script = [sys.executable.encode(), b"-c", b"from etdb.cli import main; main()"]
    done = subprocess.run(
        [*script, *argv], env=clean_env(tmp_path) | env, capture_output=True, timeout=60
    )
    assert b"Traceback" not in done.stderr, done.stderr.decode(errors="replace")
    assert done.returncode in (1, 2) and message in done.stderr, done.stderr


# -- key files edited or damaged -------------------------------------------------------------


def _key_cli(home: Path, *args: str) -> tuple[int, str]:
    from typer.testing import CliRunner

    from etdb.cli import app

    env = {"ETDB_HOME": str(home), "ETDB_KEY_PASSPHRASE": "pw"}
    result = CliRunner().invoke(app, ["key", *args], env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result.exit_code, result.output


def test_key_show_reports_an_edited_address(tmp_path: Path) -> None:
    import json

    from etdb.record import PrivateKey

    assert _key_cli(tmp_path, "new", "lab")[0] == 0
    assert _key_cli(tmp_path, "show", "lab")[0] == 0
    path = tmp_path / "keys" / "lab.key.json"
    doc = json.loads(path.read_text())
    doc["address"] = PrivateKey(bytes(31) + b"\x09").address  # a valid address, not this key's
    path.write_text(json.dumps(doc))
    code, out = _key_cli(tmp_path, "show", "lab")
    assert code == 1 and "its file was modified" in out
    code, out = _key_cli(tmp_path, "show", "lab", "--no-verify", "--json")
    assert code == 0 and json.loads(out)["verified"] is False


def test_key_list_survives_a_corrupt_key_file(tmp_path: Path) -> None:
    import json

    assert _key_cli(tmp_path, "new", "good")[0] == 0
    assert _key_cli(tmp_path, "new", "worse")[0] == 0
    (tmp_path / "keys" / "bad.key.json").write_bytes(b"\xff[not json")
    worse = tmp_path / "keys" / "worse.key.json"
    worse.write_text(worse.read_text().replace('"address": "F', '"address": "X'))
    code, out = _key_cli(tmp_path, "list", "--json")
    assert code == 0, out
    entries = {e["name"]: e for e in json.loads(out)}
    assert entries["good"]["address"].startswith("F")
    assert "corrupt key file" in entries["bad"]["error"]
    assert "is not a mainnet address" in entries["worse"]["error"]
    code, out = _key_cli(tmp_path, "list")
    assert code == 0 and "unreadable" in out and "good" in out


# -- API docs load nothing from elsewhere ----------------------------------------------------


def test_api_docs_pages_use_only_local_assets(tmp_path: Path) -> None:
    import re

    from fastapi.testclient import TestClient

    from etdb.api import create_app
    from etdb.config import Settings
    from etdb.index.catalog import open_catalog

    catalog = open_catalog("sqlite://")
    client = TestClient(create_app(catalog, settings=Settings(home=tmp_path)))
    for page in ("/api/docs", "/api/redoc"):
        r = client.get(page)
        assert r.status_code == 200, page
        urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", r.text)
        urls += re.findall(r"""url\(\s*["']?([^"')]+)""", r.text)
        urls += re.findall(r"""@import\s+["']([^"']+)""", r.text)
        assert urls, page
        remote = [u for u in urls if re.match(r"(?i)^(https?:)?//", u)]
        assert not remote, (page, remote)
        for url in urls:
            if url.startswith("/"):
                assert client.get(url).status_code == 200, url
    catalog.close()
