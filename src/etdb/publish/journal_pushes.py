"""The journal's record of pushes: which dataset DAGs are pinned on which kubo node.

A push (``etdb.content.kubo_push``) is recorded only once kubo has the root pinned, keyed by the
root CID and the node's peer ID (a node's identity, whatever URL reaches it). A crash between
the push and its record leaves nothing recorded, so the next run pushes again, which kubo's
``dag import`` takes as a no-op: a push is never lost and never needed twice.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager


class PushLog:
    """The ``pushes`` table, as methods of :class:`etdb.publish.journal.Journal`."""

    def _read(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError  # the Journal's

    def _write(self, doing: str) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError  # the Journal's

    def pushed(self, cid: str, node: str) -> bool:
        """Whether the DAG ``cid`` was pushed to (and pinned on) the kubo node ``node``."""
        with self._read() as conn:
            sql = "SELECT 1 FROM pushes WHERE cid = ? AND node = ?"
            return conn.execute(sql, (cid, node)).fetchone() is not None

    def record_push(self, cid: str, node: str, *, api: str, blocks: int, size: int) -> None:
        """Remember, durably, that ``node`` (reached at ``api``, printable) has ``cid`` pinned."""
        with self._write("record a push in") as conn:
            conn.execute(
                "INSERT OR REPLACE INTO pushes (cid, node, api, blocks, bytes, pushed) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (cid, node, api, int(blocks), int(size), int(time.time())),
            )

    def pushes(self, node: str) -> Iterator[str]:
        """The root CIDs pushed to ``node``, in the order they were recorded."""
        with self._read() as conn:
            sql = "SELECT cid FROM pushes WHERE node = ? ORDER BY pushed, cid"
            rows = conn.execute(sql, (node,)).fetchall()
        return iter([r[0] for r in rows])
