"""`etdb publish`: publish a lab's datasets from its database (or a folder) to the ledger.

The command is a thin shell around :class:`etdb.publish.pipeline.Publisher`: it resolves the
source, the signing key and the stores from settings, shows the plan, asks before spending
(on a terminal only, so that a nightly cron job just runs), and draws progress from the
pipeline's events. Safety lives in the pipeline and its journal: every ledger write is
journaled before the next one, so an interrupted run is resumed, never repeated.

Exit codes (the house convention of ``etdb.commands._common``): 0 when every dataset went,
1 when something did not (datasets failed or were refused — listed —, the run could not start,
or the ledger stopped it), 2 for a command-line usage error, 130 after Ctrl-C.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import TYPE_CHECKING

import typer

from etdb.commands._common import JSON_OPTION, console, emit, err_console, fail, settings
from etdb.commands._publish_view import RunView, fee_text, human_bytes, print_plan, print_summary
from etdb.config import Settings
from etdb.content.kubo_api import KuboApi, api_url, printable_api
from etdb.ledger import LedgerError
from etdb.publish.keystore import Keystore, KeystoreError, resolve_passphrase
from etdb.publish.stand_in import StandInKey
from etdb.record.signing import PrivateKey

if TYPE_CHECKING:
    from etdb.content.blockstore import Blockstore
    from etdb.index.query import CatalogReader
    from etdb.index.store import CatalogStore
    from etdb.ledger import Ledger
    from etdb.publish.journal import Journal
    from etdb.publish.pipeline import Plan, PublishConfig
    from etdb.publish.source import Source

INTERRUPTED = 130  # 128 + SIGINT, what shells report for a Ctrl-C
#: What a dry run without any key shows as its publisher.
NEW_PUBLISHER = "(no key yet: planned as a new publisher)"

SOURCE_ARG = typer.Argument(
    None,
    help="Mapping file (.toml/.yaml), packaged mapping name (caltech) or folder of dataset "
    "folders. Default: the `publish_source` setting.",
    show_default=False,
)
DB_URL_OPTION = typer.Option(
    None, "--db-url", metavar="URL", help="Database URL overriding the mapping's own."
)
KEY_OPTION = typer.Option(
    None,
    "--key",
    metavar="NAME",
    help="Keystore key to sign with. Default: the `publish_key` setting, else the only key.",
)
DRY_RUN_OPTION = typer.Option(
    False,
    "--dry-run",
    help="Show the plan; change nothing. Needs no passphrase: the key's stored address is "
    "used, or, with no key yet, the plan of a new publisher.",
)
LIMIT_OPTION = typer.Option(
    None, "--limit", min=1, metavar="N", help="Publish at most N datasets that need a change."
)
ONLY_OPTION = typer.Option(
    None, "--only", metavar="SID", help="Only this dataset id (repeat for several)."
)
NO_MEDIA_OPTION = typer.Option(
    False,
    "--no-media",
    help="Do not generate missing key images, thumbnails, movies or pyramids (those made by "
    "earlier runs are still published).",
)
NO_FILE_METADATA_OPTION = typer.Option(
    False,
    "--no-file-metadata",
    help="Do not fill missing details (pixel size, dimensions...) from the MRC headers.",
)
YES_OPTION = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")
DATA_ROOT_OPTION = typer.Option(
    None,
    "--data-root",
    metavar="DIR",
    help="Where the dataset folders are, overriding the mapping's own root (e.g. the Caltech "
    "mapping's /services/tomography/data).",
)
IPFS_API_OPTION = typer.Option(
    None,
    "--ipfs-api",
    metavar="URL",
    help="Push each dataset's DAG, pinned, to this kubo node's RPC API before its record is "
    "written (http://127.0.0.1:5001 or /ip4/127.0.0.1/tcp/5001). Default: the `ipfs_api` "
    "setting (empty: no push). Dry runs never push.",
    show_default=False,
)
NO_INDEX_OPTION = typer.Option(
    False,
    "--no-index",
    help="Do not bring the catalog up to date with the ledger first (it is what recognises "
    "datasets already published if the journal was lost).",
)


def publish(
    source: str | None = SOURCE_ARG,
    db_url: str | None = DB_URL_OPTION,
    key_name: str | None = KEY_OPTION,
    dry_run: bool = DRY_RUN_OPTION,
    limit: int | None = LIMIT_OPTION,
    only: list[str] | None = ONLY_OPTION,
    no_media: bool = NO_MEDIA_OPTION,
    no_file_metadata: bool = NO_FILE_METADATA_OPTION,
    yes: bool = YES_OPTION,
    data_root: Path | None = DATA_ROOT_OPTION,
    no_index: bool = NO_INDEX_OPTION,
    ipfs_api: str | None = IPFS_API_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Publish new and changed datasets of a lab source: add, sign, write to the ledger."""
    from etdb.publish.pipeline import Publisher, PublishError

    cfg = settings()
    spec = source or cfg.publish_source
    if not spec:
        fail("no source: give SOURCE or set `publish_source` (ETDB_PUBLISH_SOURCE)")
    kubo_url = kubo_api_url(ipfs_api, cfg)
    view = RunView(enabled=err_console.is_terminal)
    try:
        opened = _opened(
            cfg, spec, db_url, key_name, dry_run=dry_run, data_root=data_root, index=not no_index,
            kubo_url=kubo_url,
        )  # fmt: skip
        with opened as (src, stores):
            config = stores.config(cfg, no_media=no_media, no_file_metadata=no_file_metadata)
            publisher = Publisher(
                src,
                config,
                on_event=view.handle,
                chain_wait=cfg.publish_chain_wait_seconds,
                publisher=stores.publisher,
            )
            plan = publisher.plan(only=only or None, limit=limit)
            # A typo must not look like "nothing to do" (with --limit, the plan stops early).
            unknown = sorted(set(only or ()) - {d.sid for d in plan.datasets})
            if unknown and limit is None:
                fail(f"--only: the source lists no dataset {', '.join(unknown)}")
            about = {
                "source": src.name,
                "publisher": publisher.publisher if stores.has_key else NEW_PUBLISHER,
                "ledger": config.ledger.url,  # printable: no password
                "ipfs_api": printable_api(kubo_url) if kubo_url else None,
            }
            if dry_run:
                emit({"dry_run": True, **about, "plan": plan.to_json()}, as_json,
                     lambda: print_plan(plan, about, full=True))  # fmt: skip
                return
            if not as_json:
                print_plan(plan, about, full=False)
            if len(plan.actionable) == 0 and plan.pending == 0:
                emit({"dry_run": False, **about, "plan": plan.to_json(), "summary": None},
                     as_json, lambda: console.print("Nothing to publish."))  # fmt: skip
                _exit_for_problems(plan)
                return
            if not yes and _interactive() and not _confirm(plan):
                fail("nothing was published (not confirmed)")
            with view.running(plan):
                summary = publisher.run(plan)
    except KeyboardInterrupt:
        fail("interrupted; re-run to resume", INTERRUPTED)
    except PublishError as exc:
        fail(str(exc))
    except LedgerError as exc:
        fail(f"ledger: {exc or type(exc).__name__}; what was sent is journaled: re-run to resume")
    result = {"dry_run": False, **about, "plan": plan.to_json(), "summary": summary.to_json(),
              "chain_waits": view.waits}  # fmt: skip
    emit(result, as_json, lambda: print_summary(summary))
    if summary.failed:
        raise typer.Exit(1)


