"""The hand-assembled registry: its bytes, its gas schedule, and what it does on real nodes
(Ganache: Shanghai rules; Hardhat: Prague rules with EIP-7623's calldata floor)."""

from __future__ import annotations

import pytest

from etdb.ledger.evm_decode import publisher_topic
from etdb.ledger.evm_registry import (
    DEPLOY_GAS,
    INIT_CODE,
    RECORD_TOPIC,
    RECORD_TOPIC_NAME,
    RUNTIME,
    assemble,
    publish_gas,
)
from tests.conftest import skip_or_fail
from tests.ledger.evm_node import node_or_skip


def test_bytes_are_pinned():
    topic = RECORD_TOPIC.hex()
    assert RUNTIME.hex() == f"3415600957600080fd5b3660008037337f{topic}366000a200"
    assert len(RUNTIME) == 54
    assert INIT_CODE.hex() == "603680600b6000396000f3" + RUNTIME.hex()


def test_the_jump_lands_on_the_jumpdest():
    assert RUNTIME[2] == 0x60  # PUSH1 <target>
    assert RUNTIME[RUNTIME[3]] == 0x5B  # JUMPDEST


def test_the_topic_is_the_keccak_of_its_name():
    try:
        from eth_hash.auto import keccak
    except ImportError:
        skip_or_fail("eth-hash (from web3: pip install 'etdb[evm]') is not installed")
    assert keccak(RECORD_TOPIC_NAME) == RECORD_TOPIC


def test_assemble_checks_push_widths():
    assert assemble((("PUSH1", b"\x01"), ("STOP", b""))) == b"\x60\x01\x00"
    with pytest.raises(ValueError):
        assemble((("PUSH1", b""),))
    with pytest.raises(ValueError):
        assemble((("STOP", b"\x00"),))


# Gas used as measured on the nodes (see the module docstring of evm_registry).
@pytest.mark.parametrize(
    ("size", "prague", "gas"),
    [
        (0, False, 22_165),
        (100, False, 24_589),
        (1000, False, 46_359),
        (0, True, 22_165),
        (100, True, 25_000),
        (1000, True, 61_000),
        (24_000, True, 981_000),
    ],
)
def test_gas_schedule(size, prague, gas):
    assert publish_gas(size, prague=prague) == gas


def test_plain_calldata_gas():
    assert publish_gas(1000, log=False, prague=False) == 37_000
    assert publish_gas(1000, log=False, prague=True) == 61_000


@pytest.fixture(scope="module", params=["ganache", "hardhat"])
def chain(request, tmp_path_factory):
    node = node_or_skip(tmp_path_factory.mktemp(request.param), request.param)
    yield node
    node.close()


@pytest.fixture(scope="module")
def registry(chain) -> str:
    receipt = chain.receipt(chain.send({"data": "0x" + INIT_CODE.hex(), "gas": hex(200_000)}))
    assert receipt["status"] == "0x1"
    assert int(receipt["gasUsed"], 16) == DEPLOY_GAS
    return receipt["contractAddress"].lower()


@pytest.mark.evm_node
def test_deployed_code_is_the_runtime(chain, registry):
    assert chain.rpc("eth_getCode", registry, "latest") == "0x" + RUNTIME.hex()


@pytest.mark.evm_node
@pytest.mark.parametrize(
    "payload", [b"", b"json:{}", "é".encode() * 100, b"y" * 24_000, bytes(range(256))]
)
def test_a_call_logs_its_calldata_verbatim(chain, registry, payload):
    sender = chain.accounts[1]
    txid = chain.send(
        {"from": sender, "to": registry, "data": "0x" + payload.hex(), "gas": hex(2_000_000)}
    )
    receipt = chain.receipt(txid)
    assert receipt["status"] == "0x1"
    (log,) = receipt["logs"]
    assert log["address"].lower() == registry
    assert [t.lower() for t in log["topics"]] == [
        "0x" + RECORD_TOPIC.hex(),
        publisher_topic(sender),
    ]
    assert bytes.fromhex(log["data"][2:]) == payload
    if 0 not in payload:  # the schedule assumes text, which has no zero bytes
        prague = chain.engine.name == "hardhat"
        assert int(receipt["gasUsed"], 16) == publish_gas(len(payload), prague=prague)


@pytest.mark.evm_node
def test_value_is_refused(chain, registry):
    tx = {"to": registry, "data": "0x41", "value": "0x1", "gas": hex(100_000)}
    try:
        receipt = chain.receipt(chain.send(tx))
    except RuntimeError as exc:  # Hardhat refuses a reverting transaction outright
        assert "revert" in str(exc).lower()
    else:  # Ganache, like geth, mines it as failed
        assert receipt["status"] == "0x0" and receipt["logs"] == []
    assert chain.rpc("eth_getBalance", registry, "latest") == "0x0"
