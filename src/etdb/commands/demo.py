"""`etdb demo`: the whole publish-and-verify loop on one machine, with synthetic sample data.

It makes two small synthetic datasets (an MRC tilt series and reconstruction each, plus a note),
adds each folder to the local blockstore, signs a Research-Tomogram record for it with a demo
key, writes the records to ``<data folder>/demo/records`` and verifies them back from disk —
the steps a lab's `etdb publish` and a reader's `etdb record verify` take. (Once the indexer and
portal exist, the demo serves them over these records.)
"""

from __future__ import annotations

import os
import random
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import typer
from rich.table import Table

from etdb.commands._common import JSON_OPTION, console, emit, errors_as_exit, settings
from etdb.content.blockstore import FSBlockstore
from etdb.content.errors import ContentError
from etdb.content.unixfs import Importer
from etdb.publish.keystore import Keystore, KeystoreError
from etdb.record import (
    Artifact,
    RecordError,
    decode,
    encode_publish,
    plan_parts,
    sign_artifact,
    verify_publish,
)

DEMO_KEY = "demo"
# The demo key guards nothing of value; a fixed passphrase keeps `make demo` non-interactive.
# ETDB_KEY_PASSPHRASE, when set, is used instead.
DEMO_PASSPHRASE = "etdb-demo-key"
FLO_DATA_LIMIT = 1040


@dataclass(frozen=True)
class Sample:
    sid: str
    species: str
    strain: str
    taxid: int
    microscopist: str
    date: int
    tilt: tuple[int, int, int]
    defocus: float
    dosage: float
    magnification: int
    notes: str


SAMPLES = (
    Sample(
        "demo2015-09-09-9",
        "Vibrio cholerae",
        "O395-N1",
        666,
        "Demo Microscopist",
        1441756800,
        (-60, 60, 2),
        -8,
        180,
        27500,
        "Synthetic demo data: a rod-shaped cell envelope rendered as a density shell.",
    ),
    Sample(
        "demo2014-01-14-5",
        "Sulfolobus solfataricus",
        "P2",
        273057,
        "Demo Microscopist",
        1389657600,
        (-54, 54, 3),
        -10,
        180,
        22500,
        "Synthetic demo data: a spherical archaeal cell with a pyramid-shaped inclusion.",
    ),
)


def _write_mrc(path: Path, nx: int, ny: int, sections: list[bytes], mode: int) -> None:
    """A minimal MRC2014 file: 1024-byte header, then the sections (mode 0 int8, 1 int16)."""
    nz = len(sections)
    header = bytearray(1024)
    struct.pack_into("<10i", header, 0, nx, ny, nz, mode, 0, 0, 0, nx, ny, nz)
    struct.pack_into("<3f", header, 40, float(nx), float(ny), float(nz))  # 1 Å voxels
    struct.pack_into("<3f", header, 52, 90.0, 90.0, 90.0)
    struct.pack_into("<3i", header, 64, 1, 2, 3)
    header[208:212] = b"MAP "
    header[212:216] = bytes((0x44, 0x44, 0, 0))  # little-endian machine stamp
    struct.pack_into("<i", header, 220, 1)
    header[224:304] = b"etdb demo: synthetic data".ljust(80)
    with open(path, "wb") as f:
        f.write(header)
        for section in sections:
            f.write(section)


def _make_dataset(folder: Path, sample: Sample, seed: int) -> None:
    """A synthetic cell: a density shell in a noisy volume, and its noisy 'projections'."""
    rng = random.Random(seed)
    n = 96
    raw = folder / "rawdata"
    rec = folder / "3dimage_1"
    raw.mkdir(parents=True, exist_ok=True)
    rec.mkdir(parents=True, exist_ok=True)
    slices = []
    for z in range(48):
        row = bytearray(n * n)
        for y in range(n):
            for x in range(n):
                r2 = ((x - n / 2) / 38) ** 2 + ((y - n / 2) / 22) ** 2 + ((z - 24) / 20) ** 2
                shell = 90 if 0.8 < r2 < 1.0 else 0
                row[y * n + x] = (shell + rng.randint(-20, 20)) & 0xFF
        slices.append(bytes(row))
    _write_mrc(rec / f"{sample.sid}_full.rec", n, n, slices, mode=0)
    tilts = range(sample.tilt[0], sample.tilt[1] + 1, sample.tilt[2])
    projections = [
        struct.pack(f"<{n * n}h", *(rng.randint(-300, 300) for _ in range(n * n))) for _ in tilts
    ]
    _write_mrc(raw / f"{sample.sid}.mrc", n, n, projections, mode=1)
    (folder / "README.txt").write_text(sample.notes + "\n", encoding="utf-8")


