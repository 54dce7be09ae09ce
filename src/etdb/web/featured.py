"""The featured-tomogram categories: an editable TOML data file, checked when the portal starts.

The packaged ``featured.toml`` holds the 18 categories of the original ETDB-Caltech site; a
portal can show its own (setting ``portal_featured``). Each category names its example
datasets by a query in the API's parameter names (so the same words work in ``/browse``) and,
optionally, pinned record ids or dataset sids. A file with a mistake is refused as a whole with
one message naming the file, the category and the key: a portal that starts has a file that
works.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from etdb.config import Settings
from etdb.index.fields import Field, filter_fields
from etdb.index.fts import parse_text
from etdb.index.query import SearchQuery

__all__ = ["PACKAGED", "Category", "FeaturedError", "featured_path", "load_featured"]

PACKAGED = Path(__file__).with_name("featured.toml")
SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
#: The registry's equality filters (API names): what a category's query may use besides q.
_FIELDS = {f.name: f for f in filter_fields() if f.kind != "range"}
QUERY_KEYS = ("q", *_FIELDS)
_CATEGORY_KEYS = ("slug", "title", "description", "query", "pinned")
MAX_TEXT = 200  # characters of one query value, as the API allows


class FeaturedError(ValueError):
    """The featured data file cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Category:
    slug: str
    title: str
    description: str
    #: The example query in API parameter form: name -> value(s), as the file gives them.
    query: tuple[tuple[str, str], ...]
    pinned: tuple[str, ...] = ()

    @property
    def href(self) -> str:
        return f"/featured/{self.slug}"

    @property
    def browse_href(self) -> str:
        """Every matching dataset in /browse (the same parameters: the page is shareable)."""
        return "/browse?" + urlencode(self.query) if self.query else "/browse"

    def search_query(self, limit: int) -> SearchQuery:
        """The examples query: best matches first when there are words, else newest first."""
        lists: dict[str, list[str]] = {}
        for name, value in self.query:
            lists.setdefault(name, []).append(value)
        q = " ".join(lists.pop("q", [])) or None
        has_words = parse_text(q) is not None
        return SearchQuery(
            q=q,
            sort="relevance" if has_words else "published",
            order="desc",
            limit=limit,
            **{name: _typed(_FIELDS[name], values) for name, values in lists.items()},
        )

    def to_json(self) -> dict[str, Any]:
        query: dict[str, list[str]] = {}
        for name, value in self.query:
            query.setdefault(name, []).append(value)
        return {
            "slug": self.slug,
            "title": self.title,
            "description": self.description,
            "query": query,
            "pinned": list(self.pinned),
            "url": self.href,
            "browse_url": self.browse_href,
        }


def featured_path(settings: Settings) -> Path:
    """The data file the settings choose: ``portal_featured`` (relative to the data folder, as
    every path setting), else the packaged one."""
    value = settings.portal_featured.strip()
    return settings.resolve(value) if value else PACKAGED


def load_featured(path: Path) -> tuple[Category, ...]:
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise FeaturedError(f"{path}: cannot read the featured data file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise FeaturedError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise FeaturedError(f"{path}: not valid TOML: {exc}") from None
    unknown = sorted(set(doc) - {"category"})
    if unknown:
        raise FeaturedError(f"{path}: unknown key {unknown[0]!r} (expected [[category]] tables)")
    items = doc.get("category")
    if not isinstance(items, list) or not items:
        raise FeaturedError(f"{path}: key 'category': expected one or more [[category]] tables")
    categories: list[Category] = []
    seen: set[str] = set()
    for n, item in enumerate(items, 1):
        where = f"{path}: category {n}"
        if not isinstance(item, dict):
            raise FeaturedError(f"{where}: expected a table")
        category = _category(where, item)
        if category.slug in seen:
            raise FeaturedError(f"{where}: key 'slug': {category.slug!r} is used twice")
        seen.add(category.slug)
        categories.append(category)
    return tuple(categories)


def _category(where: str, item: Mapping[str, Any]) -> Category:
    unknown = sorted(set(item) - set(_CATEGORY_KEYS))
    if unknown:
        raise FeaturedError(
            f"{where}: unknown key {unknown[0]!r} (known: {', '.join(_CATEGORY_KEYS)})"
        )
    slug = _string(where, item, "slug")
    where = f"{where} ({slug})"
    if not SLUG.fullmatch(slug):
        raise FeaturedError(
            f"{where}: key 'slug': use lower-case letters, digits and single hyphens, not {slug!r}"
        )
    pinned = item.get("pinned", [])
    if not isinstance(pinned, list) or not all(isinstance(p, str) and p.strip() for p in pinned):
        raise FeaturedError(f"{where}: key 'pinned': expected a list of record ids or sids")
    return Category(
        slug=slug,
        title=_string(where, item, "title"),
        description=" ".join(_string(where, item, "description").split()),
        query=_query(where, item.get("query")),
        pinned=tuple(p.strip() for p in pinned),
    )


def _string(where: str, item: Mapping[str, Any], key: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value.strip():
        problem = "is missing" if value is None else "must be a non-empty string"
        raise FeaturedError(f"{where}: key {key!r} {problem}")
    return value.strip()


def _query(where: str, query: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(query, dict) or not query:
        problem = "is missing" if query is None else "must be a table of API parameters"
        raise FeaturedError(f"{where}: key 'query' {problem}")
    pairs: list[tuple[str, str]] = []
    for name, raw in query.items():
        key = f"query.{name}"
        if name not in QUERY_KEYS:
            raise FeaturedError(
                f"{where}: key {key!r}: unknown parameter (one of {', '.join(QUERY_KEYS)})"
            )
        values = raw if isinstance(raw, list) else [raw]
        if not values:
            raise FeaturedError(f"{where}: key {key!r}: an empty list matches nothing")
        for value in values:
            pairs.append((name, _value(where, key, name, value)))
    q = " ".join(v for n, v in pairs if n == "q")
    try:
        parse_text(q or None)
    except ValueError as exc:
        raise FeaturedError(f"{where}: key 'query.q': {str(exc).removeprefix('q: ')}") from None
    return tuple(pairs)


def _typed(f: Field, values: list[str]) -> Any:
    """A checked query value list as the ``SearchQuery`` field holds it."""
    if f.choices:
        return f.choices[values[-1]]
    if f.column == "int":
        return tuple(int(v) for v in values)
    return tuple(values) if f.many else values[-1]


def _value(where: str, key: str, name: str, value: Any) -> str:
    f = _FIELDS.get(name)
    if f is not None and f.column == "int" and not f.choices:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise FeaturedError(f"{where}: key {key!r}: {f.help} must be whole numbers")
        return str(value)
    if f is not None and f.choices and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # tilt_axis = 2 as well as "dual"
    if not isinstance(value, str) or not value.strip():
        raise FeaturedError(f"{where}: key {key!r}: expected a string or a list of strings")
    if len(value) > MAX_TEXT or "\x00" in value:
        raise FeaturedError(f"{where}: key {key!r}: longer than {MAX_TEXT} characters or has NUL")
    if f is not None and f.choices and value.strip() not in f.choices:
        raise FeaturedError(f"{where}: key {key!r}: {f.choices_text}, not {value!r}")
    return value.strip()
