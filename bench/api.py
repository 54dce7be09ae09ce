"""Benchmark of the HTTP API: `etdb serve --no-index` over a catalog of synthetic records.

    .venv/bin/python bench/api.py                          # 100,000 records, Markdown report
    .venv/bin/python bench/api.py --write docs/benchmarks.md
    .venv/bin/python bench/api.py --records 20000 --duration 5 --keep /tmp/etdb-bench-api
    .venv/bin/python bench/api.py --list [--before-commit C]   # /api/v2's full list: api_list.py

It builds a SQLite catalog through the catalog's own write API (as the indexer would), starts
`etdb serve --no-index` on a free loopback port, and drives it with wrk (apt-get install wrk;
requests drawn at random from a list of URLs by a Lua script) or, without wrk, with a Python
load generator (threads on keep-alive http.client connections; it competes with the server
for the CPU, so its figures are a lower bound). Each scenario reports requests per second,
p50/p99 latency and the server's CPU time per request.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import platform
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from report import write_section  # bench/report.py (the script folder is on sys.path)

REPO = Path(__file__).resolve().parent.parent
START = "<!-- bench/api.py:start -->"
END = "<!-- bench/api.py:end -->"

SPECIES = [
    f"{genus} {epithet}"
    for genus in ("Caulobacter", "Vibrio", "Treponema", "Escherichia", "Bdellovibrio", "Myxococcus")
    for epithet in ("crescentus", "cholerae", "primitia", "coli", "bacteriovorus", "xanthus")
]
PEOPLE = [
    f"{first} {last}"
    for first in ("Ariane", "Elitza", "Gavin", "Zhuo", "Rasika")
    for last in ("Briegel", "Tocheva", "Murphy", "Li")
]
WORDS = ["flagellum", "chemoreceptor", "array", "membrane", "vesicle", "pilus", "spore", "phage"]
SUBTYPES = ["tiltSeries", "reconstruction", "keymov", "keyimg", "thumbnail", "snapshot"]


# -- catalog -----------------------------------------------------------------------------------


def artifact(i: int, rng: random.Random) -> dict[str, Any]:
    sid = f"bx{2005 + i % 15}-{i:07d}"
    species = rng.choice(SPECIES)
    files = [
        {
            "fname": f"{st}/{sid}_{st}.dat",
            "fsize": rng.randrange(10**5, 10**10),
            "subtype": st,
            "type": "tomogram",
        }
        for st in SUBTYPES[: rng.randrange(2, len(SUBTYPES) + 1)]
    ]
    return {
        "floAddress": "FTSTq8xx8yWUKJA5E3bgXLzZqqG9V6dvnr"
        if i % 4
        else "FBenchPublisher2xxxxxxxxxxxxxxxxxx",
        "timestamp": 1_500_000_000 + i * 60,
        "type": "research",
        "subtype": "tomogram",
        "info": {"title": f"{rng.choice(WORDS)} {rng.choice(WORDS)} {i}", "tags": "etdb,bench"},
        "details": {
            "date": 1_100_000_000 + rng.randrange(0, 400_000_000),
            "NCBItaxID": 1000 + SPECIES.index(species),
            "artNotes": f"Tilt series notes: {rng.choice(WORDS)} {rng.choice(WORDS)}",
            "scopeName": rng.choice(["Caltech Polara", "Titan Krios"]),
            "speciesName": species,
            "strain": f"S{rng.randrange(50)}",
            "tiltSingleDual": rng.choice([1, 2]),
            "defocus": -rng.randrange(2, 15),
            "dosage": rng.randrange(50, 250),
            "tiltMin": -rng.randrange(40, 70),
            "tiltMax": rng.randrange(40, 70),
            "tiltStep": rng.choice([1, 1.5, 2, 3]),
            "microscopist": rng.choice(PEOPLE),
            "institution": "Caltech",
            "lab": "Jensen Lab",
            "sid": sid,
        },
        "storage": {
            "network": "ipfs",
            "location": "Qm" + hashlib.sha256(sid.encode()).hexdigest()[:44],
            "files": files,
        },
        "signature": "bench-" + sid,
    }


def txid(i: int) -> str:
    return hashlib.sha256(f"etdb-bench-{i}".encode()).hexdigest()


def build_catalog(path: Path, n: int) -> float:
    from etdb.index.catalog import open_catalog
    from etdb.index.store import Position, PublishedRecord

    rng = random.Random(42)
    started = time.monotonic()
    catalog = open_catalog(f"sqlite:///{path}")
    try:
        for start in range(0, n, 5000):
            with catalog.transaction():
                for i in range(start, min(n, start + 5000)):
                    art = artifact(i, rng)
                    height = i // 10
                    pos = Position(height, i % 10, f"{height:064x}", 1_500_000_000 + height * 60)
                    catalog.add_record(
                        PublishedRecord(
                            txid(i), (txid(i),), art["floAddress"], art, art["signature"], True, pos
                        )
                    )
                catalog.set_meta("cursor", json.dumps({"height": (n - 1) // 10, "hashes": []}))
    finally:
        catalog.close()
    return time.monotonic() - started


# -- server ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(home: Path, catalog: Path, port: int, workers: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETDB_")} | {
        "ETDB_HOME": str(home)
    }
    cmd = [sys.executable, "-c", "from etdb.cli import main; main()", "serve", "--no-index"]
    cmd += [
        "--workers",
        str(workers),
        "--port",
        str(port),
        "--catalog",
        f"sqlite:///{catalog}",
        "--ledger",
        f"local://{home}/ledger.sqlite3",
    ]
    log = (home / f"serve-{workers}.log").open("wb")  # a file: a full pipe would stall the server
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/api/v1/status")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.2)
        if proc.poll() is not None:
            raise SystemExit(f"etdb serve exited: {(home / f'serve-{workers}.log').read_text()}")
    raise SystemExit("etdb serve did not come up within 60 s")


def cpu_seconds(pid: int) -> float:
    """CPU time of ``pid`` and its live descendants (the workers, with --workers > 1)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields_ = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        p = int(stat.parent.name)
        parents[p] = int(fields_[1])
        times[p] = (int(fields_[11]) + int(fields_[12])) / os.sysconf("SC_CLK_TCK")
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == parent and p not in tree]
        tree.update(kids)
        frontier += kids
    return sum(times.get(p, 0.0) for p in tree)


