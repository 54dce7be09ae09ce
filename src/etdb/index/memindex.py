"""A columnar, in-memory copy of what searches filter, count and sort on, per process.

Why: a filtered search with facets must look at every matching record. In SQL that is a
B-tree lookup per candidate row (~1.5 µs on SQLite) plus a GROUP BY per facet: ~7 µs per hit,
so a common word over a million records (200,000 hits) took seconds. Here the filters are
vectorised comparisons over arrays indexed by ``records.seq`` (~1 ns per record and filter),
facets are one ``bincount`` per facet over the hits, and a page is a partial sort of the hits;
SQL is left with what it is good at: the full-text match (one doclist read, handed over as one
string) and fetching the page's rows by key.

Memory: ~110 bytes per record (11 int32 codes, 7 float64 values, two uint64, flags).

Coherence: every write transaction stamps the rows it changes with its number (meta "rev",
``records.rev``); a search first reads "rev" and "epoch" (one indexed query) and loads only
rows with a newer rev. Deleting rows (rollback, clear) changes "epoch": a full reload. SQL stays
the reference: ``reads.py`` falls back to it inside write transactions, and the tests check
both paths give identical results.

Text: the full-text match stays in SQL (fts.py); its candidates are kept per catalog version in
a :class:`~etdb.index.textcache.TextCache`, so a repeated text (facet clicks, sorts, pages,
popular words) skips SQL's per-match cost.
"""

from __future__ import annotations

import threading
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa

from etdb.index import search as s
from etdb.index.fields import column_fields, range_names
from etdb.index.flatten import label
from etdb.index.fts import FullText, TextQuery
from etdb.index.query import FacetValue, SearchQuery
from etdb.index.schema import meta, records
from etdb.index.textcache import DEFAULT_MAX_BYTES, TextCache, Version

#: Categorical columns (the registry's equality filters and facets): int32 codes (-1 = NULL)
#: into a per-column dictionary of strings.
CATS = tuple(f.name for f in column_fields() if f.kind != "range")
#: Numeric columns (the registry's ranges): float64, NaN = NULL (exact for unix times and
#: taxids < 2**53).
NUMS = range_names()
#: Facets whose values are numbers (ordered as numbers among equal counts).
NUMERIC_FACETS = tuple(f.name for f in column_fields() if f.facet and f.numeric)
#: File subtypes are bits of a uint64; a catalog with more distinct subtypes uses SQL only.
MAX_SUBTYPES = 64
_SLICE = 20_000  # rows per slice when loading

_LOAD = sa.select(
    records.c.seq,
    records.c.id,
    records.c.deactivated,
    records.c.file_types,
    *(records.c[c] for c in CATS),
    *(records.c[c] for c in NUMS),
)


def id8(ident: str) -> int:
    """The id's first 8 bytes as a big-endian integer: orders like the id itself (byte order,
    as SQLite's BINARY and PostgreSQL's "C" collation), except among equal prefixes."""
    return int.from_bytes(ident.encode()[:8].ljust(8, b"\0"), "big")


class Codes:
    """Value <-> code for one categorical column (codes in order of first appearance).
    Keys are the stored values (int for taxid, tilt_axis, year); ``values`` their text."""

    def __init__(self) -> None:
        self.index: dict[Any, int] = {None: -1}
        self.values: list[str] = []

    def code(self, value: Any) -> int:
        found = self.index.get(value)
        if found is None:
            found = self.index[value] = len(self.values)
            self.values.append(str(value))
        return found

    def encode(self, column: Sequence[Any]) -> np.ndarray:
        index, code = self.index, self.code
        return np.array([index[v] if v in index else code(v) for v in column], np.int32)


@dataclass
class Found:
    """What a search needs from the index: total, facets, and the rows holding its page."""

    total: int
    facets: dict[str, list[FacetValue]]
    candidates: np.ndarray  # seqs: the page is among them (reads.py orders them exactly)
    scores: dict[int, float] | None  # seq -> relevance, when sorting by relevance


