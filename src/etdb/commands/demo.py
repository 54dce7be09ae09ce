"""`etdb demo`: synthetic datasets, published, indexed and served — one command, no setup.

It makes N realistic synthetic datasets (``etdb.demo``: MRC tilt series and reconstruction of
a phantom cell, key image, thumbnail, key movie, snapshots) under ``<data folder>/demo``,
publishes them with a demo key through the pipeline a lab uses (``etdb.publish.pipeline`` over a
folder source, ``demo/datasets/catalog.yaml``: add each folder, sync the blocks, sign, publish
exactly once; the pipeline makes each reconstruction's OME-Zarr pyramid into ``demo/media``
as for a lab, unless the ``publish_pyramids`` setting is off), indexes the configured ledger
into the catalog, prints what it did, and serves the API and portal until Ctrl-C
(``--no-serve`` stops after indexing).

Re-running is cheap and safe: datasets are generated once, and a dataset is published only if
the ledger has no record of it yet — known from the demo's own publishing journal
(``demo/journal.sqlite3``; dropped when the ledger was reset and lacks its records) and from the
catalog (records by the demo key carrying the same sid are adopted, so a lost journal never
causes duplicates).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import typer
from rich import box
from rich.table import Table

from etdb.commands._common import (
    JSON_OPTION,
    console,
    emit,
    err_console,
    errors_as_exit,
    fail,
    settings,
)
from etdb.config import Settings
from etdb.content.blockstore import FSBlockstore
from etdb.content.errors import ContentError
from etdb.ledger import Ledger, LedgerError, open_ledger
from etdb.ledger.urls import redact
from etdb.publish.journal import Journal, JournalError
from etdb.publish.keystore import PASSPHRASE_ENV, Keystore, KeystoreError
from etdb.record import PrivateKey, RecordError
from etdb.units import human_bytes

DEMO_KEY = "demo"
# The demo key signs synthetic records on a local ledger and guards nothing of value; a fixed
# passphrase keeps `make demo` non-interactive. ETDB_KEY_PASSPHRASE, when set, is used instead.
DEMO_PASSPHRASE = "etdb-demo-key"
JOURNAL = "journal.sqlite3"  # the pipeline's journal, for the demo key only
CATALOG = "catalog.yaml"  # the folder source's catalog of the demo datasets

PORT_OPTION = typer.Option(None, "--port", help="Port to serve on (setting `port`, 8780).")
HOST_OPTION = typer.Option(None, "--host", help="Address to serve on (setting `host`).")
DATASETS_OPTION = typer.Option(
    12, "--datasets", min=1, max=500, help="How many synthetic datasets to make and publish."
)
NO_SERVE_OPTION = typer.Option(False, "--no-serve", help="Stop after publishing and indexing.")
PUBLIC_OPTION = typer.Option(
    False,
    "--allow-public-ledger",
    help="Publish the synthetic records even though the configured ledger is not the embedded "
    "local:// one (they would be permanent there).",
)


def demo(
    port: int | None = PORT_OPTION,
    host: str | None = HOST_OPTION,
    datasets: int = DATASETS_OPTION,
    no_serve: bool = NO_SERVE_OPTION,
    allow_public_ledger: bool = PUBLIC_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Make synthetic datasets, publish them with a demo key, index them and serve the portal."""
    from etdb.demo import demo_samples

    cfg = settings()
    port = _port(cfg, port)
    host = host or cfg.host
    if urlsplit(cfg.ledger).scheme.lower() != "local" and not allow_public_ledger:
        fail(
            f"the configured ledger is {redact(cfg.ledger)}; the demo would write synthetic "
            "records there for good. Use the embedded ledger (ETDB_LEDGER=local://) or pass "
            "--allow-public-ledger (e.g. for a regtest node)."
        )
    if not no_serve:
        _check_port_free(host, port)  # before a minute of work, not after
    started = time.monotonic()
    with errors_as_exit(*_failures()):
        key = _demo_key(cfg.keys_path)
        samples = demo_samples(datasets)
        folders = _generate(samples, cfg.home / "demo" / "datasets")
        result = _publish_and_index(cfg, key, samples, folders)
    base = f"http://{host}:{port}/"
    result |= {
        "seconds": round(time.monotonic() - started, 1),
        "url": base if _portal_available() else f"{base}api/v1/records",
        "api": f"{base}api/v1/records",
        "api_docs": f"{base}api/docs",
        "serving": not no_serve,
    }
    emit(result, as_json, lambda: _print_summary(result))
    if not all(r["indexed"] for r in result["records"]):
        fail("some demo records are not in the catalog (see `indexed` above); check `publishers`")
    if not no_serve:
        _serve(cfg, host, port)


