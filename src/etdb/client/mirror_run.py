"""One ``etdb mirror`` run: a :class:`MirrorRequest` in, a :class:`MirrorReport` out.

:func:`run_mirror` opens the local blockstore, a verifying ``BlockFetcher`` over the peers and
a client of the node listing the records, runs one pass or follows (:class:`etdb.client.mirror.
Mirror`), and closes them all whatever happens: blocks fetched before an interruption are kept
(each was verified and written whole). What happens as it goes is told to a
:class:`MirrorListener`; the command only draws.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from etdb.client.mirror import Mirror, MirroredDataset

if TYPE_CHECKING:
    from etdb.content.fetch import PeerStats
    from etdb.index.query import RecordSummary

__all__ = ["MirrorListener", "MirrorReport", "MirrorRequest", "MirrorTotals", "run_mirror"]


@dataclass(frozen=True)
class MirrorRequest:
    """What to mirror: records ``filters`` (by API name) selects on ``server``, blocks from
    ``peers``, kept in the blockstore at ``blockstore``."""

    server: str
    peers: Sequence[str]
    filters: Mapping[str, Any]
    blockstore: Path
    once: bool = False
    interval: float = 60.0
    concurrency: int = 16

    @staticmethod
    def sources(server: str | None, peers: Sequence[str] | None) -> tuple[str, list[str]]:
        """The listing node and the block sources: each defaults to the other."""
        if not server and not peers:
            raise ValueError(
                "give --server URL (the node listing the records) or at least one --peer URL"
            )
        listing = server or (peers or [""])[0]
        return listing, list(peers or [listing])


@dataclass
class MirrorTotals:
    """Blocks fetched (and their bytes) and already held, over the whole run."""

    fetched_blocks: int = 0
    fetched_bytes: int = 0
    held_blocks: int = 0

    def count(self, _cid: object, size: int, fetched: bool) -> None:
        if fetched:
            self.fetched_blocks += 1
            self.fetched_bytes += size
        else:
            self.held_blocks += 1

    def as_json(self) -> dict[str, int]:
        return {
            "fetched_blocks": self.fetched_blocks,
            "fetched_bytes": self.fetched_bytes,
            "held_blocks": self.held_blocks,
        }


@dataclass
class MirrorReport:
    outcomes: list[MirroredDataset] = field(default_factory=list)
    totals: MirrorTotals = field(default_factory=MirrorTotals)
    seconds: float = 0.0
    interrupted: bool = False
    peers: list[PeerStats] = field(default_factory=list)

    @property
    def failed(self) -> list[MirroredDataset]:
        return [o for o in self.outcomes if not o.ok]

    def as_json(self) -> dict[str, Any]:
        return {
            "datasets": len(self.outcomes),
            "failed": len(self.failed),
            **self.totals.as_json(),
            "seconds": round(self.seconds, 3),
            "interrupted": self.interrupted,
            "peers": [peer_json(p) for p in self.peers],
            "items": [o.as_json() for o in self.outcomes],
        }


def peer_json(p: PeerStats) -> dict[str, Any]:
    return {"url": p.url, "blocks": p.blocks, "bytes": p.bytes, "failures": p.failures,
            "lies": p.lies, "dropped": p.dropped, "reason": p.reason}  # fmt: skip


class MirrorListener:
    """What a view hears; every method may be left as is."""

    def started(self, hit: RecordSummary) -> None: ...

    def finished(self, outcome: MirroredDataset) -> None: ...

    def following(self, server: str, interval: float) -> None: ...

    def retrying(self, exc: Exception) -> None: ...

    def passed(self, batch: list[MirroredDataset], totals: MirrorTotals) -> None: ...


def run_mirror(
    request: MirrorRequest,
    listener: MirrorListener | None = None,
    stop: threading.Event | None = None,
) -> MirrorReport:
    """Mirror once, or follow until ``stop`` is set or Ctrl-C (the report says interrupted).

    Raises ``ClientError`` when the node refuses the selection (or, for one pass, cannot be
    reached); the blockstore, fetcher and client are closed either way.
    """
    from etdb.client.client import Client
    from etdb.content.blockstore import FSBlockstore
    from etdb.content.fetch import BlockFetcher

    hear = listener or MirrorListener()
    report = MirrorReport()
    started = time.monotonic()
    store = FSBlockstore(request.blockstore)
    fetcher = BlockFetcher(request.peers, local=store, keep=store,
                           concurrency=request.concurrency)  # fmt: skip
    client = Client(request.server, peers=list(request.peers), cache=store)
    mirror = Mirror(client, store, fetcher, request.filters, report.totals.count,
                    hear.started, hear.finished)  # fmt: skip
    try:
        if request.once:
            report.outcomes = mirror.pass_once()
        else:
            hear.following(request.server, request.interval)
            for batch in mirror.follow(request.interval, stop, on_error=hear.retrying):
                report.outcomes.extend(batch)
                hear.passed(batch, report.totals)
    except KeyboardInterrupt:
        report.interrupted = True
    finally:
        fetcher.close()
        client.close()
        store.close()
    report.seconds = time.monotonic() - started
    report.peers = list(fetcher.peers())
    return report
