"""A real SQLite catalog with a small, varied dataset, and the API app over it.

The catalog is filled through its CatalogStore write API, as the indexer fills it: records
(one a two-part multipart), an edit, a deactivation, rejections, a waiting multipart part and
the indexer's cursor. Ids are chosen so that two records share the prefix ``abcdef`` (409).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from etdb.api import create_app
from etdb.config import Settings
from etdb.index.catalog import SqlCatalog, open_catalog
from etdb.index.query import Rejection
from etdb.index.store import AppliedEdit, Deactivation, PendingPart, Position
from etdb.record import PrivateKey
from tests.index.records import file_set, published, signed_artifact

KEY_A = PrivateKey(bytes(31) + b"\x01")
KEY_B = PrivateKey(bytes(31) + b"\x02")
PUB_A, PUB_B = KEY_A.address, KEY_B.address
HEIGHT = 120  # the indexed height (cursor)


def unix(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp())


def hexid(prefix: str) -> str:
    return (prefix + "0" * 64)[:64]


@dataclass(frozen=True)
class Spec:
    id: str
    key: PrivateKey
    fields: dict[str, Any]


_ALL = ("tiltSeries", "reconstruction", "keymov", "keyimg", "thumbnail")
SPECS: list[Spec] = [
    Spec(
        hexid("aaaa01"),
        KEY_A,
        dict(
            title="Caulobacter stalk",
            species="Caulobacter crescentus",
            taxid=155892,
            strain="NA1000",
            microscopist="Elitza Tocheva",
            scope="Caltech Polara",
            lab="Jensen Lab",
            institution="Caltech",
            date=unix("2010-03-05"),
            timestamp=1_500_000_100,
            tilt_axis=1,
            tilt_min=-60,
            tilt_max=60,
            tilt_step=1,
            defocus=-10,
            dosage=120,
            emdb="EMD-1234",
            sid="et2010-03-05-1",
            notes="stalk and holdfast",
            files=file_set(*_ALL, stem="et2010-03-05-1"),
        ),
    ),
    Spec(
        hexid("abcdef01"),
        KEY_A,
        dict(
            title="E. coli chemoreceptor arrays",
            species="Escherichia coli",
            taxid=562,
            strain="K-12",
            microscopist="Ariane Briegel",
            scope="Titan Krios",
            date=unix("2012-06-01"),
            timestamp=1_500_000_200,
            tilt_axis=2,
            tilt_min=-65,
            tilt_max=65,
            tilt_step=2,
            defocus=-8,
            dosage=150,
            sid="ab2012-06-01-1",
            files=file_set("tiltSeries", "keyimg", "thumbnail", stem="ab2012-06-01-1"),
        ),
    ),
    Spec(
        hexid("abcdef02"),
        KEY_B,
        dict(
            title="E. coli minicell",
            species="Escherichia coli",
            taxid=562,
            strain="MG1655",
            microscopist="Ariane Briegel",
            scope="Titan Krios",
            lab="Other Lab",
            institution="Elsewhere",
            date=unix("2013-01-20"),
            timestamp=1_500_000_300,
            tilt_axis=2,
            tilt_min=-50,
            tilt_max=50,
            tilt_step=3,
            defocus=-6,
            dosage=90,
            sid="ab2013-01-20-1",
            files=file_set("tiltSeries", "reconstruction", stem="ab2013-01-20-1"),
        ),
    ),
    Spec(  # deactivated below
        hexid("dead01"),
        KEY_A,
        dict(
            title="Vibrio flagellum",
            species="Vibrio cholerae",
            taxid=666,
            microscopist="Zhuo Li",
            date=unix("2011-02-02"),
            timestamp=1_500_000_400,
            sid="zl2011-02-02-1",
            files=file_set("tiltSeries", stem="zl2011-02-02-1"),
        ),
    ),
    Spec(  # edited below
        hexid("edf001"),
        KEY_B,
        dict(
            title="Bdellovibrio predation",
            species="Bdellovibrio bacteriovorus",
            taxid=959,
            strain="HD100",
            microscopist="Gavin Murphy",
            date=unix("2009-09-09"),
            timestamp=1_500_000_500,
            tilt_axis=1,
            sid="gm2009-09-09-1",
            files=file_set("tiltSeries", "keymov", stem="gm2009-09-09-1"),
        ),
    ),
] + [
    Spec(
        hexid(f"f1{n:04x}"),
        KEY_A if n % 2 else KEY_B,
        dict(
            title=f"Treponema series {n}",
            species="Treponema primitia",
            taxid=88058,
            strain="ZAS-2",
            microscopist="Gavin Murphy" if n % 3 else "Elitza Tocheva",
            date=unix(f"2008-0{1 + n % 9}-1{n % 10}"),
            timestamp=1_500_001_000 + n * 10,
            tilt_axis=1,
            tilt_min=-60 + n,
            tilt_max=60 - n,
            tilt_step=1 + n % 3,
            defocus=-12 + n,
            dosage=100 + n * 10,
            sid=f"tp2008-{n:02d}",
            files=file_set("tiltSeries", "thumbnail", stem=f"tp2008-{n:02d}"),
        ),
    )
    for n in range(9)
]
MULTIPART_ID = hexid("aaaa01")
MULTIPART_PART1 = hexid("cafe0001")
EDITED_ID, DEACTIVATED_ID = hexid("edf001"), hexid("dead01")
ACTIVE = len(SPECS) - 1
REJECTIONS = 7


def fill(catalog: SqlCatalog) -> None:
    with catalog.transaction():
        for i, spec in enumerate(SPECS):
            art = signed_artifact(spec.key, **spec.fields)
            txids = (spec.id, MULTIPART_PART1) if spec.id == MULTIPART_ID else ()
            catalog.add_record(published(art, id=spec.id, txids=txids, height=100 + i))
        state = catalog.record_state(EDITED_ID)
        assert state is not None
        after = json.loads(json.dumps(state.artifact))
        after["info"]["title"] = "Bdellovibrio predation (edited)"
        after["details"]["strain"] = "HD100 edited"
        catalog.apply_edit(
            AppliedEdit(
                txid=hexid("e0e0e0"),
                record_id=EDITED_ID,
                timestamp=1_500_000_900,
                patch=[{"op": "replace", "path": "/info/title", "value": after["info"]["title"]}],
                artifact_after=after,
                position=Position(115, 0, f"{115:064x}", 1_500_006_900),
            )
        )
        catalog.deactivate(Deactivation(hexid("d0d0d0"), DEACTIVATED_ID, 1_500_000_950, _pos(116)))
        for n in range(REJECTIONS):
            catalog.add_rejection(
                Rejection(hexid(f"bad{n:03x}"), 110 + n, 1, 0, "unknown", f"reason {n}", "text:x")
            )
        catalog.add_part(
            PendingPart(
                hexid("9a9a"), hexid("9a9a"), 0, 1, PUB_A, "oip-mp(0,1,...):json:{", _pos(117)
            )
        )
        catalog.set_meta("cursor", json.dumps({"height": HEIGHT, "hashes": []}))


def _pos(height: int) -> Position:
    return Position(height, 0, f"{height:064x}", 1_500_000_000 + height * 60)


@pytest.fixture(scope="session")
def catalog_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("api") / "catalog.sqlite3"
    catalog = open_catalog(f"sqlite:///{path}")
    try:
        fill(catalog)
    finally:
        catalog.close()
    return f"sqlite:///{path}"


@pytest.fixture(scope="session")
def catalog(catalog_url: str) -> Iterator[SqlCatalog]:
    cat = open_catalog(catalog_url)
    yield cat
    cat.close()


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    home: Path = tmp_path_factory.mktemp("home")
    return Settings(home=home, ledger="local://user:secret@/nowhere/ledger.sqlite3")


@pytest.fixture(scope="session")
def client(catalog: SqlCatalog, settings: Settings) -> Iterator[TestClient]:
    app = create_app(catalog, settings=settings, export_rows=5)
    with TestClient(app) as c:
        yield c
