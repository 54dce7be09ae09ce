"""Benchmark `etdb publish` end to end: the paper's 11,293 datasets, from a folder source to the
embedded ledger, on the embedded defaults (FSBlockstore, journal, local:// ledger).

    .venv/bin/python bench/publish.py                               # print a Markdown report
    .venv/bin/python bench/publish.py --write docs/benchmarks.md    # ...and update that section
    .venv/bin/python bench/publish.py --datasets 500                # quicker

Each synthetic dataset is a folder in go-etdb's layout with a ``dataset.toml`` (Table 1
metadata), a tiny reconstruction (``3dimage_1/<sid>_full.rec``, a 16x16x4 float32 MRC: 5 KB)
and a key image (a small JPEG): what matters here is the per-dataset cost (source row, add,
sync, sign, journal, ledger), not bytes, which ``bench/add.py`` measures. Media generation is
off (``make_media=False``). Folders are generated once (not timed) under
``.cache/bench-publish/``; every run publishes them into a fresh data folder.

The run is ``Publisher.plan()`` then ``Publisher.run()``, as ``etdb publish --yes`` does. The
split comes from timing wrappers around what the pipeline calls: the source's ``datasets()``
(read on its own first), ``add_listed`` and ``Blockstore.sync`` (add), ``sign_artifact``,
``encode_publish`` and ``verify_publish`` (sign), the journal's writes, and ``Ledger.publish``.

The FLO fee is what the very record texts that went to the embedded ledger would cost as FLO
floData (1040-byte ``oip-mp`` parts, counted by ``etdb.ledger.messages.plan``), priced offline
by the FLO backend at ``--fee-rate`` FLO/kvB (an assumption, as in ``bench/ledger.py``), beside
the paper's US$17.89 for 11,293 records.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from report import write_section  # bench/report.py (the script folder is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from add import loadavg, machine  # noqa: E402 - bench/add.py: same machine description
from ledger import DEFAULT_FEE_RATES, PAPER_RECORDS, PAPER_USD  # noqa: E402 - bench/ledger.py

START = "<!-- bench/publish.py:start -->"
END = "<!-- bench/publish.py:end -->"
CACHE = ROOT / ".cache" / "bench-publish"
TARGET_SECONDS = 600.0
KEY_HEX = "5f" * 32  # a fixed bench publisher
SPECIES = ["Vibrio cholerae", "Caulobacter crescentus", "Escherichia coli", "Treponema primitia"]
PEOPLE = ["Ada Byron", "Grace Hopper", "Rosalind Franklin", "Dorothy Hodgkin"]


# -- the synthetic lab (generated once, not timed) ------------------------------------------


def _mrc_template() -> tuple[bytes, int]:
    """The 1024-byte header of a 16x16x4 float32 MRC, and its data size."""
    import mrcfile
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.mrc"
        with mrcfile.new(path) as mrc:
            mrc.set_data(np.zeros((4, 16, 16), dtype=np.float32))
            mrc.voxel_size = 10.0
        raw = path.read_bytes()
    return raw[:1024], len(raw) - 1024


def make_lab(root: Path, count: int) -> Path:
    """``count`` dataset folders under ``root`` (kept: made once per count)."""
    import numpy as np
    from PIL import Image

    lab = root / f"lab-{count}"
    done = lab / ".complete"
    if done.is_file():
        return lab
    shutil.rmtree(lab, ignore_errors=True)
    header, data_size = _mrc_template()
    rng = np.random.default_rng(2026)
    jpeg = Path(tempfile.mkdtemp()) / "k.jpg"
    for n in range(count):
        sid = f"bp{2010 + n % 10}-{1 + n % 12:02d}-{1 + n % 28:02d}-{n}"
        folder = lab / sid
        (folder / "3dimage_1").mkdir(parents=True)
        data = rng.normal(size=data_size // 4).astype(np.float32).tobytes()
        (folder / "3dimage_1" / f"{sid}_full.rec").write_bytes(header + data)
        Image.new("L", (16, 16), color=n % 256).save(jpeg, quality=80)
        shutil.copyfile(jpeg, folder / f"keyimg_{sid}.jpg")
        meta = {
            "title": f"{SPECIES[n % len(SPECIES)]} tomogram {n}",
            "speciesName": SPECIES[n % len(SPECIES)],
            "date": f"{2010 + n % 10}-{1 + n % 12:02d}-{1 + n % 28:02d}",
            "microscopist": PEOPLE[n % len(PEOPLE)],
            "institution": "Caltech",
            "lab": "Jensen Lab",
            "tiltMin": -60,
            "tiltMax": 60,
            "tiltStep": 1 + n % 3,
            "defocus": -6.0,
            "magnification": 22500,
        }
        text = "".join(f"{k} = {json.dumps(v)}\n" for k, v in meta.items())
        (folder / "dataset.toml").write_text(text)
        if n % 1000 == 999:
            print(f"  made {n + 1}/{count} datasets", file=sys.stderr)
    done.touch()
    return lab


# -- timing ---------------------------------------------------------------------------------


class Timers:
    """Seconds and calls per bucket, collected by wrapping callables in place."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.on = False

    def wrap(self, owner: Any, name: str, bucket: str, *, keep: Callable[..., None] | None = None):
        inner = getattr(owner, name)

        @functools.wraps(inner)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if not self.on:
                return inner(*args, **kwargs)
            t0 = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[bucket] += time.perf_counter() - t0
                self.calls[bucket] += 1
                if keep is not None:
                    keep(*args, **kwargs)

        setattr(owner, name, timed)


