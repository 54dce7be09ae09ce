"""One download as asked for (:class:`DownloadRequest`), planned and then run.

``etdb download`` builds a request from its options and calls :func:`prepare` (select the
records, plan their files, open the manifest) and :func:`run` (fetch them, verified); it only
asks the user and draws. The JSON it prints is :meth:`PreparedDownload.listing`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from etdb.client.api import ApiClient
from etdb.client.download import Dataset, Downloader, DownloadListener, DownloadSummary, plan
from etdb.client.download import select as select_records
from etdb.client.layout import DEFAULT_LAYOUT, Layout
from etdb.client.manifest import Manifest
from etdb.client.selection import SelectionError, api_params, load_filter, parse_file_types

__all__ = ["DownloadRequest", "PreparedDownload", "local_server", "prepare", "run"]


def local_server(port: int) -> str:
    """The local node's API, the default ``--server`` of the commands that select."""
    return f"http://127.0.0.1:{port}"


@dataclass(frozen=True)
class DownloadRequest:
    """What to fetch, from where, to where. ``filters`` are option values by API name
    (:data:`etdb.client.selection.FILTERS`); ``ids`` exclude them. ``peers`` default to
    ``server``."""

    server: str
    filters: Mapping[str, Any] = field(default_factory=dict)
    ids: Sequence[str] = ()
    filter_file: Path | None = None
    file_types: Sequence[str] | None = None
    dest: Path = Path("etdb-download")
    layout: str | None = None
    peers: Sequence[str] = ()
    concurrency: int = 16

    @property
    def base(self) -> str:
        return self.server.rstrip("/")

    @property
    def params(self) -> list[tuple[str, str]]:
        return api_params(self.filters)

    @property
    def sources(self) -> list[str]:
        """Where blocks come from: the peers, or the server itself."""
        return list(self.peers) or [self.base]


@dataclass
class PreparedDownload:
    """A request's datasets and their files; ``manifest`` is None for a dry run."""

    request: DownloadRequest
    datasets: list[Dataset]
    types: frozenset[str]
    layout: Layout
    manifest: Manifest | None

    @property
    def files(self) -> int:
        return sum(len(d.files) for d in self.datasets)

    @property
    def bytes(self) -> int:
        return sum(d.bytes for d in self.datasets)

    def listing(self) -> dict[str, Any]:
        """Where from and to, and every dataset and file planned (the command's JSON)."""
        r = self.request
        return {
            "server": r.base,
            "peers": r.sources,
            "dest": str(r.dest),
            "layout": self.layout.template,
            "datasets": [_dataset_json(d) for d in self.datasets],
            "files": self.files,
            "total_bytes": self.bytes,
        }


def prepare(request: DownloadRequest, *, dry_run: bool = False) -> PreparedDownload:
    """Select the records, plan their files and (unless ``dry_run``) open the manifest.

    Raises :class:`SelectionError`, :class:`etdb.client.layout.LayoutError`,
    :class:`etdb.client.manifest.ManifestError` or the API's ``ClientError``; writes nothing.
    """
    types = parse_file_types(request.file_types)
    layout = Layout(request.layout or DEFAULT_LAYOUT)
    group = load_filter(request.filter_file) if request.filter_file else None
    params = request.params
    if request.ids and (params or group):
        raise SelectionError("--id selects exactly those records: drop the filters")
    with ApiClient(request.base) as api:
        records = select_records(api, params, ids=request.ids, filter_group=group)
    datasets = plan(records, types, layout)
    manifest = None if dry_run else Manifest.load(request.dest)
    return PreparedDownload(request, datasets, types, layout, manifest)


def run(prepared: PreparedDownload, listener: DownloadListener | None = None) -> DownloadSummary:
    """Record the selection in the manifest, merge what an earlier run did, fetch the rest.

    A ``KeyboardInterrupt`` propagates after the manifest is saved: the same request resumes.
    """
    from etdb.content.fetch import BlockFetcher

    manifest = prepared.manifest
    if manifest is None:
        raise ValueError("a dry run fetches nothing")
    r = prepared.request
    manifest.selection = {
        "server": r.base,
        "params": r.params,
        "ids": list(r.ids),
        "filter_file": str(r.filter_file) if r.filter_file else None,
        "file_types": sorted(prepared.types),
        "layout": prepared.layout.template,
    }
    for dataset in prepared.datasets:
        dataset.files = manifest.merge({dataset.id: dataset.record}, dataset.files)
    with BlockFetcher(r.sources, concurrency=r.concurrency) as fetcher:
        return Downloader(fetcher, manifest, listener=listener).run(prepared.datasets)


def _dataset_json(d: Dataset) -> dict[str, Any]:
    files = [{"fname": f.fname, "path": f.path, "type": f.type, "size": f.size, "cid": f.cid,
              "status": f.status} for f in d.files]  # fmt: skip
    return {"id": d.id, "sid": d.sid, "species": d.species, "bytes": d.bytes, "files": files}
