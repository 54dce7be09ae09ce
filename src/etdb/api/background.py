"""The indexer of ``etdb serve``: a thread following the ledger that restarts after failures.

A ledger that is unreachable for a while is waited out inside ``Indexer.follow_forever``; any
other failure (a store error, :class:`~etdb.index.identity.LedgerMismatch`, a bug) ends that
call. The thread then logs it with its traceback, publishes ``failed`` (what, how many times in
a row, when it tries again) for ``/api/v1/status`` and ``/api/v1/health``, closes its handles,
waits (capped exponential backoff: :data:`BACKOFF_START` doubling up to :data:`BACKOFF_CAP`)
and starts over with fresh handles, so that a fixed cause (a database back, a ledger file put
right) is picked up without a restart. It never dies silently.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from etdb.config import Settings
from etdb.index.catalog import open_catalog
from etdb.index.identity import IndexerError
from etdb.ledger import open_ledger

log = logging.getLogger("etdb.serve")

#: First wait after a failure; each further failure in a row doubles it, up to the cap.
BACKOFF_START = 1.0
BACKOFF_CAP = 60.0
#: How long shutdown waits for the indexer to finish its current commit.
STOP_TIMEOUT = 30.0


def backoff(failures: int, start: float = BACKOFF_START, cap: float = BACKOFF_CAP) -> float:
    """Seconds to wait after the ``failures``-th failure in a row (1, 2, 4, ... cap)."""
    return min(cap, start * 2 ** min(max(failures - 1, 0), 32))


@dataclass(frozen=True)
class IndexerState:
    """What the background indexer is doing, as /status and /health report it.

    ``state``: "starting", "running", "failed" (waiting to retry), "stopped", or "off" (serve
    --no-index). ``error`` is the last failure's kind (and message for our own indexer errors,
    which name no hosts or passwords; the rest is in the server log); ``next_retry`` its Unix
    time.
    """

    state: str
    error: str | None = None
    failures: int = 0
    next_retry: float | None = None

    @property
    def failed(self) -> bool:
        return self.state == "failed"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, text: str) -> IndexerState:
        """A state another process wrote; an unreadable one is "unknown", never an error."""
        try:
            doc = json.loads(text)
            return cls(
                state=str(doc["state"]),
                error=None if doc.get("error") is None else str(doc["error"]),
                failures=int(doc.get("failures", 0)),
                next_retry=None if doc.get("next_retry") is None else float(doc["next_retry"]),
            )
        except (ValueError, KeyError, TypeError):
            return cls("unknown")


OFF = IndexerState("off")


class _StopIndexing(Exception):
    """Raised from the indexer's progress callback (after a commit) to end a long run early."""


def public_error(exc: BaseException) -> str:
    """What /status may show of ``exc``: the kind, and the message of our indexer errors."""
    if isinstance(exc, IndexerError) and str(exc):
        return f"{type(exc).__name__}: {exc}"
    return f"{type(exc).__name__} (see the server log)"


class IndexerThread(threading.Thread):
    """Runs ``Indexer.follow_forever`` until :meth:`stop`, restarting it after failures."""

    def __init__(
        self,
        settings: Settings,
        catalog_url: str,
        ledger_url: str,
        poll: float,
        state_file: Path | None = None,
        *,
        backoff_start: float = BACKOFF_START,
        backoff_cap: float = BACKOFF_CAP,
    ):
        super().__init__(name="etdb-indexer", daemon=True)
        self.settings, self.catalog_url, self.ledger_url = settings, catalog_url, ledger_url
        self.poll = poll
        self.backoff_start, self.backoff_cap = backoff_start, backoff_cap
        self.stop_event = threading.Event()
        self.state_file = state_file
        self.current = IndexerState("starting")
        self._publish(self.current)

    @property
    def state(self) -> str:
        return self.current.state

    def _publish(self, current: IndexerState) -> None:
        self.current = current  # one reference: readers in other threads see all or nothing
        if self.state_file is not None:  # for worker processes (workers > 1)
            # (OSError: serve() is shutting down and removed the folder)
            with contextlib.suppress(OSError):
                tmp = self.state_file.with_suffix(".tmp")
                tmp.write_text(json.dumps(current.to_json()), encoding="utf-8")
                tmp.replace(self.state_file)  # a reader never sees half a file

    def run(self) -> None:
        failures, running_since = 0, 0.0
        while not self.stop_event.is_set():
            try:
                running_since = time.monotonic()
                self._follow(failures)
                break  # follow_forever returns only when told to stop
            except _StopIndexing:
                break
            except Exception as exc:  # a thread that dies silently serves a stale catalog
                if time.monotonic() - running_since > self.backoff_cap:
                    failures = 0  # it ran well for a while: this is a new episode
                failures += 1
                wait = backoff(failures, self.backoff_start, self.backoff_cap)
                log.error(
                    "indexer failed (%d in a row), retrying in %.0f s: %s: %s",
                    failures,
                    wait,
                    type(exc).__name__,
                    exc,
                    exc_info=exc,
                )
                self._publish(
                    IndexerState("failed", public_error(exc), failures, time.time() + wait)
                )
                self.stop_event.wait(wait)
        self._publish(IndexerState("stopped"))

    def _follow(self, failures: int) -> None:
        from etdb.index.indexer import Indexer

        def check_stop(_report: Any) -> None:
            # Called after each commit: stopping here never cuts a transaction, and a first
            # sync of a long ledger does not hold shutdown until it has caught up.
            if self.stop_event.is_set():
                raise _StopIndexing

        s = self.settings
        with contextlib.ExitStack() as handles:
            ledger = open_ledger(self.ledger_url, s.home)
            handles.callback(ledger.close)
            store = open_catalog(self.catalog_url)
            handles.callback(store.close)
            indexer = Indexer(ledger, store, **s.indexer_options())
            # the first pass runs before "running" is claimed after a failure, so that /health
            # does not flip to ok for a cause that is still there
            if failures:
                indexer.run(progress=check_stop, stop=self.stop_event)
            self._publish(IndexerState("running"))
            indexer.follow_forever(self.poll, self.stop_event, progress=check_stop)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        self.stop_event.set()
        self.join(timeout)
        if self.is_alive():
            log.warning("indexer still busy after %.0f s; leaving its transaction open", timeout)
