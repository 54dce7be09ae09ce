"""Ledger URLs fit to print: passwords and API-key-looking tokens removed."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

_LONG_TOKEN = re.compile(r"[A-Za-z0-9_\-]{20,}")  # API keys in paths (Infura, Alchemy...)


def redact(url: str) -> str:
    """``url`` without its password or path tokens that look like API keys (a URL too broken
    to parse, e.g. a bad port or IPv6 host, is shown as its scheme only: it may hold one)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        scheme = url.partition(":")[0] if "://" in url else ""
        return f"{scheme}://(unparsable URL)" if scheme.isascii() and scheme else "(unparsable URL)"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    user = parts.username or ""
    if _LONG_TOKEN.fullmatch(user):  # some providers take the API key as the user name
        user = "***"
    netloc = (f"{user}@" if user else "") + host
    if port:
        netloc += f":{port}"
    path = "/".join(_LONG_TOKEN.sub("***", seg) for seg in parts.path.split("/"))
    return urlunsplit((parts.scheme, netloc, path, parts.query, ""))