# -- opening what a run needs ------------------------------------------------------------------


@contextmanager
def _opened(
    cfg: Settings,
    spec: str,
    db_url: str | None,
    key_name: str | None,
    *,
    dry_run: bool,
    data_root: Path | None = None,
    index: bool = True,
    kubo_url: str | None = None,
) -> Iterator[tuple[Source, Stores]]:
    """The source and the stores a run needs, closed afterwards. Cheap checks (the source) come
    before the passphrase; whatever cannot be opened ends the command with one line, exit 1.

    A dry run creates nothing: a journal, catalog or blockstore that does not exist yet is
    empty, so it stands in with an empty one (a temporary journal, no catalog, blocks in
    memory) instead of creating the file, and does not index.

    A real run first brings the catalog up to date with the ledger (``index``): the pipeline
    adopts records the catalog holds for datasets its journal does not know, so a lost journal
    never leads to a second publication. A dry run never contacts the kubo node (``kubo_url``)."""
    from sqlalchemy.exc import SQLAlchemyError

    from etdb.content.blockstore import FSBlockstore
    from etdb.content.errors import ContentError
    from etdb.content.memstore import MemoryBlockstore
    from etdb.index.catalog import CatalogSchemaError, open_catalog
    from etdb.index.indexer import IndexerError
    from etdb.ledger import open_ledger
    from etdb.publish.journal import Journal, JournalError
    from etdb.publish.source import SourceError
    from etdb.publish.sources import open_source

    with ExitStack() as stack:
        try:
            src = open_source(spec, url=db_url, base=data_root)
        except SourceError as exc:
            fail(f"source: {exc}")
        except OSError as exc:
            fail(f"source {spec}: {exc.strerror or exc}")
        stack.callback(src.close)
        try:
            choose = _dry_run_key if dry_run else _signing_key
            key, publisher = choose(cfg, key_name)
            has_key = not dry_run or publisher is not None
            ledger = open_ledger(cfg.ledger, cfg.home)
            stack.callback(ledger.close)
            blocks_path = cfg.blockstore_path
            if dry_run and not blocks_path.is_dir():
                blockstore: Blockstore = MemoryBlockstore()
            else:
                blockstore = stack.enter_context(FSBlockstore(blocks_path))
            journal_path = cfg.publish_journal_path
            if dry_run and not journal_path.exists():
                journal_path = Path(stack.enter_context(TemporaryDirectory())) / "journal.sqlite3"
            address = publisher or key.address
            journal = Journal.open(journal_path, ledger_url=ledger.url, publisher=address)
            stack.callback(journal.close)
            kubo = None if dry_run or not kubo_url else stack.enter_context(KuboApi(kubo_url))
            catalog = None
            if not (dry_run and _missing_sqlite(cfg.catalog_url)):
                catalog = open_catalog(cfg.catalog_url, memory_index=False)
                stack.callback(catalog.close)
                if index and not dry_run:
                    _catch_up(cfg, ledger, catalog, key)
        except JournalError as exc:
            fail(f"journal: {exc}")
        except (KeystoreError, LedgerError, IndexerError, ContentError, OSError, ValueError) as exc:
            fail(str(exc) or type(exc).__name__)
        except (CatalogSchemaError, SQLAlchemyError) as exc:
            fail(f"catalog {_printable(cfg.catalog_url)}: {str(exc).splitlines()[0]}")
        try:
            yield src, Stores(key, ledger, blockstore, journal, catalog, publisher, has_key, kubo)
        except SourceError as exc:  # the source failed as a whole, mid-plan or mid-run
            fail(f"source: {exc}")


