"""The index: ledger -> validated records -> catalog, and the catalog's query interface.

``query.py`` is the read side every consumer speaks (API, portal, CLI, client); ``store.py`` the
write side the indexer uses; ``catalog.py`` implements both on SQLite (FTS5) and PostgreSQL.
"""
