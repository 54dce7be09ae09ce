"""The ``/api/v2`` result lists, joined from per-record fragments kept between catalog versions.

etdb-react loads every ETDB record on each page view (``artifact/get/type?...&results=*``).
Reading and rendering 12,000 records took ~7.6 s, and the list was built again after every
block, even one without a record. Here a list is the catalog's own order (its search, newest
first: one keyset walk over ids) joined from *fragments*: one rendered result per record,
``{"oip042":{"artifact":...},"txid":...,"publisher":...}``, made from the artifact as the
catalog stores it (``CatalogReader.current_artifacts``: compact JSON, embedded as is) and kept
with the rev of the write that last changed the record.

Before a list is built, :meth:`Fragments.sync` asks the catalog what was written since the
version it last saw (``CatalogReader.changes``: the meta row, then ``records.rev > since``, an
indexed range) and drops those records' fragments: an edit or a deactivation re-renders one
record, a block without records nothing. A new epoch (records were deleted: a reorganisation,
a rebuild) or a large batch of changes drops them all. Bodies are kept per catalog version
(``memo.BodyCache``), so an unchanged catalog serves the same bytes without a build.

Memory, per process (per ``--workers`` worker): fragments up to :data:`FRAGMENT_BYTES`
(128 MiB, ~40,000 ETDB-sized records; least recently used out first, a list longer than that
re-reads what fell out), plus the bodies' cache (memo.py: 128 MiB, 8 bodies; a body's gzip
copy, about a tenth of it, counts as one).
"""

from __future__ import annotations

import gzip
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import replace
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from etdb.api.context import AppContext, run_search
from etdb.api.memo import BodyCache
from etdb.index.query import MAX_LIMIT, CatalogReader, CatalogVersion, CurrentArtifact, SearchQuery
from etdb.record.subtypes import PYRAMID_SUBTYPE, is_pyramid

#: The most rows a list reaches (``page`` and ``results`` together; the whole ETDB is ~11,300).
WINDOW = 20_000
FRAGMENT_BYTES = 128 * 2**20
#: Bodies from this size are kept gzip-compressed as well; zlib's default level: compressed
#: once per catalog version, not per request.
GZIP_MIN = 1024
GZIP_LEVEL = 6
#: More changed records than this since the last build: drop every fragment (one query for
#: the changes stays bounded; the build then reads the list's records again).
MAX_CHANGES = 10_000


def render(row: CurrentArtifact) -> bytes:
    """One oipd result (GetByType's ``rWrap``) around the stored artifact JSON, as
    :func:`legacy_artifact` shows it."""
    tail = compact({"txid": row.id, "publisher": row.publisher})[1:]
    text = row.artifact_json
    if f'"{PYRAMID_SUBTYPE}"' in text.lower():  # the rare record to rewrite: parse it only then
        text = compact(legacy_artifact(json.loads(text))).decode()
    return b'{"oip042":{"artifact":' + text.encode() + b"}," + tail


def legacy_artifact(artifact: dict[str, Any]) -> dict[str, Any]:
    """The artifact as the 2018 clients can use it: without its folder entries (the OME-Zarr
    pyramid, subtype ``zarr``). etdb-react, oip-js and ETDB-downloads take every
    ``storage.files`` entry for one file: ETDB-downloads' default ("All") would stream a
    folder's files over one another into one file of the folder's name. The pyramid stays in
    the record (``/api/v1``, the portal) and in the DAG; the signature does not cover the list."""
    storage = artifact.get("storage")
    if not isinstance(storage, dict) or not isinstance(storage.get("files"), list):
        return artifact
    files = storage["files"]
    kept = [f for f in files if not _is_folder_entry(f)]
    if len(kept) == len(files):
        return artifact
    return {**artifact, "storage": {**storage, "files": kept}}


def _is_folder_entry(entry: Any) -> bool:
    return isinstance(entry, dict) and is_pyramid(entry.get("subtype"))


