"""`etdb record check TXID` on every ledger kind: a real Litecoin Core regtest node
(``btc+http``, OP_RETURN) and a real EVM node (``evm+http``, registry logs), run as the
installed command in a subprocess. Before the ``Ledger`` protocol required ``__enter__`` and
``__exit__`` of every backend, only the local ledger could be opened with ``with`` and the
command crashed on these two.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from etdb.ledger import Ledger, open_ledger
from etdb.ledger.messages import publish_message
from etdb.record import Artifact, PrivateKey, encode_publish
from tests.conftest import skip_or_fail
from tests.index.records import signed_artifact
from tests.ledger.evm_node import node_or_skip
from tests.ledger.litecoind import litecoind_available, start_litecoind

KEY = PrivateKey(bytes([11]) * 32)
ETDB = Path(sys.executable).with_name("etdb")


@pytest.fixture(scope="module")
def litecoind(tmp_path_factory):
    reason = litecoind_available()
    if reason:
        skip_or_fail(reason)
    node = start_litecoind(tmp_path_factory.mktemp("litecoind"))
    yield node
    node.close()


@pytest.fixture(scope="module")
def ganache(tmp_path_factory):
    node = node_or_skip(tmp_path_factory.mktemp("ganache"), "ganache")
    yield node
    node.close()


def record_check(url: str, home: Path, txid: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETDB_")}
    env.update(ETDB_HOME=str(home), ETDB_LEDGER=url)
    return subprocess.run(
        [str(ETDB), "record", "check", txid, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def publish_record(url: str, title: str) -> list[str]:
    text = encode_publish(Artifact.from_wire(signed_artifact(KEY, title=title)))
    ledger = open_ledger(url)  # not ``with``: the command under test is what must use that
    try:
        return [ref.txid for ref in publish_message(ledger, text, KEY)]
    finally:
        ledger.close()


def assert_checks_out(url: str, home: Path, txids: list[str], title: str) -> None:
    done = record_check(url, home, txids[0])
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["valid"] and out["address"] == KEY.address and out["title"] == title
    assert out["txids"] == txids


def test_record_check_on_litecoind(litecoind, tmp_path):
    url = litecoind.ledger_url()
    txids = publish_record(url, "checked on litecoind")
    litecoind.mine(1)
    assert len(txids) > 1  # OP_RETURN carries 1096 bytes: the record went multipart
    assert_checks_out(url, tmp_path, txids, "checked on litecoind")


def test_record_check_on_an_evm_node(ganache, tmp_path):
    url = ganache.ledger_url(contract=ganache.deploy_registry(), confirmations=1)
    txids = publish_record(url, "checked on an EVM chain")
    assert_checks_out(url, tmp_path, txids, "checked on an EVM chain")


def test_every_backend_is_a_context_manager(litecoind, ganache, tmp_path):
    for url in (litecoind.ledger_url(), ganache.ledger_url(mode="calldata"), "local://"):
        with open_ledger(url, tmp_path) as ledger:
            assert isinstance(ledger, Ledger) and ledger.tip().height >= -1  # -1: empty
