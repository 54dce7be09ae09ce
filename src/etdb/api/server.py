"""``etdb serve``: the catalog, the indexer following the ledger, and the web app.

The indexer runs in a background thread with its own catalog and ledger handles (the API's
reader threads never share a connection with the writer). With one worker (the default)
uvicorn runs the app in the calling thread; with ``workers > 1`` uvicorn's supervisor runs
that many app processes on one socket (Python runs one request's code at a time per process,
so this is how the API uses several cores) while the indexer stays in the supervisor, and the
workers read its state from a small file. SIGINT/SIGTERM (or ``stop``) make uvicorn finish the
requests in flight; then the indexer is told to stop, which it does after its current commit
(a transaction is never cut), and everything is closed. A signal ends the process with status
0: it is the normal way to stop a server, not an error.

Before it binds the port, ``serve`` checks everything it will use (:func:`preflight`): the
address can be listened on, the catalog opens, the ledger opens and answers, and the catalog
was built from this ledger with these settings. Otherwise it raises :class:`StartupError`
rather than serve with an indexer that is dead from the start. The indexer thread itself
(restarts with backoff, state for /status and /health) is ``background.py``.
"""

from __future__ import annotations

import copy
import http.client
import json
import logging
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.supervisors import Multiprocess, multiprocess

from etdb.api.app import create_app
from etdb.api.background import OFF, IndexerState, IndexerThread
from etdb.config import Settings
from etdb.index.catalog import CatalogSchemaError, SqlCatalog, open_catalog
from etdb.index.identity import IndexerError, check_ledger, check_settings, settings_doc
from etdb.ledger import Ledger, LedgerError, open_ledger
from etdb.ledger.urls import redact

__all__ = ["IndexerThread", "StartupError", "preflight", "serve"]

log = logging.getLogger("etdb.serve")

POLL_INTERVAL = 2.0


class StartupError(Exception):
    """``serve`` refuses to start: a setting it would use is unusable (the message says which
    and why, naming no password)."""


class _Server(uvicorn.Server):
    """uvicorn, plus: a ``ready`` event, an external ``stop`` event, exit status 0 on signals."""

    def __init__(
        self,
        config: uvicorn.Config,
        ready: threading.Event | None,
        stop: threading.Event | None,
    ) -> None:
        super().__init__(config)
        self.ready, self.stop = ready, stop

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        if self.ready is not None and self.started:
            self.ready.set()

    async def on_tick(self, counter: int) -> bool:
        if self.stop is not None and self.stop.is_set():
            self.should_exit = True
        return await super().on_tick(counter)

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        # uvicorn re-raises the signal after a graceful shutdown (so the process dies of it);
        # for a server, SIGTERM/Ctrl-C is the normal way to stop: finish with status 0.
        self._captured_signals.clear()


def _worker_app(
    settings: Settings, catalog_url: str, ledger_url: str, state_file: str | None
) -> FastAPI:
    """The app in one worker process (workers > 1): its own catalog and ledger handles.

    uvicorn pickles this factory (a partial) into each spawned worker. The handles live as long
    as the worker process; the supervisor stops workers with SIGTERM and the OS reclaims them.
    """
    catalog = open_catalog(catalog_url)
    try:
        ledger: Ledger | None = open_ledger(ledger_url, settings.home)
    except LedgerError:
        ledger = None
    app = create_app(catalog, settings=settings, ledger=ledger)
    _preload(catalog)
    path = Path(state_file) if state_file else None

    def state() -> IndexerState:
        try:
            return IndexerState.from_json(path.read_text(encoding="utf-8")) if path else OFF
        except OSError:
            return IndexerState("unknown")

    app.state.etdb.indexer_state = state
    return app