# -- load --------------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    workers: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    server_cpu: float
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


WRK_SCRIPT = """
local paths = {}
for line in io.lines(os.getenv("ETDB_BENCH_PATHS")) do paths[#paths + 1] = line end
math.randomseed(os.time())
local headers = {}
local h = os.getenv("ETDB_BENCH_HEADER")
if h and h ~= "" then
  local name, value = h:match("^([^:]+):%s*(.*)$")
  headers[name] = value
end
request = function() return wrk.format("GET", paths[math.random(#paths)], headers) end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %f %f %f %d\\n", summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1e3, latency:percentile(99) / 1e3,
    summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout))
end
"""


def run_wrk(
    base: str, paths: list[str], headers: dict[str, str], args: argparse.Namespace, work: Path
) -> tuple[int, float, float, float, int]:
    (work / "paths.txt").write_text("\n".join(paths) + "\n")
    (work / "bench.lua").write_text(WRK_SCRIPT)
    header = "".join(f"{k}: {v}" for k, v in headers.items())  # at most one
    env = os.environ | {"ETDB_BENCH_PATHS": str(work / "paths.txt"), "ETDB_BENCH_HEADER": header}
    cmd = [
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{args.duration}s",
        "-s",
        str(work / "bench.lua"),
        base,
    ]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    m = re.search(r"RESULT (\d+) ([\d.]+) ([\d.]+) ([\d.]+) (\d+)", out)
    if not m:
        raise SystemExit(f"could not read wrk's output:\n{out}")
    return int(m[1]), float(m[2]), float(m[3]), float(m[4]), int(m[5])