def _catch_up(cfg: Settings, ledger: Ledger, catalog: CatalogStore, key: PrivateKey) -> None:
    from etdb.index.indexer import Indexer

    allowed = cfg.publisher_allow_list
    if allowed is not None and key.address not in allowed:
        err_console.print(
            f"[yellow]warning:[/] {key.address} is not in the `publishers` setting: the catalog "
            "does not index this key's records, so it cannot guard against a lost journal"
        )
    Indexer(ledger, catalog, **cfg.indexer_options()).run()


@dataclass(frozen=True)
class Stores:
    key: PrivateKey
    ledger: Ledger
    blockstore: Blockstore
    journal: Journal
    catalog: CatalogReader | None
    publisher: str | None = None  # the address a dry run's stand-in key plans for
    has_key: bool = True  # False: a dry run with no key in the keystore at all
    kubo: KuboApi | None = None  # where datasets are pushed (never in a dry run)

    def config(self, cfg: Settings, *, no_media: bool, no_file_metadata: bool) -> PublishConfig:
        from etdb.publish.pipeline import PublishConfig

        return PublishConfig(
            key=self.key,
            ledger=self.ledger,
            blockstore=self.blockstore,
            profile=cfg.cid_profile,
            journal=self.journal,
            media_dir=cfg.publish_media_path,
            make_media=not no_media,
            pyramids=cfg.publish_pyramids_on,
            fill_from_files=not no_file_metadata,
            catalog=self.catalog,
            limits=cfg.record_limits,
            kubo=self.kubo,
        )


