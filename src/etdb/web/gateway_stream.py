"""Streaming a UnixFS file (or a byte range of it) over HTTP, a bounded number at a time.

A tilt series is several GB: it is never loaded whole. The file's DAG is walked only over the
requested range (``etdb.content.exporter.iter_file``), each block read and re-hashed in a worker
thread, and sent in pieces of about :data:`CHUNK` bytes, so the event loop stays free and
memory stays at one chunk per stream.

Each body being sent holds one of the server's :class:`StreamSlots`; when all are taken the
request is answered 429 with ``Retry-After`` rather than queueing work the disk cannot serve.
The slot is taken and given back inside the response itself (``__call__``), so an error can
never leak one. A client that goes away mid-transfer frees it at once: the server's ``send``
keeps returning quietly after a disconnect (uvicorn drops the bytes), so the response listens
for ``http.disconnect`` on ``receive`` and then stops the worker thread at its next block read
(``gateway_budget.py``, which also bounds the work any one response may do). A slow reader
costs its one slot and no CPU: ``send`` waits while the socket's buffers are full.

A file read through upstream peers (``content/readthrough.py``) is read ahead of the walk
(``read_ahead``: the range's leaves as one verified stream from a peer); an upstream failure
once the body has started ends it like a damaged block, aborted, with one warning line.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Generator, Iterable, Iterator, Sequence

import anyio.to_thread
from anyio import CancelScope
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from etdb.content.blockstore import BlockGetter
from etdb.content.errors import ContentError
from etdb.content.exporter import Node, iter_file
from etdb.content.readthrough import read_ahead, upstream_status
from etdb.web.gateway_budget import BudgetSpent, ResponseBudget, StreamStopped

__all__ = ["CHUNK", "SlotStream", "StreamSlots", "UnixFSStream", "batched", "too_many"]

log = logging.getLogger(__name__)

CHUNK = 1 << 20  # bytes gathered per worker-thread hop: a few leaves
DEFAULT_STREAMS = 64
RETRY_AFTER = 2  # seconds


class StreamSlots:
    """A counter of bodies being sent. Only the event loop touches it, so no lock."""

    def __init__(self, limit: int = DEFAULT_STREAMS) -> None:
        if limit < 1:
            raise ValueError(f"stream limit must be at least 1, got {limit}")
        self.limit = limit
        self.active = 0

    def try_acquire(self) -> bool:
        if self.active >= self.limit:
            return False
        self.active += 1
        return True

    def release(self) -> None:
        self.active -= 1


def batched(pieces: Iterable[bytes | memoryview]) -> Generator[bytes, None, None]:
    """``pieces`` joined into chunks of about :data:`CHUNK` bytes (one worker-thread hop each).

    If ``pieces`` raises, what was gathered before is still yielded, then the error is raised:
    a stream ended mid-way (a spent budget, a damaged block) sends every good byte it had.
    """
    buffer: list[bytes | memoryview] = []
    held = 0
    try:
        for piece in pieces:
            buffer.append(piece)
            held += len(piece)
            if held >= CHUNK:
                yield b"".join(buffer)
                buffer, held = [], 0
    except Exception:
        if buffer:
            yield b"".join(buffer)
        raise
    if buffer:
        yield b"".join(buffer)


class SlotStream(Response):
    """A response sent as it is produced, holding one of the server's :class:`StreamSlots`.

    Subclasses give the body's pieces (:meth:`pieces`, a blocking iterator run in a worker
    thread), reading blocks through ``self.budget.guard(store)``. ``head=True`` or an empty body
    sends the headers only (and takes no slot). Errors while streaming (a block that went
    missing or fails its hash, a spent budget) abort the connection: the status line is gone,
    and a truncated body is better than wrong bytes. A disconnect ends it quietly.
    """

    def __init__(
        self,
        *,
        status: int,
        headers: Iterable[tuple[str, str]],
        slots: StreamSlots,
        head: bool = False,
        empty: bool = False,
        budget: ResponseBudget | None = None,
    ) -> None:
        # Response.__init__ is not called: it would render a body and count its length.
        self.background = None
        self.budget = budget or ResponseBudget()
        self.status_code = status
        self.raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        self.slots = slots
        self.head = head or empty

    def pieces(self) -> Iterator[bytes | memoryview]:
        raise NotImplementedError

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = {
            "type": "http.response.start",
            "status": self.status_code,
            "headers": self.raw_headers,
        }
        if self.head:
            await send(start)
            await send({"type": "http.response.body", "body": b""})
            return
        if not self.slots.try_acquire():
            await too_many(send, self.slots.limit)
            return
        try:
            await self._stream(start, receive, send)
        except BudgetSpent as exc:
            # A hostile DAG, not a bug: one line, no traceback. Returning without the last body
            # message makes the server abort the connection (a truncated body).
            log.warning("gateway stream %s: %s", scope.get("path"), exc)
        except ContentError as exc:
            if upstream_status(exc) is None:
                raise
            # Peers that failed or lied, not a bug: likewise one line and a truncated body.
            log.warning("gateway stream %s: upstream: %s", scope.get("path"), exc)
        finally:
            self.budget.stop()  # whatever happened, no thread goes on producing this body
            self.slots.release()

    async def _stream(self, start: dict, receive: Receive, send: Send) -> None:
        """Send the body while listening for the client's disconnect, which cancels it."""
        chunks = batched(self.budget.metered(self.pieces()))
        error: Exception | None = None
        async with anyio.create_task_group() as group:
            group.start_soon(self._stop_on_disconnect, receive, group.cancel_scope)
            try:
                await send(start)
                await self._send_chunks(chunks, send)
            except StreamStopped:
                pass
            except Exception as exc:  # re-raised below, not wrapped in an ExceptionGroup
                error = exc
            finally:
                group.cancel_scope.cancel()
        chunks.close()  # the worker thread is done (run_sync waits for it even when cancelled)
        if error is not None:
            raise error

    async def _send_chunks(self, chunks: Iterator[bytes], send: Send) -> None:
        while not self.budget.stopped:
            chunk = await anyio.to_thread.run_sync(next, chunks, None)
            if chunk is None:
                await send({"type": "http.response.body", "body": b""})
                return
            await send({"type": "http.response.body", "body": chunk, "more_body": True})

    async def _stop_on_disconnect(self, receive: Receive, body: CancelScope) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass  # a request body nobody asked for: drained, dropped
        self.budget.stop()  # first: the worker thread stops at its next block read...
        body.cancel()  # ...so the cancelled run_sync returns at once


class UnixFSStream(SlotStream):
    """``status`` and ``headers``, then bytes ``[start, end)`` of ``node`` (see SlotStream)."""

    def __init__(
        self,
        store: BlockGetter,
        node: Node,
        start: int,
        end: int,
        *,
        status: int,
        headers: Sequence[tuple[str, str]],
        slots: StreamSlots,
        head: bool = False,
    ) -> None:
        super().__init__(status=status, headers=headers, slots=slots, head=head, empty=end <= start)
        self.store = store
        self.node = node
        self.start, self.end = start, end

    def pieces(self) -> Iterator[bytes | memoryview]:
        with read_ahead(self.store, self.node, self.start, self.end) as store:
            yield from iter_file(self.budget.guard(store), self.node, self.start, self.end)


async def too_many(send: Send, limit: int) -> None:
    message = f"this gateway is already sending {limit} files; retry in {RETRY_AFTER} s"
    body = json.dumps({"error": {"parameter": None, "message": message}}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(RETRY_AFTER).encode()),
        (b"cache-control", b"no-cache"),
    ]
    await send({"type": "http.response.start", "status": 429, "headers": headers})
    await send({"type": "http.response.body", "body": body})
