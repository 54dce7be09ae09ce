"""Benchmark the catalog store: bulk load through the store API, size on disk, search latency.

    .venv/bin/python bench/catalog.py                                  # 1,000,000 records, SQLite + PostgreSQL
    .venv/bin/python bench/catalog.py --records 11293,100000 --backends sqlite
    .venv/bin/python bench/catalog.py --write docs/benchmarks.md       # ...and update that section

Per backend and size, on a fresh catalog: ``--records`` synthetic Research-Tomogram records
(realistic shapes: Zipf-distributed species, labs and microscopists, 2-10 files each, notes
from a 3,000-word vocabulary; ~2.5 KB of JSON like the real rr2014-01-14-5) are added with
``add_record`` in per-block transactions of ``--block`` records, with the cursor written per
block as the indexer does. Then a fixed, seeded query mix runs ``--queries`` times per kind
(after a warm-up) and p50/p95 latencies are reported:

* text + 2 filters + facets: ``q`` (a genus, a "Genus spec" prefix, a notes phrase or a
  microscopist), two of (5-year date range, tilt axis, file type, publisher, microscope), all
  eleven facets, first page of 50;
* facets, no filter: the unfiltered browse page with all facets;
* facets + species: one species filter (Zipf-drawn), all facets;
* relevance: ``q`` sorted by relevance, no facets;
* deep page: sort by date, the page after a keyset token 20 pages in;
* id prefix: ``get()`` by an 8-hex-digit txid prefix.

The memory index keeps text matches per catalog version (``etdb.index.textcache``,
``--text-cache-mb``, 0 = off). The texts are Zipf-drawn, so they repeat within the mix, as
popular words do in real use: each kind with a text is timed as served (the cache emptied
after the warm-up, then filled by ``--history`` untimed earlier searches with texts from the
same distribution, another seed: the traffic a running server has seen; the timed queries'
cache hits are reported), then again "cold", the cache emptied before every query, so every
text is new to it. "same text, next click" times the search after one of the text queries:
its text, other filters, a sort (a quarter by relevance, which needs scores: a miss).

PostgreSQL: ``--pg-url`` (default ``$ETDB_TEST_POSTGRES`` or postgresql://postgres@127.0.0.1/test);
the catalog lives in a fresh schema, dropped afterwards unless ``--keep``.

``--reuse`` times the query mix against a catalog kept by an earlier ``--keep`` run (a
PostgreSQL schema name, or a SQLite file) without loading anything: for iterating on queries.
The catalog is opened as usual, so a schema migration runs first (and is timed)::

    .venv/bin/python bench/catalog.py --records 1000000 --backends postgresql --keep --queries 20
    .venv/bin/python bench/catalog.py --backends postgresql --reuse etdb_bench_0123456789
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

from report import write_section  # bench/report.py (the script folder is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from add import loadavg, machine  # noqa: E402 - bench/add.py: same machine description
from etdb.index.catalog import SqlCatalog, open_catalog  # noqa: E402
from etdb.index.query import FACETS, Range, SearchQuery  # noqa: E402
from etdb.index.store import Position, PublishedRecord  # noqa: E402

START = "<!-- bench/catalog.py:start -->"
END = "<!-- bench/catalog.py:end -->"
PAPER_RECORDS = 11_293

# -- synthetic records ------------------------------------------------------------------------

GENERA = (  # noqa: SIM905 - a word list
    "Vibrio Escherichia Caulobacter Sulfolobus Bdellovibrio Treponema Borrelia Helicobacter "
    "Campylobacter Myxococcus Thermoplasma Methanospirillum Mycoplasma Spiroplasma Salmonella "
    "Shigella Legionella Pseudomonas Bacillus Clostridium Listeria Chlamydomonas Trypanosoma "
    "Plasmodium Toxoplasma Saccharomyces Dictyostelium Hylemonella Magnetospirillum Acetonema "
    "Ignicoccus Haloquadratum Prosthecobacter Leptospira Agrobacterium Rhodobacter Synechococcus "
    "Prochlorococcus Thiomicrospira Halothiobacillus Desulfovibrio Shewanella Geobacter "
    "Azospirillum Serratia Proteus Yersinia Neisseria Streptococcus Staphylococcus"
).split()
EPITHETS = (  # noqa: SIM905 - a word list
    "cholerae coli crescentus solfataricus bacteriovorus pallidum burgdorferi pylori jejuni "
    "xanthus acidophilum hungatei pneumoniae melliferum enterica flexneri pneumophila aeruginosa "
    "subtilis difficile monocytogenes reinhardtii brucei falciparum gondii cerevisiae discoideum "
    "marina magneticum kivui hospitalis walsbyi dejongeii interrogans tumefaciens sphaeroides "
    "elongatus marinus crunogena neapolitanus vulgaris oneidensis sulfurreducens brasilense "
    "marcescens mirabilis pestis meningitidis pyogenes aureus"
).split()
DOMAIN = (  # noqa: SIM905 - a word list
    "flagellar motor chemoreceptor array ribosome membrane vesicle outer inner periplasm "
    "peptidoglycan cell wall division septum FtsZ MreB cytoskeleton filament bundle polar "
    "pole stalk holdfast pilus type IV secretion system injectisome magnetosome carboxysome "
    "storage granule polyphosphate nucleoid chromosome phage infection virus capsid tail "
    "sheath spore forespore sporulation minicell swarmer biofilm lysis plasmolysis cryo FIB "
    "lamella milled vitrified frozen hydrated tilt series defocus dose fiducial gold "
    "subtomogram average alignment reconstruction SIRT WBP denoised segmentation"
).split()
FIRST = (  # noqa: SIM905 - a word list
    "Ariane Grant Elitza Rasika Davi Poorna Mohammed Gavin Jian Zhuo Catherine Lu Megan "
    "Debnath Yi-Wei Sahand Georges Joseph Morgan Cristina Martin Alasdair Elizabeth Qing "
    "Ramya Hoang Prabha William Jane Kazuhiro Simon Wolfgang Julia Ana Ines Tom Lea Omar"
).split()
LAST = (  # noqa: SIM905 - a word list
    "Briegel Jensen Tocheva Ramdasi Ortega Subramanian Kaplan Murphy Shi Chen Oikonomou "
    "Beeby Ghosal Chang Pirbadian Chreifi Morgan Iancu Dobro Pilhofer Li Yao Nguyen Dalia "
    "Wright Rosenberg Nakamura Baumeister Lucic Medalia Stahlberg Mahamid Plitzko Zhang Muller"
).split()
SCOPES = (
    "Caltech Polara",
    "Titan Krios G3",
    "Titan Krios G4",
    "Tecnai F30",
    "Talos Arctica",
    "Glacios",
    "JEOL CRYO ARM 300",
    "Tecnai G2 Polara",
)
INSTITUTIONS = (
    "Caltech",
    "Max Planck Institute of Biochemistry",
    "University of Basel",
    "EMBL Heidelberg",
    "MRC LMB",
    "Stanford University",
    "Yale University",
    "University of Ulm",
    "Janelia Research Campus",
    "Imperial College London",
)
PUBLISHERS = (
    "FTSTq8xx8yWUKJA5E3bgXLzZqqG9V6dvnr",
    "FPkvwEHjddvva2smpYwQ4trgudwFcrXJ1X",
    "F7aQr3GUdnGzMyi6aTRq7ik5hQvNkM7dss",
    "FHQvhgDut1rn1nvQRZ3z9QgMEVMavRo2Tu",
)


def zipf_weights(n: int, s: float = 1.1) -> list[float]:
    return [1 / (k**s) for k in range(1, n + 1)]


class Synth:
    """A deterministic synthetic population (seeded): species, people, vocabulary."""

    def __init__(self, seed: int = 1) -> None:
        rng = self.rng = random.Random(seed)
        pairs = [(g, e) for g in GENERA for e in EPITHETS]
        rng.shuffle(pairs)
        self.species = [f"{g} {e}" for g, e in pairs[:300]]
        self.species_w = zipf_weights(len(self.species))
        self.taxid = {s: 1000 + i * 7 for i, s in enumerate(self.species)}
        self.strains = {
            s: [
                f"{rng.choice('ABCDKMNOPRW')}{rng.randint(1, 999)}"
                for _ in range(rng.randint(1, 8))
            ]
            for s in self.species
        }
        self.labs = [f"{name} Lab" for name in rng.sample(LAST, 30)]
        self.lab_inst = {lab: rng.choice(INSTITUTIONS) for lab in self.labs}
        self.people = [
            (f"{rng.choice(FIRST)} {rng.choice(LAST)}", rng.choice(self.labs)) for _ in range(600)
        ]
        self.people_w = zipf_weights(len(self.people), 0.9)
        syllables = [c + v for c in "bcdfghklmnprstvz" for v in "aeiou"]
        filler = {"".join(rng.choices(syllables, k=rng.randint(2, 4))) for _ in range(3000)}
        self.vocab = DOMAIN + sorted(filler)
        self.vocab_w = zipf_weights(len(self.vocab), 1.0)

    def artifact(self, i: int) -> dict[str, Any]:
        rng = self.rng
        species = rng.choices(self.species, self.species_w)[0]
        strain = rng.choice(self.strains[species])
        person, lab = rng.choices(self.people, self.people_w)[0]
        year = min(2024, 2003 + int(rng.triangular(0, 22, 14)))
        date = int(dt.datetime(year, 1, 1, tzinfo=dt.UTC).timestamp()) + rng.randrange(365 * 86400)
        published = min(date + rng.randrange(8 * 365 * 86400), 1_735_000_000)
        initials = "".join(p[0] for p in person.split()).lower()
        sid = f"{initials}{dt.datetime.fromtimestamp(date, dt.UTC):%Y-%m-%d}-{i % 10}"
        tilt = rng.choice((60, 60, 65, 70, 55, 50))
        notes = " ".join(rng.choices(self.vocab, self.vocab_w, k=rng.randint(10, 60)))
        genus, epithet = species.split()
        title = f"{genus[0]}. {epithet} {strain} {' '.join(rng.choices(DOMAIN, k=2))}"
        return {
            "subtype": "tomogram",
            "details": {
                "date": date,
                "strain": strain,
                "tiltMax": tilt,
                "dosage": rng.choice((60, 80, 100, 120, 150, 180, 200)),
                "magnification": rng.choice((18000, 22500, 27500, 34000)),
                "tiltStep": rng.choice((1, 1, 2, 2, 3, 1.5)),
                "scopeName": rng.choice(SCOPES),
                "NCBItaxID": self.taxid[species],
                "lab": lab,
                "tiltConstant": 1,
                "defocus": -rng.choice((4, 6, 8, 10, 12, 15)),
                "tiltSingleDual": 1 if rng.random() < 0.8 else 2,
                "sid": sid,
                "institution": self.lab_inst[lab],
                "tiltMin": -tilt,
                "speciesName": species,
                "microscopist": person,
                "artNotes": f"Tilt series notes: {notes}\n",
            },
            "storage": {"files": self.files(sid), "location": _cid(i), "network": "ipfs"},
            "type": "research",
            "floAddress": rng.choices(PUBLISHERS, (20, 3, 2, 1))[0],
            "info": {
                "description": "Auto imported from etdb",
                "title": title,
                "tags": "etdb,jensen.lab,tomogram,electron.tomography",
            },
            "timestamp": published,
            "signature": base64.b64encode(hashlib.sha512(b"sig%d" % i).digest()[:65]).decode(),
        }

    def files(self, sid: str) -> list[dict[str, Any]]:
        """Like rr2014-01-14-5's ten files: subtypes with their real frequencies and names."""
        rng, out = self.rng, []
        kinds = (
            ("tiltSeries", 0.95, 1, "rawdata/{}.mrc"),
            ("reconstruction", 0.85, 1, "3dimage_{n}/{}_full.rec"),
            ("keyimg", 0.9, 1, "keyimg_{}.jpg"),
            ("thumbnail", 0.8, 1, "keyimg_{}_s.jpg"),
            ("keymov", 0.6, 2, "keymov_{}.{ext}"),
            ("snapshot", 0.5, 4, "AutoCaps/{}_slicer{n}.jpg"),
        )
        for subtype, p, most, pattern in kinds:
            if rng.random() >= p:
                continue
            for k in range(rng.randint(1, most)):
                fname = pattern.format(sid, n=rng.randrange(100000), ext=("mp4", "flv")[k % 2])
                entry = {
                    "fname": fname,
                    "fsize": rng.randrange(10**4, 4 * 10**9),
                    "subtype": subtype,
                    "dname": fname.rsplit("/", 1)[-1],
                    "type": "tomogram",
                }
                if subtype == "snapshot" and rng.random() < 0.5:
                    entry["fNotes"] = " ".join(rng.choices(DOMAIN, k=2))
                out.append(entry)
        return out


