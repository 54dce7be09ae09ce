"""Headers that keep untrusted record data inert in browsers.

Everything a record holds (titles, notes, file names) is public data anyone can write to the
ledger. Templates escape it; these headers are the second wall: scripts and styles only from
our own ``/static`` (no inline script, no CDN: the portal works offline), no plugins, no
framing, forms only to us (the 3-D viewer's worker scripts alone add 'unsafe-eval': see
:data:`VIEWER_WORKER_POLICY`). Files served from ``/ipfs/`` get a stricter policy (``sandbox``): a
dataset may contain an HTML file, which must never run with the portal's origin.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "CONTENT_POLICY",
    "PORTAL_POLICY",
    "VIEWER_PATH",
    "VIEWER_POLICY",
    "VIEWER_WORKER_POLICY",
    "SecurityHeaders",
]

PORTAL_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self'; font-src 'self'; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
#: For dataset files: shown, never executed, never able to act as the portal.
CONTENT_POLICY = (
    "sandbox; default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'"
)

#: Neuroglancer (web/viewer_client.py) is served under VIEWER_PATH. Its page keeps the portal's
#: policy unchanged (found in Chromium: it needs no inline script or style, no blob: worker, no
#: foreign image; its data comes from /ipfs/ on this origin, so connect-src stays 'self').
VIEWER_PATH = "/static/neuroglancer/"
VIEWER_POLICY = PORTAL_POLICY
#: Its scripts (".js") get one more source: 'unsafe-eval'. A policy on a script's answer binds
#: only when that script starts a worker (a document's scripts run under the document's
#: policy), and Neuroglancer's chunk worker must have it: at load, the worker's chunk builds its
#: compressed-segmentation codec with ``Function(...)``; refused, the whole chunk fails and no
#: decoder (blosc, gzip, ...) is registered, so no volume is shown. 'unsafe-eval' also allows
#: the worker's WebAssembly decoders ('wasm-unsafe-eval' alone was tried: the chunk still fails).
#: The worker runs only the client's own files ('self'); no record data ever reaches it as code.
VIEWER_WORKER_POLICY = PORTAL_POLICY.replace("script-src 'self'", "script-src 'self' 'unsafe-eval'")
_COMMON = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
)


class SecurityHeaders:
    """ASGI middleware: CSP on portal pages and gateway files, nosniff everywhere."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        policy = None
        if path.startswith("/ipfs/"):
            policy = CONTENT_POLICY.encode()
        elif path.startswith(VIEWER_PATH):
            policy = (VIEWER_WORKER_POLICY if path.endswith(".js") else VIEWER_POLICY).encode()
        elif not path.startswith("/api/"):
            policy = PORTAL_POLICY.encode()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                extra = [h for h in _COMMON if h[0] not in names]
                if policy is not None and b"content-security-policy" not in names:
                    extra.append((b"content-security-policy", policy))
                if path != "/api/docs" and not path.startswith("/ipfs/"):
                    extra.append((b"x-frame-options", b"DENY"))
                message["headers"] = headers + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)
