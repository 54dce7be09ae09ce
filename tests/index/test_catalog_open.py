"""Several processes opening one new SQLite catalog at the same instant (``etdb serve`` with
``--workers`` and the indexer start together): every one must get a working catalog."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

from etdb.index.catalog import open_catalog
from etdb.index.query import SearchQuery


def _open(url: str, barrier: mp.synchronize.Barrier, out: mp.Queue) -> None:
    try:
        barrier.wait(timeout=30)
        catalog = open_catalog(url)
        try:
            out.put(("ok", catalog.search(SearchQuery()).total))
        finally:
            catalog.close()
    except Exception as exc:  # reported to the test, which fails with it
        out.put(("error", f"{type(exc).__name__}: {exc}"))


def test_simultaneous_first_opens_of_a_new_sqlite_catalog(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    for attempt in range(3):  # a few fresh files: the race is timing-dependent
        url = f"sqlite:///{tmp_path / f'catalog{attempt}.sqlite3'}"
        n = 6
        barrier, out = ctx.Barrier(n), ctx.Queue()
        procs = [ctx.Process(target=_open, args=(url, barrier, out)) for _ in range(n)]
        for p in procs:
            p.start()
        results = [out.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(timeout=30)
        assert results == [("ok", 0)] * n