SIGN_CALLS = ("sign_artifact", "encode_publish", "verify_publish")


def _pipeline_modules() -> list[Any]:
    import contextlib
    import importlib

    found = []
    for name in ("etdb.publish.pipeline", "etdb.publish.planner"):
        with contextlib.suppress(ModuleNotFoundError):
            found.append(importlib.import_module(name))
    return found


def run_once(lab: Path, workdir: Path, count: int) -> dict[str, Any]:
    from etdb.content.blockstore import FSBlockstore
    from etdb.ledger.local import LocalLedger
    from etdb.publish import pipeline
    from etdb.publish.journal import Journal
    from etdb.publish.sources import open_source
    from etdb.record import PrivateKey

    key = PrivateKey(bytes.fromhex(KEY_HEX))
    timers = Timers()
    texts: list[str] = []
    ledger = LocalLedger(workdir / "ledger.sqlite3")
    blockstore = FSBlockstore(workdir / "blocks")
    journal = Journal.open(
        workdir / "publish" / "journal.sqlite3", ledger_url=ledger.url, publisher=key.address
    )
    timers.wrap(ledger, "publish", "ledger", keep=lambda text, *a, **k: texts.append(text))
    timers.wrap(blockstore, "sync", "add")
    for name in ("begin", "will_send", "sent", "finish"):
        timers.wrap(journal, name, "journal")
    # The pipeline's modules import these by name: wrap them where they are looked up.
    wrapped = [
        (module, name)
        for module in _pipeline_modules()
        for name in (*SIGN_CALLS, "add_listed")
        if hasattr(module, name)
    ]
    for module, name in wrapped:
        timers.wrap(module, name, "add" if name == "add_listed" else "sign")
    source = open_source(str(lab))
    try:
        t0 = time.perf_counter()
        listed = sum(1 for _ in source.datasets())
        read = time.perf_counter() - t0
        config = pipeline.PublishConfig(
            key=key,
            ledger=ledger,
            blockstore=blockstore,
            profile="kubo-v1",
            journal=journal,
            media_dir=workdir / "publish" / "media",
            make_media=False,
        )
        publisher = pipeline.Publisher(source, config)
        t0 = time.perf_counter()
        plan = publisher.plan()
        planned = time.perf_counter() - t0
        print(f"  plan: {planned:.1f} s, {len(plan.actionable)} to publish", file=sys.stderr)
        timers.on = True
        t0 = time.perf_counter()
        summary = publisher.run(plan)
        ran = time.perf_counter() - t0
        timers.on = False
    finally:
        for module, name in wrapped:
            setattr(module, name, getattr(module, name).__wrapped__)
        source.close()
        journal.close()
        blockstore.close()
        ledger.close()
    if summary.failed or summary.counts[pipeline.Action.NEW] != count or listed != count:
        raise RuntimeError(f"expected {count} new records: {summary.to_json()}")
    return {
        "datasets": count,
        "source_read": read,
        "plan": planned,
        "run": ran,
        "total": planned + ran,
        "split": dict(timers.seconds),
        "transactions": summary.transactions,
        "payload_bytes": plan.payload_bytes,
        "bytes_added": summary.bytes_added,
        "texts": texts,
    }


def flo_cost(texts: list[str], rate: Decimal) -> dict[str, Any]:
    """The same record texts as FLO floData: parts, bytes and fee at ``rate`` FLO/kvB."""
    from etdb.ledger import open_ledger
    from etdb.ledger.base import payload_size
    from etdb.ledger.messages import plan
    from etdb.record import PrivateKey

    key = PrivateKey(bytes.fromhex(KEY_HEX))
    flo = open_ledger(f"flo+http://estimate:only@127.0.0.1:9/?fee_rate={rate}")
    try:
        parts = [plan(flo, text, key) for text in texts]
        transactions = sum(len(p) for p in parts)
        payload = sum(payload_size(t) for p in parts for t in p)
        fee = flo.estimate_fee(payload, transactions)
    finally:
        flo.close()
    return {"transactions": transactions, "payload_bytes": payload, "fee": fee.total,
            "basis": fee.basis}  # fmt: skip


