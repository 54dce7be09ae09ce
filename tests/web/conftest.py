"""The portal over a real SQLite catalog of really signed records, for the web tests.

    def test_something(portal_client):
        client, ids = portal_client()                      # DEFAULT_RECORDS
        client, ids = portal_client([{"title": "x", "species": "Vibrio cholerae"}])
        client, ids = portal_client(portal_filter="species=Vibrio cholerae")

``portal_client(records=DEFAULT_RECORDS, **settings)`` returns ``(client, ids)``: a started
``TestClient`` over ``create_app`` (every part, the portal included) and the record ids (txids)
in the order of ``records``. Each record is a dict of ``tests.index.records.make_artifact``
overrides (``title``, ``species``, ``notes``, ``files``, ``sid``...; see ``SHORTCUTS``), plus
optionally ``key``: the ``PrivateKey`` that signs it (default :data:`KEY_A`); or
``{"artifact": <signed wire artifact>}`` to index one made elsewhere as it is; ``id``: its
txid (default: a fresh one from ``tests.index.records.txid``). Records are
signed, then written through the catalog's store API as the indexer writes them. Keyword
arguments are :class:`etdb.config.Settings` fields (``portal_publishers``, ``portal_filter``,
``portal_featured``...). Each call makes its own catalog under ``tmp_path``; everything is
closed when the test ends.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from etdb.api import create_app
from etdb.config import Settings
from etdb.index.catalog import open_catalog
from etdb.record import PrivateKey
from tests.index.records import file_set, published, signed_artifact

__all__ = ["DEFAULT_RECORDS", "KEY_A", "KEY_B", "PortalClient", "make_portal"]

KEY_A = PrivateKey(bytes(31) + b"\x0a")
KEY_B = PrivateKey(bytes(31) + b"\x0b")
_FILES = ("tiltSeries", "reconstruction", "keymov", "keyimg", "thumbnail", "snapshot")

#: A small, varied catalog: several species, two publishers, the structures featured
#: categories look for (flagella, pili, magnetosomes, membranes), file types that differ.
DEFAULT_RECORDS: tuple[dict[str, Any], ...] = (
    dict(title="Vibrio cholerae O395-N1 (sheathed polar flagellum)", species="Vibrio cholerae",
         taxid=666, strain="O395-N1", sid="av2012-03-04-1", microscopist="Ada Voxelstein",
         notes="Species notes: sheathed polar flagellum; flagellar motor at the old pole.",
         date=1_330_819_200, timestamp=1_600_000_100,
         files=file_set(*_FILES, stem="av2012-03-04-1")),
    dict(title="Escherichia coli K-12 (peritrichous flagella)", species="Escherichia coli",
         taxid=562, strain="K-12", sid="bt2013-05-06-2", microscopist="Boris Tiltov",
         notes="Species notes: peritrichous flagella and type 1 pili. Cell pole: inner and "
         "outer membranes.", date=1_367_798_400, timestamp=1_600_000_200,
         files=file_set("tiltSeries", "keyimg", "thumbnail", stem="bt2013-05-06-2")),
    dict(title="Caulobacter crescentus NA1000 (stalked cell)",
         species="Caulobacter crescentus", taxid=155892, strain="NA1000",
         sid="cf2010-01-02-3", microscopist="Cleo Fiducci", tilt_axis=2,
         notes="Species notes: stalked cell; inner and outer membranes.",
         date=1_262_390_400, timestamp=1_600_000_300,
         files=file_set("tiltSeries", "reconstruction", stem="cf2010-01-02-3")),
    dict(title="Magnetospirillum magneticum AMB-1 (magnetosome chain)",
         species="Magnetospirillum magneticum", taxid=84159, strain="AMB-1",
         sid="dw2015-07-08-4", microscopist="Dario Wedgewood", key=KEY_B,
         notes="Species notes: magnetosome chain along the cell axis.",
         date=1_436_313_600, timestamp=1_600_000_400,
         files=file_set("tiltSeries", "keymov", "thumbnail", stem="dw2015-07-08-4")),
)  # fmt: skip

PortalClient = Callable[..., tuple[TestClient, list[str]]]


def make_portal(
    stack: ExitStack,
    folder: Path,
    records: Sequence[Mapping[str, Any]] = DEFAULT_RECORDS,
    **settings: Any,
) -> tuple[TestClient, list[str]]:
    """The portal over ``records`` in a new catalog under ``folder`` (closed by ``stack``)."""
    folder.mkdir(parents=True, exist_ok=True)
    catalog = open_catalog(f"sqlite:///{folder / 'catalog.sqlite3'}")
    stack.callback(catalog.close)
    ids: list[str] = []
    with catalog.transaction():
        for n, spec in enumerate(records):
            fields = dict(spec)
            key = fields.pop("key", KEY_A)
            record_id = fields.pop("id", None)
            artifact = fields.pop("artifact", None) or signed_artifact(key, **fields)
            record = published(artifact, id=record_id, height=100 + n)
            catalog.add_record(record)
            ids.append(record.id)
        catalog.set_meta("cursor", json.dumps({"height": 100 + len(records), "hashes": []}))
    home = folder / "home"
    home.mkdir(exist_ok=True)
    app = create_app(catalog, settings=Settings(home=home, **settings))
    client = stack.enter_context(TestClient(app))
    return client, ids


@pytest.fixture
def portal_client(tmp_path: Path) -> Iterator[PortalClient]:
    """A factory: ``portal_client(records=DEFAULT_RECORDS, **settings) -> (client, ids)``."""
    calls = iter(range(1_000_000))
    with ExitStack() as stack:

        def make(
            records: Sequence[Mapping[str, Any]] = DEFAULT_RECORDS, **settings: Any
        ) -> tuple[TestClient, list[str]]:
            return make_portal(stack, tmp_path / f"portal-{next(calls)}", records, **settings)

        yield make
