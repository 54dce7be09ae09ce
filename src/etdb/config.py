"""Where etdb keeps its state and how it is configured.

All state lives under one data folder: ``ETDB_HOME`` if set, else the platform's user data
folder. Settings come, in increasing precedence, from built-in defaults, ``config.toml`` in that
folder, and ``ETDB_*`` environment variables (``ETDB_CID_PROFILE`` overrides ``cid_profile``).
Backends are chosen by URL-style settings, never by editing code.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

import platformdirs

CONFIG_FILE_NAME = "config.toml"


class ConfigError(ValueError):
    """The configuration file or an ETDB_* variable is unusable."""


def data_home(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    home = env.get("ETDB_HOME")
    if home:
        return Path(home).expanduser()
    return Path(platformdirs.user_data_dir("etdb", appauthor=False))


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
    # Extra settings other layers read by name (kept so a newer config file is not rejected).
    extra: dict[str, str] = field(default_factory=dict)

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

    @property
    def publisher_allow_list(self) -> frozenset[str] | None:
        """None means every publisher."""
        items = {p.strip() for p in self.publishers.split(",") if p.strip()}
        return None if not items or "*" in items else frozenset(items)

    @property
    def portal_publisher_list(self) -> tuple[str, ...]:
        """The publishers the portal shows; () means all."""
        items = [p.strip() for p in self.portal_publishers.split(",") if p.strip()]
        return () if not items or "*" in items else tuple(dict.fromkeys(items))

    def resolve(self, value: str) -> Path:
        """A path setting's value as a path: ``~`` expanded, relative to the data folder."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.home / p


_KNOWN = {f.name for f in fields(Settings)} - {"home", "extra"}


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if environ is None else environ)
    home = data_home(env)
    values: dict[str, str] = {}
    extra: dict[str, str] = {}
    cfg = home / CONFIG_FILE_NAME
    if cfg.is_file():
        try:
            doc = tomllib.loads(cfg.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{cfg}: not valid TOML: {exc}") from exc
        for key, value in doc.items():
            if isinstance(value, dict):  # sections are for later layers, e.g. [ledger]
                for sub, subvalue in value.items():
                    extra[f"{key}_{sub}"] = str(subvalue)
            elif key in _KNOWN:
                values[key] = str(value)
            else:
                extra[key] = str(value)
    for name, value in env.items():
        if not name.startswith("ETDB_") or name == "ETDB_HOME":
            continue
        key = name[len("ETDB_") :].lower()
        if key in _KNOWN:
            values[key] = value
        else:
            extra[key] = value
    return Settings(home=home, extra=extra, **values)
