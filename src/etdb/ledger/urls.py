"""Ledger URLs fit to print: passwords and API-key-looking tokens removed."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

_LONG_TOKEN = re.compile(r"[A-Za-z0-9_\-]{20,}")  # API keys in paths (Infura, Alchemy...)


def redact(url: str) -> str:
    """``url`` without its password or path tokens that look like API keys."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    user = parts.username or ""
    if _LONG_TOKEN.fullmatch(user):  # some providers take the API key as the user name
        user = "***"
    netloc = (f"{user}@" if user else "") + host
    if parts.port:
        netloc += f":{parts.port}"
    path = "/".join(_LONG_TOKEN.sub("***", seg) for seg in parts.path.split("/"))
    return urlunsplit((parts.scheme, netloc, path, parts.query, ""))
