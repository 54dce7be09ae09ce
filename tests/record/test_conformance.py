"""Real ledger data (../shared/conformance/oip042): decode, re-encode like go-etdb, verify."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from etdb.record import (
    Artifact,
    MultipartError,
    Publish,
    decode,
    encode_publish,
    parse_part,
    verify_part,
    verify_publish,
)
from etdb.record.signing import signature_problem

JENSEN = "FTSTq8xx8yWUKJA5E3bgXLzZqqG9V6dvnr"
EARLY = "FEj2PunT8h5AkLuMn2f1PVU7mGgmRLbXy8"
RECORD = "etdb_tomogram_rr2014-01-14-5_oipd_record.json"
PART0 = "etdb_multipart_part0_666a12f0.json"
FRAGMENT = "etdb_multipart_part0_80abc390_FRAGMENT.json"

DETAILS_ORDER = [
    "date",
    "NCBItaxID",
    "artNotes",
    "scopeName",
    "speciesName",
    "strain",
    "tiltSingleDual",
    "defocus",
    "dosage",
    "tiltConstant",
    "tiltMin",
    "tiltMax",
    "tiltStep",
    "magnification",
    "microscopist",
    "institution",
    "lab",
    "sid",
]
FILE_ORDER = ["software", "dname", "fname", "fsize", "type", "subtype", "cType", "fNotes"]


def load(conformance_dir: Path, name: str) -> dict:
    return json.loads((conformance_dir / "oip042" / name).read_text(encoding="utf-8"))


@pytest.fixture
def record(conformance_dir) -> dict:
    return load(conformance_dir, RECORD)


def _pairs(text: str) -> dict:
    """JSON with key order kept as lists of keys, for order assertions."""
    return json.loads(
        text, object_pairs_hook=lambda kv: {"__keys__": [k for k, _ in kv], **dict(kv)}
    )


def test_oipd_record_decodes_and_verifies(record):
    msg = decode(record)
    assert isinstance(msg, Publish) and msg.shape == "oipd"
    assert msg.txid == "8a07e957cce6473887e8f9d042b0a3b95fc7dd2b9110b4a37890887de6528f10"
    art = msg.artifact
    assert art.details.sid == "rr2014-01-14-5" and art.details.NCBItaxID == 273057
    assert len(art.files) == 10 and art.tilt_series.software == "UCSFTomo"
    result = verify_publish(art)
    assert result.valid, result.reason
    assert result.address == JENSEN
    assert result.preimage == f"Qmat8i2pn4WnnMiPQcKsKJZahr1scUbuUyXjgSuCPBcsYY-{JENSEN}-1528156632"


def test_oipd_record_re_encodes_in_go_etdb_order(record):
    text = encode_publish(decode(record).artifact)
    assert text.startswith('json:{"oip042":{"publish":{"artifact":{"floAddress":"' + JENSEN)
    doc = _pairs(text[5:])["oip042"]["publish"]["artifact"]
    assert doc["__keys__"] == [
        "floAddress",
        "timestamp",
        "type",
        "subtype",
        "info",
        "details",
        "storage",
        "signature",
    ]
    assert doc["info"]["__keys__"] == ["title", "tags", "description"]
    assert doc["details"]["__keys__"] == DETAILS_ORDER
    assert doc["storage"]["__keys__"] == ["network", "location", "files"]
    for entry in doc["storage"]["files"]:
        keys = entry["__keys__"]
        assert keys == [k for k in FILE_ORDER if k in keys]
    # ints stay ints, Go escapes, and the record still verifies after the round trip
    assert '"defocus":-10,"dosage":180,"tiltConstant":1,"tiltMin":-55' in text
    assert '"magnification":22500' in text and '"fsize":3161185656' in text
    assert "turreted \\r\\nicosahedral" in text
    again = decode(text)
    assert again.artifact.to_wire() == decode(record).artifact.to_wire()
    assert verify_publish(again.artifact).valid


@pytest.mark.parametrize(
    "tamper",
    [
        lambda a: setattr(a.storage, "location", "Qmat8i2pn4WnnMiPQcKsKJZahr1scUbuUyXjgSuCPBcsYZ"),
        lambda a: setattr(a, "floAddress", EARLY),
        lambda a: setattr(a, "floAddress", JENSEN[:-1] + "s"),
        lambda a: setattr(a, "timestamp", a.timestamp + 1),
        lambda a: setattr(a, "timestamp", a.timestamp - 1),
        lambda a: setattr(a, "signature", "H" + a.signature[1:]),
        lambda a: setattr(a, "signature", a.signature[:40] + "A" + a.signature[41:]),
        lambda a: setattr(a, "signature", a.signature[:-2]),
        lambda a: setattr(a, "storage", None),
    ],
)
def test_any_signed_field_tamper_fails(record, tamper):
    art = decode(record).artifact.model_copy(deep=True)
    tamper(art)
    result = verify_publish(art, require_complete=False)
    assert not result.valid and result.reason


def test_unsigned_fields_are_not_covered_by_the_signature(record):
    # A fact of OIP 0.4.2 worth pinning: only location, address and timestamp are signed.
    art = decode(record).artifact.model_copy(deep=True)
    art.details.speciesName = "something else"
    assert verify_publish(art).valid


def test_real_multipart_part0_parses_and_verifies(conformance_dir):
    fixture = load(conformance_dir, PART0)
    part = parse_part(fixture["floData"])
    assert (part.part, part.max_index, part.address, part.reference) == (0, 1, EARLY, "")
    assert len(part.data) == 840 and part.data.startswith('json:{"oip042":{"publish"')
    result = verify_part(part)
    assert result.valid and result.address == EARLY
    assert result.preimage == f"0-1-{EARLY}--" + part.data


@pytest.mark.parametrize(
    "change",
    [
        {"data": "X"},
        {"part": 1},
        {"max_index": 2},
        {"address": JENSEN},
        {"reference": "0" * 63 + "1"},
    ],
)
def test_real_multipart_part0_tamper_fails(conformance_dir, change):
    part = parse_part(load(conformance_dir, PART0)["floData"])
    if "data" in change:
        change = {"data": part.data[:-1] + change["data"]}
    assert not verify_part(dataclasses.replace(part, **change)).valid


def test_real_multipart_part0_textual_tamper_is_rejected_by_parse(conformance_dir):
    text = load(conformance_dir, PART0)["floData"]
    for bad in (text.replace("oip-mp(0,1,", "oip-mp(0,2,", 1), text[:-1] + "x", text + " "):
        with pytest.raises(MultipartError, match="bad signature"):
            parse_part(bad)


def test_go_etdb_encoder_reproduces_the_real_part0_prefix_byte_for_byte(conformance_dir):
    data = parse_part(load(conformance_dir, PART0)["floData"]).data
    # The visible record, plus a plausible remainder of the first file entry and a signature.
    artifact = Artifact.from_wire(
        {
            "floAddress": EARLY,
            "timestamp": 1524439936,
            "type": "research",
            "subtype": "tomogram",
            "info": {
                "title": "MG1655 Sacculus",
                "tags": "etdb,jensen.lab,tomogram,electron.tomography",
                "description": "Auto imported from etdb",
            },
            "details": {
                "date": 1186790400,
                "speciesName": "sacculi",
                "tiltSingleDual": 1,
                "artNotes": "Tilt series notes: E. coli MG1655 sacculus\n"
                "Keywords: Sacculus, E. coli, MG1655, peptidoglycan\n",
                "defocus": -6,
                "dosage": 100,
                "tiltConstant": 1,
                "tiltMin": -70,
                "tiltMax": 70,
                "tiltStep": 2,
                "microscopist": "Lu Gan",
                "institution": "Caltech",
                "lab": "Jensen Lab",
                "sid": "lg2007-08-11-14",
                "magnification": 0,
                "strain": "",
            },  # zero values: dropped like Go does
            "storage": {
                "network": "ipfs",
                "location": "QmcfT2eaNEzvLaNMbFMFYuFrzkwRLwuRTE1FuW7W3pDhkV",
                "files": [
                    {
                        "fname": "rawdata/MG1655_16.mrc",
                        "subtype": "tiltSeries",
                        "type": "tomogram",
                        "fsize": 394393600,
                        "dname": "MG1655_16.mrc",
                        "software": "UCSF Tomo",
                    }
                ],
            },
            "signature": "unknown",
        }
    )
    assert encode_publish(artifact)[: len(data)] == data


def test_fragment_header_parses_and_its_signature_verifies(conformance_dir):
    fixture = load(conformance_dir, FRAGMENT)
    part = parse_part(fixture["floData_fragment"], verify=False)
    assert (part.part, part.max_index, part.reference) == (0, 51, "")
    assert part.address == "FJAGk4SGCAo8Y1cMxuzY2qLxnTU2DUrm1a"
    assert part.data.endswith('"NBCItaxID":')
    # Not truncated after all: 328 = 528 - 200, go-etdb's part-0 size before commit a5db0f5,
    # so this is the complete part 0 of that 52-part record and its signature holds.
    assert len(part.data) == 328
    assert verify_part(part).valid


def _real_signatures(conformance_dir) -> dict[str, str]:
    record = load(conformance_dir, RECORD)
    return {
        RECORD: record["artifact"]["signature"],
        PART0: parse_part(load(conformance_dir, PART0)["floData"]).signature,
        FRAGMENT: parse_part(
            load(conformance_dir, FRAGMENT)["floData_fragment"], verify=False
        ).signature,
    }


def test_historical_signatures_are_canonical_and_keep_verifying(conformance_dir):
    """Canonical form (exact base64, low S) is required of every signature now: each of the
    three historical records is canonical, so each still verifies."""
    signatures = _real_signatures(conformance_dir)
    assert set(signatures) == {RECORD, PART0, FRAGMENT}
    for name, signature in signatures.items():
        assert signature_problem(signature) is None, name
    record = load(conformance_dir, RECORD)
    assert verify_publish(Artifact.from_wire(record["artifact"])).valid
    assert verify_part(parse_part(load(conformance_dir, PART0)["floData"])).valid
    fragment = load(conformance_dir, FRAGMENT)["floData_fragment"]
    assert verify_part(parse_part(fragment, verify=False)).valid
