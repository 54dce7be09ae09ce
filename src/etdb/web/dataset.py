"""``/tomogram/<id>``: one dataset (the paper's Figure 2), and its JSON twin.

``<id>`` is a txid (any of a multipart record's) or a unique prefix of at least 6 hex
characters, as the original site linked. An ambiguous prefix answers 409 with the candidates;
an unknown id, a malformed one, or a record outside the portal's scope is the 404 page.

One ``catalog.get``, one signature check and a template: no file is read to draw the page
(the slice viewer's MRC headers come from its own cache). A deactivated record is still shown,
under a banner, because links to it exist and its provenance is part of the public ledger.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from etdb.api.v1 import MIN_PREFIX
from etdb.index.query import AmbiguousId, RecordDetail
from etdb.record import Artifact, RecordError
from etdb.web import scope_of
from etdb.web.dataset_view import files_of, key_media, metadata, pyramid_of, snapshots
from etdb.web.provenance import check_signature, edit_history, provenance_json, verify_command
from etdb.web.render import JSON_SUFFIX, page, twin
from etdb.web.slices import slice_viewer

__all__ = ["MAX_CANDIDATES", "find_dataset", "router"]

router = APIRouter()

#: Candidates an ambiguous prefix lists (each is one more lookup).
MAX_CANDIDATES = 20
_HEX = frozenset("0123456789abcdefABCDEF")


@twin(router, "/tomogram/{id}")
def dataset_page(request: Request, id: str) -> Response:
    wanted = id.removesuffix(JSON_SUFFIX).lower()
    try:
        detail = find_dataset(request, wanted)
    except AmbiguousId as exc:
        return _candidates(request, wanted, exc.matches)
    return page(request, "dataset.html", _context(request, detail))


def find_dataset(request: Request, wanted: str) -> RecordDetail:
    """The record ``wanted`` (a txid or a unique prefix) names, inside the portal's scope: a
    404 otherwise, ``AmbiguousId`` for a prefix of several (the dataset page lists them)."""
    if not MIN_PREFIX <= len(wanted) <= 64 or not set(wanted) <= _HEX:
        raise HTTPException(404, f"{wanted!r} is not a dataset id (a txid or 6+ hex characters)")
    detail = request.app.state.etdb.catalog.get(wanted)
    if detail is None or not _in_scope(request, detail):
        raise HTTPException(404, f"no dataset with id {wanted!r}")
    return detail


def _in_scope(request: Request, detail: RecordDetail) -> bool:
    return scope_of(request).allows(detail.artifact, detail.summary.publisher)


def _artifact(wire: dict[str, Any]) -> Artifact:
    """The typed record; one the indexer let through but we cannot read shows as empty."""
    try:
        return Artifact.from_wire(wire)
    except RecordError:
        return Artifact()


def _context(request: Request, detail: RecordDetail) -> dict[str, Any]:
    summary, prov = detail.summary, detail.provenance
    artifact = _artifact(detail.artifact)
    signature = check_signature(detail.original, summary.publisher)
    files = files_of(artifact)
    details = artifact.details
    species = (details.speciesName or "").strip() if details else ""
    title = (artifact.info.title or "").strip() if artifact.info else ""
    permalink = f"{request.base_url}tomogram/{summary.id}"
    viewer = slice_viewer(request, detail.artifact)
    # Shown only where the browser has WebGL2 (static/dataset.js); no file is read for it.
    viewer_3d = f"/tomogram/{summary.id}/viewer" if pyramid_of(artifact) else None
    data = {
        "id": summary.id,
        "record": detail.artifact,
        "provenance": provenance_json(detail),
        "signature": signature.to_json(),
        "files": files,
        "viewer_3d": viewer_3d,
    }
    return {
        "data": data,
        "active": "browse",
        "id": summary.id,
        "species": species,
        "title": title or summary.sid or summary.id[:12],
        "description": artifact.info.description if artifact.info else None,
        "media": key_media(artifact),
        "metadata": metadata(artifact),
        "snapshots": snapshots(artifact),
        "files": files,
        "slice_viewer": viewer,
        "viewer_3d": viewer_3d,
        "signature": signature,
        "provenance": prov,
        "publisher": summary.publisher,
        "publisher_href": f"/browse?publisher={quote(summary.publisher, safe='')}",
        "edits": edit_history(prov),
        "verify_command": verify_command(detail),
        "permalink": permalink,
        "mailto": _mailto(title or species or "A tomogram", permalink),
        "location": artifact.location,
        "sid": summary.sid,
    }


def _mailto(subject: str, link: str) -> str:
    return f"mailto:?subject={quote(subject[:200], safe='')}&body={quote(link, safe='')}"


def _candidates(request: Request, prefix: str, matches: list[str]) -> Response:
    """The 409 page: each record the prefix could mean, inside the portal's scope."""
    catalog = request.app.state.etdb.catalog
    candidates = []
    for match in matches[:MAX_CANDIDATES]:
        detail = catalog.get(match)
        if detail is not None and _in_scope(request, detail):
            s = detail.summary
            candidates.append({"id": s.id, "title": s.title, "species": s.species, "sid": s.sid})
    if not candidates:
        raise HTTPException(404, f"no dataset with id {prefix!r}")
    message = f"{prefix!r} is the start of {len(matches)} dataset ids; choose one"
    data = {"error": {"status": 409, "message": message, "candidates": candidates}}
    context = {"data": data, "prefix": prefix, "candidates": candidates, "total": len(matches)}
    return page(request, "dataset_ambiguous.html", context, status=409)
