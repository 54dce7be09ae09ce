"""Where etdb keeps its state and how it is configured.

All state lives under one data folder: ``ETDB_HOME`` if set (set but empty is an error, not
the default), else the platform's user data folder. Settings come, in increasing precedence,
from built-in defaults, ``config.toml`` in that folder, and ``ETDB_*`` environment variables
(``ETDB_CID_PROFILE`` overrides ``cid_profile``). Backends are chosen by URL-style settings,
never by editing code.

A key no layer reads (a typo such as ``ledgr``, in the file or after ``ETDB_``) is a
:class:`ConfigError` naming the closest setting, never silently ignored. ``ETDB_*`` variables
that are not settings (passphrases, test switches) are listed once, in :data:`OTHER_ENV_VARS`.
Values are checked when :class:`Settings` is built (port, multipart expiry, publisher
addresses), so a bad one stops every command before it does anything.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import platformdirs

from etdb.content.peers import check_peer_url
from etdb.record.limits import RecordLimits
from etdb.record.signing import NETWORKS, is_valid_address

CONFIG_FILE_NAME = "config.toml"
ENV_PREFIX = "ETDB_"
HOME_ENV = "ETDB_HOME"

#: ``ETDB_*`` environment variables that are not settings: each is read where it is used
#: (the module named), so a variable of this form is not a typo. ``ETDB_TEST_*`` are the test
#: suite's. tests/test_config.py checks that every ``ETDB_`` name in the repository is either
#: a setting or listed here.
OTHER_ENV_VARS: frozenset[str] = frozenset(
    {
        HOME_ENV,
        "ETDB_KEY_PASSPHRASE",  # publish/keystore.py
        "ETDB_SOURCE_URL",  # the packaged caltech mapping's url_env
        "ETDB_SOURCE_PASSWORD",  # the packaged caltech mapping's password_env
        "ETDB_EVM_PRIVATE_KEY",  # ledger/evm_url.py
        "ETDB_EVM_AUTH_HEADER",  # ledger/evm_url.py
        "ETDB_REQUIRE_EXTERNAL",  # tests/conftest.py, .ci/run
        "ETDB_SHARED",  # tests/conftest.py
        "ETDB_REFERENCE_CACHE",  # the reference implementations' cache (tests)
        "ETDB_UPDATE_SCREENSHOTS",  # tests/web/test_browser.py
        "ETDB_CHROMIUM",  # tests/web/browser.py
        "ETDB_CRASH_AT",  # tests/publish/outbox_crasher.py
        "ETDB_BENCH_PATHS",  # bench/api.py
        "ETDB_BENCH_HEADER",  # bench/api.py
    }
)
OTHER_ENV_PREFIXES = ("ETDB_TEST_",)

#: Settings other layers read by name from ``Settings.extra`` (the web gateway's).
EXTRA_SETTINGS: frozenset[str] = frozenset({"gateway_streams"})

#: The largest TCP port number.
MAX_PORT = 65535


class ConfigError(ValueError):
    """The configuration file or an ETDB_* variable is unusable."""


def data_home(environ: Mapping[str, str] | None = None) -> Path:
    """``ETDB_HOME``, else the platform's folder; ConfigError if it is set but empty (an
    unset variable in a script must not silently put state in the default folder)."""
    env = os.environ if environ is None else environ
    home = env.get(HOME_ENV)
    if home is None:
        return Path(platformdirs.user_data_dir("etdb", appauthor=False))
    if not home.strip():
        raise ConfigError(
            f"{HOME_ENV} is set but empty: set it to the data folder, or unset it for the default"
        )
    return Path(home).expanduser()


@dataclass(frozen=True)
class Settings:
    """Resolved settings. Paths that are relative are taken relative to ``home``."""

    home: Path
    # Content: which UnixFS import profile `etdb add` uses when none is given.
    cid_profile: str = "kubo-v1"
    blockstore: str = "blocks"
    keys: str = "keys"
    # Ledger URL (etdb.ledger.open_ledger): local:// is the embedded chain in the data folder.
    ledger: str = "local://"
    # Catalog database (SQLAlchemy URL); empty = SQLite file catalog.sqlite3 in the data folder.
    catalog: str = ""
    # Publishers the indexer accepts: "*" for all, else comma-separated FLO/chain addresses.
    publishers: str = "*"
    # Seconds an incomplete multipart may wait for its missing parts (oipd: one week).
    multipart_expiry: str = "604800"
    # `etdb serve` listens here (loopback by default: expose it deliberately).
    host: str = "127.0.0.1"
    port: str = "8780"
    # `etdb publish`: where the lab's datasets are described. A mapping file (.toml/.yaml), a
    # packaged mapping's name (e.g. "caltech"), or a folder of dataset folders; empty = none
    # (the command then needs a SOURCE argument).
    publish_source: str = ""
    # Keystore name of the signing key; empty = the only key, if there is exactly one (a choice
    # between several keys is never guessed).
    publish_key: str = ""
    # What the publisher sent and where it stopped (re-runs resume from it; keep it backed up).
    publish_journal: str = "publish/journal.sqlite3"
    # Generated key images, thumbnails and movies: never written into the lab's folders.
    publish_media: str = "publish/media"
    # Whether `etdb publish` makes each reconstruction's OME-Zarr pyramid (into publish_media)
    # and lists it in the record: true or false.
    publish_pyramids: str = "true"
    # `etdb publish` pushes each dataset's DAG, pinned, to this kubo node's RPC API before its
    # record goes to the ledger: an http(s) URL or kubo's multiaddr (/ip4/127.0.0.1/tcp/5001);
    # "" = no push. See docs/gateway.md, "Joining the public IPFS network with kubo".
    ipfs_api: str = ""
    # Seconds `etdb publish` waits for a block when the node takes no more unconfirmed
    # transactions in a row (Bitcoin-family chain limit, 25 by default) before it stops.
    publish_chain_wait: str = "3600"
    # `etdb serve` reads content it does not hold through these upstream peers (etdb nodes,
    # kubo gateways, any trustless gateway): comma-separated http(s) base URLs; "" = none.
    # What it fetches from them it keeps in peer_cache (never in the blockstore, whose blocks
    # are the lab's own), at most peer_cache_size bytes (a number with an optional unit: 10GiB,
    # 500MB; "0" = keep nothing). See docs/gateway.md, "Read-through".
    peers: str = ""
    peer_cache: str = "peer-cache"
    peer_cache_size: str = "10GiB"
    # The web portal (etdb.web). Which publishers it shows: "" = every publisher the catalog
    # holds (the `publishers` setting already limits what is indexed), else comma-separated
    # addresses; a fixed filter every portal page applies, as API query parameters (e.g.
    # "species=Vibrio cholerae&lab=Jensen Lab"); the featured-tomograms data file ("" = the
    # packaged one, etdb/web/featured.toml).
    portal_publishers: str = ""
    portal_filter: str = ""
    portal_featured: str = ""
    # The portal's site text (contact, challenges): "" = the packaged etdb/web/site.toml.
    portal_site: str = ""
    # Record limits (etdb.record.limits.RecordLimits, whose defaults apply where these are
    # ""): what one record may hold. The indexer rejects a record over them, `etdb publish`
    # refuses to build one; changing them asks for `etdb index --rebuild`.
    record_max_text: str = ""
    record_max_notes: str = ""
    record_max_files: str = ""
    record_max_file_size: str = ""
    record_max_total_size: str = ""
    record_max_payload_bytes: str = ""
    record_max_depth: str = ""
    # Settings other layers read by name (EXTRA_SETTINGS), e.g. the gateway's.
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Every command builds its Settings first: a bad value stops it before it does anything
        # (each of these raises ConfigError naming the setting).
        _ = (
            self.port_number,
            self.multipart_expiry_seconds,
            self.publish_chain_wait_seconds,
            self.publish_pyramids_on,
            self.ipfs_api_url,
            self.peer_cache_bytes,
            # The cache folder is used (so checked) only by a node with peers that keeps blocks.
            self.peer_urls and self.peer_cache_bytes and self.peer_cache_path,
            self.publisher_allow_list,
            self.portal_publisher_list,
            self.record_limits,
        )

    @property
    def port_number(self) -> int:
        return _integer("port", self.port, 0, MAX_PORT)

    @property
    def multipart_expiry_seconds(self) -> int:
        return _integer("multipart_expiry", self.multipart_expiry, 0, None, "a number of seconds")

    @property
    def publish_chain_wait_seconds(self) -> int:
        wait = self.publish_chain_wait
        return _integer("publish_chain_wait", wait, 0, None, "a number of seconds")

    @property
    def publish_pyramids_on(self) -> bool:
        return _boolean("publish_pyramids", self.publish_pyramids)

    @property
    def peer_urls(self) -> tuple[str, ...]:
        """The ``peers`` setting's upstream base URLs, in order, each an http(s) URL."""
        urls = [u.strip() for u in self.peers.split(",") if u.strip()]
        for url in urls:
            try:
                check_peer_url(url)
            except ValueError as exc:
                raise ConfigError(f"setting peers: {exc}") from None
        return tuple(dict.fromkeys(urls))

    def with_peers(self, urls: Sequence[str]) -> Settings:
        """These settings with ``peers`` replaced by ``urls`` (``etdb serve --peer``); ConfigError
        for a URL that is not http(s) or holds a comma (the setting's separator)."""
        for url in urls:
            if "," in url:
                raise ConfigError(f"peer {url!r}: a peer URL cannot hold a comma")
        return replace(self, peers=",".join(urls))

    @property
    def peer_cache_bytes(self) -> int:
        """``peer_cache_size`` in bytes (0: fetched blocks are not kept)."""
        return _size("peer_cache_size", self.peer_cache_size)

    @property
    def peer_cache_path(self) -> Path:
        """The peer cache's folder; ConfigError if it is, holds or lies inside the blockstore
        (the cache evicts what it holds, the blockstore's blocks are the lab's data)."""
        cache, blocks = self.resolve(self.peer_cache), self.blockstore_path
        if cache == blocks or cache.is_relative_to(blocks) or blocks.is_relative_to(cache):
            raise ConfigError(
                f"setting peer_cache={self.peer_cache!r} overlaps the blockstore ({blocks}): "
                "the cache evicts blocks, so it needs a folder of its own"
            )
        return cache

    @property
    def ipfs_api_url(self) -> str | None:
        """The ``ipfs_api`` setting as kubo's RPC API base URL (None: not set)."""
        if not self.ipfs_api.strip():
            return None
        from etdb.content.kubo_api import api_url  # (httpx) only where a push is possible

        try:
            return api_url(self.ipfs_api)
        except ValueError as exc:
            raise ConfigError(f"setting ipfs_api: {exc}") from None

    @property
    def blockstore_path(self) -> Path:
        return self.resolve(self.blockstore)

    @property
    def keys_path(self) -> Path:
        return self.resolve(self.keys)

    @property
    def publish_journal_path(self) -> Path:
        return self.resolve(self.publish_journal)

    @property
    def publish_media_path(self) -> Path:
        return self.resolve(self.publish_media)

    @property
    def catalog_url(self) -> str:
        return self.catalog or f"sqlite:///{self.home / 'catalog.sqlite3'}"

    def indexer_options(self) -> dict[str, Any]:
        """The settings that decide what an indexer keeps (``Indexer(ledger, store, **...)``):
        allow-list, multipart expiry, record limits. One place, so that ``etdb index``,
        ``etdb serve``, ``etdb publish`` and ``etdb demo`` can never index by different rules."""
        return {
            "publishers": self.publisher_allow_list,
            "multipart_expiry": self.multipart_expiry_seconds,
            "limits": self.record_limits,
        }

    @property
    def publisher_allow_list(self) -> frozenset[str] | None:
        """None means every publisher."""
        items = _addresses("publishers", self.publishers)
        return None if not items or "*" in items else frozenset(items)

    @property
    def portal_publisher_list(self) -> tuple[str, ...]:
        """The publishers the portal shows; () means all."""
        items = _addresses("portal_publishers", self.portal_publishers)
        return () if not items or "*" in items else tuple(dict.fromkeys(items))

    @property
    def record_limits(self) -> RecordLimits:
        """The ``record_max_*`` settings over RecordLimits' defaults (one setting a limit)."""
        given = {
            name: _integer(f"record_{name}", value, 1, None, "a positive whole number")
            for name in (f.name for f in fields(RecordLimits))
            if (value := getattr(self, f"record_{name}"))
        }
        try:
            return RecordLimits(**given)
        except ValueError as exc:
            raise ConfigError(f"record limits: {exc}") from None

    def resolve(self, value: str) -> Path:
        """A path setting's value as a path: ``~`` expanded, relative to the data folder."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.home / p


def _integer(name: str, value: str, low: int, high: int | None, what: str = "") -> int:
    """A whole-number setting's value; ConfigError naming the setting if it is not one."""
    what = what or (f"a whole number from {low} to {high}" if high is not None else "a number")
    try:
        number = int(value.strip(), 10)
    except ValueError:
        number = None
    if number is None or number < low or (high is not None and number > high):
        raise ConfigError(f"setting {name}={value!r} is not {what}")
    return number


