"""An in-process LRU cache of full-text candidates, valid for one catalog revision.

Why: with the memory index (memindex.py) doing filters, facets and pages over arrays, what is
left of a text search is the full-text match itself, and at a million records that cost is per
match: PostgreSQL visits a ``record_search`` heap page and aggregates a string per match of a
common word (tens of ms), FTS5 reads and formats a doclist. Users repeat texts: one query is
typed, then facets are clicked, the sort changed, pages turned, all with the same ``q``; and
popular words are popular with everyone. Keeping the parsed seq array (and the scores, for
relevance) makes the repeats cost a dictionary look-up.

Validity: an entry belongs to exactly one catalog version, ``(rev, epoch)`` from the catalog's
meta table: every write transaction that changes ``records`` raises ``rev``, and deleting rows
(rollback, clear) changes ``epoch`` (writes.py). A look-up under another version misses, and
the first look-up under a newer version drops every entry: a cached result is never served
after a write that changed records. The caller must read the version *before* computing what
it stores (on PostgreSQL each statement sees its own snapshot): then an entry is never older
than the version it is filed under.

Bounded in bytes (the arrays' ``nbytes`` plus a fixed overhead per entry), least recently
used first out; an entry larger than a quarter of the bound is not kept, so one very common
word cannot flush everything else. Thread-safe: one lock around the dictionary; two threads
that miss on the same text both compute it (no waiting on each other's queries).
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa

from etdb.index.fts import FullText, TextQuery

#: Default bound: ~30 of the commonest words at a million records (1.6 MB of seqs each).
DEFAULT_MAX_BYTES = 64 * 2**20
#: Per entry besides its arrays: the key, the dictionary slot, two ndarray headers.
ENTRY_OVERHEAD = 400

#: ``(rev, epoch)``: the catalog version an entry belongs to (memindex.py reads it).
Version = tuple[int, str | None]
#: ``(backend text expression, scored)``: the FTS5 or tsquery text, and whether scores came.
Key = tuple[str, bool]


@dataclass(frozen=True, slots=True)
class Candidates:
    """A cached ``FullText.candidates`` result: read-only arrays, shared between threads."""

    seqs: np.ndarray
    scores: np.ndarray | None

    @property
    def nbytes(self) -> int:
        return self.seqs.nbytes + (self.scores.nbytes if self.scores is not None else 0)


@dataclass(frozen=True, slots=True)
class CacheStats:
    hits: int
    misses: int
    evictions: int
    entries: int
    nbytes: int
    max_bytes: int


class TextCache:
    """``get``/``put`` text candidates for one catalog version (see the module docstring).

    ``max_bytes=0`` disables the cache: every ``get`` misses and nothing is kept."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes < 0:
            raise ValueError(f"text_cache_bytes: must be a whole number >= 0, not {max_bytes!r}")
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._entries: OrderedDict[Key, Candidates] = OrderedDict()
        self._version: Version | None = None
        self._nbytes = 0
        self._hits = self._misses = self._evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        return self._nbytes

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(
                self._hits,
                self._misses,
                self._evictions,
                len(self._entries),
                self._nbytes,
                self.max_bytes,
            )

    def get(self, key: Key, version: Version) -> Candidates | None:
        """The entry for ``key`` if it was stored under exactly ``version``.

        A scored entry also answers the unscored key (its seqs are the same matches)."""
        with self._lock:
            self._adopt(version)
            found = None
            if self._version == version:
                found = self._touch(key)
                if found is None and not key[1]:
                    found = self._touch((key[0], True))
            if found is None:
                self._misses += 1
                return None
            self._hits += 1
            return Candidates(found.seqs, None) if not key[1] else found

    def put(
        self, key: Key, version: Version, seqs: np.ndarray, scores: np.ndarray | None
    ) -> Candidates:
        """Keep ``seqs`` (and ``scores``) for ``key`` under ``version``; the arrays become
        read-only (they are shared from now on). Kept only if ``version`` is the cache's
        current one: a reader that raced a write must not file its result under it."""
        entry = Candidates(_frozen(seqs), None if scores is None else _frozen(scores))
        size = entry.nbytes + ENTRY_OVERHEAD + sys.getsizeof(key[0])
        with self._lock:
            self._adopt(version)
            if self._version != version or size > self.max_bytes // 4:
                return entry
            old = self._entries.pop(key, None)
            if old is not None:
                self._nbytes -= self._size_of(key, old)
            self._entries[key] = entry
            self._nbytes += size
            while self._nbytes > self.max_bytes:
                k, v = self._entries.popitem(last=False)
                self._nbytes -= self._size_of(k, v)
                self._evictions += 1
        return entry

    def candidates(
        self, fts: FullText, conn: sa.Connection, tq: TextQuery, scored: bool, version: Version
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``fts.candidates(conn, tq, scored)`` through the cache; ``version`` must have been
        read on ``conn`` before (see the module docstring)."""
        if tq.impossible:  # answered without SQL; its expression means nothing
            return fts.candidates(conn, tq, scored)
        key = (fts.expression(tq), scored)
        hit = self.get(key, version)
        if hit is None:
            # No ``narrow`` filters: the entry is keyed by the text alone, so it must hold
            # every match (memindex.py applies the filters to arrays anyway).
            seqs, scores = fts.candidates(conn, tq, scored)
            hit = self.put(key, version, seqs, scores)
        return hit.seqs, hit.scores

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._nbytes = 0

    # -- under the lock -----------------------------------------------------------------------

    def _adopt(self, version: Version) -> None:
        """Move to ``version`` if it is newer: another epoch (rows were deleted: no order
        between epochs, so any other one counts as newer) or a higher rev in this epoch."""
        current = self._version
        if current == version:
            return
        if current is None or version[1] != current[1] or version[0] > current[0]:
            self._entries.clear()
            self._nbytes = 0
            self._version = version

    def _touch(self, key: Key) -> Candidates | None:
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found

    @staticmethod
    def _size_of(key: Key, entry: Candidates) -> int:
        return entry.nbytes + ENTRY_OVERHEAD + sys.getsizeof(key[0])


def _frozen(a: np.ndarray) -> np.ndarray:
    if a.flags.writeable:
        a.flags.writeable = False
    return a
