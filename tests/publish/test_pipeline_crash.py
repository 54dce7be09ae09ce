"""Crash safety of the publishing pipeline: SIGKILL a publishing process again and again.

A runner script (written by this test, not part of etdb) publishes 200 small datasets to an
embedded ledger whose small ``max_payload`` sends some records as multipart. It is killed with
SIGKILL at 20+ points: after random delays, and from inside at chosen moments (right before or
after a ledger transaction, right after the journal records an intent, a txid, a begin or a
finish, right after the blockstore syncs) through proxies the runner puts around the ledger,
journal and blockstore when ``CRASH_AT`` says so. After each kill it is simply started again,
until a run completes. Then the ledger must hold every dataset exactly once, no transaction
twice, no incomplete multipart, and the indexer's catalog 200 records.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from etdb.index.catalog import open_catalog
from etdb.index.indexer import Indexer
from etdb.index.query import SearchQuery
from etdb.ledger.local import LocalLedger
from etdb.record import MultipartAssembler, decode, parse_part
from tests.conftest import REPO_ROOT

DATASETS = 200
MAX_PAYLOAD = 900
KILLS = 24

RUNNER = textwrap.dedent(
    '''
    import json, os, signal, sys
    from pathlib import Path

    from etdb.content.blockstore import FSBlockstore
    from etdb.ledger.local import LocalLedger
    from etdb.publish.journal import Journal
    from etdb.publish.pipeline import PublishConfig, Publisher
    from etdb.publish.source import SourceDataset
    from etdb.record import PrivateKey

    root = Path(sys.argv[1])
    spec = json.loads((root / "spec.json").read_text())
    crash = os.environ.get("CRASH_AT")  # "<moment>:<n>": die at the n-th such moment
    moment, _, nth = (crash or "none:0").partition(":")
    seen = {"n": 0}

    def point(name):
        if name == moment:
            seen["n"] += 1
            if seen["n"] == int(nth):
                os.kill(os.getpid(), signal.SIGKILL)

    class Proxy:
        """Forwards everything; calls point() before/after the methods named."""

        def __init__(self, target, before=(), after=()):
            self._target, self._before, self._after = target, before, after

        def __getattr__(self, name):
            value = getattr(self._target, name)
            if not callable(value) or name not in (*self._before, *self._after):
                return value

            def wrapped(*args, **kw):
                if name in self._before:
                    point("before_" + name)
                result = value(*args, **kw)
                if name in self._after:
                    point("after_" + name)
                return result

            return wrapped

    class Source:
        name = "crash test"
        rules = ()

        def datasets(self, only=None):
            for d in spec["datasets"]:
                if only is None or d["sid"] in only:
                    yield SourceDataset(d["sid"], d["metadata"], Path(d["folder"]))

        def close(self):
            pass

    key = PrivateKey(bytes.fromhex(spec["key"]))
    ledger = LocalLedger(root / "ledger.sqlite3", max_payload=spec["max_payload"])
    journal = Journal.open(root / "journal.sqlite3", ledger_url=ledger.url, publisher=key.address)
    store = FSBlockstore(root / "blocks")
    config = PublishConfig(
        key,
        Proxy(ledger, before=("publish",), after=("publish",)),
        Proxy(store, after=("sync",)),
        "kubo-v1",
        Proxy(journal, after=("begin", "will_send", "sent", "finish")),
        root / "media",
        make_media=False,
        fill_from_files=False,
    )
    print("ready", flush=True)
    publisher = Publisher(Source(), config)
    summary = publisher.run(publisher.plan())
    print(json.dumps(summary.to_json()), flush=True)
    sys.exit(0 if not summary.failed else 3)
    '''
)

MOMENTS = [
    "before_publish",
    "after_publish",
    "after_begin",
    "after_will_send",
    "after_sent",
    "after_finish",
    "after_sync",
]


def write_datasets(root: Path, rng: random.Random) -> list[dict]:
    out = []
    for i in range(DATASETS):
        sid = f"cr{i:03d}"
        folder = root / "data" / sid
        (folder / "rawdata").mkdir(parents=True)
        (folder / "rawdata" / "ts.mrc").write_bytes(os.urandom(rng.randint(10, 300)))
        (folder / f"keyimg_{sid}.jpg").write_bytes(sid.encode())
        metadata = {
            # Some titles are long enough to push the record past max_payload: multipart.
            "title": f"Crash test {sid} " + "x" * rng.choice([0, 0, 10, 400]),
            "date": 1389657600 + i,
            "NCBItaxID": 2287,
            "speciesName": "Sulfolobus solfataricus",
            "tiltSingleDual": 1,
            "sid": sid,
        }
        out.append({"sid": sid, "metadata": metadata, "folder": str(folder)})
    return out


def start(root: Path, crash_at: str | None) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")}
    env.pop("CRASH_AT", None)
    if crash_at:
        env["CRASH_AT"] = crash_at
    return subprocess.Popen(
        [sys.executable, str(root / "runner.py"), str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.mark.slow
def test_sigkill_anywhere_publishes_every_dataset_exactly_once(tmp_path):
    rng = random.Random(20140114)
    (tmp_path / "runner.py").write_text(RUNNER)
    spec = {
        "key": (bytes([5]) * 32).hex(),
        "max_payload": MAX_PAYLOAD,
        "datasets": write_datasets(tmp_path, rng),
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))

    killed = runs = 0
    deadline = time.monotonic() + 150
    while True:  # until one run completes
        runs += 1
        assert time.monotonic() < deadline, f"not done after {runs} runs ({killed} killed)"
        crash_at = None
        if killed < KILLS and killed % 2 == 0:  # from inside, at a chosen moment
            crash_at = f"{MOMENTS[(killed // 2) % len(MOMENTS)]}:{rng.randint(1, 3)}"
        proc = start(tmp_path, crash_at)
        assert proc.stdout is not None
        if killed < KILLS and crash_at is None:  # from outside, after a random delay
            assert proc.stdout.readline().strip() == "ready"
            time.sleep(rng.uniform(0.0, 0.12))
            proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=60)
        if proc.returncode == -signal.SIGKILL:
            killed += 1
            continue
        assert proc.returncode == 0, f"run {runs} failed:\n{out}\n{err}"
        break
    assert killed >= 20

    with LocalLedger(tmp_path / "ledger.sqlite3", max_payload=MAX_PAYLOAD) as ledger:
        entries = [e for b in ledger.blocks(0, ledger.tip().height) for e in b.entries]
        payloads = [e.payload for e in entries]
        assert len(set(payloads)) == len(payloads), "a transaction went out twice"
        assembler = MultipartAssembler()
        published: dict[str, int] = {}
        multipart = 0
        for entry in entries:
            if entry.payload.startswith("oip-mp("):
                done = assembler.add(parse_part(entry.payload), entry.txid)
                if done is None:
                    continue
                multipart += 1
                text = done.data
            else:
                text = entry.payload
            sid = decode(text).artifact.details.sid
            published[sid] = published.get(sid, 0) + 1
        assert assembler.pending() == {}, "an incomplete multipart record"
        assert multipart > 0
        assert sorted(published) == sorted(d["sid"] for d in spec["datasets"])
        assert set(published.values()) == {1}

        catalog = open_catalog(f"sqlite:///{tmp_path / 'catalog.sqlite3'}")
        try:
            Indexer(ledger, catalog).run()
            assert catalog.search(SearchQuery(limit=1)).total == DATASETS
        finally:
            catalog.close()