def run_python(
    base: str, paths: list[str], headers: dict[str, str], args: argparse.Namespace, work: Path
) -> tuple[int, float, float, float, int]:
    host, port = base.removeprefix("http://").split(":")
    stop = time.monotonic() + args.duration
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        mine: list[float] = []
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            conn.request("GET", rng.choice(paths), headers=headers)
            resp = conn.getresponse()
            resp.read()
            mine.append(time.perf_counter() - t0)
            if resp.status >= 400:
                errors[0] += 1
        with lock:
            latencies.extend(mine)

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    qs = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return len(latencies), elapsed, qs[49] * 1e3, qs[98] * 1e3, errors[0]


def scenarios(n: int) -> dict[str, tuple[list[str], dict[str, str]]]:
    """name -> (URLs drawn at random, request headers)."""
    rng = random.Random(7)
    picks = [rng.randrange(n) for _ in range(2000)]
    lookups = [f"/api/v1/records/{txid(i)}" for i in picks]
    etag = f'W/"{(n - 1) // 10}"'  # the indexed height build_catalog leaves
    return {
        "lookup by txid": (lookups, {}),
        "lookup by 8-hex prefix": ([f"/api/v1/records/{txid(i)[:8]}" for i in picks], {}),
        "lookup, revalidated (304)": (lookups, {"If-None-Match": etag}),
        "search: species filter, 50 per page": (
            [
                f"/api/v1/records?species={rng.choice(SPECIES).replace(' ', '%20')}"
                for _ in range(500)
            ],
            {},
        ),
        "search: full text q, 50 per page": (
            [f"/api/v1/records?q={rng.choice(WORDS)}%20{rng.choice(WORDS)}" for _ in range(500)],
            {},
        ),
        "search: filter + 3 facets": (
            [
                f"/api/v1/records?microscopist={rng.choice(PEOPLE).replace(' ', '%20')}"
                "&facets=species,tilt_axis,year&limit=20"
                for _ in range(500)
            ],
            {},
        ),
        "summary (etdb-react home page)": (["/api/v2/research/tomogram/summary"], {}),
    }


# -- report ------------------------------------------------------------------------------------


def server_stack() -> str:
    parts = []
    for mod, name in (("uvloop", "uvloop"), ("httptools", "httptools")):
        try:
            __import__(mod)
            parts.append(name)
        except ImportError:
            pass
    return " + ".join(parts) if parts else "asyncio + h11 (uvloop/httptools not installed)"


