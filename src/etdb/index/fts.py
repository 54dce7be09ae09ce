"""Full text, per dialect: SQLite FTS5 (contentless table) or PostgreSQL (tsvector + GIN in
the narrow side table ``record_search``, schema.py).

The user's ``q`` never reaches SQL text. :func:`parse_text` reduces it to normalised words
(``flatten.words``: letters and digits only), and each backend builds its query language from
those words alone, then binds the result as one parameter:

* FTS5: every user word becomes a double-quoted string (FTS5 docs §3.1: inside a string
  nothing is syntax; ``"`` is doubled, though words cannot contain one), so ``NEAR``, ``OR``,
  ``title:x``, ``-`` and ``*`` are just text. Strings side by side mean AND (§3.7). A word
  that splits into several (``rr2014-01-14-5``) is one string, i.e. a phrase. The last word
  gets ``*`` (a prefix token, §3.3) while the user is still typing it.
* PostgreSQL: the same shape in ``to_tsquery`` syntax, ``'w1' <-> 'w2' & 'last':*``, each
  word single-quoted. Config ``simple`` (no stemming, no stop words): species, strains, sids
  and file names are not English, and ``english`` would stem ``cholerae`` and drop ``a`` /
  ``the`` that SQLite keeps; ``simple`` plus our own normalisation gives the same matches on
  both backends.

Relevance is a score where higher is better: ``-bm25()`` on FTS5 (bm25 is "lower is
better", FTS5 docs §5.1.1), ``ts_rank`` on PostgreSQL, both weighting the title, species and
sid above notes and file names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import sqlalchemy as sa

from etdb.index.flatten import MAX_WORD, TEXT_FIELDS, Flat, all_words
from etdb.index.schema import record_search, records

MAX_Q_CHARS = 1000
MAX_Q_WORDS = 32
#: Shorter last words are matched exactly: "vi*" would merge the doclists of every word
#: starting with vi (tens of ms at 1M records for a prefix nobody means).
MIN_PREFIX = 3


@dataclass(frozen=True, slots=True)
class TextQuery:
    """Normalised ``q``: one tuple of words per user word; all must match (AND)."""

    phrases: tuple[tuple[str, ...], ...]
    prefix: bool  # the last word is a prefix
    impossible: bool = False  # a word too long to have been indexed: nothing matches


def parse_text(q: str | None) -> TextQuery | None:
    """``None`` when ``q`` has no searchable words (blank, or only punctuation)."""
    if q is None:
        return None
    if not isinstance(q, str):
        raise ValueError("q: the search text must be a string")
    if len(q) > MAX_Q_CHARS:
        raise ValueError(f"q: the search text is too long ({len(q)} > {MAX_Q_CHARS} characters)")
    impossible = False
    phrases: list[tuple[str, ...]] = []
    for chunk in q.split():
        found = tuple(all_words(chunk))
        if any(len(w) > MAX_WORD for w in found):
            impossible = True  # never indexed (flatten.words), so cannot match
        if found:
            phrases.append(found)
    if len(phrases) > MAX_Q_WORDS:
        raise ValueError(f"q: too many words ({len(phrases)} > {MAX_Q_WORDS})")
    if not phrases:
        return TextQuery((), False, True) if impossible else None
    # A trailing space means the last word is complete.
    prefix = not q[-1].isspace() and len(phrases[-1][-1]) >= MIN_PREFIX
    return TextQuery(tuple(phrases), prefix, impossible)


class FullText(Protocol):
    """What the store and the query builder need from a dialect's full-text index."""

    def index(self, conn: sa.Connection, rows: list[tuple[int, Flat]]) -> None:
        """After inserting (or updating) these records."""
        ...

    def unindex(self, conn: sa.Connection, rows: list[tuple[int, Flat]]) -> None:
        """Before deleting or updating these records; ``Flat`` is what was indexed."""
        ...

    def clear(self, conn: sa.Connection) -> None: ...

    def expression(self, tq: TextQuery) -> str:
        """The backend's query text for ``tq`` (FTS5 MATCH string, tsquery): what the match
        depends on, so also the text cache's key (textcache.py)."""
        ...

    def match(self, tq: TextQuery) -> sa.ColumnElement[bool]:
        """A predicate on ``records``."""
        ...

    def candidates(
        self, conn: sa.Connection, tq: TextQuery, scored: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``records.seq`` of every match (memindex.py applies the query's other filters to
        arrays), with ``scored`` their relevance (exactly the values ``ranked`` sorts by)."""
        ...

    def ranked(
        self, tq: TextQuery
    ) -> tuple[sa.FromClause, sa.ColumnElement[bool], sa.ColumnElement[float]]:
        """FROM (``records`` plus what the score needs), the match predicate, the score."""
        ...


# -- SQLite FTS5 ------------------------------------------------------------------------------

_fts = sa.table("records_fts", sa.column("rowid"))
_COLS = ", ".join(TEXT_FIELDS)
_MARKS = ", ".join("?" for _ in TEXT_FIELDS)
_BM25_WEIGHTS = {"title": 10.0, "species": 8.0, "sid": 8.0, "strain": 4.0, "microscopist": 3.0}


class Fts5:
    def index(self, conn: sa.Connection, rows: list[tuple[int, Flat]]) -> None:
        if rows:
            conn.exec_driver_sql(
                f"INSERT INTO records_fts(rowid, {_COLS}) VALUES (?, {_MARKS})",
                [(seq, *(f.text[c] for c in TEXT_FIELDS)) for seq, f in rows],
            )

    def unindex(self, conn: sa.Connection, rows: list[tuple[int, Flat]]) -> None:
        # A contentless table forgets a row only when given the words it indexed (FTS5 docs
        # §4.4.4 / the 'delete' command): wrong words would corrupt the index, hence
        # flatten()'s purity and the schema version bump when it changes.
        if rows:
            conn.exec_driver_sql(
                f"INSERT INTO records_fts(records_fts, rowid, {_COLS}) "
                f"VALUES ('delete', ?, {_MARKS})",
                [(seq, *(f.text[c] for c in TEXT_FIELDS)) for seq, f in rows],
            )

    def clear(self, conn: sa.Connection) -> None:
        conn.exec_driver_sql("INSERT INTO records_fts(records_fts) VALUES ('delete-all')")

    @staticmethod
    def expression(tq: TextQuery) -> str:
        strings = ['"' + " ".join(p).replace('"', '""') + '"' for p in tq.phrases]
        if tq.prefix:
            strings[-1] += "*"
        return " ".join(strings)

    def match(self, tq: TextQuery) -> sa.ColumnElement[bool]:
        if tq.impossible:
            return sa.false()
        hits = sa.select(_fts.c.rowid).where(self._match(tq))
        return records.c.seq.in_(hits)

    def _match(self, tq: TextQuery) -> sa.ColumnElement[bool]:
        return sa.literal_column("records_fts").op("MATCH")(sa.literal(self.expression(tq)))

    def candidates(
        self, conn: sa.Connection, tq: TextQuery, scored: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        # The doclist alone is cheapest (filters would cost a row lookup per match;
        # memindex.py applies them to arrays instead).
        if tq.impossible:
            return _NONE, (_NO_SCORES if scored else None)
        # One comma-joined string instead of a row per match: 0.12 vs 0.8 µs per match.
        if not scored:
            joined = sa.select(sa.func.group_concat(_fts.c.rowid)).where(self._match(tq))
            return _parse_ids(conn.execute(joined).scalar()), None
        # bm25() only works in the matching query itself: LIMIT -1 keeps SQLite from
        # flattening it into the aggregate. '%!.17g' prints a double so it reads back exact.
        _, where, score = self.ranked(tq)
        inner = (
            sa.select(_fts.c.rowid.label("seq"), score.label("score"))
            .select_from(_fts)
            .where(where)
            .limit(-1)
            .subquery()
        )
        both = sa.select(
            sa.func.group_concat(inner.c.seq),
            sa.func.group_concat(sa.func.printf("%!.17g", inner.c.score)),
        )
        ids, scores = conn.execute(both).one()
        return _parse_ids(ids), _parse_scores(scores)

    def ranked(
        self, tq: TextQuery
    ) -> tuple[sa.FromClause, sa.ColumnElement[bool], sa.ColumnElement[float]]:
        joined = records.join(_fts, _fts.c.rowid == records.c.seq)
        weights = [sa.literal(_BM25_WEIGHTS.get(c, 1.0)) for c in TEXT_FIELDS]
        score = -sa.func.bm25(sa.literal_column("records_fts"), *weights)
        where = sa.false() if tq.impossible else self._match(tq)
        return joined, where, score


# -- PostgreSQL -------------------------------------------------------------------------------

#: ts_rank weight classes (A is weighted highest by default: {D,C,B,A} = {0.1,0.2,0.4,1}).
_PG_CLASSES = {
    "A": ("title", "species", "sid"),
    "B": ("strain", "microscopist", "lab", "institution"),
    "C": ("tags", "files"),
    "D": ("notes",),
}


def _pg_vector() -> sa.ColumnElement[Any]:
    """``setweight(to_tsvector('simple', :fts_A), 'A') || ...``, one bound text per class."""
    vector: sa.ColumnElement[Any] | None = None
    for cls in _PG_CLASSES:
        part = sa.func.setweight(
            sa.func.to_tsvector(sa.literal_column("'simple'"), sa.bindparam(f"fts_{cls}")),
            sa.literal_column(f"'{cls}'"),
        )
        vector = part if vector is None else vector.op("||")(part)
    assert vector is not None  # _PG_CLASSES is not empty
    return vector


def _pg_texts(flat: Flat) -> dict[str, str]:
    return {
        f"fts_{cls}": " ".join(flat.text[f] for f in fields if flat.text[f])
        for cls, fields in _PG_CLASSES.items()
    }


#: Planner settings for the candidate query, restored when it ends (``SET LOCAL`` would last
#: to the end of the read transaction). Only seq is read, from a narrow heap (schema.py), so
#: the GIN bitmap always beats a sequential scan, which would fetch every vector from TOAST to
#: test it; the planner costs ``@@`` as one operator per row, not that read, and picks the
#: sequential scan for common words. JIT: a common word crosses ``jit_above_cost``, and
#: compiling took 60 ms at 1M records, longer than the whole query takes without it.
_PG_SETTINGS = {"enable_seqscan": "off", "jit": "off"}


class PgText:
    def index(self, conn: sa.Connection, rows: list[tuple[int, Flat]]) -> None:
        if rows:
            conn.execute(
                sa.insert(record_search).values(search=_pg_vector()),
                [{"seq": seq, **_pg_texts(flat)} for seq, flat in rows],
            )

    def unindex(self, conn: sa.Connection, rows: list[tuple[int, Flat]]) -> None:
        if rows:
            seqs = [seq for seq, _ in rows]
            conn.execute(sa.delete(record_search).where(record_search.c.seq.in_(seqs)))

    def clear(self, conn: sa.Connection) -> None:
        conn.exec_driver_sql("TRUNCATE record_search")

    @staticmethod
    def expression(tq: TextQuery) -> str:
        terms = [" <-> ".join(f"'{w}'" for w in p) for p in tq.phrases]
        if tq.prefix:
            terms[-1] += ":*"
        return " & ".join(terms)

    def _query(self, tq: TextQuery) -> sa.ColumnElement[Any]:
        return sa.func.to_tsquery(sa.literal_column("'simple'"), sa.literal(self.expression(tq)))

    def _match(self, tq: TextQuery) -> sa.ColumnElement[bool]:
        return record_search.c.search.op("@@")(self._query(tq))

    def match(self, tq: TextQuery) -> sa.ColumnElement[bool]:
        if tq.impossible:
            return sa.false()
        return records.c.seq.in_(sa.select(record_search.c.seq).where(self._match(tq)))

    def candidates(
        self, conn: sa.Connection, tq: TextQuery, scored: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        # No filters here, as on FTS5: the filters' columns are in ``records``, and joining
        # it back would cost the wide heap visit per match that record_search avoids;
        # memindex.py applies them to arrays instead (~1 ns per record and filter).
        if tq.impossible:
            return _NONE, (_NO_SCORES if scored else None)
        comma: sa.ColumnClause[Any] = sa.literal_column("','")
        seqs = sa.func.string_agg(sa.cast(record_search.c.seq, sa.Text), comma)
        # float8 text is the shortest exact form (extra_float_digits = 1, PostgreSQL 12+).
        scores = sa.func.string_agg(sa.cast(self._score(tq), sa.Text), comma)
        stmt = sa.select(seqs, scores) if scored else sa.select(seqs, sa.null())
        before = self._set(conn, _PG_SETTINGS)
        ids, values = conn.execute(stmt.where(self._match(tq))).one()
        # Not in a ``finally``: after a failed statement the transaction is aborted (its
        # rollback undoes the settings), and another statement would hide the first error.
        self._set(conn, before)
        return _parse_ids(ids), (_parse_scores(values) if scored else None)

    @staticmethod
    def _set(conn: sa.Connection, settings: dict[str, str]) -> dict[str, str]:
        """Set these until the transaction ends (``set_config(..., true)``); the old values."""
        names = list(settings)
        old = conn.execute(sa.select(*(sa.func.current_setting(n) for n in names))).one()
        conn.execute(sa.select(*(sa.func.set_config(n, settings[n], True) for n in names)))
        return dict(zip(names, old, strict=True))

    def _score(self, tq: TextQuery) -> sa.ColumnElement[float]:
        # ts_rank is a float4, which psycopg reads through its shortest decimal text: not the
        # same number once bound back as a float8 keyset value. As float8 it round-trips.
        rank = sa.func.ts_rank(record_search.c.search, self._query(tq), type_=sa.Float)
        return sa.cast(rank, sa.Double)

    def ranked(
        self, tq: TextQuery
    ) -> tuple[sa.FromClause, sa.ColumnElement[bool], sa.ColumnElement[float]]:
        joined = records.join(record_search, record_search.c.seq == records.c.seq)
        where = sa.false() if tq.impossible else self._match(tq)
        return joined, where, self._score(tq)


_NONE = np.zeros(0, np.int64)
_NO_SCORES = np.zeros(0)


# np.fromstring's text mode (sep=",", not deprecated, unlike its binary mode) parses in C:
# 12 ms for a million ids against 86 ms for split() + array().
def _parse_ids(joined: str | None) -> np.ndarray:
    return np.fromstring(joined, np.int64, sep=",") if joined else _NONE


def _parse_scores(joined: str | None) -> np.ndarray:
    return np.fromstring(joined, float, sep=",") if joined else _NO_SCORES


def for_dialect(name: str) -> FullText:
    return PgText() if name == "postgresql" else Fts5()