_BOOLEANS = {"true": True, "yes": True, "on": True, "1": True}
_BOOLEANS |= {"false": False, "no": False, "off": False, "0": False}


def _boolean(name: str, value: str) -> bool:
    """A true/false setting's value (TOML's true/false, or yes/no, on/off, 1/0, any case)."""
    try:
        return _BOOLEANS[value.strip().lower()]
    except KeyError:
        raise ConfigError(f"setting {name}={value!r} is not true or false") from None


#: Units a size setting may carry (any case): decimal and binary multiples of a byte.
SIZE_UNITS: dict[str, int] = {
    "B": 1,
    **{f"{p}B": 1000 ** (n + 1) for n, p in enumerate("KMGT")},
    **{f"{p}iB": 1024 ** (n + 1) for n, p in enumerate("KMGT")},
}
_UNIT_OF = {unit.lower(): factor for unit, factor in SIZE_UNITS.items()}
_SIZE = re.compile(r"\s*(\d+)\s*([a-z]*)\s*", re.IGNORECASE)


def _size(name: str, value: str) -> int:
    """A size setting's value in bytes: a whole number with an optional unit (``10GiB``)."""
    found = _SIZE.fullmatch(value)
    unit = found.group(2).lower() if found else ""
    if found is None or (unit and unit not in _UNIT_OF):
        units = ", ".join(SIZE_UNITS)
        raise ConfigError(f"setting {name}={value!r} is not a size (a number, then {units})")
    return int(found.group(1)) * _UNIT_OF.get(unit, 1)