def kubo_api_url(option: str | None, cfg: Settings) -> str | None:
    """kubo's RPC API URL from ``--ipfs-api`` (a bad one: exit 2), else the ``ipfs_api``
    setting (checked with the settings); None: no push."""
    if option is None:
        return cfg.ipfs_api_url
    try:
        return api_url(option)
    except ValueError as exc:
        fail(f"--ipfs-api: {exc}", 2)


def _printable(db_url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(db_url).render_as_string(hide_password=True)


def _missing_sqlite(url: str) -> bool:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return parsed.get_backend_name() == "sqlite" and not (
        parsed.database and Path(parsed.database).expanduser().exists()
    )


def _signing_key(cfg: Settings, name: str | None) -> tuple[PrivateKey, None]:
    """The named key (option, then setting), else the keystore's only key; never a guess."""
    store = Keystore(cfg.keys_path)
    name = _key_name(store, cfg, name)
    if name is None:
        raise KeystoreError(
            f"no key in {store.path}: create one (etdb key new NAME) or import the lab's "
            "(etdb key import NAME)"
        )
    return store.load(name, resolve_passphrase(prompt=f"Passphrase for key {name!r}: ")), None


def _dry_run_key(cfg: Settings, name: str | None) -> tuple[PrivateKey, str | None]:
    """The key a dry run signs with, and the address it plans for: the chosen key's stored
    address (read without its passphrase; see StandInKey), or None when the keystore has no
    key (planned as a new publisher, with a throw-away key)."""
    store = Keystore(cfg.keys_path)
    chosen = _key_name(store, cfg, name)
    if chosen is None:
        return PrivateKey.generate(), None
    info = store.info(chosen)
    return StandInKey(info.address, info.network), info.address


def _key_name(store: Keystore, cfg: Settings, name: str | None) -> str | None:
    """The key to use: the option, the setting, else the only key (None: there is none)."""
    name = name or cfg.publish_key
    if not name:
        names = [info.name for info in store.list()]
        if not names:
            return None
        if len(names) > 1:
            raise KeystoreError(
                f"{len(names)} keys in {store.path} ({', '.join(names)}): choose one with "
                "--key or the `publish_key` setting"
            )
        name = names[0]
    if not store.exists(name):
        raise KeystoreError(f"no key named {name!r} in {store.path} (see: etdb key list)")
    return name


def _interactive() -> bool:
    return sys.stdin is not None and sys.stdin.isatty() and err_console.is_terminal


def _confirm(plan: Plan) -> bool:
    question = (
        f"Publish {len(plan.actionable)} datasets ({human_bytes(plan.total_bytes)}, "
        f"{plan.transactions} transactions, {fee_text(plan.fee)})?"
    )
    return typer.confirm(question, default=False, err=True)


def _exit_for_problems(plan: Plan) -> None:
    from etdb.publish.pipeline import Action

    if plan.counts().get(Action.PROBLEM, 0):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("publish")(publish)
