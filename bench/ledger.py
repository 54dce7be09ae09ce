"""Benchmark the ledger backends: publish and scan rates, bytes and fee per record, and what
the paper's 11,293 records would cost on each, beside the paper's US$17.89.

    .venv/bin/python bench/ledger.py                               # print a Markdown report
    .venv/bin/python bench/ledger.py --write docs/benchmarks.md    # ...and update that section
    .venv/bin/python bench/ledger.py --backends local --runs 5     # only the embedded ledger
    .venv/bin/python bench/ledger.py --fee-rate LTC=0.0002 --usd-per-coin LTC=85

Per backend, on a fresh ledger: ``--records`` records of ``--record-bytes`` bytes (~1 KB, a
typical single-transaction OIP floData) are published one ``publish()`` call each, then read
back with ``follow()`` from an empty cursor (every entry checked). The embedded ledger also
publishes them as one ``publish_many()`` block, and repeats all of it ``--runs`` times (best
and median shown); node backends run once (they are slower and need setup).

Backends are a registry (``BACKENDS``): each says whether it can run here and yields a
:class:`Target` (a ledger, how to get everything published into blocks, and how to read back
bytes and fees actually paid). Node launchers live with the tests
(``tests/ledger/litecoind.py``, ``tests/ledger/evm_node.py``) and are imported lazily: a
missing engine makes its row "unavailable: <reason>", never a crash.

Fees are never fetched from the network. Fee rates and coin prices are command-line
assumptions (``--fee-rate COIN=R``, ``--usd-per-coin COIN=P``) with dated example defaults,
printed with the report.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from report import write_section  # bench/report.py (the script folder is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from add import loadavg, machine  # noqa: E402 - bench/add.py: same machine description
from etdb.ledger import BlockEvent, Cursor, Ledger, follow, open_ledger  # noqa: E402
from etdb.ledger.costs import estimate_records_cost  # noqa: E402

START = "<!-- bench/ledger.py:start -->"
END = "<!-- bench/ledger.py:end -->"

PAPER_RECORDS = 11_293
PAPER_USD = Decimal("17.89")
#: The one complete Jensen-lab record we have (rr2014-01-14-5, shared/conformance), re-encoded
#: as the floData go-etdb sent: 2,543 bytes, i.e. 3 multipart transactions on FLO.
PAPER_RECORD_BYTES = 2543

ASSUMED_ON = "2026-11-25"
#: Example fee rates (assumptions, not measurements). Units: FLO/LTC per 1000 virtual bytes,
#: gwei per gas for ETH.
DEFAULT_FEE_RATES = {"FLO": Decimal("0.001"), "LTC": Decimal("0.0001"), "ETH": Decimal("1")}
FEE_RATE_UNITS = {"FLO": "FLO/kvB", "LTC": "LTC/kvB", "ETH": "gwei/gas"}
#: Example coin prices in US$ (assumptions, not quotes). FLO has none: pass one to get US$.
DEFAULT_USD = {"LTC": Decimal(100), "ETH": Decimal(3000)}


# -- backends -------------------------------------------------------------------------------


@dataclass
class Target:
    """One ledger under test."""

    ledger: Ledger
    coin: str
    #: Get every published transaction into a block (regtest: mine; automining nodes: nothing).
    settle: Callable[[], None] = lambda: None
    #: txids -> {"ledger_bytes": mean bytes on the chain, "fee_paid": mean fee in ``coin``}.
    measure: Callable[[list[str]], dict[str, Any]] | None = None
    #: How the fee rate was set (shown in the report).
    fee_rate: str = ""
    #: Publishing is not possible (e.g. no FLO node here): only the cost is estimated.
    cost_only: bool = False


@dataclass
class Backend:
    name: str
    label: str
    available: Callable[[], str | None]
    start: Callable[[Path, argparse.Namespace], contextlib.AbstractContextManager[Target]]
    runs: int | None = None  # None: --runs; node backends: 1


BACKENDS: dict[str, Backend] = {}


def register(backend: Backend) -> None:
    BACKENDS[backend.name] = backend


@contextlib.contextmanager
def _local(tmp: Path, args: argparse.Namespace) -> Iterator[Target]:
    from etdb.ledger.local import LocalLedger

    path = Path(tempfile.mkdtemp(dir=tmp)) / "ledger.sqlite3"
    ledger = LocalLedger(path)

    def measure(txids: list[str]) -> dict[str, Any]:
        # Fold the WAL into the file so its size is what the chain really takes.
        # Per entry in the file (the publish_many() block included).
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (entries,) = conn.execute("SELECT count(*) FROM entries").fetchone()
        conn.close()
        return {"ledger_bytes": path.stat().st_size / entries, "fee_paid": Decimal(0)}

    try:
        yield Target(ledger, "none", measure=measure, fee_rate="no fees")
    finally:
        ledger.close()


register(Backend("local", "embedded (local://)", lambda: None, _local))


def _litecoind_available() -> str | None:
    try:
        from tests.ledger.litecoind import litecoind_available
    except ImportError as exc:
        return f"tests/ledger/litecoind.py cannot be imported ({exc})"
    return litecoind_available()


@contextlib.contextmanager
def _litecoind(tmp: Path, args: argparse.Namespace) -> Iterator[Target]:
    from tests.ledger.litecoind import start_litecoind

    node = start_litecoind(tmp / "litecoind")
    rate = args.fee_rates["LTC"]
    ledger = open_ledger(node.ledger_url(fee_rate=rate, timeout=60))

    def settle() -> None:
        while node.call("getmempoolinfo")["size"]:
            node.mine(1)

    def measure(txids: list[str]) -> dict[str, Any]:
        sizes = [node.call("getrawtransaction", t, True)["vsize"] for t in txids]
        fees = [-Decimal(str(node.call("gettransaction", t, wallet=True)["fee"])) for t in txids]
        return {"ledger_bytes": statistics.mean(sizes), "fee_paid": sum(fees) / len(fees)}

    try:
        yield Target(ledger, "LTC", settle, measure, f"{rate} LTC/kvB (assumed)")
    finally:
        ledger.close()
        node.close()


register(
    Backend(
        "litecoind",
        "Litecoin Core regtest (btc+http, OP_RETURN)",
        _litecoind_available,
        _litecoind,
        1,
    )
)


def _evm_available(engine: str) -> Callable[[], str | None]:
    def check() -> str | None:
        try:
            from tests.ledger.evm_node import evm_node_available
        except ImportError as exc:
            return f"tests/ledger/evm_node.py cannot be imported ({exc})"
        return evm_node_available(engine)

    return check


def _evm(engine: str):
    @contextlib.contextmanager
    def start(tmp: Path, args: argparse.Namespace) -> Iterator[Target]:
        from tests.ledger.evm_node import start_evm_node

        node = start_evm_node(tmp / engine, engine)
        gwei = args.fee_rates["ETH"]
        try:
            contract = node.deploy_registry()
            ledger = open_ledger(node.ledger_url(contract=contract, gas_price=gwei))
        except BaseException:
            node.close()
            raise

        def measure(txids: list[str]) -> dict[str, Any]:
            fees, sizes = [], []
            for t in txids:
                receipt = node.receipt(t)
                price = int(receipt.get("effectiveGasPrice") or hex(int(gwei * 10**9)), 16)
                fees.append(Decimal(int(receipt["gasUsed"], 16) * price) / Decimal(10**18))
                tx = node.rpc("eth_getTransactionByHash", "0x" + t.removeprefix("0x"))
                sizes.append(len(tx["input"]) // 2 - 1)  # calldata bytes
            return {"ledger_bytes": statistics.mean(sizes), "fee_paid": sum(fees) / len(fees)}

        try:
            yield Target(ledger, "ETH", measure=measure, fee_rate=f"{gwei} gwei/gas (assumed)")
        finally:
            ledger.close()
            node.close()

    return start


for _engine in ("ganache", "hardhat"):
    register(
        Backend(
            f"evm-{_engine}",
            f"EVM {_engine} (evm+http, registry logs)",
            _evm_available(_engine),
            _evm(_engine),
            1,
        )
    )


@contextlib.contextmanager
def _flo_estimate(tmp: Path, args: argparse.Namespace) -> Iterator[Target]:
    # No FLO node runs here (shared/reference/ledger.md); the backend prices a transaction
    # offline from its size once a fee rate is configured.
    rate = args.fee_rates["FLO"]
    ledger = open_ledger(f"flo+http://estimate:only@127.0.0.1:9/?fee_rate={rate}")
    try:
        yield Target(ledger, "FLO", fee_rate=f"{rate} FLO/kvB (assumed)", cost_only=True)
    finally:
        ledger.close()


def _flo_available() -> str | None:
    try:
        import etdb.ledger.bitcoin  # noqa: F401
    except ImportError as exc:
        return f"etdb.ledger.bitcoin cannot be imported ({exc})"
    return None


register(Backend("flo", "FLO (flo+http, estimate only)", _flo_available, _flo_estimate, 1))


# -- measuring ------------------------------------------------------------------------------


def payloads(n: int, size: int, tag: str) -> list[str]:
    """``n`` distinct ASCII floData-like payloads of exactly ``size`` bytes."""
    out = []
    for i in range(n):
        head = f'json:{{"oip042":{{"bench":"{tag}","n":{i},"pad":"'
        tail = '"}}'
        out.append(head + "x" * max(0, size - len(head) - len(tail)) + tail)
    return out


def scan(ledger: Ledger, cursor: Cursor | None = None) -> tuple[int, float, Cursor]:
    """Entries read by follow() from ``cursor``, the seconds taken, and the cursor after."""
    count, cursor = 0, cursor or Cursor()
    t0 = time.perf_counter()
    for event in follow(ledger, cursor, confirmations=1):
        assert isinstance(event, BlockEvent), f"unexpected {event}"
        count += len(event.block.entries)
        cursor = event.cursor
    return count, time.perf_counter() - t0, cursor


def run_once(target: Target, args: argparse.Namespace, tag: str) -> dict[str, Any]:
    ledger = target.ledger
    texts = payloads(args.records, args.record_bytes, tag)
    t0 = time.perf_counter()
    refs = [ledger.publish(p) for p in texts]
    result: dict[str, Any] = {"publish": time.perf_counter() - t0}
    target.settle()
    count, seconds, cursor = scan(ledger)
    if count < len(texts):
        raise RuntimeError(f"follow() found {count} entries, {len(texts)} were published")
    result |= {"scan": seconds, "scanned": count}
    many = getattr(ledger, "publish_many", None)
    if many is not None:
        batch = payloads(args.records, args.record_bytes, tag + "-many")
        t0 = time.perf_counter()
        many(batch)
        result["publish_many"] = time.perf_counter() - t0
        count, seconds, _ = scan(ledger, cursor)
        result |= {"scan_one_block": seconds, "scanned_one_block": count}
    if target.measure is not None:
        result |= target.measure([r.txid for r in refs])
    return result


def costs(target: Target, args: argparse.Namespace) -> dict[str, Any]:
    kb = estimate_records_cost(target.ledger, 1, args.record_bytes)
    paper = estimate_records_cost(target.ledger, PAPER_RECORDS, args.paper_record_bytes)
    price = args.usd.get(target.coin)
    if target.coin == "none":
        usd: Decimal | None = Decimal(0)
    else:
        usd = None if price is None else paper.fee.total * price
    return {
        "fee_1kb": kb.per_record,
        "tx_1kb": kb.transactions,
        "tx_paper": paper.transactions_per_record,
        "fee_paper": paper.fee.total,
        "usd_paper": usd,
        "basis": paper.fee.basis,
    }


def bench_backend(backend: Backend, tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    reason = backend.available()
    if reason is not None:
        return {"unavailable": reason}
    runs: list[dict[str, Any]] = []
    cost: dict[str, Any] = {}
    fee_rate, coin = "", "none"
    try:
        for i in range(backend.runs or args.runs):
            with backend.start(tmp, args) as target:
                fee_rate, coin = target.fee_rate, target.coin
                if not cost:
                    cost = costs(target, args)
                if target.cost_only:
                    break
                runs.append(run_once(target, args, f"{backend.name}-{i}"))
                print(f"  {backend.name} run {i + 1}: {_rates(runs[-1], args)}", file=sys.stderr)
    except Exception as exc:  # a node that fails mid-way: report it, go on with the others
        failed = f"{type(exc).__name__}: {exc}"
        return {"unavailable": failed, "cost": cost, "fee_rate": fee_rate, "coin": coin}
    return {"runs": runs, "cost": cost, "fee_rate": fee_rate, "coin": coin}


def _rates(r: dict[str, Any], args: argparse.Namespace) -> str:
    n = args.records
    text = f"publish {n / r['publish']:.0f}/s, scan {r['scanned'] / r['scan']:.0f}/s"
    if "publish_many" in r:
        text += f", publish_many {n / r['publish_many']:.0f}/s"
    return text


# -- report ---------------------------------------------------------------------------------


def _best_median(runs: list[dict[str, Any]], key: str, count: int | str) -> str:
    rates = [(r[count] if isinstance(count, str) else count) / r[key] for r in runs if key in r]
    if not rates:
        return "-"
    if len(rates) == 1:
        return f"{rates[0]:,.0f}"
    return f"{max(rates):,.0f} / {statistics.median(rates):,.0f}"


def _money(value: Decimal | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "none":
        return "0"
    return f"{value:.8f}".rstrip("0").rstrip(".") + f" {unit}"


def render(args: argparse.Namespace, results: dict[str, dict[str, Any]], load: str) -> str:
    m = machine()
    lines = [
        START,
        "## Ledgers (bench/ledger.py)",
        "",
        f"Command: `.venv/bin/python bench/ledger.py {args.command_line}`",
        "",
        f"Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC. Machine: {m['cpu']}, {m['cores']} "
        + f"cores, {m['ram']} RAM, {m['os']}; Python {m['python']}; {load}.",
        "",
        f"### Publish and scan: {args.records} records of {args.record_bytes} bytes",
        "",
        f"Records per second (best / median of {args.runs} runs where there are several). "
        + "`publish()`: one call, one transaction per record (for the embedded ledger, one block "
        + "and one fsync each); `publish_many()`: all records in one block; scan: `follow()` "
        + "from an empty cursor over the whole chain. Node rates exclude mining.",
        "",
        "| backend | publish() rec/s | publish_many() rec/s | scan rec/s (block per record) "
        + "| scan rec/s (one block) | payload B/rec | ledger B/rec | fee paid/rec |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, res in results.items():
        label = BACKENDS[name].label
        runs = res.get("runs") or []
        if not runs:
            continue
        last = runs[-1]
        coin = res["coin"]
        lines.append(
            f"| {label} | {_best_median(runs, 'publish', args.records)} "
            + f"| {_best_median(runs, 'publish_many', args.records)} "
            + f"| {_best_median(runs, 'scan', 'scanned')} "
            + f"| {_best_median(runs, 'scan_one_block', 'scanned_one_block')} "
            + f"| {args.record_bytes} | {last.get('ledger_bytes', 0):,.0f} "
            + f"| {_money(last.get('fee_paid'), coin)} |"
        )
    lines += [
        "",
        f"### Cost of the paper's {PAPER_RECORDS:,} records (paper: US${PAPER_USD})",
        "",
        f"Each record taken as {args.paper_record_bytes:,} bytes (the Jensen-lab record "
        + "rr2014-01-14-5 re-encoded as floData); multipart parts counted as "
        + "`etdb ledger cost` counts them (`etdb.ledger.costs`).",
        "",
        f"| backend | fee rate | tx/record | fee per {args.record_bytes} B record "
        + f"| fee for {PAPER_RECORDS:,} records | US$ (price assumed) | vs paper US${PAPER_USD} |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, res in results.items():
        label = BACKENDS[name].label
        cost = res.get("cost")
        if not cost:
            lines.append(f"| {label} | unavailable: {res.get('unavailable', '?')} | | | | | |")
            continue
        coin = res["coin"]
        usd = cost["usd_paper"]
        price = args.usd.get(coin)
        usd_text = (
            "-" if usd is None else f"{usd:,.2f}" + (f" (at {price}/{coin})" if price else "")
        )
        ratio = "-" if usd is None else "free" if usd == 0 else f"{usd / PAPER_USD:.3g}x"
        lines.append(
            f"| {label} | {res['fee_rate']} | {cost['tx_paper']} | {_money(cost['fee_1kb'], coin)} "
            + f"| {_money(cost['fee_paper'], coin)} | {usd_text} | {ratio} |"
        )
    unavailable = [
        f"* {BACKENDS[n].label}: {r['unavailable']}"
        for n, r in results.items()
        if r.get("unavailable") and r.get("cost")
    ]
    if unavailable:
        lines += ["", "Not measured (cost estimated only):", "", *unavailable]
    rates = ", ".join(f"{c} {r} {FEE_RATE_UNITS[c]}" for c, r in args.fee_rates.items())
    prices = ", ".join(f"{c} US${p}" for c, p in args.usd.items()) or "none"
    lines += [
        "",
        f"Assumptions (example values recorded {ASSUMED_ON}, not market data; override with "
        + f"`--fee-rate` / `--usd-per-coin`): fee rates {rates}; prices {prices}. The paper's "
        + f"US${PAPER_USD} was paid in FLO at the rates of its time. Node fees are the backends' "
        + 'own estimates at those rates; "fee paid" is what the regtest or dev node charged.',
        END,
    ]
    return "\n".join(lines) + "\n"


def update_doc(path: Path, section: str) -> None:
    write_section(path, section, START, END)


# -- command line ---------------------------------------------------------------------------


def _pairs(items: list[str], defaults: dict[str, Decimal], what: str) -> dict[str, Decimal]:
    out = dict(defaults)
    for item in items:
        coin, sep, value = item.partition("=")
        try:
            out[coin.strip().upper()] = Decimal(value)
        except ArithmeticError:
            sep = ""
        if not sep:
            raise SystemExit(f"{what} takes COIN=NUMBER, got {item!r}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--records", type=int, default=1000)
    ap.add_argument("--record-bytes", type=int, default=1000)
    ap.add_argument("--paper-record-bytes", type=int, default=PAPER_RECORD_BYTES)
    ap.add_argument("--runs", type=int, default=3, help="runs of the embedded ledger (best shown)")
    ap.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help=f"comma-separated, from: {', '.join(BACKENDS)} (default: all that can run here)",
    )
    ap.add_argument("--fee-rate", action="append", default=[], metavar="COIN=R")
    ap.add_argument("--usd-per-coin", action="append", default=[], metavar="COIN=P")
    ap.add_argument(
        "--write", type=Path, help="update this Markdown file's bench/ledger.py section"
    )
    args = ap.parse_args(argv)
    args.fee_rates = _pairs(args.fee_rate, DEFAULT_FEE_RATES, "--fee-rate")
    args.usd = _pairs(args.usd_per_coin, DEFAULT_USD, "--usd-per-coin")
    args.command_line = " ".join(sys.argv[1:] if argv is None else argv)
    names = [n.strip() for n in args.backends.split(",") if n.strip()]
    unknown = [n for n in names if n not in BACKENDS]
    if unknown:
        ap.error(f"unknown backend(s) {', '.join(unknown)}; known: {', '.join(BACKENDS)}")
    load_before = loadavg()
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="etdb-bench-ledger-") as tmp:
        for name in names:
            print(f"{name}...", file=sys.stderr)
            results[name] = bench_backend(BACKENDS[name], Path(tmp), args)
            if "unavailable" in results[name]:
                print(f"  unavailable: {results[name]['unavailable']}", file=sys.stderr)
    report = render(args, results, f"load average before/after: {load_before} / {loadavg()}")
    print(report)
    if args.write:
        update_doc(args.write, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