def _addresses(name: str, value: str) -> list[str]:
    """A comma-separated address list ("*" = all): an entry that is no address of a known
    network could never match a record, so it is a typo to report, not a silent filter."""
    items = [p.strip() for p in value.split(",") if p.strip()]
    for item in items:
        if item != "*" and not is_valid_address(item, NETWORKS.values()):
            raise ConfigError(f"setting {name}: {item!r} is not a FLO address (or '*')")
    return items


SETTING_NAMES: frozenset[str] = frozenset(
    {f.name for f in fields(Settings)} - {"home", "extra"} | EXTRA_SETTINGS
)


def unknown_setting(key: str, where: str) -> ConfigError:
    """The error for a key no layer reads, with the closest setting's name if there is one."""
    close = difflib.get_close_matches(key, sorted(SETTING_NAMES), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"{where}: unknown setting {key!r}{hint}")


def _is_other_env(name: str) -> bool:
    return name in OTHER_ENV_VARS or name.startswith(OTHER_ENV_PREFIXES)


def _file_values(cfg: Path) -> dict[str, str]:
    """``config.toml``'s settings; a table ``[a] b = 1`` is the setting ``a_b``."""
    try:
        doc = tomllib.loads(cfg.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{cfg}: not valid TOML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"{cfg}: cannot read: {exc.strerror or exc}") from exc
    flat: dict[str, object] = {}
    for key, value in doc.items():
        if isinstance(value, dict):
            flat.update({f"{key}_{sub}": subvalue for sub, subvalue in value.items()})
        else:
            flat[key] = value
    values: dict[str, str] = {}
    for key, value in flat.items():
        if key not in SETTING_NAMES:
            raise unknown_setting(key, str(cfg))
        if isinstance(value, dict | list):
            raise ConfigError(f"{cfg}: setting {key!r} must be a single value")
        values[key] = str(value)
    return values


def _env_values(env: Mapping[str, str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or _is_other_env(name):
            continue
        key = name[len(ENV_PREFIX) :].lower()
        if key not in SETTING_NAMES:
            raise unknown_setting(key, f"environment variable {name}")
        values[key] = value
    return values


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Defaults, then ``config.toml``, then ``ETDB_*``; ConfigError for anything unusable."""
    env = os.environ if environ is None else environ
    home = data_home(env)
    cfg = home / CONFIG_FILE_NAME
    values = _file_values(cfg) if cfg.is_file() else {}
    values.update(_env_values(env))
    extra = {k: values.pop(k) for k in EXTRA_SETTINGS & values.keys()}
    return Settings(home=home, extra=extra, **values)