def _cid(i: int) -> str:
    return "Qm" + base64.b32encode(hashlib.sha256(b"cid%d" % i).digest()).decode()[:44]


def record_id(i: int) -> str:
    return hashlib.sha256(b"etdb-bench-%d" % i).hexdigest()


# -- backends ---------------------------------------------------------------------------------


@contextmanager
def sqlite_catalog(
    tmp: Path, n: int, args: argparse.Namespace
) -> Iterator[tuple[SqlCatalog, Callable[[], int]]]:
    path = Path(args.reuse) if args.reuse else tmp / f"catalog-{n}.sqlite3"
    cat = open_catalog(f"sqlite:///{path}", text_cache_bytes=text_cache_bytes(args))

    def size() -> int:
        with cat.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return sum(p.stat().st_size for p in tmp.glob(f"{path.name}*"))

    try:
        yield cat, size
    finally:
        cat.close()
        if not args.keep and not args.reuse:
            for p in tmp.glob(f"{path.name}*"):
                p.unlink()


@contextmanager
def pg_catalog(
    tmp: Path, n: int, args: argparse.Namespace
) -> Iterator[tuple[SqlCatalog, Callable[[], int]]]:
    import psycopg

    base = args.pg_url.replace("postgresql+psycopg://", "postgresql://")
    schema = args.reuse or f"etdb_bench_{uuid.uuid4().hex[:10]}"
    if not args.reuse:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in base else "?"
    cat = open_catalog(
        f"{base}{sep}options={quote(f'-csearch_path={schema}')}",
        text_cache_bytes=text_cache_bytes(args),
    )

    def size() -> int:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")  # visibility map and statistics, as autovacuum would
            row = conn.execute(
                "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relkind = 'r'",
                (schema,),
            ).fetchone()
        return int(row[0] or 0)

    try:
        yield cat, size
    finally:
        cat.close()
        if not args.keep and not args.reuse:
            with psycopg.connect(base, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        else:
            print(f"kept: PostgreSQL schema {schema}", file=sys.stderr)


BACKENDS = {"sqlite": sqlite_catalog, "postgresql": pg_catalog}


def text_cache_bytes(args: argparse.Namespace) -> int:
    return int(args.text_cache_mb * 2**20)


# -- measuring --------------------------------------------------------------------------------


def load(cat: SqlCatalog, synth: Synth, n: int, block: int) -> dict[str, float]:
    store = gen = 0.0
    for start in range(0, n, block):
        t0 = time.perf_counter()
        batch = []
        for i in range(start, min(n, start + block)):
            art = synth.artifact(i)
            height = start // block
            batch.append(
                PublishedRecord(
                    record_id(i),
                    (record_id(i),),
                    art["floAddress"],
                    art,
                    art["signature"],
                    True,
                    Position(height, i - start, f"{height:064x}", 1_500_000_000 + height),
                )
            )
        t1 = time.perf_counter()
        with cat.transaction():
            for rec in batch:
                cat.add_record(rec)
            cat.set_meta("cursor", f'{{"height": {start // block}}}')
        store += time.perf_counter() - t1
        gen += t1 - t0
        if start // block % 100 == 0:
            print(f"  {start + len(batch):,} records, {store:.0f} s in the store", file=sys.stderr)
    return {"store": store, "generate": gen}


def draw_text(rng: random.Random, synth: Synth) -> str:
    """A search text: a genus, a "Genus spec" prefix, two domain words or a surname."""
    species = rng.choices(synth.species, synth.species_w)[0]
    genus, epithet = species.split()
    kind = rng.randrange(4)
    if kind == 0:
        return genus.lower()
    if kind == 1:
        return f"{genus} {epithet[: rng.randint(3, 5)]}"
    if kind == 2:
        return " ".join(rng.sample(DOMAIN, 2))
    return rng.choices(synth.people, synth.people_w)[0][0].split()[1]


def history(synth: Synth, count: int, seed: int = 8) -> list[Callable[[SqlCatalog], Any]]:
    """The searches a server saw before the timed ones: texts from the same distribution
    (another seed), default sort, so the text cache holds what this traffic would leave."""
    rng = random.Random(seed)
    texts = [draw_text(rng, synth) for _ in range(count)]
    return [partial(SqlCatalog.search, query=SearchQuery(q=t, tilt_axis=1, limit=1)) for t in texts]


def query_mix(
    synth: Synth, n: int, count: int, seed: int = 7
) -> dict[str, list[Callable[[SqlCatalog], Any]]]:
    rng = random.Random(seed)
    years = [
        Range(
            dt.datetime(y, 1, 1, tzinfo=dt.UTC).timestamp(),
            dt.datetime(y + 5, 1, 1, tzinfo=dt.UTC).timestamp() - 1,
        )
        for y in range(2003, 2021)
    ]

    def text() -> str:
        return draw_text(rng, synth)

    def two_filters() -> dict[str, Any]:
        options: list[dict[str, Any]] = [
            {"date": rng.choice(years)},
            {"tilt_axis": rng.choice((1, 2))},
            {"file_type": (rng.choice(("keymov", "reconstruction", "snapshot")),)},
            {"publisher": (PUBLISHERS[rng.randrange(2)],)},
            {"scope": (rng.choice(SCOPES),)},
        ]
        a, b = rng.sample(options, 2)
        return {**a, **b}

    def q_of(query: SearchQuery) -> Callable[[SqlCatalog], Any]:
        return lambda cat: cat.search(query)

    typed = [SearchQuery(q=text(), facets=tuple(FACETS), **two_filters()) for _ in range(count)]
    mix: dict[str, list[Callable[[SqlCatalog], Any]]] = {
        "text + 2 filters + facets": [q_of(q) for q in typed],
        "facets, no filter": [q_of(SearchQuery(facets=tuple(FACETS))) for _ in range(count)],
        "facets + species filter": [
            q_of(
                SearchQuery(
                    species=(rng.choices(synth.species, synth.species_w)[0],), facets=tuple(FACETS)
                )
            )
            for _ in range(count)
        ],
        "relevance, no facets": [
            q_of(SearchQuery(q=text(), sort="relevance")) for _ in range(count)
        ],
        "id prefix": [
            (lambda p: lambda c: c.get(p))(record_id(rng.randrange(n))[:8]) for _ in range(count)
        ],
    }
    # Drawn last, so the kinds above are the same queries as in earlier reports.
    mix[NEXT_CLICK] = [
        Then(
            q_of(q),
            q_of(SearchQuery(q=q.q, facets=tuple(FACETS), sort=rng.choice(SORTS), **two_filters())),
        )
        for q in typed
    ]
    return mix


#: The user's next click after a "text + 2 filters + facets" search: other filters, a sort.
NEXT_CLICK = "same text, next click (other filters, sort)"
SORTS = ("published", "date", "species", "relevance")


class Then:
    """A timed query run right after an untimed one (the search the user typed first)."""

    def __init__(self, first: Callable[[SqlCatalog], Any], then: Callable[[SqlCatalog], Any]):
        self.first, self.then = first, then

    def __call__(self, cat: SqlCatalog) -> Any:
        return self.then(cat)


def deep_pages(cat: SqlCatalog, count: int) -> list[Callable[[SqlCatalog], Any]]:
    """The page after 20 pages of 50 sorted by date (the token is fetched up front)."""
    token = None
    for _ in range(20):
        token = cat.search(SearchQuery(sort="date", limit=50, after=token)).next
    return [lambda c: c.search(SearchQuery(sort="date", limit=50, after=token))] * count


#: Kinds whose queries have a text ``q``: timed again with every text new to the cache.
TEXT_KINDS = ("text + 2 filters + facets", "relevance, no facets", NEXT_CLICK)
COLD = " (cold: text new to the cache)"


def measure(
    cat: SqlCatalog,
    mix: dict[str, list[Callable[[SqlCatalog], Any]]],
    warmup: int,
    earlier: Sequence[Callable[[SqlCatalog], Any]] = (),
) -> dict[str, dict[str, float]]:
    cache = cat._mem.text_cache if cat._mem is not None else None
    out = {}
    for name, queries in mix.items():
        for fn in queries[:warmup]:
            fn(cat)
        runs = [(name, False)] + ([(name + COLD, True)] if name in TEXT_KINDS else [])
        for row, cold in runs:
            if cache is not None:
                cache.clear()  # the warm-up's texts are the first timed ones: no free hits
                if not cold and name in TEXT_KINDS:
                    for fn in earlier:
                        fn(cat)
            times, totals, cached = [], [], 0
            for fn in queries:
                if isinstance(fn, Then):
                    fn.first(cat)
                if cold and cache is not None:
                    cache.clear()
                seen = cache.stats().hits if cache is not None else 0
                t0 = time.perf_counter()
                result = fn(cat)
                times.append(time.perf_counter() - t0)
                cached += cache.stats().hits - seen if cache is not None else 0
                totals.append(getattr(result, "total", 1 if result is not None else 0))
            times.sort()
            out[row] = {
                "p50": statistics.median(times) * 1000,
                "p95": times[max(0, round(0.95 * len(times)) - 1)] * 1000,
                "max": times[-1] * 1000,
                "hits": statistics.median(totals),
                "hits_max": max(totals),
                "cached": -1.0,  # not a text query, or no cache
            }
            if cache is not None and name in TEXT_KINDS:
                out[row]["cached"] = cached
            print(
                f"  {row}: p50 {out[row]['p50']:.1f} ms, p95 {out[row]['p95']:.1f} ms, "
                f"cache hits {out[row]['cached']:.0f}",
                file=sys.stderr,
            )
    return out


def bench(backend: str, n: int, tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    synth = Synth()
    print(f"{backend}, {n:,} records...", file=sys.stderr)
    t0 = time.perf_counter()
    with BACKENDS[backend](tmp, n, args) as (cat, size):
        opened = time.perf_counter() - t0  # with --reuse: includes any schema migration
        if args.reuse:
            n = cat.summary().records
            print(
                f"  reusing {args.reuse}: {n:,} records, opened in {opened:.1f} s", file=sys.stderr
            )
            times, wall = {"store": 0.0, "generate": 0.0}, 0.0
        else:
            t0 = time.perf_counter()
            times = load(cat, synth, n, args.block)
            wall = time.perf_counter() - t0
        nbytes = size()
        t0 = time.perf_counter()
        cat.search(SearchQuery(tilt_axis=2, limit=1))  # loads the memory index
        first = time.perf_counter() - t0
        mix = query_mix(synth, n, args.queries)
        mix["page 21, sort by date"] = deep_pages(cat, args.queries)
        latency = measure(cat, mix, args.warmup, history(synth, args.history))
    return {
        "backend": backend,
        "records": n,
        "load": times,
        "wall": wall,
        "opened": opened,
        "bytes": nbytes,
        "first": first,
        "mem": cat._mem.nbytes if cat._mem is not None else 0,
        "latency": latency,
    }


# -- report -----------------------------------------------------------------------------------


def render(args: argparse.Namespace, results: list[dict[str, Any]], load_note: str) -> str:
    m = machine()
    lines = [
        START,
        "## Catalog store (bench/catalog.py)",
        "",
        f"Command: `.venv/bin/python bench/catalog.py {args.command_line}`",
        "",
        f"Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC. Machine: {m['cpu']}, {m['cores']} cores, "
        f"{m['ram']} RAM, {m['os']}; Python {m['python']}; {load_note}.",
        "",
        *([args.note, ""] if args.note else []),
        "### Bulk load (store API, one transaction per block of "
        f"{args.block} records, cursor written per block)",
        "",
        "| backend | records | seconds in the store | records/s | generating (s) | size on disk | bytes/record | first filtered search (s) | memory index |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        s = r["load"]["store"]
        if not s:  # --reuse: nothing was loaded
            continue
        lines.append(
            f"| {r['backend']} | {r['records']:,} | {s:.1f} | {r['records'] / s:,.0f} | "
            f"{r['load']['generate']:.1f} | {r['bytes'] / 1e6:,.0f} MB | {r['bytes'] / r['records']:,.0f} | "
            f"{r['first']:.2f} | {r['mem'] / 1e6:,.0f} MB |"
        )
    lines += [
        "",
        f"### Search latency (ms; {args.queries} queries per kind after {args.warmup} warm-up; "
        "hits = median / max `total`; text cache hits among the timed queries, "
        f"{args.text_cache_mb:g} MB cache, as served after {args.history:,} earlier searches)",
        "",
        "| backend | records | query | p50 | p95 | max | hits | text cache hits |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for name, v in r["latency"].items():
            cached = f"{v['cached']:.0f} / {args.queries}" if v["cached"] >= 0 else "-"
            lines.append(
                f"| {r['backend']} | {r['records']:,} | {name} | {v['p50']:.1f} | {v['p95']:.1f} | "
                f"{v['max']:.1f} | {v['hits']:,.0f} / {v['hits_max']:,.0f} | {cached} |"
            )
    lines += ["", END]
    return "\n".join(lines) + "\n"


def update_doc(path: Path, section: str) -> None:
    write_section(path, section, START, END)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--records", default="1000000", help="comma-separated sizes (default 1000000)")
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--block", type=int, default=1000, help="records per transaction")
    ap.add_argument("--queries", type=int, default=200, help="queries per kind")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument(
        "--pg-url",
        default=os.environ.get("ETDB_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    ap.add_argument(
        "--tmp", type=Path, help="folder for SQLite catalogs (default: a temporary one)"
    )
    ap.add_argument(
        "--keep", action="store_true", help="keep the catalogs (SQLite file, PG schema)"
    )
    ap.add_argument(
        "--write", type=Path, help="update this Markdown file's bench/catalog.py section"
    )
    ap.add_argument(
        "--text-cache-mb",
        type=float,
        default=64,
        help="the memory index's text cache (default 64 MB; 0 = off, every query cold)",
    )
    ap.add_argument(
        "--history",
        type=int,
        default=1000,
        help="untimed earlier searches (same text distribution) before each as-served text kind",
    )
    ap.add_argument("--note", help="a paragraph for the --write section (caveats, context)")
    ap.add_argument(
        "--reuse",
        metavar="CATALOG",
        help="time the queries on a kept catalog (PostgreSQL schema or SQLite file), no load",
    )
    args = ap.parse_args(argv)
    shown = list(sys.argv[1:] if argv is None else argv)
    if "--note" in shown:  # the note is printed as itself, not inside the command
        del shown[shown.index("--note") : shown.index("--note") + 2]
    args.command_line = " ".join(shown)
    sizes = [int(s.replace("_", "")) for s in args.records.split(",")]
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if unknown := [b for b in backends if b not in BACKENDS]:
        ap.error(f"unknown backend(s) {unknown}; known: {', '.join(BACKENDS)}")
    if args.reuse and (len(backends) != 1 or args.write):
        ap.error("--reuse: give exactly one backend, and no --write (no load was timed)")
    before = loadavg()
    results = []
    tmp = Path(tempfile.mkdtemp(prefix="etdb-bench-catalog-", dir=args.tmp))
    try:
        for n in sizes:
            for backend in backends:
                results.append(bench(backend, n, tmp, args))
    finally:
        if args.keep:
            print(f"kept: {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    report = render(args, results, f"load average before/after: {before} / {loadavg()}")
    print(report)
    if args.write:
        update_doc(args.write, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