# -- steps ---------------------------------------------------------------------------------------


def _failures() -> tuple[type[Exception], ...]:
    """What ends the demo with a message instead of a traceback."""
    from etdb.index.indexer import IndexerError
    from etdb.publish.dataset import DatasetError
    from etdb.publish.media import MediaError
    from etdb.publish.pipeline import PublishError
    from etdb.publish.source import SourceError

    return (ContentError, RecordError, KeystoreError, LedgerError, IndexerError, DatasetError,
            MediaError, JournalError, PublishError, SourceError, OSError, ValueError)  # fmt: skip


def _port(cfg: Settings, port: int | None) -> int:
    if port is None:
        try:
            port = int(cfg.port)
        except ValueError:
            fail(f"the port setting {cfg.port!r} is not a number")
    if not 0 < port <= 65535:
        fail(f"port {port} is out of range (1-65535)")
    return port


def _check_port_free(host: str, port: int) -> None:
    import socket

    try:
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        fail(f"cannot serve on {host}:{port} ({exc.strerror or exc}); choose another --port")


def _progress(message: str) -> None:
    err_console.print(f"[dim]demo:[/] {message}", highlight=False, soft_wrap=True)


def _demo_key(keys: Path) -> PrivateKey:
    store = Keystore(keys)
    passphrase = os.environ.get(PASSPHRASE_ENV) or DEMO_PASSPHRASE
    if not store.exists(DEMO_KEY):
        store.create(DEMO_KEY, passphrase)
    try:
        return store.load(DEMO_KEY, passphrase)
    except KeystoreError as exc:
        raise KeystoreError(
            f"{exc} (the demo key was created with another passphrase: set {PASSPHRASE_ENV})"
        ) from exc


def _generate(samples: list[Any], root: Path) -> list[Path]:
    from etdb.demo import generate_dataset

    root.mkdir(parents=True, exist_ok=True)
    folders = []
    for i, sample in enumerate(samples, 1):
        fresh = not (root / sample.sid).is_dir()
        folders.append(generate_dataset(sample, root))
        if fresh:
            _progress(f"made dataset {i}/{len(samples)} {sample.sid} ({sample.species.name})")
    return folders


def _publish_and_index(
    cfg: Settings, key: PrivateKey, samples: list[Any], folders: list[Path]
) -> dict[str, Any]:
    """Publish through the lab's pipeline (``etdb.publish.pipeline`` over a folder source,
    as ``etdb publish`` does), with its own journal, then index."""
    from etdb.index.catalog import open_catalog
    from etdb.index.indexer import Indexer
    from etdb.publish.events import DatasetFinished, Recovered
    from etdb.publish.pipeline import PublishConfig, Publisher
    from etdb.publish.sources.folder import FolderSource

    allowed = cfg.publisher_allow_list
    if allowed is not None and key.address not in allowed:
        _progress(f"[yellow]the demo key {key.address} is not in the `publishers` setting[/]")
    root = cfg.home / "demo"
    source_file = _write_catalog(root / "datasets" / CATALOG, samples, folders)
    ledger = open_ledger(cfg.ledger, cfg.home)
    catalog = open_catalog(cfg.catalog_url)
    store = FSBlockstore(cfg.blockstore_path)
    journal = None
    try:
        indexer = Indexer(ledger, catalog, **cfg.indexer_options())
        indexer.run()  # catch up first: the catalog guards against a lost demo journal
        journal = _open_journal(root / JOURNAL, ledger, key)
        config = PublishConfig(
            key=key,
            ledger=ledger,
            blockstore=store,
            profile=cfg.cid_profile,
            journal=journal,
            media_dir=root / "media",
            # The demo makes its key media itself, inside the dataset folders: the pipeline
            # makes only what they lack, the pyramid (into media_dir, as for a lab).
            make_media=True,
            pyramids=cfg.publish_pyramids_on,
            catalog=catalog,
            limits=cfg.record_limits,
        )
        published: set[str] = set()

        def on_event(event: Any) -> None:
            if isinstance(event, DatasetFinished | Recovered) and event.txids:
                published.add(event.sid)  # Recovered: finished what an interrupted run began
                _progress(f"published {event.sid}")

        publisher = Publisher(FolderSource(source_file), config, on_event=on_event)
        summary = publisher.run(publisher.plan(only=[s.sid for s in samples]))
        if summary.failed:
            raise ValueError("; ".join(f"{sid}: {why}" for sid, why in summary.failed))
        rows = []
        for sample, folder in zip(samples, folders, strict=True):
            entry = journal.get(sample.sid)
            if entry is None or entry.state != "published":
                raise ValueError(f"{sample.sid}: not published (see the messages above)")
            files = (entry.artifact or {}).get("storage", {}).get("files") or []
            rows.append(
                {
                    "sid": sample.sid,
                    "species": sample.species.name,
                    "title": sample.metadata["title"],
                    "microscopist": sample.metadata["microscopist"],
                    "date": time.strftime("%Y-%m-%d", time.gmtime(sample.metadata["date"])),
                    "cid": entry.cid,
                    "record": entry.record_txid,
                    "files": len(files),
                    "bytes": sum(f["fsize"] for f in files),
                    "status": "published" if sample.sid in published else "already published",
                    "folder": str(folder),
                }
            )
        _progress("indexing")
        report = indexer.run()
        for row in rows:
            row["indexed"] = catalog.get(row["record"]) is not None
        return {
            "publisher": key.address,
            "published": sum(r["status"] == "published" for r in rows),
            "records": rows,
            "indexed_height": report.height,
            "data_folder": str(cfg.home),
            "datasets_folder": str(root / "datasets"),
            "blockstore": str(cfg.blockstore_path),
            "ledger": ledger.url,
            "catalog": _printable_db_url(cfg.catalog_url),
        }
    finally:
        if journal is not None:
            journal.close()
        store.close()
        catalog.close()
        ledger.close()


