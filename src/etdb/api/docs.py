"""API documentation pages that work offline: ``/api/docs`` (Swagger UI), ``/api/redoc``.

FastAPI's built-in pages load Swagger UI / ReDoc from a CDN; etdb must work on a machine with
no Internet access (a lab's intranet, a demo laptop), so the assets are served from the
``fastapi-offline`` package (MIT; Swagger UI 5 and ReDoc 2 bundles, ~3 MB), a dependency. If
that package is missing, ``/api/docs`` falls back to a self-contained HTML page listing the
endpoints from the OpenAPI document, with a link to ``/api/openapi.json``.
"""

from __future__ import annotations

import html
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/api/docs"
REDOC_URL = "/api/redoc"
STATIC_URL = "/api/docs-assets"


def asset_dir() -> Path | None:
    """The folder with swagger-ui-bundle.js, swagger-ui.css and redoc.standalone.js, if any."""
    try:
        folder = Path(str(resources.files("fastapi_offline") / "static"))
    except ModuleNotFoundError:
        return None
    return folder if (folder / "swagger-ui-bundle.js").is_file() else None


def install(app: FastAPI) -> None:
    assets = asset_dir()
    openapi_url = app.openapi_url or "/api/openapi.json"
    if assets is None:
        app.add_api_route(DOCS_URL, _plain_page, include_in_schema=False)
        return
    app.mount(STATIC_URL, StaticFiles(directory=assets), name="docs-assets")

    def swagger(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - API",
            swagger_js_url=f"{root}{STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC_URL}/favicon.png",
        )

    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - API reference",
            redoc_js_url=f"{root}{STATIC_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{STATIC_URL}/favicon.png",
            with_google_fonts=False,
        )

    app.add_api_route(DOCS_URL, swagger, include_in_schema=False)
    app.add_api_route(REDOC_URL, redoc, include_in_schema=False)


def _plain_page(request: Request) -> HTMLResponse:
    """No JavaScript, no external assets: the endpoint list and where the schema is."""
    app = request.app
    spec = app.openapi()
    rows = []
    for path, ops in spec.get("paths", {}).items():
        for method, op in ops.items():
            summary = html.escape(op.get("summary", ""))
            params = ", ".join(html.escape(p["name"]) for p in op.get("parameters", []))
            rows.append(
                f"<tr><td>{method.upper()}</td><td><code>{html.escape(path)}</code></td>"
                f"<td>{summary}</td><td>{params}</td></tr>"
            )
    url = html.escape(app.openapi_url or "")
    page = (
        f"<!doctype html><meta charset=utf-8><title>{html.escape(app.title)} API</title>"
        "<style>body{font-family:sans-serif;margin:2em}td{padding:.2em .8em;"
        "border-bottom:1px solid #ddd;vertical-align:top}</style>"
        f"<h1>{html.escape(app.title)} API</h1>"
        f'<p>Machine-readable description: <a href="{url}">{url}</a> (OpenAPI 3.1).</p>'
        "<table><tr><th>Method</th><th>Path</th><th>What</th><th>Parameters</th></tr>"
        + "".join(rows)
        + "</table>"
    )
    return HTMLResponse(page)
