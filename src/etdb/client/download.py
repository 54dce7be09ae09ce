"""The verified downloader behind ``etdb download``: selection -> records -> files -> disk.

:func:`select` reads the chosen records from an etdb server's API, :func:`plan` lists their
files of the chosen types at their layout paths, and :class:`Downloader` fetches them through
a :class:`etdb.content.fetch.BlockFetcher` (several peers at once, every block checked against
its CID before it is written) with :mod:`etdb.content.filefetch`, which resumes a file from its
``.part`` without fetching a verified leaf again. Progress is in ``<dest>/metadata.json``
(:mod:`etdb.client.manifest`), rewritten atomically after every file.

Files come one after another; the parallelism is inside a file (its leaves, from several
peers). A file that fails (no peer could deliver a block) is marked failed with the reason and
the run goes on; a re-run retries it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from etdb.client.api import ApiClient, Params
from etdb.client.layout import DEFAULT_LAYOUT, Layout, LayoutError
from etdb.client.manifest import FileEntry, Manifest
from etdb.client.selection import (
    Group,
    file_category,
    needs_record,
    parse_file_types,
    record_view,
    server_params,
)

if TYPE_CHECKING:
    from etdb.content.fetch import BlockFetcher

__all__ = [
    "Dataset",
    "DownloadListener",
    "DownloadSummary",
    "Downloader",
    "download_ids",
    "plan",
    "select",
]


@dataclass
class Dataset:
    """A selected record (as ``/api/v1/records/{id}`` returned it) and its chosen files."""

    record: dict[str, Any]
    files: list[FileEntry] = field(default_factory=list)

    @property
    def id(self) -> str:
        return str(self.record["summary"]["id"])

    @property
    def sid(self) -> str:
        return str(self.record["summary"].get("sid") or self.id[:16])

    @property
    def species(self) -> str:
        return str(self.record["summary"].get("species") or "")

    @property
    def location(self) -> str:
        return str((self.record["artifact"].get("storage") or {}).get("location") or "")

    @property
    def bytes(self) -> int:
        return sum(f.size or 0 for f in self.files)


def select(
    api: ApiClient,
    params: Params,
    *,
    ids: Sequence[str] = (),
    filter_group: Group | None = None,
    on_record: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """The full records chosen by ``ids`` (exactly those) or by the API filters ``params``
    narrowed by the filter file's ``filter_group`` (applied here to each record's JSON; its
    plain equality tests also go to the server). ``on_record(n)`` counts records read."""
    if ids:
        records = []
        for i, txid in enumerate(dict.fromkeys(ids), 1):
            records.append(api.get(txid))
            if on_record:
                on_record(i)
        return records
    query = list(params)
    if filter_group is not None:
        query += server_params(filter_group, {name for name, _ in params})
    full = filter_group is not None and needs_record(filter_group)
    records, seen = [], 0
    for summary in api.search(query):
        seen += 1
        if filter_group is not None and not full and not filter_group.holds(record_view(summary)):
            continue
        record = api.get(str(summary["id"]))
        if filter_group is not None and full and not filter_group.holds(record_view(record)):
            continue
        records.append(record)
        if on_record:
            on_record(seen)
    return records


def plan(
    records: Iterable[dict[str, Any]], file_types: frozenset[str], layout: Layout
) -> list[Dataset]:
    """Datasets with their files of ``file_types`` at ``layout`` paths; records without such
    files are left out. Two files at one path are a :class:`LayoutError` naming both."""
    datasets: list[Dataset] = []
    taken: dict[str, tuple[str, str]] = {}
    for record in records:
        dataset = Dataset(record)
        storage = record["artifact"].get("storage") or {}
        for file in storage.get("files") or []:
            kind = file_category(file.get("subtype"))
            fname = file.get("fname")
            if kind not in file_types or not isinstance(fname, str) or not fname:
                continue
            path = layout.path(record, file, kind)
            where = (dataset.id, fname)
            if path in taken and taken[path] != where:
                other = taken[path]
                raise LayoutError(
                    f"--layout {layout.template!r} puts two files at {path}: {other[1]} of "
                    f"record {other[0][:12]} and {fname} of record {dataset.id[:12]}; add "
                    "{sid}, {id} or {path} to the layout"
                )
            taken[path] = where
            size = file.get("fsize")
            dataset.files.append(
                FileEntry(dataset.id, fname, path, kind, size if isinstance(size, int) else None)
            )
        if dataset.files:
            datasets.append(dataset)
    return datasets


@dataclass
class DownloadSummary:
    done: int = 0  # files fetched (or finished) this run
    skipped: int = 0  # files already complete from an earlier run
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    bytes_fetched: int = 0
    seconds: float = 0.0
    peers: list[dict[str, Any]] = field(default_factory=list)
    interrupted: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "done": self.done,
            "skipped": self.skipped,
            "failed": [{"path": p, "reason": r} for p, r in self.failed],
            "bytes_fetched": self.bytes_fetched,
            "seconds": round(self.seconds, 3),
            "peers": self.peers,
            "interrupted": self.interrupted,
        }


class DownloadListener:
    """What a progress view hears; every method may be left as is."""

    def file_started(self, entry: FileEntry, size: int, already: int) -> None: ...

    def file_bytes(self, entry: FileEntry, n: int) -> None: ...

    def file_finished(self, entry: FileEntry) -> None: ...


class Downloader:
    """Fetches planned files into ``manifest.dest`` through ``fetcher``, keeping the manifest."""

    def __init__(
        self,
        fetcher: BlockFetcher,
        manifest: Manifest,
        *,
        listener: DownloadListener | None = None,
    ) -> None:
        self.fetcher = fetcher
        self.manifest = manifest
        self.listener = listener or DownloadListener()

    def run(self, datasets: Sequence[Dataset]) -> DownloadSummary:
        summary = DownloadSummary()
        started = time.monotonic()
        run: dict[str, Any] = {"started": time.time()}
        self.manifest.runs.append(run)
        try:
            for dataset in datasets:
                for entry in dataset.files:
                    self._one(dataset, entry, summary)
        except KeyboardInterrupt:
            summary.interrupted = True
            raise
        finally:
            summary.seconds = time.monotonic() - started
            summary.peers = [asdict(p) for p in self.fetcher.peers()]
            run.update(summary.to_json())
            self.manifest.save()
        return summary

    def _one(self, dataset: Dataset, entry: FileEntry, summary: DownloadSummary) -> None:
        from etdb.content.errors import ContentError, NotAFileError

        if entry.is_complete(self.manifest.dest):
            summary.skipped += 1
            self.listener.file_finished(entry)
            return
        if not dataset.location:
            self._failed(entry, summary, "the record names no storage location")
            return

        def counted(n: int) -> None:
            summary.bytes_fetched += n
            self.listener.file_bytes(entry, n)

        path = f"{dataset.location}/{entry.fname}"
        try:
            try:
                fetched = self._file(path, entry, counted)
            except NotAFileError:
                fetched = self._folder(path, entry, counted)
        except (ContentError, OSError) as exc:
            self._failed(entry, summary, str(exc) or type(exc).__name__)
            return
        except BaseException:
            self.manifest.save()  # what was learnt (the CID) survives an interruption
            raise
        entry.fetched += fetched
        entry.status, entry.verified, entry.reason = "done", True, None
        summary.done += 1
        self.manifest.save()
        self.listener.file_finished(entry)

    def _file(self, path: str, entry: FileEntry, counted: Callable[[int], None]) -> int:
        from etdb.content.errors import ContentError
        from etdb.content.filefetch import download_file, matches_plan, plan_file, resumed_bytes

        target = self.manifest.dest / entry.path
        file_plan = plan_file(self.fetcher, path)
        entry.cid, entry.size, entry.files = str(file_plan.cid), file_plan.size, None
        if target.exists():
            # A crash between the final rename and the manifest's update leaves a complete
            # file the manifest does not vouch for: trusted only once it re-hashes to the
            # plan. Anything else there is the user's, never overwritten.
            if not matches_plan(target, file_plan):
                raise ContentError(
                    f"{target} exists and is not {file_plan.cid}; move it away and re-run"
                )
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            self.listener.file_started(entry, file_plan.size, resumed_bytes(file_plan, target))
        return download_file(self.fetcher, file_plan, target, on_bytes=counted)

    def _folder(self, path: str, entry: FileEntry, counted: Callable[[int], None]) -> int:
        """A folder entry (an OME-Zarr pyramid): its files under the entry's path."""
        from etdb.client.folder import fetch_folder
        from etdb.content.treeplan import plan_tree

        tree = plan_tree(self.fetcher, path)
        entry.cid, entry.size, entry.files = str(tree.cid), tree.size, len(tree.files)

        def started(size: int, already: int) -> None:
            entry.size = size
            self.listener.file_started(entry, size, already)

        result = fetch_folder(
            self.fetcher, tree, self.manifest.dest / entry.path, on_start=started, on_bytes=counted
        )
        entry.size = result.size
        return result.fetched

    def _failed(self, entry: FileEntry, summary: DownloadSummary, reason: str) -> None:
        entry.status, entry.verified, entry.reason = "failed", False, reason
        summary.failed.append((entry.path, reason))
        self.manifest.save()
        self.listener.file_finished(entry)


def download_ids(
    server: str,
    fetcher: BlockFetcher,
    ids: Sequence[str],
    dest: Path,
    *,
    file_types: Iterable[str] | None = None,
    layout: str = DEFAULT_LAYOUT,
    listener: DownloadListener | None = None,
) -> DownloadSummary:
    """``etdb.Client.download``: records ``ids`` of ``server`` into ``dest`` through ``fetcher``,
    with the command's manifest, layout and resume (``file_types``: names of
    :data:`etdb.client.selection.FILE_TYPES`; none = every type but ``zarr``)."""
    with ApiClient(server) as api:
        records = select(api, (), ids=ids)
    datasets = plan(records, parse_file_types(file_types), Layout(layout))
    manifest = Manifest.load(Path(dest))
    manifest.selection = {"ids": list(ids)}
    for dataset in datasets:
        dataset.files = manifest.merge({dataset.id: dataset.record}, dataset.files)
    return Downloader(fetcher, manifest, listener=listener).run(datasets)
