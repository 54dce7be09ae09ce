"""The text-candidate cache (textcache.py): LRU by bytes, one catalog version per entry; and in
a catalog (both backends): repeats are served from it, results equal uncached ones, and no
entry outlives a write that changes records (add, edit, deactivate, rollback, clear), made by
this catalog or by another one on the same database (another process)."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator

import numpy as np
import pytest

from etdb.index.catalog import SqlCatalog, open_catalog
from etdb.index.query import FACETS, SearchQuery
from etdb.index.store import AppliedEdit, Deactivation, Position
from etdb.index.textcache import ENTRY_OVERHEAD, TextCache

from .records import make_artifact, published, txid

V1 = (1, "e1")


def seqs(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.int64)


# -- the cache alone ----------------------------------------------------------------------------


def test_get_returns_what_was_put_for_that_version_only() -> None:
    cache = TextCache()
    assert cache.get(("'vibrio'", False), V1) is None
    cache.put(("'vibrio'", False), V1, seqs(5), None)
    hit = cache.get(("'vibrio'", False), V1)
    assert hit is not None and hit.seqs.tolist() == [0, 1, 2, 3, 4] and hit.scores is None
    assert cache.get(("'vibrio'", True), V1) is None  # unscored cannot answer scored
    assert cache.get(("'vibrio'", False), (2, "e1")) is None  # a newer rev: dropped
    assert len(cache) == 0
    assert cache.get(("'vibrio'", False), V1) is None  # and the old version does not return
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.entries) == (1, 4, 0)


def test_any_other_epoch_drops_everything() -> None:
    cache = TextCache()
    cache.put(("a", False), (7, "e1"), seqs(3), None)
    assert cache.get(("a", False), (3, "e2")) is None  # lower rev, but rows were deleted
    assert len(cache) == 0 and cache.nbytes == 0


def test_put_under_an_older_version_is_not_kept() -> None:
    cache = TextCache()
    assert cache.get(("a", False), (5, "e1")) is None  # a reader at rev 5 moved the cache on
    late = cache.put(("a", False), (4, "e1"), seqs(3), None)  # one that raced the write
    assert late.seqs.tolist() == [0, 1, 2]  # still answers its own search...
    assert cache.get(("a", False), (4, "e1")) is None  # ...but is not filed
    assert cache.get(("a", False), (5, "e1")) is None
    assert len(cache) == 0


def test_scored_entry_answers_unscored_and_arrays_are_read_only() -> None:
    cache = TextCache()
    stored = cache.put(("a", True), V1, seqs(4), np.array([0.5, 0.25, 1.0, 2.0]))
    hit = cache.get(("a", False), V1)
    assert hit is not None and hit.scores is None and hit.seqs is stored.seqs
    scored = cache.get(("a", True), V1)
    assert scored is not None and scored.scores is not None
    assert scored.scores.tolist() == [0.5, 0.25, 1.0, 2.0]
    with pytest.raises(ValueError):
        scored.seqs[0] = 99


def test_eviction_by_bytes_least_recently_used_first() -> None:
    entry = 1000 * 8  # 1000 int64 seqs
    key_size = ENTRY_OVERHEAD + 100  # generous: the key string's own size
    cache = TextCache(4 * (entry + key_size))  # room for about 4 entries
    for word in "abcd":
        cache.put((word, False), V1, seqs(1000), None)
    assert cache.get(("a", False), V1) is not None  # a is now the most recently used
    cache.put(("e", False), V1, seqs(1000), None)
    assert len(cache) == 4 and cache.nbytes <= cache.max_bytes
    kept = {w for w in "abcde" if cache.get((w, False), V1) is not None}
    assert kept == {"a", "c", "d", "e"}  # b was the least recently used
    assert cache.stats().evictions == 1


def test_entry_over_a_quarter_of_the_bound_is_not_kept() -> None:
    cache = TextCache(40_000)
    cache.put(("small", False), V1, seqs(100), None)
    cache.put(("huge", False), V1, seqs(2000), None)  # 16,000 bytes > 10,000
    assert cache.get(("huge", False), V1) is None
    assert cache.get(("small", False), V1) is not None


def test_zero_bytes_disables_and_bad_bounds_are_refused() -> None:
    cache = TextCache(0)
    cache.put(("a", False), V1, seqs(1), None)
    assert cache.get(("a", False), V1) is None and len(cache) == 0
    for bad in (-1, 1.5, True, "64MB"):
        with pytest.raises(ValueError, match="text_cache_bytes"):
            TextCache(bad)  # type: ignore[arg-type]


def test_threads_share_one_cache_within_its_bound() -> None:
    cache = TextCache(50 * (800 + ENTRY_OVERHEAD + 100))
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for i in range(2000):
                version = (i // 500, "e")  # every thread moves through the same versions
                word = f"w{rng.randrange(80)}"
                hit = cache.get((word, False), version)
                if hit is None:
                    cache.put((word, False), version, seqs(100) + len(word), None)
                else:
                    assert hit.seqs[0] == len(word)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    stats = cache.stats()
    assert 0 < stats.nbytes <= stats.max_bytes and stats.hits > 0 and stats.evictions > 0


# -- in a catalog -------------------------------------------------------------------------------

WORD = "zebrafinch"


@pytest.fixture
def pair(catalog_url: str) -> Iterator[tuple[SqlCatalog, SqlCatalog]]:
    """A cached catalog and an uncached one (SQL alone) on the same database."""
    cached, plain = open_catalog(catalog_url), open_catalog(catalog_url, memory_index=False)
    try:
        yield cached, plain
    finally:
        cached.close()
        plain.close()


def cache_of(cat: SqlCatalog) -> TextCache:
    assert cat._mem is not None
    return cat._mem.text_cache


def record(n: int, title: str, **kw: object) -> object:
    return published(make_artifact(title=title, **kw), id=txid(f"t{n}"), height=10 + n)


def queries() -> list[SearchQuery]:
    return [
        SearchQuery(q=WORD, facets=tuple(FACETS)),
        SearchQuery(q=WORD, sort="relevance", limit=2),
        SearchQuery(q=f"{WORD} tomo", tilt_axis=1, sort="date"),
        SearchQuery(q=WORD[:5]),  # a prefix
        SearchQuery(q="sulfolobus", include_deactivated=True, facets=("species",)),
    ]


def assert_same(cached: SqlCatalog, plain: SqlCatalog) -> None:
    for q in queries():
        assert cached.search(q) == plain.search(q), q


def fill(cat: SqlCatalog, first: int, count: int, with_word: bool = True) -> None:
    with cat.transaction():
        for n in range(first, first + count):
            title = f"{WORD} tomogram {n}" if with_word and n % 2 == 0 else f"cell {n}"
            cat.add_record(record(n, title, tilt_axis=1 + n % 2))


def total(cat: SqlCatalog, q: str = WORD) -> int:
    return cat.search(SearchQuery(q=q, facets=("species",))).total


def test_repeats_are_served_from_the_cache_and_equal_sql(pair) -> None:
    cached, plain = pair
    fill(cached, 0, 20)
    assert_same(cached, plain)
    first = cache_of(cached).stats()
    assert first.entries > 0 and first.misses > 0
    assert_same(cached, plain)
    again = cache_of(cached).stats()
    assert again.misses == first.misses  # the second round was all hits
    assert again.hits >= first.hits + len(queries())


@pytest.mark.parametrize("writer", ["same", "other"])
def test_no_entry_outlives_a_write_that_changes_records(pair, writer: str) -> None:
    cached, plain = pair
    w = cached if writer == "same" else plain  # "other": as another process would write
    fill(cached, 0, 10)
    assert total(cached) == 5
    assert_same(cached, plain)

    fill(w, 10, 4)  # add: two more with the word
    assert total(cached) == 7
    assert_same(cached, plain)

    # edit: record 0 loses the word, record 1 gains it (same count, other records)
    for n, title in ((0, "plain cell"), (1, f"{WORD} now")):
        after = make_artifact(title=title, tilt_axis=1 + n % 2)
        w.apply_edit(
            AppliedEdit(txid(f"e{n}"), txid(f"t{n}"), 1, [], after, Position(90, n, "h", 1))
        )
    ids = {r.id for r in cached.search(SearchQuery(q=WORD, limit=50, sort="date")).items}
    assert txid("t0") not in ids and txid("t1") in ids and len(ids) == 7
    assert_same(cached, plain)

    w.deactivate(Deactivation(txid("d2"), txid("t2"), 1, Position(95, 0, "h", 1)))
    assert total(cached) == 6
    assert_same(cached, plain)

    # rollback: records 10-13 (heights 20-23) go; new records without the word may take
    # their seqs, so a stale entry would name rows that do not contain the word.
    w.rollback(20)
    fill(w, 30, 6, with_word=False)
    assert total(cached) == 5
    assert_same(cached, plain)

    w.clear()
    assert total(cached) == 0
    fill(w, 50, 3, with_word=False)
    assert total(cached) == 0 and total(cached, "cell") == 3
    assert_same(cached, plain)


def test_results_equal_with_the_cache_off(catalog_url: str) -> None:
    on, off = open_catalog(catalog_url), open_catalog(catalog_url, text_cache_bytes=0)
    try:
        fill(on, 0, 30)
        for _ in range(2):  # the second round from the cache
            for q in queries():
                assert on.search(q) == off.search(q), q
        assert len(cache_of(off)) == 0 and cache_of(off).stats().hits == 0
        assert cache_of(on).stats().hits > 0
    finally:
        on.close()
        off.close()


def test_threads_search_while_another_writes(pair) -> None:
    cached, plain = pair
    fill(cached, 0, 10)
    errors: list[BaseException] = []
    seen: dict[int, list[int]] = {}
    done = threading.Event()

    def read(k: int) -> None:
        try:
            while not done.is_set():
                seen.setdefault(k, []).append(total(cached))
                for q in queries():
                    cached.search(q)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    readers = [threading.Thread(target=read, args=(k,)) for k in range(3)]
    for t in readers:
        t.start()
    try:
        for block in range(6):
            fill(plain, 100 + 10 * block, 10)  # five more matches per block
    finally:
        done.set()
        for t in readers:
            t.join()
    assert not errors
    for counts in seen.values():  # only additions: a reader never sees the count go down
        assert counts == sorted(counts) and set(counts) <= {5 + 5 * b for b in range(7)}
    assert total(cached) == 35
    assert_same(cached, plain)
