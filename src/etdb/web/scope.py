"""What the portal shows: one lab, several, or every publisher, and an optional fixed filter.

The paper foresees labs running their own front-end over the shared ledger: a portal that
shows only its own publishers' records, or only one species. Settings ``portal_publishers``
and ``portal_filter`` (``docs/configuration.md``) make a :class:`PortalScope`; every catalog
query the portal runs goes through :meth:`PortalScope.apply`, and a record outside the scope
is a 404 on the portal (the API still serves it: the scope is a view, not access control).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from etdb.config import Settings
from etdb.index.fields import Field, filter_fields
from etdb.index.query import SearchQuery, filter_type

__all__ = ["NOTHING", "PortalScope", "ScopeError"]

#: Matches no record: what an empty intersection of two "any of" lists becomes.
NOTHING = "\x00no-such-value"


def _fixable() -> tuple[Field, ...]:
    """Filters a scope may fix (the registry's any-of lists and choices: publisher, species...,
    taxid, tilt_axis), in its order."""
    return tuple(
        f for f in filter_fields() if f.kind in ("text", "exact") and (f.many or f.choices)
    )


_KEYS = tuple(f.name for f in _fixable())


class ScopeError(ValueError):
    """The ``portal_filter`` setting cannot be used; the message names the parameter."""


class _Scope:
    """What a portal scope does; its fields (one per fixable filter) are the registry's."""

    @classmethod
    def from_settings(cls, settings: Settings) -> PortalScope:
        values: dict[str, list[str]] = {}
        for name, value in parse_qsl(settings.portal_filter, keep_blank_values=False):
            if name not in _KEYS:
                raise ScopeError(
                    f"portal_filter: unknown parameter {name!r} (one of {', '.join(_KEYS)})"
                )
            values.setdefault(name, []).append(value.strip())
        fields = {f.name: _setting(f, values[f.name]) for f in _fixable() if f.name in values}
        publishers = settings.portal_publisher_list
        if publishers:
            fields["publisher"] = _intersect(fields.get("publisher", ()), publishers)
        return PortalScope(**fields)

    @property
    def is_everything(self) -> bool:
        return self == PortalScope()

    def filters(self) -> tuple[str, ...]:
        """The names of the filters this scope fixes."""
        return tuple(f.name for f in _fixable() if getattr(self, f.name) not in ((), None))

    def apply(self, query: SearchQuery) -> SearchQuery:
        """``query`` narrowed to the scope: fixed lists intersect with the user's choice."""
        changes: dict[str, Any] = {}
        for f in _fixable():
            fixed, chosen = getattr(self, f.name), getattr(query, f.name)
            if f.many and fixed:
                changes[f.name] = _intersect(chosen, fixed)
            elif not f.many and fixed is not None:
                if chosen not in (None, fixed):
                    changes["publisher"] = (NOTHING,)  # asked for another choice: nothing matches
                changes[f.name] = fixed
        return dataclasses.replace(query, **changes) if changes else query

    def allows(self, record: dict[str, Any], publisher: str) -> bool:
        """Whether a record (wire-form artifact) and its publisher are inside the scope."""
        for f in _fixable():
            fixed = getattr(self, f.name)
            if fixed in ((), None):
                continue
            value = _value_at(record, f) if f.path else publisher
            if value not in (fixed if f.many else (fixed,)):
                return False
        return True


def _value_at(record: dict[str, Any], f: Field) -> Any:
    value: Any = record
    for name in f.path:
        value = value.get(name) if isinstance(value, dict) else None
    if f.choices and value is None:
        return min(f.choices.values())  # an artifact without one has the first (single axis)
    return value


def _setting(f: Field, values: list[str]) -> Any:
    """A ``portal_filter`` field's values as the scope holds them."""
    if f.choices:
        number = f.choices.get(values[-1])
        if number is None:
            raise ScopeError(f"portal_filter: {f.name} is {f.choices_text}")
        return number
    if f.column == "int":
        try:
            return tuple(int(v) for v in values)
        except ValueError:
            raise ScopeError(f"portal_filter: {f.name} must be integers") from None
    return tuple(values)


def _scope_fields() -> list[tuple[str, Any, Any]]:
    return [(f.name, *filter_type(f)) for f in _fixable()]


if TYPE_CHECKING:

    class PortalScope(_Scope):
        """A scope's fields are the registry's (typed at run time only)."""

        def __init__(self, **fields: Any) -> None: ...

        def __getattr__(self, name: str) -> Any: ...

else:
    PortalScope = dataclasses.make_dataclass(
        "PortalScope",
        [(n, t, dataclasses.field(default=d)) for n, t, d in _scope_fields()],
        bases=(_Scope,),
        frozen=True,
    )
    PortalScope.__module__ = __name__


def _intersect(chosen: tuple[Any, ...], fixed: tuple[Any, ...]) -> tuple[Any, ...]:
    if not chosen:
        return fixed
    both = tuple(v for v in chosen if v in fixed)
    return both or (NOTHING,)
