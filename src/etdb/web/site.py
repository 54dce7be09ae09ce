"""Site text the operators edit: the contact and the scientific challenges (``site.toml``).

Loaded once when the portal starts (a mistake is an error then, naming the file and key), so
pages never meet a half-valid file.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from etdb.config import Settings
from etdb.web.featured import SLUG

__all__ = ["PACKAGED_SITE", "Challenge", "Contact", "Site", "SiteError", "load_site", "site_path"]

PACKAGED_SITE = Path(__file__).with_name("site.toml")
_CONTACT_KEYS = ("name", "email", "url", "note")
_CHALLENGE_KEYS = ("slug", "title", "summary", "needs", "file_types")


class SiteError(ValueError):
    """``site.toml`` cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Contact:
    name: str
    email: str = ""
    url: str = ""
    note: str = ""


@dataclass(frozen=True)
class Challenge:
    slug: str
    title: str
    summary: str
    needs: str
    file_types: tuple[str, ...]

    @property
    def browse_href(self) -> str:
        """The datasets that have every file this challenge needs."""
        return "/browse?" + urlencode([("file_type", t) for t in self.file_types])


@dataclass(frozen=True)
class Site:
    contact: Contact
    challenges: tuple[Challenge, ...]


def site_path(settings: Settings) -> Path:
    """The site file the settings choose: ``portal_site`` (relative to the data folder), else
    the packaged one."""
    value = settings.portal_site.strip()
    return settings.resolve(value) if value else PACKAGED_SITE


def load_site(path: Path = PACKAGED_SITE) -> Site:
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SiteError(f"{path}: cannot read the site file: {exc.strerror}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SiteError(f"{path}: not valid TOML: {exc}") from None
    contact = doc.get("contact")
    if not isinstance(contact, dict):
        raise SiteError(f"{path}: key 'contact': expected a [contact] table")
    _no_unknown(f"{path}: [contact]", contact, _CONTACT_KEYS)
    where = f"{path}: [contact]"
    fields = {k: _text(where, contact, k, required=k == "name") for k in _CONTACT_KEYS}
    email, url = fields["email"], fields["url"]
    if email and ("@" not in email or any(c in email for c in " <>\"'")):
        raise SiteError(f"{where}: key 'email': not an e-mail address: {email!r}")
    if url and not url.startswith(("https://", "http://")):
        raise SiteError(f"{where}: key 'url': must start with https:// or http://")
    items = doc.get("challenge", [])
    if not isinstance(items, list):
        raise SiteError(f"{path}: key 'challenge': expected [[challenge]] tables")
    challenges = tuple(
        _challenge(f"{path}: challenge {n}", item) for n, item in enumerate(items, 1)
    )
    return Site(Contact(**fields), challenges)


def _challenge(where: str, item: Any) -> Challenge:
    if not isinstance(item, dict):
        raise SiteError(f"{where}: expected a table")
    _no_unknown(where, item, _CHALLENGE_KEYS)
    slug = _text(where, item, "slug", required=True)
    if not SLUG.fullmatch(slug):
        raise SiteError(f"{where}: key 'slug': lower-case letters, digits and hyphens only")
    types = item.get("file_types", [])
    if not isinstance(types, list) or not all(isinstance(t, str) and t.strip() for t in types):
        raise SiteError(f"{where} ({slug}): key 'file_types': expected a list of file subtypes")
    return Challenge(
        slug=slug,
        title=_text(where, item, "title", required=True),
        summary=_text(where, item, "summary", required=True),
        needs=_text(where, item, "needs", required=True),
        file_types=tuple(t.strip() for t in types),
    )


def _no_unknown(where: str, table: Mapping[str, Any], known: tuple[str, ...]) -> None:
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise SiteError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(known)})")


def _text(where: str, table: Mapping[str, Any], key: str, *, required: bool = False) -> str:
    value = table.get(key, "")
    if not isinstance(value, str):
        raise SiteError(f"{where}: key {key!r}: expected a string")
    if required and not value.strip():
        raise SiteError(f"{where}: key {key!r} is missing")
    return " ".join(value.split())
