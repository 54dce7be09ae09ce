"""Benchmark of /api/v2's full list (what etdb-react loads on every page view) as the catalog
changes: `etdb serve --no-index` over a catalog of synthetic records that this script writes
to between requests, as the indexer would (another process, the same SQLite file).

    .venv/bin/python bench/api.py --list                         # 12,000 records
    .venv/bin/python bench/api.py --list --before-commit bd36271 --write docs/benchmarks.md

Per scenario, the wall time of one GET of
``/api/v2/artifact/get/type?t=*&st=*&results=*&page=1`` to its last byte, as a browser asks
(``Accept-Encoding: gzip``): the first request after start, repeated requests, and the first
request after a block without records, after a block with one record, after an edit of one
record (each after the server's indexed-height cache has expired, so the ETag moved). With
``--before-commit`` the same runs against that commit's ``src/`` (``git archive``, nothing in
the checkout changes) for a before/after table.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path
from typing import Any

from report import write_section  # bench/report.py (the script folder is on sys.path)

REPO = Path(__file__).resolve().parent.parent
START = "<!-- bench/api.py --list:start -->"
END = "<!-- bench/api.py --list:end -->"
URL = "/api/v2/artifact/get/type?t=*&st=*&results=*&page=1"
HEADERS = {"Accept-Encoding": "gzip, deflate", "Accept": "application/json, text/plain, */*"}
SCENARIOS = (
    "first request after start",
    "repeated request (catalog unchanged)",
    "after a block without records",
    "after a block with 1 new record",
    "after an edit of 1 record",
)


def fetch(port: int, headers: dict[str, str] = HEADERS) -> tuple[float, int]:
    """Seconds to the last byte of one list request, and the bytes sent."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    started = time.perf_counter()
    conn.request("GET", URL, headers=headers)
    response = conn.getresponse()
    body = response.read()
    elapsed = time.perf_counter() - started
    if response.status != 200:
        raise SystemExit(f"list answered {response.status}: {body[:200]!r}")
    conn.close()
    return elapsed, len(body)


class Writer:
    """Writes to the served catalog as the indexer would: blocks, records, edits."""

    def __init__(self, path: Path, records: int) -> None:
        from etdb.index.catalog import open_catalog

        self.catalog = open_catalog(f"sqlite:///{path}", memory_index=False)
        self.height = (records - 1) // 10
        self.serial = 0

    def block(self, record: bool = False, edit: bool = False) -> None:
        import random

        from api import artifact, txid  # bench/api.py: the same synthetic records
        from etdb.index.store import AppliedEdit, Position, PublishedRecord

        self.height += 1
        pos = Position(self.height, 0, f"{self.height:064x}", 1_600_000_000 + self.height)
        with self.catalog.transaction():
            if record:
                self.serial += 1
                n = 10**7 + self.serial
                art = artifact(n, random.Random(n))
                rec = PublishedRecord(
                    txid(n), (txid(n),), art["floAddress"], art, art["signature"], True, pos
                )
                self.catalog.add_record(rec)
            if edit:
                target = txid(7 * self.height % 1000)
                state = self.catalog.record_state(target)
                assert state is not None
                after = json.loads(json.dumps(state.artifact))
                after["info"]["title"] += " (edited)"
                self.catalog.apply_edit(
                    AppliedEdit(txid(-self.height), target, pos.time, [], after, pos)
                )
            self.catalog.set_meta("cursor", json.dumps({"height": self.height, "hashes": []}))

    def close(self) -> None:
        self.catalog.close()


def run(args: argparse.Namespace, catalog: Path, home: Path, src: Path | None) -> dict[str, Any]:
    from api import free_port, start_server

    port = free_port()
    saved = dict(os.environ)
    if src is not None:  # the server imports etdb from that tree
        os.environ["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(src), saved.get("PYTHONPATH")])
        )
    try:
        proc = start_server(home, catalog, port, 1)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    writer = Writer(catalog, args.records)
    times: dict[str, list[float]] = {name: [] for name in SCENARIOS}
    size = 0
    try:
        elapsed, size = fetch(port)
        times[SCENARIOS[0]].append(elapsed)
        for _ in range(args.rounds):
            times[SCENARIOS[1]].append(fetch(port)[0])
        plain = fetch(port, {"Accept-Encoding": "identity"})[1]
        for _ in range(args.rounds):
            for name, change in zip(
                SCENARIOS[2:], ({}, {"record": True}, {"edit": True}), strict=True
            ):
                writer.block(**change)
                time.sleep(1.2)  # past the server's indexed-height cache (HEIGHT_TTL 1 s)
                times[name].append(fetch(port)[0])
                times[SCENARIOS[1]].append(fetch(port)[0])
    finally:
        writer.close()
        proc.terminate()
        proc.wait(timeout=60)
    return {"times": times, "bytes": size, "plain": plain}