def _preload(catalog: Any) -> None:
    """Warm the catalog's in-memory search index in the background (SqlCatalog.preload), so
    the first filtered search does not pay for it (~8 s per million records)."""
    preload = getattr(catalog, "preload", None)
    if preload is None:
        return

    def run() -> None:
        try:
            preload()
        except Exception:  # a search will load it (or fail) with a proper error then
            log.debug("catalog preload failed", exc_info=True)

    threading.Thread(target=run, name="etdb-preload", daemon=True).start()


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging, plus the ``etdb`` loggers (the indexer's warnings) on stderr."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["loggers"]["etdb"] = {"handlers": ["default"], "level": level.upper()}
    return config


def _check_listen(host: str, port: int) -> None:
    """StartupError unless ``host:port`` can be listened on (a typo'd host, a port in use)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
            probe.bind(address)
    except (OSError, ValueError) as exc:  # ValueError: a NUL or non-IDNA host name
        why = getattr(exc, "strerror", None) or exc
        raise StartupError(f"cannot listen on {host}:{port}: {why}") from None


def _check_peer_cache(settings: Settings) -> None:
    """StartupError unless the peer cache's folder (used with peers and a size) can be made and
    written to: the gateway would otherwise fail on its first read-through."""
    if not settings.peer_urls or not settings.peer_cache_bytes:
        return
    path = settings.peer_cache_path
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise StartupError(f"peer_cache {path}: {exc.strerror or exc}") from None


def _open_catalog(url: str) -> SqlCatalog:
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return open_catalog(url)  # also creates or checks the schema, before any worker
    except (ValueError, OSError, CatalogSchemaError, SQLAlchemyError) as exc:
        why = getattr(exc, "orig", None) or exc
        first = str(why).strip().splitlines()[0] if str(why).strip() else type(exc).__name__
        raise StartupError(f"catalog {redact(url)}: {first}") from None


def _check_indexable(settings: Settings, catalog: SqlCatalog, ledger: Ledger) -> None:
    """What would stop the indexer at its first step: an unreadable ledger, a catalog built
    from another ledger or with other settings."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        ledger.tip()
        check_ledger(catalog, ledger)
        doc = settings_doc(
            settings.publisher_allow_list,
            settings.multipart_expiry_seconds,
            settings.record_limits,
        )
        check_settings(catalog, doc)
    except IndexerError as exc:
        raise StartupError(str(exc)) from None
    except LedgerError as exc:
        raise StartupError(f"ledger {ledger.url} cannot be read: {exc}") from None
    except SQLAlchemyError as exc:
        raise StartupError(f"catalog: {type(exc).__name__}") from None


def preflight(
    settings: Settings, *, host: str, port: int, catalog_url: str, ledger_url: str, index: bool
) -> tuple[SqlCatalog, Ledger | None]:
    """Check every setting ``serve`` will use, before it binds the port; open the catalog
    and the ledger (None when not indexing and it cannot be opened). :class:`StartupError`
    says what is wrong."""
    _check_listen(host, port)
    _check_peer_cache(settings)
    catalog = _open_catalog(catalog_url)
    try:
        ledger: Ledger | None = open_ledger(ledger_url, settings.home)
    except LedgerError as exc:
        if index:
            catalog.close()
            raise StartupError(f"ledger: {exc}") from None
        log.warning("ledger unavailable (status will not show its tip): %s", exc)
        ledger = None
    if index and ledger is not None:
        try:
            _check_indexable(settings, catalog, ledger)
        except StartupError:
            ledger.close()
            catalog.close()
            raise
    return catalog, ledger


def serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    catalog_url: str | None = None,
    ledger_url: str | None = None,
    index: bool = True,
    ready: threading.Event | None = None,
    stop: threading.Event | None = None,
    workers: int = 1,
    access_log: bool = False,
    log_level: str = "info",
    poll_interval: float = POLL_INTERVAL,
    on_listen: Callable[[str], None] | None = None,
) -> None:
    """Serve the app until a signal or ``stop``; ``ready`` is set once it accepts connections.

    Raises :class:`StartupError` if a setting it would use is unusable (see :func:`preflight`),
    ValueError for ``workers < 1``.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    catalog_url = catalog_url or settings.catalog_url
    ledger_url = ledger_url or settings.ledger
    catalog, ledger = preflight(
        settings, host=host, port=port, catalog_url=catalog_url, ledger_url=ledger_url, index=index
    )
    indexer: IndexerThread | None = None
    state_dir = tempfile.TemporaryDirectory(prefix="etdb-serve-") if workers > 1 else None
    state_file = Path(state_dir.name) / "indexer" if state_dir else None
    try:
        if index:
            indexer = IndexerThread(settings, catalog_url, ledger_url, poll_interval, state_file)
        elif state_file is not None:
            state_file.write_text(json.dumps(OFF.to_json()), encoding="utf-8")
        common: dict[str, Any] = dict(
            host=host,
            port=port,
            access_log=access_log,
            log_level=log_level,
            log_config=log_config(log_level),
            proxy_headers=False,  # loopback by default; put a proxy in front deliberately
            timeout_graceful_shutdown=10,
        )
        if indexer is not None:
            indexer.start()
        if on_listen is not None:
            on_listen(f"http://{host}:{port}/")
        if workers == 1:
            app = create_app(catalog, settings=settings, ledger=ledger)
            _preload(catalog)
            app.state.etdb.indexer_state = (lambda: indexer.current) if indexer else (lambda: OFF)
            _Server(uvicorn.Config(app, **common), ready, stop).run()
        else:
            factory = partial(_worker_app, settings, catalog_url, ledger_url, str(state_file))
            config = uvicorn.Config(factory, factory=True, workers=workers, **common)
            _supervise(config, ready, stop)
    finally:
        if indexer is not None:
            indexer.stop()
        if ledger is not None:
            ledger.close()
        catalog.close()
        if state_dir is not None:
            state_dir.cleanup()


def _supervise(
    config: uvicorn.Config, ready: threading.Event | None, stop: threading.Event | None
) -> None:
    """uvicorn's multi-process supervisor, with the ``ready`` and ``stop`` events."""
    sockets = [config.bind_socket()]
    if threading.current_thread() is threading.main_thread():
        supervisor = Multiprocess(config, sockets=sockets)
    else:
        # Multiprocess() installs signal handlers, which only the main thread may do; run from
        # another thread (a demo, a test) the supervisor is stopped with `stop` instead.
        real = multiprocess.signal
        multiprocess.signal = SimpleNamespace(signal=lambda *_: None)  # type: ignore[assignment]
        try:
            supervisor = Multiprocess(config, sockets=sockets)
        finally:
            multiprocess.signal = real

    def watch() -> None:
        while not supervisor.should_exit.is_set():
            if ready is not None and not ready.is_set() and _answers(config.host, config.port):
                ready.set()  # (asking the workers' pipes would race the supervisor's pings)
            if stop is not None and stop.is_set():
                supervisor.should_exit.set()
            time.sleep(0.2)

    threading.Thread(target=watch, name="etdb-serve-watch", daemon=True).start()
    supervisor.run()


def _answers(host: str, port: int) -> bool:
    """Whether a worker answers HTTP (any status: /status is 503 while the indexer is failed)."""
    conn = http.client.HTTPConnection(host, port, timeout=2)
    try:
        conn.request("GET", "/api/v1/status")
        conn.getresponse().read()
        return True
    except OSError:
        return False
    finally:
        conn.close()
