"""Realistic Research-Tomogram records for index tests, built from the one complete
Jensen-lab record we have (rr2014-01-14-5; a copy is embedded so these helpers work without
../shared).

    make_artifact(species="Vibrio cholerae", date=..., files=file_set("tiltSeries"))
    signed_artifact(PrivateKey.generate(), title="...")      # really signed
    published(make_artifact(...), height=10)                  # a PublishedRecord for a store

Overrides use short names (``species``, ``tilt_min``, ``notes``, ``files`` ...; see
``SHORTCUTS``) or any ``details`` wire name (``speciesName``); ``None`` removes the field.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
from typing import Any

from etdb.index.store import Position, PublishedRecord
from etdb.record import Artifact, PrivateKey, sign_artifact

#: rr2014-01-14-5 (shared/conformance/oip042/etdb_tomogram_rr2014-01-14-5_oipd_record.json),
#: without its signature: make_artifact() returns an unsigned artifact.
BASE: dict[str, Any] = {
    "subtype": "tomogram",
    "details": {
        "date": 1389657600,
        "strain": "P2",
        "tiltMax": 55,
        "dosage": 180,
        "magnification": 22500,
        "tiltStep": 1,
        "scopeName": "Caltech Polara",
        "NCBItaxID": 273057,
        "lab": "Jensen Lab",
        "tiltConstant": 1,
        "defocus": -10,
        "tiltSingleDual": 1,
        "sid": "rr2014-01-14-5",
        "institution": "Caltech",
        "tiltMin": -55,
        "speciesName": "Sulfolobus solfataricus ",
        "microscopist": "Rasika Ramdasi",
        "artNotes": "Tilt series notes: STIV - infected Sulfolobus solfataricus, Sulfolobus "
        "turreted \r\nicosahedral virus, Taxonomy ID 269145, Sulfolobus solfataricus, \r\n"
        "thermophile, pyramid, intrapyramidal body, virus infection \r\n\r\n"
        "10 hour post infection\n",
    },
    "storage": {
        "files": [],  # filled from FILES below
        "location": "Qmat8i2pn4WnnMiPQcKsKJZahr1scUbuUyXjgSuCPBcsYY",
        "network": "ipfs",
    },
    "type": "research",
    "floAddress": "FTSTq8xx8yWUKJA5E3bgXLzZqqG9V6dvnr",
    "info": {
        "description": "Auto imported from etdb",
        "title": "Sulfolobus solfac.P2+STIV",
        "tags": "etdb,jensen.lab,tomogram,electron.tomography",
    },
    "timestamp": 1528156632,
}

#: The record's ten files, as published.
REAL_FILES: list[dict[str, Any]] = [
    {
        "fname": "AutoCaps/rr2014-01-14-5_slicer3727.jpg",
        "fsize": 157176,
        "subtype": "snapshot",
        "fNotes": "STIV turrets",
        "dname": "rr2014-01-14-5_slicer3727.jpg",
        "type": "tomogram",
    },
    {
        "fname": "AutoCaps/rr2014-01-14-5_slicer10483.jpg",
        "fsize": 364450,
        "subtype": "snapshot",
        "fNotes": "Baby pyramid STIV",
        "dname": "rr2014-01-14-5_slicer10483.jpg",
        "type": "tomogram",
    },
    {
        "fname": "AutoCaps/rr2014-01-14-5_slicer10560.jpg",
        "fsize": 214333,
        "subtype": "snapshot",
        "dname": "rr2014-01-14-5_slicer10560.jpg",
        "type": "tomogram",
    },
    {
        "fname": "AutoCaps/rr2014-01-14-5_slicer10561.jpg",
        "fsize": 216830,
        "subtype": "snapshot",
        "fNotes": "Sulfolobus liposomes",
        "dname": "rr2014-01-14-5_slicer10561.jpg",
        "type": "tomogram",
    },
    {
        "fname": "3dimage_37677/stiv10h3_0004_full.rec",
        "fsize": 623617024,
        "software": "Raptor",
        "subtype": "reconstruction",
        "dname": "stiv10h3_0004_full.rec",
        "type": "tomogram",
    },
    {
        "fname": "rawdata/stiv10h3_0004.mrc",
        "fsize": 3161185656,
        "software": "UCSFTomo",
        "subtype": "tiltSeries",
        "dname": "stiv10h3_0004.mrc",
        "type": "tomogram",
    },
    {
        "fname": "keyimg_rr2014-01-14-5_s.jpg",
        "fsize": 17177,
        "subtype": "thumbnail",
        "cType": "image/jpeg",
        "type": "image",
    },
    {
        "fname": "keyimg_rr2014-01-14-5.jpg",
        "fsize": 1028432,
        "subtype": "keyimg",
        "cType": "image/jpeg",
        "type": "tomogram",
    },
    {
        "fname": "keymov_rr2014-01-14-5.mp4",
        "fsize": 18321118,
        "subtype": "keymov",
        "cType": "video/mp4",
        "type": "tomogram",
    },
    {
        "fname": "keymov_rr2014-01-14-5.flv",
        "fsize": 57815879,
        "subtype": "keymov",
        "cType": "video/x-flv",
        "type": "tomogram",
    },
]
#: One file per subtype (the first of each).
FILES: dict[str, dict[str, Any]] = {}
for _f in REAL_FILES:
    FILES.setdefault(_f["subtype"], _f)
BASE["storage"]["files"] = copy.deepcopy(REAL_FILES)

SHORTCUTS: dict[str, tuple[str, ...]] = {
    "title": ("info", "title"),
    "tags": ("info", "tags"),
    "description": ("info", "description"),
    "species": ("details", "speciesName"),
    "taxid": ("details", "NCBItaxID"),
    "strain": ("details", "strain"),
    "scope": ("details", "scopeName"),
    "lab": ("details", "lab"),
    "institution": ("details", "institution"),
    "microscopist": ("details", "microscopist"),
    "tilt_axis": ("details", "tiltSingleDual"),
    "date": ("details", "date"),
    "tilt_min": ("details", "tiltMin"),
    "tilt_max": ("details", "tiltMax"),
    "tilt_step": ("details", "tiltStep"),
    "defocus": ("details", "defocus"),
    "dosage": ("details", "dosage"),
    "magnification": ("details", "magnification"),
    "emdb": ("details", "emdb"),
    "sid": ("details", "sid"),
    "notes": ("details", "artNotes"),
    "location": ("storage", "location"),
    "files": ("storage", "files"),
    "timestamp": ("timestamp",),
    "publisher": ("floAddress",),
}
_DETAILS = set(BASE["details"]) | {"emdb", "roles", "swAcquisition", "swReconstruction"}


def file_set(*subtypes: str, stem: str = "rr2014-01-14-5") -> list[dict[str, Any]]:
    """Files of these subtypes (from the real record), renamed after ``stem``."""
    out = []
    for subtype in subtypes:
        f = copy.deepcopy(FILES[subtype])
        for key in ("fname", "dname"):
            if key in f:
                f[key] = f[key].replace("rr2014-01-14-5", stem)
        out.append(f)
    return out


def make_artifact(**overrides: Any) -> dict[str, Any]:
    """An unsigned wire-form artifact: rr2014-01-14-5 with ``overrides`` applied."""
    art = copy.deepcopy(BASE)
    for name, value in overrides.items():
        path = SHORTCUTS.get(name) or (("details", name) if name in _DETAILS else None)
        if path is None:
            raise TypeError(f"make_artifact: unknown override {name!r}")
        node = art
        for part in path[:-1]:
            node = node.setdefault(part, {})
        if value is None:
            node.pop(path[-1], None)
        else:
            node[path[-1]] = copy.deepcopy(value)
    return art


def signed_artifact(key: PrivateKey, **overrides: Any) -> dict[str, Any]:
    """``make_artifact(**overrides)`` published and signed by ``key`` (its floAddress)."""
    overrides.setdefault("publisher", None)  # sign_artifact fills in the key's address
    art = Artifact.from_wire(make_artifact(**overrides))
    return sign_artifact(art, key).to_wire()


_serial = itertools.count(1)


def txid(seed: object = None) -> str:
    """A deterministic 64-hex txid for ``seed`` (a fresh one when None)."""
    text = f"etdb-test-{next(_serial) if seed is None else seed}"
    return hashlib.sha256(text.encode()).hexdigest()


def published(
    artifact: dict[str, Any],
    *,
    id: str | None = None,
    txids: tuple[str, ...] = (),
    height: int = 100,
    index: int = 0,
    publisher: str | None = None,
    signature: str | None = None,
    signature_valid: bool = True,
) -> PublishedRecord:
    """A PublishedRecord as the indexer would hand it to a store. Unsigned artifacts get a
    unique stand-in signature and identity (stores only compare identities: many tests
    store one artifact under several ids)."""
    record_id = id or txid()
    sig = signature or artifact.get("signature") or f"sig-{record_id}"
    return PublishedRecord(
        id=record_id,
        txids=txids or (record_id,),
        publisher=publisher or artifact.get("floAddress") or BASE["floAddress"],
        artifact=artifact,
        signature=sig,
        signature_valid=signature_valid,
        position=Position(height, index, f"{height:064x}", 1_500_000_000 + height * 60),
        identity=None if "signature" in artifact else f"identity-{record_id}",
    )