def render(
    args: argparse.Namespace,
    results: list[Result],
    build_s: float | None,
    tool: str,
    load: str,
    load_after: str,
) -> str:
    import uvicorn

    lines = [
        START,
        "## HTTP API (bench/api.py)",
        "",
        f"Command: `.venv/bin/python bench/api.py --records {args.records} --duration {args.duration} "
        f"--connections {args.connections} --workers {','.join(map(str, args.workers))} "
        f"--runs {args.runs} "
        "--write docs/benchmarks.md`",
        "",
        f"Machine: {os.cpu_count()} vCPU, Python {platform.python_version()}, uvicorn {uvicorn.__version__} "
        f"({server_stack()}), `etdb serve --no-index --workers N`; load generator: {tool} "
        f"({args.connections} keep-alive connections, {args.duration} s per scenario, on the same machine); "
        f"load average before: {load}.",
        f"Catalog: {args.records:,} synthetic records in SQLite"
        + (
            f", built through the catalog write API in {build_s:.0f} s."
            if build_s is not None
            else "."
        ),
        "",
        "| scenario | workers | req/s best (median) | p50 ms | p99 ms | server CPU ms/req | errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    order = list(scenarios(1))
    groups: dict[tuple[str, int], list[Result]] = {}
    for r in results:
        groups.setdefault((r.name, r.workers), []).append(r)
    for (name, workers), runs in sorted(
        groups.items(), key=lambda g: (order.index(g[0][0]), g[0][1])
    ):
        best = max(runs, key=lambda r: r.rate)
        median = statistics.median(r.rate for r in runs)
        cpu = min(r.server_cpu / r.requests * 1e3 for r in runs if r.requests)
        errors = sum(r.errors for r in runs)
        lines.append(
            f"| {name} | {workers} | {best.rate:,.0f} ({median:,.0f}) | {best.p50_ms:.1f} "
            f"| {best.p99_ms:.1f} | {cpu:.2f} | {errors} |"
        )
    lines += [
        "",
        "Lookups answer the full record (about 3 KB of JSON: summary, current and original"
        " artifact, provenance); searches answer 50 summaries (20 with facets) and the total"
        ' count. "Revalidated" lookups send `If-None-Match` with the current ETag and get 304'
        " without a catalog query. req/s is the best of the runs (median in brackets), p50/p99"
        " come from that run, server CPU per request is the lowest of the runs. The load"
        " generator and whatever else runs on the machine share its vCPUs, so CPU per request is"
        " the figure that carries over to a bigger machine (req/s per core ≈ 1000 / that). The"
        " synthetic titles draw on 8 words, so each full-text word matches about a quarter of the"
        " catalog: the worst case for relevance ranking.",
        "",
        f"Load average after: {load_after}.",
        END,
    ]
    return "\n".join(lines) + "\n"


def update_doc(path: Path, section: str) -> None:
    write_section(path, section, START, END)


def bench_server(
    args: argparse.Namespace,
    home: Path,
    catalog: Path,
    workers: int,
    drive: Any,
    work: Path,
    run: int,
) -> list[Result]:
    port = free_port()
    proc = start_server(home, catalog, port, workers)
    base = f"http://127.0.0.1:{port}"
    out = []
    try:
        for name, (paths, headers) in scenarios(args.records).items():
            warm = argparse.Namespace(**{**vars(args), "duration": 2})
            drive(base, paths, headers, warm, work)
            cpu0 = cpu_seconds(proc.pid)
            n, secs, p50, p99, errors = drive(base, paths, headers, args, work)
            result = Result(name, workers, n, secs, p50, p99, errors, cpu_seconds(proc.pid) - cpu0)
            print(
                f"run {run + 1}, {workers} worker(s), {name}: {result.rate:,.0f} req/s, "
                f"p50 {p50:.1f} ms, p99 {p99:.1f} ms",
                file=sys.stderr,
            )
            out.append(result)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--list" in argv:  # the /api/v2 full list as the catalog changes: bench/api_list.py
        from api_list import main as list_main

        return list_main([a for a in argv if a != "--list"])
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--duration", type=int, default=10, help="seconds per scenario")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1, help="wrk threads")
    ap.add_argument("--tool", choices=("auto", "wrk", "python"), default="auto")
    ap.add_argument(
        "--workers",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[1, 2],
        help="comma-separated `etdb serve --workers` values to compare (default 1,2)",
    )
    ap.add_argument("--runs", type=int, default=3, help="runs per configuration (best is shown)")
    ap.add_argument("--keep", type=Path, help="work folder to keep (and reuse its catalog)")
    ap.add_argument("--write", type=Path, help="update this Markdown file's section")
    args = ap.parse_args(argv)
    tool = (
        "wrk" if args.tool == "wrk" or (args.tool == "auto" and shutil.which("wrk")) else "python"
    )
    work = args.keep or Path(tempfile.mkdtemp(prefix="etdb-bench-api-"))
    work.mkdir(parents=True, exist_ok=True)
    home = work / "home"
    home.mkdir(exist_ok=True)
    catalog = work / f"catalog-{args.records}.sqlite3"
    timing = catalog.with_suffix(".build-seconds")  # kept beside a reused catalog
    if not catalog.exists():
        print(f"building a catalog of {args.records:,} records...", file=sys.stderr)
        timing.write_text(f"{build_catalog(catalog, args.records):.1f}")
    build_s = float(timing.read_text()) if timing.exists() else None
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    drive = run_wrk if tool == "wrk" else run_python
    results = []
    try:
        # Runs interleave the worker counts, so a burst of other load on the machine does not
        # land on one configuration only.
        for run in range(args.runs):
            for workers in args.workers:
                results += bench_server(args, home, catalog, workers, drive, work, run)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    load_after = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    section = render(args, results, build_s, tool, load, load_after)
    print(section)
    if args.write:
        update_doc(args.write, section)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "src"))
    raise SystemExit(main())