def _open_journal(path: Path, ledger: Ledger, key: PrivateKey) -> Journal:
    """The demo's journal; a journal whose records the ledger lacks (the embedded ledger was
    deleted) describes nothing real any more and is started afresh: it is the demo's own."""
    try:
        journal = Journal.open(path, ledger_url=ledger.url, publisher=key.address)
    except JournalError as exc:
        _progress(f"[yellow]starting a new demo journal: {exc}[/]")
        _drop_journal(path)
        return Journal.open(path, ledger_url=ledger.url, publisher=key.address)
    if all(ledger.transaction(e.record_txid) is not None for e in journal.entries()):
        return journal
    journal.close()
    _progress("[yellow]the ledger lacks the demo journal's records: starting a new journal[/]")
    _drop_journal(path)
    return Journal.open(path, ledger_url=ledger.url, publisher=key.address)


def _drop_journal(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def _write_catalog(path: Path, samples: list[Any], folders: list[Path]) -> Path:
    """The folder source's ``catalog.yaml``: one entry per demo dataset (its metadata)."""
    import yaml

    entries = [
        {"folder": folder.name, **sample.metadata}
        for sample, folder in zip(samples, folders, strict=True)
    ]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump(entries, sort_keys=False, allow_unicode=True), "utf-8")
    os.replace(tmp, path)
    return path


def _printable_db_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# -- output and serving -----------------------------------------------------------------------


def _portal_available() -> bool:
    """Whether the app has its portal at / (else the URL to open is the API)."""
    import importlib

    try:
        return callable(getattr(importlib.import_module("etdb.web"), "install", None))
    except ImportError:
        return False


def _print_summary(result: dict[str, Any]) -> None:
    table = Table(
        title=f"etdb demo: {len(result['records'])} synthetic datasets", box=box.SIMPLE_HEAD
    )
    for column in ("sid", "species", "taken", "size", "CID (storage.location)"):
        table.add_column(column, overflow="fold")
    for r in result["records"]:
        species = f"[italic]{r['species']}[/]" + ("" if r["status"] == "published" else " *")
        table.add_row(r["sid"], species, r["date"], human_bytes(r["bytes"]), r["cid"])
    console.print(table)
    earlier = len(result["records"]) - result["published"]
    note = f" (* {earlier} published by an earlier run)" if earlier else ""
    console.print(f"published now: {result['published']}{note}; took {result['seconds']} s")
    console.print(f"publisher (demo key): {result['publisher']}")
    console.print(f"datasets: {result['datasets_folder']}", soft_wrap=True)
    console.print(f"blocks: {result['blockstore']}", soft_wrap=True)
    console.print(f"ledger: {result['ledger']}", soft_wrap=True)
    console.print(f"catalog: {result['catalog']}", soft_wrap=True)
    if result["serving"]:
        console.print(
            f"[bold]open {result['url']}[/]  (API docs: {result['api_docs']})", soft_wrap=True
        )
    else:
        console.print(f"serve them with `etdb serve`, then open {result['url']}", soft_wrap=True)


def _serve(cfg: Settings, host: str, port: int) -> None:
    from etdb.api.server import StartupError, serve

    try:
        serve(
            cfg,
            host=host,
            port=port,
            on_listen=lambda url: _progress(f"serving on {url} (Ctrl-C stops)"),
        )
    except StartupError as exc:
        fail(str(exc), 2)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
