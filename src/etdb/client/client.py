"""``etdb.Client``: search a node's catalog, read records, download or open their files.

The catalog side talks to one etdb node's ``/api/v1``; the content side fetches blocks from
any number of peers (etdb nodes or IPFS trustless gateways) through a verifying
:class:`~etdb.content.fetch.BlockFetcher`, so nothing a peer sends is used before it hashes to
its CID. Typical use::

    import etdb
    with etdb.Client("http://127.0.0.1:8780") as client:
        for hit in client.search(species="Vibrio cholerae"):
            print(hit.id, hit.title)
        rec = client.get(hit.id)
        with client.open(rec, rec.artifact.reconstruction.fname) as f:
            header = f.read(1024)       # fetches one leaf, not the 2 GB file
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from etdb.client import download as downloader
from etdb.client.api import ApiClient
from etdb.client.errors import ClientError
from etdb.client.remote_file import RemoteFile
from etdb.content.blockstore import FSBlockstore
from etdb.index.query import Provenance, RecordSummary
from etdb.record import Artifact, RecordError

if TYPE_CHECKING:
    from etdb.content.fetch import BlockFetcher

DEFAULT_SERVER = "http://127.0.0.1:8780"
PAGE_SIZE = 200  # records per API page while iterating a search


@dataclass(frozen=True, slots=True)
class Record:
    """One record as the node's catalog holds it: the current artifact, typed."""

    summary: RecordSummary
    artifact: Artifact  # after edits
    original: dict[str, Any]  # as first published, wire form
    provenance: Provenance

    @property
    def id(self) -> str:
        return self.summary.id

    @property
    def location(self) -> str:
        """The dataset folder's CID (``storage.location``), or ""."""
        return self.artifact.location


class Client:
    """A node's catalog plus verified content from peers. Use as a context manager.

    ``peers`` are the content sources (default: the server itself, whose gateway serves its
    blockstore); ``cache`` is a blockstore folder: blocks in it are never fetched, and fetched
    blocks are kept there (pass the data folder's ``blocks`` to read through a local mirror).
    """

    def __init__(
        self,
        server: str = DEFAULT_SERVER,
        peers: Sequence[str] | None = None,
        cache: str | os.PathLike[str] | FSBlockstore | None = None,
        *,
        timeout: float = 30.0,
    ) -> None:
        self.server = server.rstrip("/")
        self.peers = [p.rstrip("/") for p in peers] if peers else [self.server]
        self._api = ApiClient(self.server, timeout=timeout)
        self._timeout = timeout
        if cache is None or isinstance(cache, FSBlockstore):
            self.cache = cache
        else:
            self.cache = FSBlockstore(cache)
        self._fetcher: BlockFetcher | None = None

    # -- catalog ------------------------------------------------------------------------------

    def search(self, q: str | None = None, **filters: Any) -> Iterator[RecordSummary]:
        """Every record matching ``q`` and ``filters`` (the API's parameter names:
        ``species``, ``publisher``, ``taxid``, ``lab``, ``microscopist``, ``date_from``,
        ``file_type``...; a list means any of), following the result pages lazily
        (``limit`` sets the page size)."""
        limit = int(filters.pop("limit", PAGE_SIZE))
        for item in self._api.search(query_params(q, filters), limit=limit):
            yield summary_from_json(item)

    def count(self, q: str | None = None, **filters: Any) -> int:
        """How many records match, without listing them."""
        return self._api.page(query_params(q, filters), limit=1).total

    def get(self, id: str) -> Record:
        """The record with txid ``id`` (or a unique prefix of at least 6 hex characters)."""
        return record_from_json(self._api.get(id))

    # -- content ------------------------------------------------------------------------------

    @property
    def fetcher(self) -> BlockFetcher:
        """The verifying block fetcher over ``peers`` (made on first use)."""
        if self._fetcher is None:
            from etdb.content.fetch import BlockFetcher

            self._fetcher = BlockFetcher(
                self.peers, local=self.cache, keep=self.cache, timeout=self._timeout
            )
        return self._fetcher

    def open(self, record: Record | RecordSummary | str, fname: str) -> RemoteFile:
        """A seekable verified stream over file ``fname`` of ``record`` (a Record, a search
        hit, a record id, or a dataset folder CID). Only the leaves a read covers are fetched;
        ``mrcfile.mrcinterpreter.MrcInterpreter(iostream=f, header_only=True)`` reads a
        remote MRC header for the price of one leaf."""
        from etdb.content.filefetch import plan_file

        location = self._location(record)
        path = f"{location}/{fname.lstrip('/')}"
        plan = plan_file(self.fetcher, path)
        return RemoteFile(self.fetcher, plan, name=fname)

    def pyramid(self, record: Record | RecordSummary | str, fname: str | None = None) -> Any:
        """The record's OME-Zarr pyramid as a read-only ``zarr.Group`` (levels ``"0"``,
        ``"1"``... as in its ``multiscales`` metadata), read through the verifying fetcher.
        ``fname`` names the folder when ``record`` is a CID (a Record's is found by its files
        entry with subtype ``zarr``)."""
        from etdb.client.pyramid import open_pyramid

        if fname is None:
            if isinstance(record, str) and not _looks_like_txid(record):
                return open_pyramid(self.fetcher, record)  # a CID: the pyramid folder itself
            full = (
                record
                if isinstance(record, Record)
                else self.get(record if isinstance(record, str) else record.id)
            )
            if full.artifact.pyramid is None or not full.artifact.pyramid.fname:
                raise ClientError("the record lists no OME-Zarr pyramid (no zarr files entry)")
            fname = full.artifact.pyramid.fname
        return open_pyramid(self.fetcher, f"{self._location(record)}/{fname.strip('/')}")

    def zarr(
        self, record: Record | RecordSummary | str, level: int = 0, fname: str | None = None
    ) -> Any:
        """One level of the record's pyramid as a read-only ``zarr.Array`` (0: full
        resolution); ``array[z]`` fetches and verifies only the chunks that section crosses."""
        from etdb.client.pyramid import level_paths

        group = self.pyramid(record, fname)
        paths = level_paths(group)
        if not 0 <= level < len(paths):
            raise ClientError(f"the pyramid has levels 0 to {len(paths) - 1}, not {level}")
        return group[paths[level]]

    def download(
        self,
        records: Iterable[Record | RecordSummary | str],
        dest: str | os.PathLike[str],
        **options: Any,
    ) -> Any:
        """Download ``records`` (Records, search hits or ids) into ``dest`` with the downloader's
        guarantees (verified blocks, resumable, manifest); ``options`` are those of
        :func:`etdb.client.download.download` (``file_types``, ``layout``, ``on_event``...)."""
        ids = [r if isinstance(r, str) else r.id for r in records]
        return downloader.download_ids(self.server, self.fetcher, ids, Path(dest), **options)

    def _location(self, record: Record | RecordSummary | str) -> str:
        if isinstance(record, Record):
            location = record.location
        elif isinstance(record, RecordSummary):
            location = record.location or ""
        elif _looks_like_txid(record):
            location = self.get(record).location
        else:
            location = record  # a CID (or CID/path) given directly
        if not location:
            raise ClientError(f"record {getattr(record, 'id', record)} has no storage.location")
        return location

    # -- lifetime -----------------------------------------------------------------------------

    def close(self) -> None:
        if self._fetcher is not None:
            self._fetcher.close()
            self._fetcher = None
        if self.cache is not None:
            self.cache.sync()
        self._api.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- JSON <-> typed values ------------------------------------------------------------------


