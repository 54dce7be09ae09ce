r"""What the slice viewer's route and page share: the caches, the content they read, sidecars.

:mod:`etdb.web.slices` (the ``/slices/`` route) and :mod:`etdb.web.slice_page` (the dataset
page's part) both read through :func:`blockstore_of` and keep rendered pictures and parsed
headers (or opened pyramids) in the app's two :class:`SliceCache`\ s (:func:`caches`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from fastapi import HTTPException, Request

from etdb.content import exporter
from etdb.content.blockstore import BlockGetter, FSBlockstore
from etdb.content.errors import ContentError
from etdb.mrc.sections import MrcLayout

__all__ = [
    "CACHE_BYTES",
    "IMMUTABLE",
    "MAX_SIZE",
    "PAGE_WAIT",
    "SliceCache",
    "blockstore_of",
    "caches",
    "slice_url",
    "with_sidecar_angles",
]

#: Longest side of a picture, in pixels (``?size=``).
MAX_SIZE = 2048
CACHE_BYTES = 64 << 20
LAYOUT_ENTRIES = 256
IMMUTABLE = f"public, max-age={365 * 24 * 3600}, immutable"
MAX_SIDECAR = 64 << 10  # a .rawtlt lists one angle per line: a few hundred bytes
#: Seconds the dataset page waits for a file's header from upstream peers before it lists the
#: file as not available (the fetch goes on: the next view has it).
PAGE_WAIT = 3.0
_STORE_LOCK = threading.Lock()


class SliceCache:
    """A thread-safe LRU whose bound is the total size of its values (bytes), or a count."""

    def __init__(self, max_bytes: int = CACHE_BYTES, max_entries: int | None = None) -> None:
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.size = 0
        self.hits = self.misses = 0

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return item[0]

    def put(self, key: Hashable, value: Any, size: int) -> None:
        if size > self.max_bytes:
            return  # would evict everything else and then itself
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.size -= old[1]
            self._items[key] = (value, size)
            self.size += size
            while self.size > self.max_bytes or (
                self.max_entries is not None and len(self._items) > self.max_entries
            ):
                _, (_, dropped) = self._items.popitem(last=False)
                self.size -= dropped

    def __len__(self) -> int:
        return len(self._items)


def slice_url(value: str) -> str:
    """The ``/slices/`` address of content path ``<cid>/<path>``."""
    return "/slices/" + quote(value)


def blockstore_of(request: Request) -> BlockGetter:
    """What slices are read through: ``extra["blockstore"]`` if a part (or a test) set one,
    else the gateway's ``store()`` (its blockstore, or its read-through when it has peers),
    else the settings' folder, opened once (read-only: a server never creates a blockstore)."""
    extra: dict[str, Any] = request.app.state.etdb.extra
    store = extra.get("blockstore")
    state = extra.get("gateway_state")
    if store is None and state is not None:  # one handle per folder, one read-through per app
        store = state.store()
    if store is None:
        with _STORE_LOCK:
            store = extra.get("blockstore")
            if store is None:
                path = request.app.state.etdb.settings.blockstore_path
                try:
                    store = FSBlockstore(path, create=False)
                except ContentError:
                    raise HTTPException(404, "this server holds no content") from None
                extra["blockstore"] = store
    return store


def caches(request: Request) -> tuple[SliceCache, SliceCache]:
    extra: dict[str, Any] = request.app.state.etdb.extra
    images = extra.setdefault("slice_cache", SliceCache(CACHE_BYTES))
    layouts = extra.setdefault("slice_layouts", SliceCache(1 << 62, LAYOUT_ENTRIES))
    return images, layouts


def with_sidecar_angles(store: BlockGetter, cid: str, path: str, layout: MrcLayout) -> MrcLayout:
    """Tilt angles from ``<stem>.rawtlt`` beside a tilt series (IMOD's convention) when its
    header has none. Only a label: a missing or unreadable sidecar changes nothing."""
    if layout.tilt_angles or layout.kind != "tilt series" or not path:
        return layout
    sidecar = str(PurePosixPath(path).with_suffix(".rawtlt"))
    try:
        data = exporter.read_range(store, f"{cid}/{sidecar}", 0, MAX_SIDECAR + 1)
        if len(data) > MAX_SIDECAR:
            return layout
        text = data.decode("ascii")
        angles = tuple(round(float(line), 2) for line in text.split() if line)
    except (ContentError, ValueError):
        return layout
    if len(angles) != layout.nz or not all(abs(a) <= 90 for a in angles):
        return layout
    return layout.with_tilt_angles(angles)
