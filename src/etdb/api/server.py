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
"""

from __future__ import annotations

import contextlib
import copy
import http.client
import logging
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
from etdb.config import Settings
from etdb.index.catalog import open_catalog
from etdb.ledger import Ledger, LedgerError, open_ledger

log = logging.getLogger("etdb.serve")

#: How long shutdown waits for the indexer to finish its current commit.
STOP_TIMEOUT = 30.0
POLL_INTERVAL = 2.0


class _StopIndexing(Exception):
    """Raised from the indexer's progress callback (after a commit) to end a long run early."""


class IndexerThread(threading.Thread):
    """Runs ``Indexer.follow_forever`` until :meth:`stop`; ``state`` is shown by /status."""

    def __init__(
        self,
        settings: Settings,
        catalog_url: str,
        ledger_url: str,
        poll: float,
        state_file: Path | None = None,
    ):
        super().__init__(name="etdb-indexer", daemon=True)
        self.settings, self.catalog_url, self.ledger_url = settings, catalog_url, ledger_url
        self.poll = poll
        self.stop_event = threading.Event()
        self.state_file = state_file
        self.state = "starting"

    @property
    def state(self) -> str:
        return self._state

    @state.setter
    def state(self, value: str) -> None:
        self._state = value
        if self.state_file is not None:  # for worker processes (workers > 1)
            # (OSError: serve() is shutting down and removed the folder)
            with contextlib.suppress(OSError):
                self.state_file.write_text(value, encoding="utf-8")

    def run(self) -> None:
        from etdb.index.indexer import Indexer

        def check_stop(_report: Any) -> None:
            # Called after each commit: stopping here never cuts a transaction, and a first
            # sync of a long ledger does not hold shutdown until it has caught up.
            if self.stop_event.is_set():
                raise _StopIndexing

        ledger = store = None
        try:
            ledger = open_ledger(self.ledger_url, self.settings.home)
            store = open_catalog(self.catalog_url)
            indexer = Indexer(
                ledger,
                store,
                publishers=self.settings.publisher_allow_list,
                multipart_expiry=int(self.settings.multipart_expiry),
            )
            self.state = "running"
            indexer.follow_forever(self.poll, self.stop_event, progress=check_stop)
            self.state = "stopped"
        except _StopIndexing:
            self.state = "stopped"
        except Exception as exc:  # the API keeps serving what is indexed; say why it is stale
            log.exception("indexer stopped")
            # /status is public: the error's kind only (a database error may name hosts);
            # the message and traceback are in the server log.
            self.state = f"failed: {type(exc).__name__} (see the server log)"
        finally:
            for handle in (store, ledger):
                if handle is not None:
                    handle.close()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        self.stop_event.set()
        self.join(timeout)
        if self.is_alive():
            log.warning("indexer still busy after %.0f s; leaving its transaction open", timeout)


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

    def state() -> str:
        try:
            return path.read_text(encoding="utf-8") if path else "off"
        except OSError:
            return "unknown"

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

    Raises :class:`etdb.ledger.LedgerError` or the catalog's errors if either cannot be opened,
    ValueError for ``workers < 1``.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    catalog_url = catalog_url or settings.catalog_url
    ledger_url = ledger_url or settings.ledger
    catalog = open_catalog(catalog_url)  # also creates or checks the schema, before any worker
    ledger: Ledger | None = None
    indexer: IndexerThread | None = None
    state_dir = tempfile.TemporaryDirectory(prefix="etdb-serve-") if workers > 1 else None
    state_file = Path(state_dir.name) / "indexer" if state_dir else None
    try:
        try:
            ledger = open_ledger(ledger_url, settings.home)
        except LedgerError as exc:
            if index:
                raise
            log.warning("ledger unavailable (status will not show its tip): %s", exc)
        if index:
            indexer = IndexerThread(settings, catalog_url, ledger_url, poll_interval, state_file)
        elif state_file is not None:
            state_file.write_text("off", encoding="utf-8")
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
            app.state.etdb.indexer_state = (lambda: indexer.state) if indexer else (lambda: "off")
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
    conn = http.client.HTTPConnection(host, port, timeout=2)
    try:
        conn.request("GET", "/api/v1/status")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()