def query_params(q: str | None, filters: Mapping[str, Any]) -> list[tuple[str, str]]:
    """API query parameters as (name, value) pairs: ``None`` dropped, a list or tuple as a
    repeated parameter (any of), booleans as ``true``/``false``."""
    params: list[tuple[str, str]] = [("q", q)] if q else []
    for name, value in filters.items():
        values = value if isinstance(value, (list, tuple, set, frozenset)) else [value]
        for v in values:
            if v is None:
                continue
            params.append((name, ("true" if v else "false") if isinstance(v, bool) else str(v)))
    return params


def summary_from_json(item: Mapping[str, Any]) -> RecordSummary:
    try:
        return RecordSummary(
            id=item["id"],
            publisher=item["publisher"],
            title=item["title"],
            species=item.get("species"),
            strain=item.get("strain"),
            microscopist=item.get("microscopist"),
            lab=item.get("lab"),
            institution=item.get("institution"),
            scope=item.get("scope"),
            date=item.get("date"),
            published=item.get("published"),
            sid=item.get("sid"),
            location=item.get("location"),
            thumbnail=item.get("thumbnail"),
            file_types=tuple(item.get("file_types") or ()),
            total_bytes=int(item.get("total_bytes") or 0),
            deactivated=bool(item.get("deactivated", False)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ClientError(f"a search result lacks or mangles field {exc}") from None


def record_from_json(body: Mapping[str, Any]) -> Record:
    try:
        prov = body["provenance"]
        provenance = Provenance(
            txids=tuple(prov["txids"]),
            block_height=int(prov["block_height"]),
            block_hash=prov["block_hash"],
            block_time=int(prov["block_time"]),
            signature_valid=bool(prov["signature_valid"]),
            edits=tuple(prov.get("edits") or ()),
            deactivated=bool(prov.get("deactivated", False)),
            deactivated_by=prov.get("deactivated_by"),
        )
        return Record(
            summary=summary_from_json(body["summary"]),
            artifact=Artifact.from_wire(body["artifact"]),
            original=dict(body.get("original") or {}),
            provenance=provenance,
        )
    except (KeyError, TypeError) as exc:
        raise ClientError(f"a record lacks or mangles field {exc}") from None
    except RecordError as exc:
        raise ClientError(f"the record's artifact is invalid: {exc}") from None


def _looks_like_txid(value: str) -> bool:
    return 6 <= len(value) <= 64 and all(c in "0123456789abcdefABCDEF" for c in value)
