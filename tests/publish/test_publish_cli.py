"""`etdb publish` end to end through the CLI: a folder source of tiny datasets, the embedded
ledger, the real journal, blockstore and catalog in a fresh ETDB_HOME; `etdb index` reads back
what was published."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import mrcfile
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from etdb.cli import app
from etdb.commands._publish_view import RunView
from etdb.index.catalog import open_catalog
from etdb.index.query import SearchQuery
from etdb.publish.keystore import Keystore

PASS = "publish test passphrase"
SIDS = ("ab2020-01-01-1", "ab2020-01-02-2", "ab2020-01-03-3", "ab2020-01-04-4")
runner = CliRunner()


def write_dataset(lab: Path, sid: str, n: int, **extra: Any) -> Path:
    """A tiny go-etdb-layout dataset folder with its dataset.toml."""
    folder = lab / sid
    (folder / "3dimage_1").mkdir(parents=True)
    data = np.random.default_rng(n).normal(size=(4, 8, 8)).astype(np.float32)
    with mrcfile.new(folder / "3dimage_1" / f"{sid}_full.rec") as mrc:
        mrc.set_data(data)
        mrc.voxel_size = 10.0
    Image.new("L", (8, 8), color=n * 40).save(folder / f"keyimg_{sid}.jpg")
    meta = {
        "title": f"Tiny tomogram {n}",
        "speciesName": "Vibrio cholerae",
        "date": f"2020-01-0{n}",
        "microscopist": "Ada Byron",
        "institution": "Caltech",
        "lab": "Jensen Lab",
        "tiltMin": -60,
        "tiltMax": 60,
        "tiltStep": 2,
        **extra,
    }
    lines = [f"{k} = {json.dumps(v)}" for k, v in meta.items()]
    (folder / "dataset.toml").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture
def lab(tmp_path) -> Path:
    root = tmp_path / "lab"
    for n, sid in enumerate(SIDS, 1):
        write_dataset(root, sid, n)
    return root


def add_key(home: Path, name: str) -> str:
    # A cheap scrypt cost: the keystore reads it back from the file.
    return Keystore(home / "keys", scrypt_n=2**10).create(name, PASS).address


@pytest.fixture
def home(etdb_home, monkeypatch) -> Path:
    monkeypatch.setenv("ETDB_KEY_PASSPHRASE", PASS)
    add_key(etdb_home, "lab")
    return etdb_home


def etdb(*args: str, code: int = 0):
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result


def publish(*args: str, code: int = 0) -> dict[str, Any]:
    return json.loads(etdb("publish", *args, "--no-media", "--json", code=code).stdout)


def error(*args: str) -> str:
    result = etdb("publish", *args, "--no-media", code=1)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "error:" in result.stderr
    return result.stderr


def ledger_entries(home: Path) -> int:
    path = home / "ledger.sqlite3"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT count(*) FROM entries").fetchone()[0]


def catalog_sids(home: Path, address: str) -> dict[str, bool]:
    """sid -> whether an active record has it, of the records `etdb index` put in the catalog
    for this publisher (a republished dataset has its deactivated record too)."""
    etdb("index")
    catalog = open_catalog(f"sqlite:///{home / 'catalog.sqlite3'}", memory_index=False)
    try:
        page = catalog.search(
            SearchQuery(publisher=(address,), include_deactivated=True, limit=100)
        )
        found: dict[str, bool] = {}
        for item in page.items:
            found[item.sid] = found.get(item.sid, False) or not item.deactivated
        return found
    finally:
        catalog.close()


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
    }


def address(home: Path, name: str = "lab") -> str:
    return Keystore(home / "keys").info(name).address


# -- the main path ------------------------------------------------------------------------------


def test_dry_run_changes_nothing(home, lab):
    before = snapshot(lab)
    out = publish(str(lab), "--dry-run")
    assert out["dry_run"] is True and out["publisher"] == address(home)
    plan = out["plan"]
    assert plan["counts"]["new"] == len(SIDS)
    assert sorted(d["sid"] for d in plan["datasets"]) == sorted(SIDS)
    assert plan["transactions"] >= len(SIDS) and plan["payload_bytes"] > 0
    assert plan["total_bytes"] == sum(d["bytes"] for d in plan["datasets"]) > 0
    assert (plan["fee"], plan["fee_unit"]) == ("0", "none")
    human = etdb("publish", str(lab), "--dry-run", "--no-media").stdout
    assert "new" in human and "no fee (embedded ledger: no fees)" in human
    assert snapshot(lab) == before
    assert ledger_entries(home) == 0
    assert not (home / "publish").exists()  # no journal, no media
    assert not (home / "catalog.sqlite3").exists()
    assert not any((home / "blocks").rglob("*.data")) if (home / "blocks").exists() else True


def test_publish_index_then_nothing_to_do(home, lab):
    out = publish(str(lab))
    summary = out["summary"]
    assert summary["counts"]["new"] == len(SIDS) and summary["failed"] == []
    assert summary["transactions"] == out["plan"]["transactions"] == ledger_entries(home)
    assert summary["bytes_added"] > 0
    assert catalog_sids(home, address(home)) == dict.fromkeys(SIDS, True)
    again = publish(str(lab))
    assert again["plan"]["counts"]["unchanged"] == len(SIDS)
    assert again["summary"] is None
    assert ledger_entries(home) == summary["transactions"]
    assert "Nothing to publish" in etdb("publish", str(lab), "--no-media").stdout


def test_source_from_the_setting_and_human_output(home, lab, monkeypatch):
    monkeypatch.setenv("ETDB_PUBLISH_SOURCE", str(lab))
    result = etdb("publish", "--no-media", "--yes")
    assert "published" in result.stdout and "new" in result.stdout
    # Without a terminal: one log line per dataset on stderr, nothing on stdout's JSON path.
    assert all(sid in result.stderr for sid in SIDS)


def test_edit_deactivate_and_republish(home, lab):
    publish(str(lab))
    toml = lab / SIDS[0] / "dataset.toml"
    toml.write_text(toml.read_text().replace("Tiny tomogram 1", "Tiny tomogram one"))
    hidden = lab / SIDS[1] / "dataset.toml"
    hidden.write_text(hidden.read_text() + "public = false\n")
    plan = publish(str(lab), "--dry-run")["plan"]
    actions = {d["sid"]: d for d in plan["datasets"]}
    assert actions[SIDS[0]]["action"] == "edit"
    assert any("title" in c for c in actions[SIDS[0]]["changes"])
    assert actions[SIDS[1]]["action"] == "deactivate"
    assert plan["counts"]["unchanged"] == 2
    summary = publish(str(lab))["summary"]
    assert summary["counts"]["edit"] == 1 and summary["counts"]["deactivate"] == 1
    assert catalog_sids(home, address(home))[SIDS[1]] is False
    hidden.write_text(hidden.read_text().replace("public = false\n", ""))
    assert publish(str(lab))["summary"]["counts"]["republish"] == 1
    assert catalog_sids(home, address(home))[SIDS[1]] is True


def test_only_and_limit(home, lab):
    out = publish(str(lab), "--only", SIDS[2], "--only", SIDS[0])
    assert out["summary"]["counts"]["new"] == 2
    assert {d["sid"] for d in out["plan"]["datasets"]} == {SIDS[0], SIDS[2]}
    out = publish(str(lab), "--limit", "1")
    assert out["summary"]["counts"]["new"] == 1
    assert set(catalog_sids(home, address(home))) == {SIDS[0], SIDS[1], SIDS[2]}
    assert publish(str(lab))["summary"]["counts"]["new"] == 1
    etdb("publish", str(lab), "--limit", "0", code=2)  # usage error
    assert "no dataset nope" in error(str(lab), "--only", "nope", "--only", SIDS[0])


def test_json_schema(home, lab):
    dry = publish(str(lab), "--dry-run")
    assert set(dry) == {"dry_run", "source", "publisher", "ledger", "ipfs_api", "plan"}
    assert set(dry["plan"]) == {
        "counts", "pending", "total_bytes", "transactions", "payload_bytes", "fee", "fee_unit",
        "fee_basis", "datasets", "warnings",
    }  # fmt: skip
    assert set(dry["plan"]["counts"]) == {
        "new", "edit", "deactivate", "republish", "unchanged", "private", "problem",
    }  # fmt: skip
    assert set(dry["plan"]["datasets"][0]) == {
        "sid", "action", "origin", "folder", "files", "bytes", "record_bytes", "transactions",
        "changes", "reason", "disagreements", "media", "warnings",
    }  # fmt: skip
    run = publish(str(lab))
    assert set(run) == {
        "dry_run",
        "source",
        "publisher",
        "ledger",
        "ipfs_api",
        "plan",
        "summary",
        "chain_waits",
    }
    assert run["chain_waits"] == []  # the embedded ledger never refuses a chain
    assert set(run["summary"]) == {
        "counts", "failed", "recovered", "bytes_added", "transactions", "seconds",
        "disagreements", "pushed",
    }  # fmt: skip
    assert run["ledger"].startswith("local://") and run["source"] == str(lab)


# -- what goes wrong ---------------------------------------------------------------------------


def test_a_bad_dataset_is_listed_and_the_rest_goes(home, lab):
    write_dataset(lab, "zz-bad", 5, tiltStep="steep")
    out = publish(str(lab), code=1)
    assert out["summary"]["counts"]["new"] == len(SIDS)
    (failed,) = out["summary"]["failed"]
    assert failed["sid"] == "zz-bad" and "tiltStep" in failed["reason"]
    human = etdb("publish", str(lab), "--no-media", code=1).stdout
    assert "zz-bad" in human and "tiltStep" in human


def test_bad_source(home, tmp_path):
    assert "no-such-folder" in error(str(tmp_path / "no-such-folder"))
    assert "no source" in error()
    assert "folder source has no database URL" in error(
        str(tmp_path), "--db-url", "mysql+pymysql://u:secret@db/x"
    )


def test_db_url_password_is_never_echoed(home, tmp_path):
    mapping = tmp_path / "missing.toml"  # a mapping file that does not exist: named, no URL
    message = error(str(mapping), "--db-url", "mysql+pymysql://u:hunter2@127.0.0.1:9/x")
    assert "hunter2" not in message


def test_missing_key(etdb_home, lab, monkeypatch):
    monkeypatch.setenv("ETDB_KEY_PASSPHRASE", PASS)
    assert "no key in" in error(str(lab))
    add_key(etdb_home, "lab")
    assert "no key named 'other'" in error(str(lab), "--key", "other")
    add_key(etdb_home, "second")
    message = error(str(lab))
    assert "2 keys" in message and "--key" in message
    monkeypatch.setenv("ETDB_PUBLISH_KEY", "second")
    assert publish(str(lab), "--dry-run")["publisher"] == address(etdb_home, "second")
    assert ledger_entries(etdb_home) == 0


def test_wrong_passphrase(home, lab, monkeypatch):
    monkeypatch.setenv("ETDB_KEY_PASSPHRASE", "not the passphrase")
    assert "passphrase" in error(str(lab)).lower()
    assert ledger_entries(home) == 0 and not (home / "publish").exists()


def test_journal_bound_to_another_key(home, lab):
    publish(str(lab), "--only", SIDS[0])
    entries = ledger_entries(home)
    other = add_key(home, "other")
    message = error(str(lab), "--key", "other")
    assert "journal" in message and address(home) in message and other in message
    assert ledger_entries(home) == entries


def test_interrupted_run_resumes(home, lab, monkeypatch):
    """Ctrl-C after the first dataset: a clean message, exit 130; the next run finishes."""
    handle = RunView.handle

    def interrupt_after_first(self, event):
        handle(self, event)
        if type(event).__name__ == "DatasetFinished":
            raise KeyboardInterrupt

    monkeypatch.setattr(RunView, "handle", interrupt_after_first)
    result = etdb("publish", str(lab), "--no-media", code=130)
    assert "interrupted; re-run to resume" in result.stderr
    monkeypatch.setattr(RunView, "handle", handle)
    summary = publish(str(lab))["summary"]
    assert summary["counts"]["new"] == len(SIDS) - 1 and summary["failed"] == []
    assert catalog_sids(home, address(home)) == dict.fromkeys(SIDS, True)


def test_a_lost_journal_does_not_publish_twice(home, lab):
    first = publish(str(lab))
    sent = ledger_entries(home)
    assert first["summary"]["counts"]["new"] == len(SIDS)
    # The journal is lost and the catalog was never indexed: the run indexes first, finds the
    # publisher's records there and adopts them instead of publishing them again.
    for name in ("journal.sqlite3", "journal.sqlite3-wal", "journal.sqlite3-shm"):
        (home / "publish" / name).unlink(missing_ok=True)
    again = publish(str(lab))
    assert again["plan"]["counts"].get("new", 0) == 0
    assert ledger_entries(home) == sent
    # --no-index skips that guard: documented as the risk it is.
    assert "--no-index" in etdb("publish", "--help").stdout


# -- a dry run needs no passphrase ---------------------------------------------------------------


def etdb_process(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed ``etdb`` as a real process with no terminal at all: its own session (no
    controlling terminal, so /dev/tty cannot be opened), stdin from /dev/null, and no
    ETDB_KEY_PASSPHRASE. Any attempt to ask for a passphrase fails with "no terminal"."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETDB_")}
    env["ETDB_HOME"] = str(home)
    return subprocess.run(
        [str(Path(sys.executable).with_name("etdb")), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        start_new_session=True,
        timeout=120,
        check=False,
    )


def test_dry_run_with_an_encrypted_key_asks_no_passphrase(etdb_home, lab):
    expected = add_key(etdb_home, "lab")  # encrypted with PASS, which the process never gets
    human = etdb_process(etdb_home, "publish", str(lab), "--dry-run", "--no-media")
    assert human.returncode == 0, human.stderr
    assert "passphrase" not in (human.stdout + human.stderr).lower()
    assert expected in human.stdout and "new" in human.stdout
    as_json = etdb_process(etdb_home, "publish", str(lab), "--dry-run", "--no-media", "--json")
    assert as_json.returncode == 0, as_json.stderr
    out = json.loads(as_json.stdout)
    assert out["dry_run"] is True and out["publisher"] == expected
    assert out["plan"]["counts"]["new"] == len(SIDS)
    # The same process without --dry-run needs the passphrase and has no way to ask for it:
    # the harness really has no terminal, so the dry runs above really asked nothing.
    real = etdb_process(etdb_home, "publish", str(lab), "--no-media", "--yes")
    assert real.returncode == 1 and "no terminal to ask on" in real.stderr
    assert ledger_entries(etdb_home) == 0


def test_dry_run_with_no_key_plans_as_a_new_publisher(etdb_home, lab):
    assert not (etdb_home / "keys").exists() or not any((etdb_home / "keys").iterdir())
    human = etdb_process(etdb_home, "publish", str(lab), "--dry-run", "--no-media")
    assert human.returncode == 0, human.stderr
    assert "planned as a new publisher" in human.stdout
    as_json = etdb_process(etdb_home, "publish", str(lab), "--dry-run", "--no-media", "--json")
    assert as_json.returncode == 0, as_json.stderr
    out = json.loads(as_json.stdout)
    assert out["publisher"] == "(no key yet: planned as a new publisher)"
    assert out["plan"]["counts"]["new"] == len(SIDS)
    assert ledger_entries(etdb_home) == 0 and not (etdb_home / "publish").exists()
    assert not (etdb_home / "keys").exists() or not any((etdb_home / "keys").iterdir())
