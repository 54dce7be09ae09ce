"""What the dataset page shows of a record: metadata rows, files, key movie, snapshots.

Plain functions from a typed :class:`~etdb.record.Artifact` to plain dicts a template (and the
JSON twin) can use. Record fields are untrusted: nothing here builds markup; values are text
the templates escape, and links are built only from validated parts (an integer taxon id, a
matched EMDB code, URL-quoted content paths).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from etdb.record import Artifact, File
from etdb.record.subtypes import PYRAMID_SUBTYPE, is_pyramid
from etdb.web.gateway_http import content_type_of
from etdb.web.render import human_bytes, utc_date

__all__ = [
    "SUBTYPE_WORDS",
    "file_url",
    "files_of",
    "key_media",
    "metadata",
    "pyramid_of",
    "snapshots",
    "subtype_words",
]

#: ``storage.files[].subtype`` in words (unknown subtypes are shown as they are).
SUBTYPE_WORDS: dict[str, str] = {
    "tiltseries": "Tilt series",
    "reconstruction": "Reconstruction",
    "keymov": "Key movie",
    "keyimg": "Key image",
    "thumbnail": "Thumbnail",
    "snapshot": "Snapshot",
    "subvolume": "Subvolume",
    "segmentation": "Segmentation",
    "preview": "Preview",
    PYRAMID_SUBTYPE: "OME-Zarr pyramid",
    "other": "Other",
}
#: What a <video> element plays in current browsers (FLV, the original site's, is not).
PLAYABLE = ("video/mp4", "video/webm", "video/ogg")
NCBI_TAXONOMY = "https://www.ncbi.nlm.nih.gov/Taxonomy/Browser/wwwtax.cgi?id={}"
EMDB_ENTRY = "https://www.ebi.ac.uk/emdb/EMD-{}"
_EMDB = re.compile(r"(?:EMD[-_ ]?)?(\d{4,6})", re.IGNORECASE)


def file_url(location: str, fname: str) -> str:
    """``/ipfs/<location>/<fname>`` with every segment URL-quoted (names are record data)."""
    return f"/ipfs/{quote(location, safe='')}/{quote(fname.lstrip('/'), safe='/')}"


def _num(value: float | int | None) -> str:
    """-10 -> "-10", 1.5 -> "1.5", 22500 -> "22500" (no float noise, no trailing .0)."""
    if value is None:
        return ""
    return f"{value:g}" if isinstance(value, float) else str(value)


def _row(key: str, label: str, text: str | None, **extra: Any) -> dict[str, Any] | None:
    if text is None or not str(text).strip():
        return None
    return {"key": key, "label": label, "text": str(text).strip(), "href": None, "css": None,
            **extra}  # fmt: skip


def tilt_scheme(artifact: Artifact) -> str | None:
    """ "Single axis, -60° to 60°, step 1°, constant increment: yes" (the parts that are known)."""
    d = artifact.details
    if d is None:
        return None
    parts = []
    if d.tiltSingleDual in (1, 2):
        parts.append("Single axis" if d.tiltSingleDual == 1 else "Dual axis")
    if d.tiltMin is not None and d.tiltMax is not None:
        parts.append(f"{_num(d.tiltMin)}° to {_num(d.tiltMax)}°")
    if d.tiltStep is not None:
        parts.append(f"step {_num(d.tiltStep)}°")
    if parts:  # tiltConstant is omitted on the wire when 0, so absent means "no"
        parts.append(f"constant increment: {'yes' if d.tiltConstant == 1 else 'no'}")
    return ", ".join(parts) or None


def metadata(artifact: Artifact) -> list[dict[str, Any]]:
    """The metadata panel, in the paper's Figure 2 order: ``{key, label, text[, href, css]}``."""
    d = artifact.details
    if d is None:
        return []
    taxon = None
    if d.NCBItaxID is not None and d.NCBItaxID > 0:
        taxon = _row(
            "taxid", "NCBI taxon", str(d.NCBItaxID), href=NCBI_TAXONOMY.format(d.NCBItaxID)
        )
    emdb = None
    if d.emdb:
        match = _EMDB.fullmatch(d.emdb.strip())
        href = EMDB_ENTRY.format(match.group(1)) if match else None
        text = f"EMD-{match.group(1)}" if match else d.emdb
        emdb = _row("emdb", "EMDB", text, href=href)
    rows = [
        _row("date", "Tilt series date", utc_date(d.date)),
        _row("microscopist", "Microscopist", d.microscopist),
        _row("species", "Species", d.speciesName, css="species"),
        _row("strain", "Strain", d.strain),
        taxon,
        _row("tilt", "Tilt scheme", tilt_scheme(artifact)),
        _row("dosage", "Dose", f"{_num(d.dosage)} e⁻/Å²" if d.dosage is not None else None),
        _row("defocus", "Defocus", f"{_num(d.defocus)} µm" if d.defocus is not None else None),
        _row(
            "magnification",
            "Magnification",
            f"{d.magnification:,.0f}×" if d.magnification is not None else None,
        ),
        _row("scope", "Microscope", d.scopeName),
        _row("acquisition", "Acquisition software", artifact.software_acquisition),
        _row("processing", "Processing software", artifact.software_reconstruction),
        emdb,
        _row("lab", "Lab", d.lab),
        _row("institution", "Institution", d.institution),
        _row("sid", "Tilt series id", d.sid),
        _row("published", "Published", utc_date(artifact.timestamp)),
        _row("notes", "Notes", d.artNotes, css="notes"),
    ]
    return [r for r in rows if r is not None]


