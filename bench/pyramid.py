"""OME-Zarr pyramid build (`etdb.mrc.pyramid.build_pyramid`): throughput and peak RSS.

    .venv/bin/python bench/pyramid.py [--nz 512] [--runs 3] [--write docs/benchmarks.md]

Set-up (not timed): a float32 MRC of 1024 x 1024 x --nz sections (2 GiB for 512; the noise
field with a growing disc of bench/portal.py, so no two chunks are alike) written once into a
temporary folder, fsynced (no writeback during the runs), and read once (warm page cache: what
publishing a just-written reconstruction sees). Each build runs in a fresh child process into
a fresh folder beside the MRC; the child reports its wall time and its own peak RSS
(``ru_maxrss``, which counts every page it touched, memory-mapped file pages included). The
first two runs' pyramids are hashed file by file: the build must be deterministic. Targets (the
issue): >= 100 MB/s of MRC input (MB = 10^6 bytes), peak RSS < 500 MB.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from add import loadavg, machine  # bench/add.py (the script folder is on sys.path)
from portal import write_mrc
from report import write_section

START = "<!-- bench/pyramid.py:start -->"
END = "<!-- bench/pyramid.py:end -->"
TARGET_RATE = 100  # MB/s of MRC input
TARGET_RSS = 500 * 2**20


def child(mrc: str, out: str) -> None:
    """One build in this process; prints its seconds, sizes, levels and peak RSS as JSON."""
    import resource

    from etdb.mrc.pyramid import build_pyramid

    started = time.perf_counter()
    info = build_pyramid(Path(mrc), Path(out))
    seconds = time.perf_counter() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    files = sum(1 for p in Path(out).rglob("*") if p.is_file())
    print(json.dumps({"seconds": seconds, "bytes_in": info.bytes_in, "bytes_out": info.bytes_out,
                      "rss": rss, "levels": info.levels, "files": files}))  # fmt: skip


def run_build(mrc: Path, out: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", str(mrc), str(out)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(done.stdout)


def tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        with path.open("rb") as fh:
            digest.update(hashlib.file_digest(fh, "sha256").digest())
    return digest.hexdigest()


def rate(r: dict[str, Any]) -> float:
    return r["bytes_in"] / r["seconds"] / 1e6


def render(args: argparse.Namespace, runs: list[dict[str, Any]], same: bool, load: str,
           load_after: str) -> str:  # fmt: skip
    from etdb.mrc.pyramid import BAND_BYTES, COMPRESSOR

    m = machine()
    first = runs[0]
    rates = [rate(r) for r in runs]
    best, median = max(rates), statistics.median(rates)
    rss = max(r["rss"] for r in runs)
    levels = ", ".join(" x ".join(map(str, reversed(shape))) for shape in first["levels"])
    lines = [
        START,
        "## OME-Zarr pyramid build (`bench/pyramid.py`)",
        "",
        f"Command: `.venv/bin/python bench/pyramid.py --nz {args.nz} --runs {args.runs} "
        "--write docs/benchmarks.md`",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram']} RAM, Python {m['python']}, "
        f"{m['os']}; load average {load} before, {load_after} after (shared machine). "
        f"Input: a float32 MRC of 1024 x 1024 x {args.nz} ({first['bytes_in'] / 2**30:.2f} GiB of "
        "voxels: noise plus a growing disc), warm in the page cache. Output: levels "
        f"{levels} (x x y x z), {first['files']:,} files, {first['bytes_out'] / 1e6:,.0f} MB "
        f"(float32 noise barely compresses); Blosc {COMPRESSOR.cname} level "
        f"{COMPRESSOR.clevel} + shuffle, 64^3 chunks, blocks of at most "
        f"{BAND_BYTES >> 20} MiB. Each build in a fresh child process; {args.runs} runs.",
        "",
        "| | best | median | target | |",
        "|---|---:|---:|---|---|",
        f"| build throughput (MB/s of MRC input) | {best:.0f} | {median:.0f} | >= {TARGET_RATE} | "
        f"{'met' if median >= TARGET_RATE else 'NOT met'} |",
        f"| wall time (s) | {min(r['seconds'] for r in runs):.1f} | "
        f"{statistics.median(r['seconds'] for r in runs):.1f} | | |",
        f"| peak RSS of the build (MB, max of runs) | | {rss / 2**20:.0f} | < "
        f"{TARGET_RSS // 2**20} | {'met' if rss < TARGET_RSS else 'NOT met'} |",
        "",
        f"Deterministic: the first two runs' pyramids are {'byte-identical' if same else 'DIFFERENT'}"
        " (every file's path and SHA-256). The MRC is read once (pread, so page-cache pages do "
        "not count as the build's memory), in chunk-aligned blocks that are written as level 0 "
        "and pooled into level 1 at once; levels 2+ are pooled from the level before, read back "
        "from the zarr (1/8 of the work each).",
        END,
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--nz", type=int, default=512, help="sections of the 1024 x 1024 volume")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tmp", type=Path, help="folder for the MRC and pyramids (default: $TMPDIR)")
    ap.add_argument("--write", type=Path, help="update this Markdown file's section")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0
    with tempfile.TemporaryDirectory(prefix="etdb-bench-pyramid-", dir=args.tmp) as tmp:
        mrc = Path(tmp) / "volume.mrc"
        print(f"writing a 1024 x 1024 x {args.nz} float32 MRC...", file=sys.stderr)
        write_mrc(mrc, 1024, 1024, args.nz)
        with mrc.open("rb") as fh:  # warm the page cache
            while fh.read(1 << 24):
                pass
        load = loadavg()
        runs, digests = [], []
        for i in range(args.runs):
            out = Path(tmp) / f"run{i}" / "volume.ome.zarr"
            out.parent.mkdir()
            runs.append(run_build(mrc, out))
            print(f"run {i + 1}: {runs[-1]['seconds']:.1f} s, {rate(runs[-1]):.0f} MB/s, "
                  f"peak RSS {runs[-1]['rss'] / 2**20:.0f} MB", file=sys.stderr)  # fmt: skip
            if i < 2:
                digests.append(tree_digest(out))
            shutil.rmtree(out.parent)
            os.sync()  # the next run does not pay for this one's writeback
        load_after = loadavg()
    same = len(digests) < 2 or digests[0] == digests[1]
    report = render(args, runs, same, load, load_after)
    print(report)
    if args.write:
        write_section(args.write, report, START, END)
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