def _artifact(sample: Sample, location: str, folder: Path) -> Artifact:
    lo, hi, step = sample.tilt
    files = [
        {
            "software": "SerialEM",
            "dname": f"{sample.sid}.mrc",
            "fname": f"rawdata/{sample.sid}.mrc",
            "fsize": (folder / "rawdata" / f"{sample.sid}.mrc").stat().st_size,
            "type": "tomogram",
            "subtype": "tiltSeries",
        },
        {
            "software": "IMOD",
            "dname": f"{sample.sid}_full.rec",
            "fname": f"3dimage_1/{sample.sid}_full.rec",
            "fsize": (folder / "3dimage_1" / f"{sample.sid}_full.rec").stat().st_size,
            "type": "tomogram",
            "subtype": "reconstruction",
        },
        {
            "fname": "README.txt",
            "fsize": (folder / "README.txt").stat().st_size,
            "type": "text",
            "subtype": "other",
            "cType": "text/plain",
        },
    ]
    return Artifact.from_wire(
        {
            "type": "research",
            "subtype": "tomogram",
            "info": {
                "title": f"{sample.species} (synthetic demo)",
                "tags": "etdb,demo,tomogram,electron.tomography",
                "description": "Synthetic sample published by `etdb demo`",
            },
            "details": {
                "date": sample.date,
                "NCBItaxID": sample.taxid,
                "artNotes": f"Tilt series notes: {sample.notes}\n",
                "scopeName": "Demo Polara",
                "speciesName": sample.species,
                "strain": sample.strain,
                "tiltSingleDual": 1,
                "defocus": sample.defocus,
                "dosage": sample.dosage,
                "tiltConstant": 1,
                "tiltMin": lo,
                "tiltMax": hi,
                "tiltStep": step,
                "magnification": sample.magnification,
                "microscopist": sample.microscopist,
                "institution": "etdb demo",
                "lab": "Demo Lab",
                "sid": sample.sid,
            },
            "storage": {"network": "ipfs", "location": location, "files": files},
        }
    )


def _demo_key(home_keys: Path):
    store = Keystore(home_keys)
    passphrase = os.environ.get("ETDB_KEY_PASSPHRASE") or DEMO_PASSPHRASE
    if not store.exists(DEMO_KEY):
        store.create(DEMO_KEY, passphrase)
    return store.load(DEMO_KEY, passphrase)


def demo(as_json: bool = JSON_OPTION) -> None:
    """Publish and verify synthetic sample datasets on embedded defaults (no network needed)."""
    cfg = settings()
    root = cfg.home / "demo"
    records_dir = root / "records"
    records_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    with errors_as_exit(ContentError, RecordError, KeystoreError, OSError, ValueError):
        key = _demo_key(cfg.keys_path)
        with FSBlockstore(cfg.blockstore_path) as store:
            for seed, sample in enumerate(SAMPLES):
                folder = root / "datasets" / sample.sid
                if not (folder / "README.txt").exists():
                    _make_dataset(folder, sample, seed)
                added = Importer(cfg.cid_profile, store).add_path(folder)
                store.sync()
                signed = sign_artifact(
                    _artifact(sample, str(added.cid), folder), key, timestamp=int(time.time())
                )
                flo_data = encode_publish(signed)
                out = records_dir / f"{sample.sid}.floData"
                out.write_text(flo_data, encoding="utf-8")
                # Verify from what is on disk, as a third party would.
                check = verify_publish(decode(out.read_text(encoding="utf-8")).artifact)
                parts = (
                    1
                    if len(flo_data.encode()) <= FLO_DATA_LIMIT
                    else len(plan_parts(flo_data, address=key.address))
                )
                rows.append(
                    {
                        "sid": sample.sid,
                        "species": sample.species,
                        "cid": str(added.cid),
                        "bytes": added.filesize,
                        "record": str(out),
                        "publisher": check.address,
                        "valid": check.valid,
                        "reason": check.reason,
                        "ledger_transactions": parts,
                    }
                )

    def human() -> None:
        table = Table(title="etdb demo: published and verified", show_lines=False)
        for col in ("sid", "species", "CID (storage.location)", "bytes", "signature", "txs"):
            table.add_column(col)
        for r in rows:
            table.add_row(
                r["sid"],
                f"[italic]{r['species']}[/]",
                r["cid"],
                f"{r['bytes']:,}",
                "[green]valid[/]" if r["valid"] else f"[red]{r['reason']}[/]",
                str(r["ledger_transactions"]),
            )
        console.print(table)
        console.print(f"publisher address: {rows[0]['publisher']}")
        console.print(f"records (OIP 0.4.2 floData): {records_dir}")
        console.print("try:")
        console.print(f"  etdb record verify {rows[0]['record']}", soft_wrap=True)
        console.print(f"  etdb cat {rows[0]['cid']}/README.txt", soft_wrap=True)
        console.print(f"  etdb get {rows[0]['cid']} -o ./{rows[0]['sid']}", soft_wrap=True)

    emit({"records": rows, "data_folder": str(cfg.home)}, as_json, human)
    if not all(r["valid"] for r in rows):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