def subtype_words(subtype: str) -> str:
    """A file subtype in words, as the files table and the browse facet show it."""
    return SUBTYPE_WORDS.get(subtype.lower(), subtype or "File")


def files_of(artifact: Artifact) -> list[dict[str, Any]]:
    """The files table (and the JSON twin's ``files``): name, type in words, size, URL."""
    location = artifact.location
    out = []
    for f in artifact.files:
        if not f.fname:
            continue
        out.append(
            {
                "name": f.display_name,
                "fname": f.fname,
                "subtype": f.subtype or "",
                "type": subtype_words(f.subtype or ""),
                "folder": is_pyramid(f.subtype),  # browsed, not saved
                "size": f.fsize,
                "size_text": human_bytes(f.fsize) if f.fsize is not None else "",
                "software": f.software,
                "notes": f.fNotes,
                "content_type": f.cType or content_type_of(f.fname),
                "url": file_url(location, f.fname) if location else None,
            }
        )
    return out


def key_media(artifact: Artifact) -> dict[str, Any]:
    """``{videos: [{url, type}], poster: url|None}``: the key movie's playable encodings and
    the key image (else the thumbnail) as poster and fallback."""
    location = artifact.location
    videos = []
    poster = None
    if location:
        for f in artifact.files_of("keymov"):
            kind = (f.cType or content_type_of(f.fname or "")).split(";")[0]
            if f.fname and kind in PLAYABLE:
                videos.append({"url": file_url(location, f.fname), "type": kind})
        for subtype in ("keyimg", "thumbnail"):
            images = [f for f in artifact.files_of(subtype) if f.fname]
            if images:
                poster = file_url(location, images[0].fname or "")
                break
    return {"videos": videos, "poster": poster}


def snapshots(artifact: Artifact) -> list[dict[str, Any]]:
    """Snapshot images with their notes as captions."""
    location = artifact.location
    if not location:
        return []
    return [
        {"url": file_url(location, f.fname), "caption": f.fNotes or "", "name": f.display_name}
        for f in artifact.files_of("snapshot")
        if f.fname
    ]


def pyramid_of(artifact: Artifact) -> File | None:
    """The record's OME-Zarr pyramid: its first ``storage.files`` entry of subtype ``zarr`` (a
    folder, at ``/ipfs/<location>/<fname>/``), or None (no pyramid, or no location)."""
    if not artifact.location:
        return None
    return artifact.pyramid
