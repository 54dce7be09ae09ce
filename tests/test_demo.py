"""`etdb demo` runs the publish-and-verify loop end to end on embedded defaults."""

import json
from pathlib import Path

from typer.testing import CliRunner

from etdb.cli import app
from etdb.content.blockstore import FSBlockstore
from etdb.content.cid import CID
from etdb.content.unixfs import add_path
from etdb.record import decode, verify_publish

runner = CliRunner()


def test_demo_publishes_verifiable_records(etdb_home):
    result = runner.invoke(app, ["demo", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)["records"]
    assert len(rows) == 2
    store = FSBlockstore(etdb_home / "blocks", create=False)
    for row in rows:
        assert row["valid"], row
        artifact = decode(Path(row["record"]).read_text(encoding="utf-8")).artifact
        assert verify_publish(artifact).valid
        # The record's location is the CID of the dataset folder, and its blocks are stored.
        folder = etdb_home / "demo" / "datasets" / row["sid"]
        assert str(add_path(folder).cid) == artifact.location == row["cid"]
        assert store.has(CID.decode(row["cid"]))
        for f in artifact.files:
            assert (folder / f.fname).stat().st_size == f.fsize

    again = runner.invoke(app, ["demo", "--json"])
    assert again.exit_code == 0
    assert [r["cid"] for r in json.loads(again.output)["records"]] == [r["cid"] for r in rows]
