"""Carrier arithmetic and parsing that needs no node: OP_RETURN scripts and their limits,
payload extraction rules, transaction size model, and ledger URL options."""

from __future__ import annotations

from decimal import Decimal

import pytest

from etdb.ledger.base import LedgerConfigError
from etdb.ledger.bitcoin import open_bitcoin, parse_options
from etdb.ledger.carriers import (
    FloDataCarrier,
    OpReturnCarrier,
    check_multipart_capable,
    max_opreturn_payload,
    nulldata_payload,
    opreturn_script_size,
    push_overhead,
)


@pytest.mark.parametrize(
    ("datacarriersize", "payload"),
    [
        (83, 80),
        (40, 38),
        (77, 75),
        (78, 75),
        (79, 76),
        (258, 255),
        (259, 255),
        (260, 256),
        (1100, 1096),
        (3, 1),
        (2, 0),
    ],
)
def test_max_opreturn_payload(datacarriersize, payload):
    assert max_opreturn_payload(datacarriersize) == payload
    if payload:
        assert opreturn_script_size(payload) <= datacarriersize < opreturn_script_size(payload + 1)


def test_push_overheads():
    assert [push_overhead(n) for n in (0, 75, 76, 255, 256, 65535, 65536)] == [1, 1, 2, 2, 3, 3, 5]


@pytest.mark.parametrize(
    ("script_hex", "payload"),
    [
        ("6a0568656c6c6f", b"hello"),  # direct push
        ("6a4c05" + "68656c6c6f", b"hello"),  # OP_PUSHDATA1
        ("6a4d0500" + "68656c6c6f", b"hello"),  # OP_PUSHDATA2 (little-endian length)
        ("6a4e05000000" + "68656c6c6f", b"hello"),  # OP_PUSHDATA4
        ("6a02686503" + "6c6c", None),  # second push cut short
        ("6a02686503" + "6c6c6f", b"hello"),  # two pushes: concatenated
        ("6a00", b""),  # OP_0 pushes nothing
        ("6a", b""),  # bare OP_RETURN
        ("6a51", None),  # OP_1: a number, not data
        ("6a0668656c6c6f", None),  # push runs past the end
        ("76a914" + "00" * 20 + "88ac", None),  # not OP_RETURN at all
        ("6a4d", None),  # length bytes missing
    ],
)
def test_nulldata_payload(script_hex, payload):
    assert nulldata_payload(bytes.fromhex(script_hex)) == payload


def _tx(*scripts: str, coinbase: bool = False) -> dict:
    vin = [{"coinbase": "00"}] if coinbase else [{"txid": "ab" * 32, "vout": 0}]
    vout = [
        {
            "n": i,
            "scriptPubKey": {
                "hex": s,
                "type": "nulldata" if s.startswith("6a") else "witness_v0_keyhash",
            },
        }
        for i, s in enumerate(scripts)
    ]
    return {"txid": "cd" * 32, "vin": vin, "vout": vout}


def test_opreturn_payload_rules():
    carrier = OpReturnCarrier(None, datacarriersize=1100)  # type: ignore[arg-type]
    hello = "6a" + "05" + b"hello".hex()
    assert carrier.payload(_tx("0014" + "00" * 20, hello)) == "hello"
    assert carrier.payload(_tx("6a02fffe", hello)) == "hello"  # invalid UTF-8 skipped
    assert carrier.payload(_tx("6a00", hello)) == "hello"  # empty skipped
    assert carrier.payload(_tx(hello, "6a" + "05" + b"world".hex())) == "hello"  # first wins
    assert carrier.payload(_tx(hello, coinbase=True)) is None  # coinbase commitments
    assert carrier.payload(_tx("6a51")) is None
    assert (
        carrier.payload(
            {"txid": "x", "vin": [], "vout": [{"scriptPubKey": {"type": "nulldata", "hex": "zz"}}]}
        )
        is None
    )


def test_flodata_payload_rules():
    carrier = FloDataCarrier(None, amount=1, address="F")  # type: ignore[arg-type]
    assert carrier.payload({"floData": "json:{}"}) == "json:{}"
    assert carrier.payload({"floData": ""}) is None and carrier.payload({}) is None
    assert carrier.payload({"floData": None}) is None


def test_transaction_size_model():
    # Checked against litecoind 0.21: a 5-byte payload gave vsize 126, 1096 bytes 1221 (fees
    # 0.0000252 / 0.0002442 LTC at 0.0002 LTC/kvB); tests/ledger/test_litecoind.py re-checks.
    opreturn = OpReturnCarrier(None, datacarriersize=1100)  # type: ignore[arg-type]
    assert opreturn.tx_vsize(5) == 126 and opreturn.tx_vsize(1096) == 1221
    flo = FloDataCarrier(None, amount=1, address="F")  # type: ignore[arg-type]
    assert flo.tx_vsize(0) == 10 + 148 + 68 + 1 and flo.tx_vsize(1040) == 10 + 148 + 68 + 3 + 1040


def test_multipart_warning_for_small_data_carriers():
    small = OpReturnCarrier(None)  # type: ignore[arg-type]
    assert small.max_payload == 80
    assert "at least 250" in check_multipart_capable(small)
    assert check_multipart_capable(OpReturnCarrier(None, datacarriersize=1100)) is None  # type: ignore[arg-type]


def test_options_defaults_and_validation():
    flo = parse_options("flo", {})
    assert (flo.coin, flo.confirmations, flo.amount, flo.flodata_arg) == (
        "FLO",
        6,
        Decimal("0.001"),
        5,
    )
    btc = parse_options("btc", {"coin": "ltc", "confirmations": "1", "datacarriersize": "1100"})
    assert (btc.coin, btc.confirmations, btc.datacarriersize) == ("LTC", 1, 1100)
    for family, options in [
        ("btc", {"amount": "1"}),  # floData-only option on an OP_RETURN ledger
        ("flo", {"datacarriersize": "100"}),
        ("flo", {"confirmations": "0"}),
        ("flo", {"confirmation": "3"}),  # typo
        ("btc", {"fee_rate": "-1"}),
        ("flo", {"amount": "lots"}),
    ]:
        with pytest.raises(LedgerConfigError):
            parse_options(family, options)
    with pytest.raises(LedgerConfigError):
        open_bitcoin("flo+http://u:p@127.0.0.1:1/?flodata_arg=7")


def test_open_bitcoin_defaults_and_safe_url():
    led = open_bitcoin("btc+http://me:pw@127.0.0.1/?datacarriersize=83")
    assert led.max_payload == 80 and led.confirmations == 6
    assert led.url == "btc+http://me@127.0.0.1:8332/?datacarriersize=83"
    led.close()
    flo = open_bitcoin("flo+https://me:pw@node.example/")
    assert flo.url == "flo+https://me@node.example:7313/" and flo.max_payload == 1040
    flo.close()