class MemoryIndex:
    def __init__(self, fts: FullText, *, text_cache_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.fts = fts
        self.text_cache = TextCache(text_cache_bytes)
        self.lock = threading.Lock()
        self.rev = -1
        self.epoch: str | None = None
        self._reset(1024)

    def _reset(self, capacity: int) -> None:
        self.size = 0
        self.present = np.zeros(capacity, bool)
        self.deactivated = np.zeros(capacity, bool)
        self.ftypes = np.zeros(capacity, np.uint64)
        self.id8 = np.zeros(capacity, np.uint64)
        self.cats = {c: np.full(capacity, -1, np.int32) for c in CATS}
        self.nums = {c: np.full(capacity, np.nan) for c in NUMS}
        self.codes = {c: Codes() for c in CATS}
        self.subtypes = Codes()
        self._masks: dict[str, int] = {}  # file_types text -> bits

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays (dictionaries of values not included)."""
        arrays = [self.present, self.deactivated, self.ftypes, self.id8]
        return sum(a.nbytes for a in [*arrays, *self.cats.values(), *self.nums.values()])

    # -- loading ------------------------------------------------------------------------

    @staticmethod
    def version(conn: sa.Connection) -> Version:
        """The catalog's committed ``(rev, epoch)`` as ``conn`` sees it (one indexed query)."""
        state = dict(
            conn.execute(
                sa.select(meta.c.key, meta.c.value).where(meta.c.key.in_(["rev", "epoch"]))
            ).all()
        )
        return int(state["rev"]), state["epoch"]

    def sync(self, conn: sa.Connection, version: Version | None = None) -> bool:
        """Catch up with committed writes (up to ``version`` if already read on ``conn``);
        False if this catalog cannot be served here."""
        rev, epoch = version if version is not None else self.version(conn)
        if epoch != self.epoch:
            self._reset(1024)
            self.rev, self.epoch = -1, epoch
        # rev < self.rev: another thread synced to a newer version first; never go back.
        if rev > self.rev:
            # In slices: a million Row objects at once would take gigabytes.
            rows = conn.execution_options(yield_per=_SLICE).execute(
                _LOAD.where(records.c.rev > self.rev)
            )
            for part in rows.partitions():
                self._apply(part)
            self.rev = rev
        return len(self.subtypes.values) <= MAX_SUBTYPES

    def _grow(self, size: int) -> None:
        if size > len(self.present):
            cap = max(size, 2 * len(self.present))

            def grown(a: np.ndarray, fill: Any) -> np.ndarray:
                out = np.full(cap, fill, a.dtype)
                out[: len(a)] = a
                return out

            self.present = grown(self.present, False)
            self.deactivated = grown(self.deactivated, False)
            self.ftypes = grown(self.ftypes, 0)
            self.id8 = grown(self.id8, 0)
            self.cats = {c: grown(a, -1) for c, a in self.cats.items()}
            self.nums = {c: grown(a, np.nan) for c, a in self.nums.items()}
        self.size = max(self.size, size)

    def _apply(self, rows: Sequence[Any]) -> None:
        if not rows:
            return
        cols = list(zip(*rows, strict=True))
        seqs = np.array(cols[0], np.int64)
        self._grow(int(seqs.max()) + 1)
        self.present[seqs] = True
        self.deactivated[seqs] = np.array(cols[2], bool)
        self.id8[seqs] = np.array([id8(i) for i in cols[1]], np.uint64)
        masks = self._masks
        self.ftypes[seqs] = np.array(
            [masks[t] if t in masks else self._mask_of(t) for t in cols[3]], np.uint64
        )
        for i, c in enumerate(CATS, start=4):
            self.cats[c][seqs] = self.codes[c].encode(cols[i])
        for i, c in enumerate(NUMS, start=4 + len(CATS)):
            self.nums[c][seqs] = np.array(cols[i], float)  # None -> NaN

    def _mask_of(self, file_types: str) -> int:
        names = file_types.split(",") if file_types else []
        mask = sum(1 << code for t in names if (code := self.subtypes.code(t)) < MAX_SUBTYPES)
        self._masks[file_types] = mask
        return mask

    # -- searching ----------------------------------------------------------------------

    def search(
        self, conn: sa.Connection, query: SearchQuery, tq: TextQuery | None, after: Any
    ) -> Found | None:
        """None when this catalog needs SQL (too many file subtypes)."""
        ranked = query.sort == "relevance"
        candidates = scores = None
        # Read before the text match: a cache entry is filed under a version no newer than
        # what it holds (textcache.py), and sync loads at least what the match saw.
        version = self.version(conn)
        if tq is not None:
            candidates, scores = self.text_cache.candidates(self.fts, conn, tq, ranked, version)
        with self.lock:
            if not self.sync(conn, version):
                return None
            hits = np.flatnonzero(self._mask(query, candidates))
            facets = {name: self._facet(name, hits) for name in dict.fromkeys(query.facets)}
            keys = None
            if ranked and candidates is not None and scores is not None:
                keys = np.full(self.size, np.nan)
                inside = candidates < self.size
                keys[candidates[inside]] = scores[inside]
            page = self._page(conn, hits, query, after, keys)
        score_of = {int(q): float(keys[q]) for q in page} if keys is not None else None
        return Found(len(hits), facets, page, score_of)

    def _mask(self, query: SearchQuery, candidates: np.ndarray | None) -> np.ndarray:
        n = self.size
        mask = self.present[:n].copy()
        if not query.include_deactivated:
            mask &= ~self.deactivated[:n]
        if candidates is not None:
            hit = np.zeros(n, bool)
            hit[candidates[candidates < n]] = True
            mask &= hit
        for f in column_fields():
            if f.kind in ("text", "exact"):
                self._any_of(mask, f.name, s.wanted(f, query))
        for name in NUMS:
            rng = getattr(query, name)
            col = self.nums[name][:n]
            if rng.lo is not None:
                mask &= col >= s.bindable(rng.lo)
            if rng.hi is not None:
                mask &= col <= s.bindable(rng.hi)
        if query.file_type:
            want = 0
            for subtype in {label(v) or "" for v in query.file_type}:
                code = self.subtypes.index.get(subtype)
                if code is None:
                    return np.zeros(n, bool)
                want |= 1 << code
            mask &= (self.ftypes[:n] & np.uint64(want)) == np.uint64(want)
        return mask

    def _any_of(self, mask: np.ndarray, name: str, values: list[Any] | None) -> None:
        """Keep the rows holding one of ``values`` (None: no filter; [] matches nothing)."""
        if values is None:
            return
        index = self.codes[name].index
        codes = [index[v] for v in values if v is not None and v in index]
        if not codes:
            mask[:] = False
            return
        # A few equality passes: np.isin builds a lookup table over the codes' range instead
        # (2.3 ms per filter at 300k records, against 0.3 ms per value here).
        col = self.cats[name][: self.size]
        anyof = col == codes[0]
        for code in codes[1:]:
            anyof |= col == code
        mask &= anyof

    def _facet(self, name: str, hits: np.ndarray) -> list[FacetValue]:
        if name == "file_type":
            ft = self.ftypes[hits]
            found = [
                (v, int(np.count_nonzero(ft & np.uint64(1 << i))))
                for i, v in enumerate(self.subtypes.values[:MAX_SUBTYPES])
            ]
        else:
            values = self.codes[name].values
            counts = np.bincount(self.cats[name][hits] + 1, minlength=len(values) + 1)[1:]
            found = [(values[i], int(counts[i])) for i in np.flatnonzero(counts)]
        numeric = name in NUMERIC_FACETS
        found = [(v, n) for v, n in found if n]
        found.sort(key=lambda vn: (-vn[1], int(vn[0]) if numeric else vn[0]))
        return [FacetValue(v, n) for v, n in found[: s.FACET_TOP]]

    # -- pages --------------------------------------------------------------------------

    def _keys(self, sort: str) -> tuple[np.ndarray, list[str] | None]:
        """Sort key per seq (NaN = NULL); for text sorts, the sorted values it ranks."""
        if sort in NUMS:
            return self.nums[sort][: self.size], None
        values = self.codes[sort].values
        ordered = sorted(values)
        rank = np.empty(len(values) + 1)
        rank[0] = np.nan
        rank[1:] = [bisect_left(ordered, v) for v in values]
        return rank[self.cats[sort][: self.size] + 1], ordered

    def _page(
        self,
        conn: sa.Connection,
        hits: np.ndarray,
        query: SearchQuery,
        after: Any,
        scores: np.ndarray | None,
    ) -> np.ndarray:
        """Seqs that contain the next page: the first ``limit + 1`` hits in (key, id) order,
        found on (key, id8), plus any rows tied with the last one on (key, id8). The key is
        the sort column, or ``scores`` (relevance)."""
        keys, ordered = (scores, None) if scores is not None else self._keys(query.sort)
        desc, want = query.order == "desc", query.limit + 1
        null = np.isnan(keys[hits])
        valued, nulls = hits[~null], hits[null]
        chosen: list[np.ndarray] = []
        if after is None or not after.nulls:
            if after is not None:
                valued = valued[self._after(conn, keys[valued], valued, after, ordered, desc)]
            chosen.append(self._first(keys[valued], valued, want, desc))
        if after is not None and after.nulls:
            nulls = nulls[self._after_id(conn, nulls, after.id, desc)]
        if sum(len(c) for c in chosen) < want:
            chosen.append(self._first(np.zeros(len(nulls)), nulls, want, desc))
        return np.concatenate(chosen) if chosen else hits[:0]

    def _after(
        self,
        conn: sa.Connection,
        kv: np.ndarray,
        seqs: np.ndarray,
        after: Any,
        ordered: list[str] | None,
        desc: bool,
    ) -> np.ndarray:
        """Which rows come strictly after the keyset ``after`` in this order."""
        if ordered is None:
            v = float(after.value)
            before, same = (kv > v, kv == v) if not desc else (kv < v, kv == v)
        else:  # a text key: compare ranks against where the value sorts
            lo, hi = bisect_left(ordered, after.value), bisect_right(ordered, after.value)
            before = kv >= hi if not desc else kv < lo
            same = (kv >= lo) & (kv < hi)
        ok: np.ndarray = before
        tied = np.flatnonzero(same)
        if len(tied):
            ok = ok.copy()
            ok[tied] = self._after_id(conn, seqs[tied], after.id, desc)
        return ok

    def _after_id(
        self, conn: sa.Connection, seqs: np.ndarray, after_id: str, desc: bool
    ) -> np.ndarray:
        mine, theirs = self.id8[seqs], np.uint64(id8(after_id))
        ok: np.ndarray = mine < theirs if desc else mine > theirs
        same = np.flatnonzero(mine == theirs)  # the last row itself, rarely another
        if len(same):
            ids = dict(
                conn.execute(
                    sa.select(records.c.seq, records.c.id).where(
                        records.c.seq.in_(seqs[same].tolist())
                    )
                ).all()
            )
            ok[same] = [
                (ids.get(int(q), after_id) < after_id)
                if desc
                else (ids.get(int(q), after_id) > after_id)
                for q in seqs[same]
            ]
        return ok

    def _first(self, kv: np.ndarray, seqs: np.ndarray, want: int, desc: bool) -> np.ndarray:
        if len(seqs) <= want:
            return seqs
        ids = self.id8[seqs]
        if desc:
            kv, ids = -kv, ~ids
        edge = np.partition(kv, want - 1)[want - 1]
        strict = np.flatnonzero(kv < edge)
        ties = np.flatnonzero(kv == edge)
        need = want - len(strict)
        if len(ties) > need:
            last = np.partition(ids[ties], need - 1)[need - 1]
            ties = ties[ids[ties] <= last]
        first: np.ndarray = seqs[np.concatenate([strict, ties])]
        return first