def materialise(commit: str, work: Path) -> Path:
    """``src/`` of ``commit`` in a folder of its own (git archive: the checkout is untouched)."""
    out = work / f"src-{commit}"
    if not out.exists():
        tar = subprocess.run(
            ["git", "-C", str(REPO), "archive", commit, "src"], capture_output=True, check=True
        ).stdout
        with tarfile.open(fileobj=BytesIO(tar)) as archive:
            archive.extractall(work / f"tree-{commit}", filter="data")
        (work / f"tree-{commit}" / "src").rename(out)
    return out


def render(args: argparse.Namespace, results: dict[str, dict[str, Any]], load: str) -> str:
    lines = [
        START,
        "## oipd full list (bench/api.py --list)",
        "",
        f"Command: `.venv/bin/python bench/api.py --list --records {args.records} "
        f"--rounds {args.rounds}"
        + (f" --before-commit {args.before_commit}" if args.before_commit else "")
        + " --write docs/benchmarks.md`",
        "",
        f"Machine: {os.cpu_count()} vCPU, Python {platform.python_version()}, "
        f"`etdb serve --no-index --workers 1` over {args.records:,} synthetic records in SQLite; "
        "this script writes blocks to the same catalog file between requests, as the indexer "
        f"would. Load average before: {load}. One GET of `{URL}` with "
        "`Accept-Encoding: gzip` (as a browser asks), seconds to the last byte, median over "
        f"{args.rounds} rounds (the first request: one); answer {_mb(results)}.",
        "",
        "| scenario | " + " | ".join(results) + " |",
        "|---|" + "---:|" * len(results),
    ]
    for name in SCENARIOS:
        cells = [f"{statistics.median(r['times'][name]):.3f}" for r in results.values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Before, the list was read and rendered record by record (`catalog.get` per record) and"
        " kept per indexed height: every block, even one without records, rebuilt it, and the"
        " GZip middleware compressed the answer again on every request. Now it is"
        " joined from per-record fragments kept between catalog versions (only records a"
        " block wrote are read again), the body is kept per catalog version (rev, epoch),"
        " with its gzip copy made once. What remains after a change is the catalog's keyset"
        " walk for the order, the join and one compression.",
        END,
    ]
    return "\n".join(lines) + "\n"


def _mb(results: dict[str, dict[str, Any]]) -> str:
    plain = max(r["plain"] for r in results.values())
    packed = max(r["bytes"] for r in results.values())
    return f"{plain / 1e6:.1f} MB of JSON, {packed / 1e6:.1f} MB gzip-compressed"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--records", type=int, default=12_000)
    ap.add_argument("--rounds", type=int, default=3, help="changes of each kind (median shown)")
    ap.add_argument("--before-commit", help="also run this commit's src/ (before/after table)")
    ap.add_argument("--keep", type=Path, help="work folder to keep (its catalogs are reused)")
    ap.add_argument("--write", type=Path, help="update this Markdown file's section")
    args = ap.parse_args(argv)
    from api import build_catalog

    work = args.keep or Path(tempfile.mkdtemp(prefix="etdb-bench-list-"))
    work.mkdir(parents=True, exist_ok=True)
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    results: dict[str, dict[str, Any]] = {}
    try:
        runs = (
            [(f"before ({args.before_commit})", materialise(args.before_commit, work))]
            if args.before_commit
            else []
        )
        runs.append(("now", None))
        for label, src in runs:
            # a fresh catalog per run: the runs write to it
            catalog = work / f"catalog-{args.records}-{len(results)}.sqlite3"
            catalog.unlink(missing_ok=True)
            print(f"{label}: building a catalog of {args.records:,} records...", file=sys.stderr)
            build_catalog(catalog, args.records)
            home = work / f"home-{len(results)}"
            home.mkdir(exist_ok=True)
            results[label] = run(args, catalog, home, src)
            print(label, json.dumps(results[label]["times"]), file=sys.stderr)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    section = render(args, results, load)
    print(section)
    if args.write:
        write_section(args.write, section, START, END)
    return 0
