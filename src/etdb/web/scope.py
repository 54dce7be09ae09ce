"""What the portal shows: one lab, several, or every publisher, and an optional fixed filter.

The paper foresees labs running their own front-end over the shared ledger: a portal that
shows only its own publishers' records, or only one species. Settings ``portal_publishers``
and ``portal_filter`` (``docs/configuration.md``) make a :class:`PortalScope`; every catalog
query the portal runs goes through :meth:`PortalScope.apply`, and a record outside the scope
is a 404 on the portal (the API still serves it: the scope is a view, not access control).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from etdb.config import Settings
from etdb.index.query import SearchQuery

__all__ = ["NOTHING", "PortalScope", "ScopeError"]

#: Matches no record: what an empty intersection of two "any of" lists becomes.
NOTHING = "\x00no-such-value"
#: Filters a scope may fix: the "any of" text fields, NCBI taxon ids, single/dual axis.
_TEXT = ("publisher", "species", "strain", "scope", "lab", "institution", "microscopist")
_KEYS = (*_TEXT, "taxid", "tilt_axis")


class ScopeError(ValueError):
    """The ``portal_filter`` setting cannot be used; the message names the parameter."""


@dataclass(frozen=True)
class PortalScope:
    publisher: tuple[str, ...] = ()
    species: tuple[str, ...] = ()
    strain: tuple[str, ...] = ()
    scope: tuple[str, ...] = ()
    lab: tuple[str, ...] = ()
    institution: tuple[str, ...] = ()
    microscopist: tuple[str, ...] = ()
    taxid: tuple[int, ...] = ()
    tilt_axis: int | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> PortalScope:
        values: dict[str, list[str]] = {}
        for name, value in parse_qsl(settings.portal_filter, keep_blank_values=False):
            if name not in _KEYS:
                raise ScopeError(
                    f"portal_filter: unknown parameter {name!r} (one of {', '.join(_KEYS)})"
                )
            values.setdefault(name, []).append(value.strip())
        fields: dict[str, Any] = {k: tuple(v) for k, v in values.items() if k in _TEXT}
        publishers = settings.portal_publisher_list
        if publishers:
            fields["publisher"] = _intersect(fields.get("publisher", ()), publishers)
        if "taxid" in values:
            try:
                fields["taxid"] = tuple(int(v) for v in values["taxid"])
            except ValueError:
                raise ScopeError("portal_filter: taxid must be integers") from None
        if "tilt_axis" in values:
            axis = {"1": 1, "single": 1, "2": 2, "dual": 2}.get(values["tilt_axis"][-1])
            if axis is None:
                raise ScopeError("portal_filter: tilt_axis is single (1) or dual (2)")
            fields["tilt_axis"] = axis
        return cls(**fields)

    @property
    def is_everything(self) -> bool:
        return self == PortalScope()

    def apply(self, query: SearchQuery) -> SearchQuery:
        """``query`` narrowed to the scope: fixed lists intersect with the user's choice."""
        changes: dict[str, Any] = {}
        for name in (*_TEXT, "taxid"):
            fixed = getattr(self, name)
            if fixed:
                changes[name] = _intersect(getattr(query, name), fixed)
        if self.tilt_axis is not None:
            if query.tilt_axis not in (None, self.tilt_axis):
                changes["publisher"] = (NOTHING,)  # asked for the other axis: nothing matches
            changes["tilt_axis"] = self.tilt_axis
        return dataclasses.replace(query, **changes) if changes else query

    def allows(self, record: dict[str, Any], publisher: str) -> bool:
        """Whether a record (wire-form artifact) and its publisher are inside the scope."""
        details = record.get("details") or {}
        checks: list[tuple[tuple[Any, ...], Any]] = [
            (self.publisher, publisher),
            (self.species, details.get("speciesName")),
            (self.strain, details.get("strain")),
            (self.scope, details.get("scopeName")),
            (self.lab, details.get("lab")),
            (self.institution, details.get("institution")),
            (self.microscopist, details.get("microscopist")),
            (self.taxid, details.get("NCBItaxID")),
        ]
        if any(fixed and value not in fixed for fixed, value in checks):
            return False
        return self.tilt_axis is None or details.get("tiltSingleDual", 1) == self.tilt_axis


def _intersect(chosen: tuple[Any, ...], fixed: tuple[Any, ...]) -> tuple[Any, ...]:
    if not chosen:
        return fixed
    both = tuple(v for v in chosen if v in fixed)
    return both or (NOTHING,)
