"""One error shape for the whole API: ``{"error": {"parameter": ..., "message": ...}}``.

Every failure a client can cause is answered with that body and a 4xx status, never a 500:
FastAPI's own validation errors (a non-integer ``limit``...) are rewritten into it so that a
client handles one format, and the offending query parameter is always named.

Messages echo what the request sent (a parameter's name, a bad value), so they are made safe
here, in one place: :func:`safe_text` writes text that breaks the text rule (NUL and other C0
controls, lone surrogates: ``record.decoding.UNSAFE_TEXT``) as visible escapes. The portal's
pages use the same function for everything they render (``web/render.py``).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from etdb.record.decoding import UNSAFE_TEXT

log = logging.getLogger("etdb.api")

#: Paths whose errors are answered in JSON; other mounts (the portal) keep their own pages.
API_PREFIX = "/api/"

# Errors are not cached for long: a 404 may become a 200 once the indexer catches up.
_ERROR_HEADERS = {"Cache-Control": "no-cache"}


class ApiError(Exception):
    """A client error: ``status`` with a message and, where one is to blame, the parameter."""

    def __init__(
        self,
        status: int,
        message: str,
        parameter: str | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.parameter = parameter
        self.extra = extra


class BadParameter(ApiError):
    """400: a query or path parameter is malformed, out of range or unknown."""

    def __init__(self, parameter: str, message: str, **extra: Any) -> None:
        super().__init__(400, message, parameter, **extra)


def _escape(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe_text(text: str) -> str:
    """``text`` with each unsafe character (:data:`UNSAFE_TEXT`) written as its escape
    (``"a\\x00b"``, ``"\\ud800"``), so no answer carries a NUL or a lone surrogate a
    request sent; other text is returned as it is (the same object)."""
    if UNSAFE_TEXT.search(text) is None:
        return text
    return UNSAFE_TEXT.sub(_escape, text)


def safe_json(value: Any) -> Any:
    """``value`` (plain JSON values) with :func:`safe_text` applied to every string, keys too."""
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, dict):
        return {safe_text(k) if isinstance(k, str) else k: safe_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [safe_json(v) for v in value]
    return value


def error_body(message: str, parameter: str | None = None, **extra: Any) -> dict[str, Any]:
    return safe_json({"error": {"parameter": parameter, "message": message, **extra}})


def error_response(
    status: int, message: str, parameter: str | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse(
        error_body(message, parameter, **extra), status_code=status, headers=_ERROR_HEADERS
    )


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.message, exc.parameter, **exc.extra)


def _validation_message(err: dict[str, Any]) -> str:
    msg = str(err.get("msg", "invalid value"))
    if err.get("type") == "missing":
        return "is required"
    return msg.removeprefix("Value error, ")


async def _validation_error(request: Request, exc: Exception) -> Response:
    """FastAPI's 422 list of errors -> our 400 naming the first bad parameter."""
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if not errors:
        return error_response(400, "invalid request")
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ()) if not isinstance(p, int)]
    # loc is ("query", "limit") or ("path", "id"); a list item adds its index (dropped).
    parameter = loc[1] if len(loc) > 1 else (loc[0] if loc else None)
    message = _validation_message(first)
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problems)"
    return error_response(400, message, parameter)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if not request.url.path.startswith(API_PREFIX):
        return await http_exception_handler(request, exc)
    response = error_response(exc.status_code, str(exc.detail))
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _unexpected(request: Request, exc: Exception) -> Response:
    # A bug or a broken catalog, not the client's fault: log it, answer without internals.
    log.exception("unhandled error on %s", request.url.path)
    return error_response(500, "internal error (logged on the server)")


HANDLERS: dict[int | type[Exception], Any] = {
    ApiError: _api_error,
    RequestValidationError: _validation_error,
    StarletteHTTPException: _http_error,
    Exception: _unexpected,
}
