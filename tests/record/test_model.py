"""The Research-Tomogram model: types, legacy keys, extras, mandatory fields, accessors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from etdb.record import Artifact, Details, File, ValidationError


def draft(**overrides) -> dict:
    doc = {
        "type": "research",
        "subtype": "tomogram",
        "info": {"title": "T", "tags": "etdb", "description": "d"},
        "details": {"date": 1389657600, "speciesName": "E. coli", "defocus": -10},
        "storage": {
            "network": "ipfs",
            "location": "QmLoc",
            "files": [
                {
                    "fname": "rawdata/a.mrc",
                    "type": "tomogram",
                    "subtype": "tiltSeries",
                    "software": "UCSFTomo",
                },
                {
                    "fname": "3dimage_1/a.rec",
                    "type": "tomogram",
                    "subtype": "reconstruction",
                    "software": "Raptor",
                },
                {"fname": "keymov_x.mp4", "type": "tomogram", "subtype": "keymov"},
            ],
        },
    }
    doc.update(overrides)
    return doc


def test_numbers_keep_their_json_type():
    d = Details.from_wire({"defocus": -10, "dosage": 1.5, "tiltStep": 2.0, "date": 5})
    assert type(d.defocus) is int and d.defocus == -10
    assert type(d.dosage) is float and d.dosage == 1.5
    assert type(d.tiltStep) is float
    assert d.to_wire() == {"date": 5, "defocus": -10, "dosage": 1.5, "tiltStep": 2.0}


@pytest.mark.parametrize(
    ("doc", "field", "words"),
    [
        ({"details": {"date": "2014-01-14"}}, "details.date", "expected an integer"),
        ({"details": {"date": 1.0}}, "details.date", "expected an integer"),
        ({"details": {"defocus": True}}, "details.defocus", "expected a number"),
        ({"details": {"speciesName": 5}}, "details.speciesName", "expected a string"),
        (
            {"storage": {"files": [{"fname": "a"}, {"fsize": "12"}]}},
            "storage.files[1].fsize",
            "expected an integer",
        ),
        (
            {"storage": {"files": {"fname": "a"}}},
            "storage.files",
            "expected a JSON array, got an object",
        ),
        ({"info": "title"}, "info", "expected a JSON object, got the string 'title'"),
        ({"payment": [1]}, "payment", "expected a JSON object, got an array"),
        ({"timestamp": None, "floAddress": ["F"]}, "floAddress", "expected a string"),
    ],
)
def test_type_errors_name_the_field(doc, field, words):
    with pytest.raises(ValidationError) as err:
        Artifact.from_wire(doc)
    assert err.value.field == field
    assert str(err.value).startswith(field)
    assert words in str(err.value)


def test_non_object_is_rejected():
    with pytest.raises(ValidationError, match="expected a JSON object, got an array"):
        Artifact.from_wire([1])


def test_legacy_nbci_spelling_is_read_and_written_correctly():
    d = Details.from_wire({"date": 1, "NBCItaxID": 273057})
    assert d.NCBItaxID == 273057
    assert d.to_wire() == {"date": 1, "NCBItaxID": 273057}


def test_both_spellings_keep_the_legacy_one_as_extra():
    d = Details.from_wire({"NCBItaxID": 1, "NBCItaxID": 2})
    assert d.NCBItaxID == 1
    assert d.to_wire() == {"NCBItaxID": 1, "NBCItaxID": 2}


def test_unknown_fields_are_preserved_at_every_level_and_emitted_after_known_ones():
    doc = draft(
        labField={"a": [1, None, ""]},
        info={"custom": "x", "title": "T"},
        details={"pixelSize": 0.5, "date": 1, "speciesName": "s", "empty": ""},
    )
    doc["storage"]["files"][0] = {"checksum": "sha256:00", "fname": "a"}
    wire = Artifact.from_wire(doc).to_wire()
    assert wire["labField"] == {"a": [1, None, ""]}
    assert list(wire["info"]) == ["title", "custom"]
    assert list(wire["details"]) == ["date", "speciesName", "pixelSize", "empty"]
    assert wire["details"]["empty"] == ""  # unknown fields are kept verbatim, even empty
    assert list(wire["storage"]["files"][0]) == ["fname", "checksum"]


def test_omitempty_drops_zero_and_empty_known_fields():
    doc = draft(payment={}, signature="")
    doc["details"].update(tiltConstant=0, NCBItaxID=0, strain="", tiltSingleDual=1, roles=None)
    doc["storage"]["files"] = []
    wire = Artifact.from_wire(doc).to_wire()
    assert "payment" not in wire and "signature" not in wire and "files" not in wire["storage"]
    assert "tiltConstant" not in wire["details"] and "NCBItaxID" not in wire["details"]
    assert wire["details"]["tiltSingleDual"] == 1


def test_signature_is_the_last_key_even_after_extras():
    wire = Artifact.from_wire({"signature": "S", "zzz": 1, "floAddress": "F"}).to_wire()
    assert list(wire) == ["floAddress", "zzz", "signature"]


def test_to_wire_returns_copies():
    art = Artifact.from_wire(draft(extra={"k": [1]}))
    art.to_wire()["extra"]["k"].append(2)
    assert art.to_wire()["extra"] == {"k": [1]}


def test_missing_fields_of_a_complete_draft_and_of_a_record():
    art = Artifact.from_wire(draft())
    assert art.missing_fields(draft=True) == []
    assert art.missing_fields() == ["floAddress", "timestamp", "signature"]
    assert art.require_complete(draft=True) is art


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["info"].pop("title"), "info.title"),
        (lambda d: d.pop("info"), "info.title"),
        (lambda d: d["details"].pop("speciesName"), "details.speciesName"),
        (lambda d: d["details"].update(date=0), "details.date"),
        (lambda d: d["storage"].update(location=""), "storage.location"),
        (lambda d: d["storage"].pop("network"), "storage.network"),
        (lambda d: d.pop("type"), "type"),
        (lambda d: d["storage"]["files"][2].pop("fname"), "storage.files[2].fname"),
    ],
)
def test_require_complete_names_the_missing_field(mutate, field):
    doc = draft()
    mutate(doc)
    with pytest.raises(ValidationError, match=r"missing mandatory field: ") as err:
        Artifact.from_wire(doc).require_complete(draft=True)
    assert err.value.fields == (field,)
    assert field in str(err.value)


def test_require_complete_lists_every_missing_field():
    with pytest.raises(ValidationError) as err:
        Artifact.from_wire({}).require_complete()
    assert "missing mandatory fields:" in str(err.value)
    assert "details.speciesName" in err.value.fields and "signature" in err.value.fields


def test_negative_timestamp_is_rejected():
    art = Artifact.from_wire(draft(timestamp=-5, floAddress="F", signature="S"))
    with pytest.raises(ValidationError, match="timestamp"):
        art.require_complete()


def test_accessors():
    art = Artifact.from_wire(draft(timestamp=1528156632))
    assert art.location == "QmLoc"
    assert [f.fname for f in art.files_of("TILTSERIES")] == ["rawdata/a.mrc"]
    assert art.files_of("keymov", type="image") == []
    assert art.tilt_series.fname == "rawdata/a.mrc"
    assert art.reconstruction.software == "Raptor"
    assert art.software_acquisition == "UCSFTomo"
    assert art.software_reconstruction == "Raptor"
    assert art.path_of(art.files[2]) == "QmLoc/keymov_x.mp4"
    assert art.details.acquired_at == datetime(2014, 1, 14, tzinfo=UTC)
    assert art.published_at == datetime(2018, 6, 4, 23, 57, 12, tzinfo=UTC)
    assert File(fname="a/b.mrc").display_name == "b.mrc"


def test_accessors_on_an_empty_artifact():
    art = Artifact()
    assert art.location == "" and art.files == [] and art.tilt_series is None
    assert art.software_acquisition is None and art.published_at is None


def test_details_software_fields_take_precedence():
    art = Artifact.from_wire(draft(details={"swAcquisition": "SerialEM", "date": 1}))
    assert art.software_acquisition == "SerialEM"
    assert art.software_reconstruction == "Raptor"


def test_assignment_is_validated():
    art = Artifact.from_wire(draft())
    with pytest.raises(Exception):  # noqa: B017 - pydantic's own error on attribute assignment
        art.timestamp = "now"
