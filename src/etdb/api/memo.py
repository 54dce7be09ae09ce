"""A small in-process cache of expensive response bodies, built once per key.

For answers that are large or slow and asked for again and again with the same key, such as
oip-js loading every ETDB record on each page view (``/api/v2/artifact/get/type?results=*``,
~30 MB; compat_list.py). Keys include the catalog's version, so an entry is simply never
asked for again once the catalog moves on; old entries fall out by size and count.
Concurrent misses on one key build it once ("single flight"): the others wait for that body.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

DEFAULT_MAX_BYTES = 128 * 2**20
DEFAULT_MAX_ENTRIES = 8


class BodyCache:
    def __init__(
        self, max_bytes: int = DEFAULT_MAX_BYTES, max_entries: int = DEFAULT_MAX_ENTRIES
    ) -> None:
        self.max_bytes, self.max_entries = max_bytes, max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, bytes] = OrderedDict()
        self._size = 0
        self._building: dict[Hashable, threading.Lock] = {}
        self.builds = 0  # how many bodies were built (for tests and curiosity)

    def get(self, key: Hashable, build: Callable[[], bytes]) -> bytes:
        body = self._hit(key)
        if body is not None:
            return body
        with self._lock:
            flight = self._building.setdefault(key, threading.Lock())
        with flight:
            body = self._hit(key)  # built by the request we waited for
            if body is not None:
                return body
            try:
                body = build()
                self.builds += 1
                self._store(key, body)
            finally:
                with self._lock:
                    self._building.pop(key, None)
        return body

    def _hit(self, key: Hashable) -> bytes | None:
        with self._lock:
            body = self._entries.get(key)
            if body is not None:
                self._entries.move_to_end(key)
            return body

    def _store(self, key: Hashable, body: bytes) -> None:
        if len(body) > self.max_bytes:
            return  # larger than the whole budget: answer it, keep nothing
        with self._lock:
            old = self._entries.pop(key, None)
            self._size += len(body) - (len(old) if old is not None else 0)
            self._entries[key] = body
            while self._size > self.max_bytes or len(self._entries) > self.max_entries:
                _, old = self._entries.popitem(last=False)
                self._size -= len(old)