# -- report ---------------------------------------------------------------------------------


def render(args: argparse.Namespace, r: dict[str, Any], flo: dict[str, Any], load: str) -> str:
    m = machine()
    n = r["datasets"]
    split = r["split"]
    named = sum(split.values())
    rows = [
        ("source read (FolderSource: list folders, parse dataset.toml)", r["source_read"]),
        ("plan (source, journal, stat fingerprints, records sized)", r["plan"]),
        ("run: add (import to the blockstore + sync)", split.get("add", 0.0)),
        ("run: sign (sign, encode, verify)", split.get("sign", 0.0)),
        ("run: journal (begin, intents, txids, finish; synchronous=FULL)", split.get("journal", 0.0)),
        ("run: ledger (`publish`, one block each)", split.get("ledger", 0.0)),
        ("run: other (describe files, fingerprints, build records)", r["run"] - named),
        ("**total (plan + run)**", r["total"]),
    ]  # fmt: skip
    per_record = flo["fee"] / n if n else Decimal(0)
    paper = per_record * PAPER_RECORDS
    lines = [
        START,
        "## Publishing (bench/publish.py)",
        "",
        f"Command: `.venv/bin/python bench/publish.py {args.command_line}`",
        "",
        f"Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC. Machine: {m['cpu']}, {m['cores']} "
        + f"cores, {m['ram']} RAM, {m['os']}; Python {m['python']}; {load}.",
        "",
        f"{n:,} synthetic datasets (a 5 KB MRC and a small JPEG each, {r['bytes_added'] / 1e6:.1f}"
        + " MB added in all) published from a folder source by `Publisher.plan()` + `run()` on "
        + "the embedded defaults: FSBlockstore, journal, `local://` ledger; media generation off. "
        + f"Target: under {TARGET_SECONDS / 60:.0f} minutes.",
        "",
        "| phase | seconds | share |",
        "|---|---|---|",
    ]
    for label, seconds in rows:
        share = "" if label.startswith("source read") else f"{100 * seconds / r['total']:.0f}%"
        lines.append(f"| {label} | {seconds:,.1f} | {share} |")
    lines += [
        "",
        f"Rate: {n / r['total']:,.0f} datasets/s ({n / r['run']:,.0f}/s in `run()`). "
        + f"Ledger: {r['transactions']:,} transactions, {r['payload_bytes']:,} bytes of payload "
        + f"({r['payload_bytes'] / n:,.0f} B per record). Source read is part of the plan.",
        "",
        f"The same {n:,} record texts as FLO floData: {flo['transactions']:,} transactions "
        + f"({flo['transactions'] / n:.2f} per record, 1040-byte `oip-mp` parts), "
        + f"{flo['payload_bytes']:,} bytes; fee {flo['fee']:.4f} FLO at {args.fee_rate} FLO/kvB "
        + "(an assumed rate, as in `bench/ledger.py`), "
        + f"i.e. {per_record:.8f} FLO per record, {paper:.4f} FLO for "
        + f"the paper's {PAPER_RECORDS:,} records, against the paper's US${PAPER_USD} "
        + "(FLO has no assumed price: multiply by one).",
        END,
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--datasets", type=int, default=PAPER_RECORDS)
    ap.add_argument(
        "--fee-rate",
        type=Decimal,
        default=DEFAULT_FEE_RATES["FLO"],
        help="FLO per 1000 virtual bytes (an assumption; default as bench/ledger.py)",
    )
    ap.add_argument(
        "--write", type=Path, help="update this Markdown file's bench/publish.py section"
    )
    args = ap.parse_args(argv)
    if args.datasets < 1:
        ap.error("--datasets must be at least 1")
    args.command_line = " ".join(sys.argv[1:] if argv is None else argv)
    print(f"making {args.datasets} datasets (cached in {CACHE})...", file=sys.stderr)
    lab = make_lab(CACHE, args.datasets)
    load_before = loadavg()
    with tempfile.TemporaryDirectory(prefix="etdb-bench-publish-") as tmp:
        print("publishing...", file=sys.stderr)
        result = run_once(lab, Path(tmp), args.datasets)
    flo = flo_cost(result.pop("texts"), args.fee_rate)
    report = render(args, result, flo, f"load average before/after: {load_before} / {loadavg()}")
    print(report)
    if args.write:
        write_section(args.write, report, START, END)
    return 0


if __name__ == "__main__":
    sys.exit(main())
