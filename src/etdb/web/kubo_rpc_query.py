"""The query string of a kubo RPC call, read as kubo's go-ipfs-cmds reads it.

``arg`` (repeatable) holds the command's arguments; every other key is an option, by its name
or one of its short aliases (``a`` for ``archive``...). Values are checked as Go parses them
(``strconv.ParseBool``, ``strconv.ParseInt`` with base prefixes and underscores, an empty bool
meaning true) and a bad one is kubo's 400 in plain text, with kubo's wording, so a client sees
the error it would see from kubo. Options nobody declared are ignored, as kubo ignores them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["COMMANDS", "Command", "Option", "Query", "QueryError", "parse_query"]

_TRUE = frozenset({"", "1", "t", "T", "TRUE", "true", "True"})  # "" is kubo's "flag given"
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
_BITS = {"int": 32, "int64": 64}
_DIGITS = {2: "01_", 8: "01234567_", 10: "0123456789_", 16: "0123456789abcdefABCDEF_"}
#: Encodings go-ipfs-cmds knows; answering in one we do not make is the command's business.
ENCODINGS = frozenset({"json", "text", "textnl", "xml"})


class QueryError(Exception):
    """A request kubo refuses before running the command: 400 (or 404), plain text."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Option:
    names: tuple[str, ...]  # canonical name first
    kind: str = "bool"  # bool | int | int64 | string
    default: Any = None


@dataclass(frozen=True)
class Command:
    argument: str | None  # the required argument's name (None: takes none)
    options: tuple[Option, ...] = ()


@dataclass
class Query:
    args: list[str]
    options: dict[str, Any]  # canonical name -> value (defaults filled in)
    given: set[str] = field(default_factory=set)  # canonical names the request set

    def __getitem__(self, name: str) -> Any:
        return self.options.get(name)


_GLOBAL = (
    Option(("encoding", "enc"), "string", "json"),
    Option(("stream-channels",)),
)
_PROGRESS = Option(("progress", "p"))

#: The read-only subset served, with kubo v0.43.1's options (core/commands/*.go).
COMMANDS: dict[str, Command] = {
    "get": Command(
        "ipfs-path",
        (
            Option(("output", "o"), "string"),
            Option(("archive", "a")),
            Option(("compress", "C")),
            Option(("compression-level", "l"), "int"),
            _PROGRESS,
        ),
    ),
    "cat": Command(
        "ipfs-path", (Option(("offset", "o"), "int64"), Option(("length", "l"), "int64"), _PROGRESS)
    ),
    "ls": Command(
        "ipfs-path",
        (
            Option(("headers", "v")),
            Option(("resolve-type",), default=True),
            Option(("size",), default=True),
            Option(("stream", "s")),
            Option(("long", "l")),
            Option(("human", "H")),
            Option(("sort-size", "S")),
        ),
    ),
    "version": Command(
        None, (Option(("number", "n")), Option(("commit",)), Option(("repo",)), Option(("all",)))
    ),
}


def parse_query(command: Command, items: Sequence[tuple[str, str]]) -> Query:
    """The arguments and options of ``items`` (the query string's pairs, in order)."""
    values: dict[str, list[str]] = {}
    args: list[str] = []
    known = {name: opt for opt in (*_GLOBAL, *command.options) for name in opt.names}
    for key, value in items:
        if key == "arg":
            args.append(value)
        elif key in known:
            values.setdefault(known[key].names[0], []).append(value)
    query = Query(args, {opt.names[0]: opt.default for opt in known.values()})
    for name, given in values.items():
        if len(given) > 1:
            shown = "[" + " ".join(given) + "]"
            raise QueryError(f"expected key {name} to have only a single value, received {shown}")
        query.options[name] = _convert(known[name], given[0])
        query.given.add(name)
    if query["encoding"] not in ENCODINGS:
        raise QueryError(f"invalid encoding: {query['encoding']}")
    if command.argument is not None and not args:
        raise QueryError(f'argument "{command.argument}" is required')
    return query


def _convert(option: Option, text: str) -> Any:
    name = option.names[0]
    if option.kind == "string":
        return text
    if option.kind == "bool":
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    else:
        number = go_parse_int(text, _BITS[option.kind])
        if number is not None:
            return number
    shown = "empty value" if text == "" else f"value {go_quote(text)}"
    raise QueryError(f'could not convert {shown} to type "{option.kind}" (for option "-{name}")')


def go_parse_int(text: str, bits: int) -> int | None:
    """Go's ``strconv.ParseInt(text, 0, bits)``: an optional sign, then decimal, ``0x`` hex,
    ``0o``/``0`` octal or ``0b`` binary, ``_`` only between digits; None if invalid or out of
    range (Python's ``int`` would also take spaces, Unicode digits and ``0``-led decimals)."""
    sign, body = (-1, text[1:]) if text.startswith("-") else (1, text.removeprefix("+"))
    base, digits, prefixed = 10, body, False
    if body[:2].lower() in ("0x", "0o", "0b"):
        base, digits, prefixed = {"x": 16, "o": 8, "b": 2}[body[1].lower()], body[2:], True
    elif len(body) > 1 and body[0] == "0":
        base, digits, prefixed = 8, body[1:], True  # the leading 0 is a digit: "0_7" is fine
    bad_underscore = (
        digits.endswith("_") or "__" in digits or (digits.startswith("_") and not prefixed)
    )
    clean = digits.replace("_", "")
    if not clean or bad_underscore or any(c not in _DIGITS[base] for c in digits):
        return None
    value = sign * int(clean, base)
    limit = 1 << (bits - 1)
    return value if -limit <= value < limit else None


def go_quote(text: str) -> str:
    """A value shown in a message as Go's ``%q`` would: quoted, controls escaped."""
    return json.dumps(text, ensure_ascii=False)
