"""The HTTP API (``/api/v1``, oipd-compatible ``/api/v2``) and the server behind `etdb serve`.

``create_app(catalog, settings=...)`` builds the ASGI app over any catalog reader;
``serve(settings, ...)`` opens the configured catalog and ledger, runs the indexer in a
background thread and serves the app with uvicorn until interrupted.
"""

from etdb.api.app import PARTS, create_app
from etdb.api.server import serve

__all__ = ["PARTS", "create_app", "serve"]
