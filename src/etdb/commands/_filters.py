"""The API's record filters as command options, shared by `etdb download` and `etdb search`.

One option per filter of :data:`etdb.client.selection.FILTERS`, named as the API names it
(``date_from`` is ``--date-from``), so a command printed by the browse page runs as printed.
:func:`selection_options` adds them to a command function and hands it their values as one
mapping by API name, ready for :func:`etdb.client.selection.api_params`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import typer

from etdb.client.selection import FILTER_HELP, FILTERS
from etdb.commands._common import check_urls, settings

if TYPE_CHECKING:
    from etdb.client.api import ClientError

PANEL = "Selection (API filters)"
_MULTI = "repeat for any-of"

SERVER_OPTION: Any = typer.Option(
    None, "--server", metavar="URL", help="etdb API to select from (default: local node)."
)

#: Filters that are on/off flags rather than values.
_FLAGS = frozenset({"include_deactivated"})

#: Other spellings a filter answers to: ``--q`` is the API's name (the browse page prints it),
#: ``--query``/``-q`` what people type (and what ``etdb mirror`` took before it shared these).
_ALIASES = {"q": ("--query", "-q")}


def _parameter(name: str, repeatable: bool) -> inspect.Parameter:
    flag = "--" + name.replace("_", "-")
    if name in _FLAGS:
        option = typer.Option(False, flag, help=FILTER_HELP[name], rich_help_panel=PANEL)
        annotation: Any = bool
    else:
        text = f"{FILTER_HELP[name]}; {_MULTI}." if repeatable else FILTER_HELP[name]
        option = typer.Option(None, flag, *_ALIASES.get(name, ()), help=text, rich_help_panel=PANEL)
        annotation = list[str] | None if repeatable else str | None
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option,
                             annotation=annotation)  # fmt: skip


def selection_options(
    *, skip: frozenset[str] = frozenset()
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command function an option per API filter (but ``skip``), before its own.

    The function takes the values as its first parameter, a ``dict`` by API name; its other
    parameters stay its own options (or arguments). Its own names must not be filter names.
    """

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        own = list(inspect.signature(command, eval_str=True).parameters.values())[1:]
        names = [(n, r) for n, r in FILTERS if n not in skip]
        clash = {p.name for p in own} & {n for n, _ in names}
        if clash:
            raise TypeError(f"{command.__name__}: options named like filters: {sorted(clash)}")
        filters = [_parameter(n, r) for n, r in names]
        # Typer wants positionals (arguments) first; keyword-only parameters may follow.
        positional = [p for p in own if p.kind is not inspect.Parameter.KEYWORD_ONLY]
        keyword = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own
                   if p not in positional]  # fmt: skip

        @functools.wraps(command)
        def with_filters(*args: Any, **kwargs: Any) -> Any:
            values = {n: kwargs.pop(n) for n, _ in names}
            return command(values, *args, **kwargs)

        signature = inspect.Signature([*positional, *filters, *keyword])
        with_filters.__signature__ = signature  # type: ignore[attr-defined]
        with_filters.__annotations__ = {}  # the signature carries resolved types
        del with_filters.__wrapped__  # typer must read this signature, not the command's
        return with_filters

    return decorate


def server_url(server: str | None) -> str:
    """``--server`` or the local node's API; exit 2 naming the flag when it is no URL."""
    from etdb.client.download_request import local_server

    base = (server or local_server(settings().port_number)).rstrip("/")
    check_urls("--server", [base])
    return base


def client_error(exc: ClientError) -> str:
    """The server's refusal, led by the flag it names (the API's parameter is the flag)."""
    flag = f"--{exc.parameter.replace('_', '-')}: " if exc.parameter else ""
    return f"{flag}{exc}"
