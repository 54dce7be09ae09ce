"""PostgreSQL's full-text candidates (fts.PgText): planner settings are the query's own."""

from __future__ import annotations

from etdb.index.catalog import open_catalog
from etdb.index.fts import PgText, parse_text

from .records import make_artifact, published, txid


def test_candidate_settings_are_restored(pg_schema_url: str) -> None:
    cat = open_catalog(pg_schema_url)
    try:
        with cat.transaction():
            for i in range(3):
                art = make_artifact(title=f"vibrio pole {i}")
                cat.add_record(published(art, id=txid(f"pg{i}"), height=10 + i))
        settings = "SELECT current_setting('jit'), current_setting('enable_seqscan')"
        with cat.engine.connect() as conn, conn.begin():
            conn.exec_driver_sql("SET LOCAL jit = on")  # whatever the server's default
            before = conn.exec_driver_sql(settings).one()
            tq = parse_text("vibrio pol")
            assert tq is not None
            for scored in (False, True):
                seqs, scores = PgText().candidates(conn, tq, scored)
                assert len(seqs) == 3 and (scores is not None) == scored
                assert conn.exec_driver_sql(settings).one() == before == ("on", "on")
    finally:
        cat.close()