class Fragments:
    """Rendered results by record id, each with the rev it was read at. Thread-safe: a build
    holds :attr:`lock` from its sync to its last fragment (see :meth:`results`)."""

    def __init__(self, max_bytes: int = FRAGMENT_BYTES) -> None:
        self.max_bytes = max_bytes
        self.lock = threading.Lock()
        self.version: CatalogVersion | None = None
        self._entries: OrderedDict[str, tuple[int, bytes]] = OrderedDict()
        self._size = 0
        self.rendered = 0  # fragments rendered so far (tests, the benchmark)

    @property
    def nbytes(self) -> int:
        return self._size

    def __len__(self) -> int:
        return len(self._entries)

    def sync(self, catalog: CatalogReader) -> CatalogVersion:
        """Drop the fragments of records written since the last sync; the catalog's version.
        Caller holds :attr:`lock`: a fragment read before a change and stored after this
        sync had dropped it would otherwise stay."""
        changed = catalog.changes(self.version, MAX_CHANGES)
        if changed.ids is None:
            self._entries.clear()
            self._size = 0
        else:
            for record_id, rev in changed.ids:
                entry = self._entries.get(record_id)
                if entry is not None and entry[0] < rev:
                    self._drop(record_id)
        self.version = changed.version
        return changed.version

    def take(self, catalog: CatalogReader, ids: Sequence[str]) -> list[bytes]:
        """The fragments of ``ids`` in that order, rendering the missing ones; records gone or
        deactivated since ``ids`` were listed are left out. Caller holds :attr:`lock`."""
        found: dict[str, bytes] = {}
        missing = []
        for record_id in ids:
            entry = self._entries.get(record_id)
            if entry is None:
                missing.append(record_id)
            else:
                found[record_id] = entry[1]
                self._entries.move_to_end(record_id)
        for row in catalog.current_artifacts(missing):
            if not row.deactivated:
                found[row.id] = fragment = render(row)
                self.rendered += 1
                self._store(row.id, row.rev, fragment)
        return [found[i] for i in ids if i in found]

    def results(self, catalog: CatalogReader, ids: Sequence[str]) -> list[bytes]:
        """:meth:`take` after a :meth:`sync`, under the lock: for answers outside a list."""
        with self.lock:
            self.sync(catalog)
            return self.take(catalog, ids)

    def _store(self, record_id: str, rev: int, fragment: bytes) -> None:
        if len(fragment) > self.max_bytes:
            return
        self._drop(record_id)
        self._entries[record_id] = (rev, fragment)
        self._size += len(fragment)
        while self._size > self.max_bytes:
            _, (_, old) = self._entries.popitem(last=False)
            self._size -= len(old)

    def _drop(self, record_id: str) -> None:
        entry = self._entries.pop(record_id, None)
        if entry is not None:
            self._size -= len(entry[1])


def catalog_version(ctx: AppContext) -> CatalogVersion:
    """The catalog's (rev, epoch) now: what a list body is kept under (one meta query)."""
    return ctx.catalog.changes(None, 0).version


def list_response(
    request: Request, ctx: AppContext, key: Hashable, build: Callable[[], bytes], headers: dict
) -> Response:
    """The body kept under ``key`` (built once), gzip-compressed once too for clients that
    accept it: ETDB's list is ~30 MB, and the app's GZip middleware would compress it again
    for every request (~0.2 s of CPU each); a body already encoded passes it untouched."""
    bodies = bodies_of(ctx)
    body = bodies.get(key, build)
    if len(body) < GZIP_MIN or "gzip" not in request.headers.get("accept-encoding", ""):
        return Response(body, media_type="application/json", headers=headers)
    packed = bodies.get((key, "gzip"), lambda: gzip.compress(body, GZIP_LEVEL, mtime=0))
    zipped = {**headers, "Content-Encoding": "gzip", "Vary": "Accept-Encoding"}
    return Response(packed, media_type="application/json", headers=zipped)


def fragments_of(ctx: AppContext) -> Fragments:
    return ctx.extra.setdefault("compat_fragments", Fragments())


def bodies_of(ctx: AppContext) -> BodyCache:
    return ctx.extra.setdefault("compat_bodies", BodyCache())


def list_body(ctx: AppContext, query: SearchQuery, skip: int, count: int, size: int) -> bytes:
    """``{total, count, pages, results}``: at most ``count`` records after the first ``skip``
    in the catalog's order for ``query``; ``size`` is the page size (0: one page)."""
    fragments = fragments_of(ctx)
    with fragments.lock:
        fragments.sync(ctx.catalog)
        total, ids = ordered_ids(ctx, query, skip, count)
        results = fragments.take(ctx.catalog, ids)
    return page_body(total, results, size)


def page_body(total: int, results: Sequence[bytes], size: int) -> bytes:
    """oipd's page: ``pages`` is 1 without a page size or without records (GetByType)."""
    pages = 1 if size == 0 else max(1, -(-total // size))
    head = {"total": total, "count": len(results), "pages": pages}
    return b"".join((compact(head)[:-1], b',"results":[', b",".join(results), b"]}"))


def compact(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def ordered_ids(
    ctx: AppContext, query: SearchQuery, skip: int, count: int
) -> tuple[int, list[str]]:
    """The catalog's total for ``query`` and the ids of at most ``count`` of its records after
    the first ``skip``, walking keyset pages (the order is the catalog's, defined there)."""
    page = run_search(ctx, replace(query, limit=_limit(skip, count)))
    total, ids = page.total, []
    while count > 0:
        items = page.items[skip:]
        skip = max(0, skip - len(page.items))
        ids += [s.id for s in items[:count]]
        count -= min(len(items), count)
        if page.next is None or count == 0:
            break
        page = ctx.catalog.search(replace(query, after=page.next, limit=_limit(skip, count)))
    return total, ids


def _limit(skip: int, count: int) -> int:
    return max(1, min(MAX_LIMIT, skip + count))
