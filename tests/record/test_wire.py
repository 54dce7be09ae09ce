"""The OIP 0.4.2 codec: Go-exact encoding, decoding every shape, signing, edits, patches."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etdb.record import (
    Artifact,
    Deactivate,
    Edit,
    PatchError,
    PrivateKey,
    Publish,
    RecordError,
    ValidationError,
    WireFormatError,
    apply_artifact_patch,
    apply_edit,
    apply_patch,
    decode,
    diff,
    encode,
    encode_deactivate,
    encode_edit,
    encode_publish,
    encode_unsigned_publish,
    make_edit,
    sign_artifact,
    sign_deactivate,
    sign_edit,
    verify_deactivate,
    verify_edit,
    verify_publish,
)
from etdb.record.decoding import UNSAFE_TEXT
from etdb.record.gojson import dumps as go_json
from etdb.record.patch import normalize_patch, squash

KEY = PrivateKey(bytes.fromhex("11" * 32))
OTHER = PrivateKey(bytes.fromhex("22" * 32))
TXID = "8a07e957cce6473887e8f9d042b0a3b95fc7dd2b9110b4a37890887de6528f10"


def draft_doc() -> dict:
    return {
        "type": "research",
        "subtype": "tomogram",
        "info": {"title": "T <&>", "description": "Auto imported from etdb"},
        "details": {
            "date": 1389657600,
            "speciesName": "Sulfolobus",
            "defocus": -10,
            "dosage": 1.5,
            "tiltSingleDual": 1,
            "tiltConstant": 0,
        },
        "storage": {
            "network": "ipfs",
            "location": "QmLoc",
            "files": [
                {
                    "fname": "rawdata/a.mrc",
                    "fsize": 3161185656,
                    "software": "UCSFTomo",
                    "dname": "a.mrc",
                    "type": "tomogram",
                    "subtype": "tiltSeries",
                }
            ],
        },
    }


@pytest.fixture
def signed() -> Artifact:
    return sign_artifact(Artifact.from_wire(draft_doc()), KEY, timestamp=1528156632)


# -- Go JSON ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("a<b>&c", r'"a\u003cb\u003e\u0026c"'),
        ('q"\\/', r'"q\"\\/"'),
        ("\n\r\t\b\f\x00\x1f\x7f", r'"\n\r\t\u0008\u000c\u0000\u001f' + '\x7f"'),
        ("µm Å² ünï 😀", '"µm Å² ünï 😀"'),
        ("\u2028\u2029", r'"\u2028\u2029"'),
        ("lone \ud800", r'"lone \ufffd"'),
        (-10, "-10"),
        (-10.0, "-10"),
        (1.5, "1.5"),
        (100.0, "100"),
        (0.1, "0.1"),
        (-0.0, "-0"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (1.5e300, "1.5e+300"),
        (1e-6, "0.000001"),
        (1e-7, "1e-7"),
        (1.25e-10, "1.25e-10"),
        (5e-324, "5e-324"),
        (True, "true"),
        (None, "null"),
        ({"b": [1, {"a": None}], "a": []}, '{"b":[1,{"a":null}],"a":[]}'),
    ],
)
def test_gojson_matches_go(value, text):
    assert go_json(value) == text


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), {1: 2}, {1, 2}, b"x"])
def test_gojson_rejects_what_go_cannot_encode(bad):
    with pytest.raises(WireFormatError):
        go_json(bad)


# -- publish encoding -------------------------------------------------------------------------


def test_encode_publish_exact(signed):
    expected = (
        'json:{"oip042":{"publish":{"artifact":{"floAddress":"' + KEY.address + '",'
        '"timestamp":1528156632,"type":"research","subtype":"tomogram",'
        '"info":{"title":"T \\u003c\\u0026\\u003e","description":"Auto imported from etdb"},'
        '"details":{"date":1389657600,"speciesName":"Sulfolobus","tiltSingleDual":1,'
        '"defocus":-10,"dosage":1.5},'
        '"storage":{"network":"ipfs","location":"QmLoc","files":[{"software":"UCSFTomo",'
        '"dname":"a.mrc","fname":"rawdata/a.mrc","fsize":3161185656,"type":"tomogram",'
        '"subtype":"tiltSeries"}]},"signature":"' + signed.signature + '"}}}}'
    )
    assert encode_publish(signed) == expected


def test_encode_publish_refuses_incomplete_records(signed):
    with pytest.raises(ValidationError, match="signature"):
        encode_publish(signed.model_copy(update={"signature": None}))
    assert encode_publish(Artifact(), check=False) == 'json:{"oip042":{"publish":{"artifact":{}}}}'


def test_encode_unsigned_publish_drops_the_signature(signed):
    text = encode_unsigned_publish(signed)
    assert "signature" not in text
    assert decode(text, strict=False).artifact.signature is None


def test_sign_fills_address_and_timestamp_and_verifies():
    art = sign_artifact(Artifact.from_wire(draft_doc()), KEY)
    assert art.floAddress == KEY.address and art.timestamp > 1_500_000_000
    result = verify_publish(art)
    assert result.valid and result.address == KEY.address
    assert result.preimage == f"QmLoc-{KEY.address}-{art.timestamp}"


def test_sign_is_deterministic_and_keeps_an_existing_timestamp(signed):
    again = sign_artifact(signed.model_copy(update={"signature": None}), KEY)
    assert again.timestamp == 1528156632 and again.signature == signed.signature


def test_sign_refuses_another_publishers_address(signed):
    with pytest.raises(ValidationError, match="refusing") as err:
        sign_artifact(signed, OTHER)
    assert err.value.field == "floAddress"


def test_sign_refuses_an_incomplete_draft():
    doc = draft_doc()
    del doc["details"]["speciesName"]
    with pytest.raises(ValidationError, match=r"details\.speciesName"):
        sign_artifact(Artifact.from_wire(doc), KEY)


def test_sign_without_storage_signs_an_empty_location():
    doc = draft_doc()
    del doc["storage"]
    art = sign_artifact(Artifact.from_wire(doc), KEY, timestamp=7, check=False)
    assert verify_publish(art, require_complete=False).preimage == f"-{KEY.address}-7"


@pytest.mark.parametrize(
    ("update", "words"),
    [
        ({"timestamp": 1528156633}, "bad signature"),
        ({"floAddress": OTHER.address}, "bad signature"),
        ({"floAddress": "Fnotanaddress"}, "not a valid address"),
        ({"signature": "AAAA"}, "malformed signature"),
        ({"signature": None}, "missing mandatory field: signature"),
    ],
)
def test_verify_publish_explains_failures(signed, update, words):
    result = verify_publish(signed.model_copy(update=update))
    assert not result.valid and words in result.reason


def test_verify_publish_detects_a_changed_location(signed):
    tampered = signed.model_copy(deep=True)
    tampered.storage.location = "QmOther"
    assert not verify_publish(tampered).valid


# -- decoding ---------------------------------------------------------------------------------


def test_decode_round_trip(signed):
    text = encode_publish(signed)
    msg = decode(text)
    assert isinstance(msg, Publish) and msg.kind == "publish" and msg.shape == "oip042"
    assert msg.artifact.to_wire() == signed.to_wire() and msg.raw_json == text[5:]
    assert encode(msg) == text


def test_decode_accepts_every_known_shape(signed):
    art = signed.to_wire()
    sig = art.pop("signature")
    shapes = {
        "oip042": {"oip042": {"publish": {"artifact": {**art, "signature": sig}}}},
        "oipd": {"meta": {"txid": TXID, "signature": sig}, "artifact": art},
        "oip042-artifact": {"txid": TXID, "oip042": {"artifact": art, "signature": sig}},
        "malformed": {"oip042": {**art, "signature": sig}},
        "bare": {**art, "signature": sig},
    }
    for shape, obj in shapes.items():
        for data in (obj, json.dumps(obj), "json:" + json.dumps(obj), "text:" + json.dumps(obj)):
            msg = decode(data, bare_artifact=shape == "bare")
            assert msg.shape == shape
            assert msg.artifact.to_wire() == signed.to_wire(), shape
    assert decode(shapes["oipd"]).txid == TXID
    assert decode(shapes["oip042-artifact"]).txid == TXID
    # signature beside the artifact inside "publish"
    beside = {"oip042": {"publish": {"signature": sig, "artifact": art}}}
    assert decode(beside).artifact.signature == sig


def test_decode_accepts_any_key_order_and_whitespace(signed):
    wire = signed.to_wire()
    reordered = dict(reversed(list(wire.items())))
    text = "  json: " + json.dumps({"oip042": {"publish": {"artifact": reordered}}}, indent=1)
    assert decode(text.encode()).artifact.to_wire() == signed.to_wire()


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ("", "empty floData"),
        ("hello world", "expected the 'json:' prefix"),
        ("json:{", "not valid JSON"),
        ("json:[1]", "got a JSON array"),
        ("json:NaN", "NaN is not a JSON number"),
        ('json:{"a":1e999}', "out of range"),
        ("json:" + "[" * 100 + "]" * 100, "nested deeper"),
        ("json:" + "[" * 5000, "JSON"),
        ("json:1" + "0" * 5000, "not valid JSON"),
        (b"json:\xff", "not UTF-8"),
        ("oip-mp(0,1,F,,S):json:{", "multipart"),
        ("p64:abcd", "protobuf"),
        ('{"oip042":[]}', "'oip042' must be a JSON object"),
        ('{"oip042":{"register":{}}}', "'register' messages are not supported"),
        ('{"oip042":{"nothing":1}}', "none of publish/edit/deactivate/artifact"),
        ('{"oip042":{"publish":{"pub":{}}}}', "no 'artifact'"),
        ('{"oip042":{"publish":{"artifact":"x"}}}', "'artifact' must be a JSON object"),
        ('{"oip-041":{}}', "OIP 0.4.1"),
        ('{"floAddress":"F"}', "no 'oip042' envelope"),
        ('{"oip042":{"edit":{"artifact":{"timestamp":1,"patch":[]}}}}', "'txid'"),
        ('{"oip042":{"edit":{"artifact":{"txid":"t","patch":[]}}}}', "integer 'timestamp'"),
        ('{"oip042":{"edit":{"artifact":{"txid":"t","timestamp":1}}}}', "needs a 'patch'"),
        ('{"oip042":{"deactivate":{"artifact":{"timestamp":1}}}}', "'artifactID'"),
        ('{"oip042":{"deactivate":{"artifact":{"artifactID":"a","signature":5}}}}', "signature"),
    ],
)
def test_decode_errors_are_precise(data, words):
    with pytest.raises(WireFormatError, match=None) as err:
        decode(data)
    assert words in str(err.value)


def test_decode_rejects_non_json_mappings():
    with pytest.raises(WireFormatError):
        decode({"oip042": {1, 2}})


def test_strict_decode_requires_mandatory_fields(signed):
    wire = signed.to_wire()
    del wire["details"]["speciesName"]
    text = json.dumps({"oip042": {"publish": {"artifact": wire}}})
    with pytest.raises(ValidationError, match=r"details\.speciesName"):
        decode(text)
    assert decode(text, strict=False).artifact.details.speciesName is None


def test_decode_schema_errors_name_the_field():
    text = '{"oip042":{"publish":{"artifact":{"details":{"date":"yesterday"}}}}}'
    with pytest.raises(ValidationError) as err:
        decode(text, strict=False)
    assert err.value.field == "details.date"


# -- edits and deactivations ------------------------------------------------------------------


def test_edit_round_trip_and_verification():
    edit = sign_edit(
        TXID, [{"path": "/info/title", "value": "New", "op": "replace"}], KEY, timestamp=1600000000
    )
    text = encode_edit(edit)
    assert text == (
        'json:{"oip042":{"edit":{"artifact":{"txid":"' + TXID + '","timestamp":1600000000,'
        '"patch":[{"op":"replace","path":"/info/title","value":"New"}]},'
        '"signature":"' + edit.signature + '"}}}'
    )
    back = decode(text)
    assert isinstance(back, Edit) and back.kind == "edit" and not back.legacy
    assert back == edit.__class__(TXID, 1600000000, edit.patch, edit.signature, False, text[5:])
    assert verify_edit(back, KEY.address).valid
    assert not verify_edit(back, OTHER.address).valid
    forged = Edit(TXID, 1600000001, back.patch, back.signature)
    assert "bad signature" in verify_edit(forged, KEY.address).reason


def test_legacy_2018_edit_decodes_verifies_and_re_encodes():
    ts = 1525000000
    from etdb.record.signing import deactivate_preimage, sign_message

    sig = sign_message(KEY, deactivate_preimage(TXID, KEY.address, ts))
    squashed = {"remove": ["/details/strain"], "replace": [{"path": "/info/title", "value": "X"}]}
    obj = {
        "oip042": {
            "edit": {
                "artifact": {
                    "artifactID": TXID,
                    "timestamp": ts,
                    "patch": squashed,
                    "signature": sig,
                }
            }
        }
    }
    edit = decode(obj)
    assert edit.legacy and edit.signature == sig
    assert edit.patch == [
        {"op": "remove", "path": "/details/strain"},
        {"op": "replace", "path": "/info/title", "value": "X"},
    ]
    assert verify_edit(edit, KEY.address).valid
    assert decode(encode_edit(edit)) == Edit(TXID, ts, edit.patch, sig, True, encode_edit(edit)[5:])


def test_edit_patch_may_be_js_oip_squashed_or_a_json_string():
    js = {"add": {"/details/strain": "P2"}, "move": {"/info/tags": "/info/keywords"}}
    obj = {
        "oip042": {
            "edit": {
                "artifact": {"txid": TXID, "timestamp": 1, "patch": json.dumps(js)},
                "signature": "S",
            }
        }
    }
    assert decode(obj).patch == [
        {"op": "add", "path": "/details/strain", "value": "P2"},
        {"op": "move", "from": "/info/tags", "path": "/info/keywords"},
    ]


def test_make_edit_re_signs_and_patches(signed):
    new = signed.model_copy(deep=True)
    new.details.strain = "P2"
    new.storage.files.append(new.storage.files[0].model_copy(update={"fname": "b.mrc"}))
    edit, patched = make_edit(TXID, signed, new, KEY, timestamp=1600000000)
    assert patched.timestamp == 1600000000 and verify_publish(patched).valid
    assert verify_edit(edit, KEY.address).valid
    applied = apply_edit(signed, decode(encode_edit(edit)))
    assert applied.to_wire() == patched.to_wire() and verify_publish(applied).valid
    paths = {op["path"] for op in edit.patch}
    assert {"/timestamp", "/signature", "/details/strain", "/storage/files/-"} <= paths


def test_make_edit_refuses_another_key(signed):
    with pytest.raises(ValidationError, match="only the publisher"):
        make_edit(TXID, signed, signed, OTHER)


def test_deactivate_round_trip_and_verification():
    d = sign_deactivate(TXID, KEY, timestamp=1600000000)
    text = encode_deactivate(d)
    assert text == (
        'json:{"oip042":{"deactivate":{"artifact":{"artifactID":"' + TXID + '",'
        '"timestamp":1600000000,"signature":"' + d.signature + '"}}}}'
    )
    back = decode(text)
    assert isinstance(back, Deactivate) and back.artifact_id == TXID and back.kind == "deactivate"
    assert verify_deactivate(back, KEY.address).valid
    assert not verify_deactivate(back, OTHER.address).valid
    assert encode(back) == text


def test_deactivate_decoding_is_tolerant():
    for obj in (
        {"deactivate": {"artifact": {"artifactID": TXID, "timestamp": 1, "signature": "S"}}},
        {"oip042": {"deactivate": {"artifact": {"reference": TXID}, "signature": "S"}}},
        {"oip042": {"deactivate": {"txid": TXID}}},
    ):
        d = decode(obj)
        assert d.artifact_id == TXID
    unsigned = decode({"oip042": {"deactivate": {"txid": TXID}}})
    assert "no timestamp" in verify_deactivate(unsigned, KEY.address).reason
    with pytest.raises(ValidationError):
        encode_deactivate(unsigned)
    with pytest.raises(ValidationError):
        encode_edit(Edit(TXID, 1, []))


# -- patches ----------------------------------------------------------------------------------


def test_rfc6902_operations():
    doc = {"a": {"b": [1, 2, 3]}, "c": "x"}
    ops = [
        {"op": "add", "path": "/a/b/1", "value": 9},
        {"op": "add", "path": "/a/b/-", "value": 4},
        {"op": "remove", "path": "/a/b/0"},
        {"op": "replace", "path": "/c", "value": {"d": 1}},
        {"op": "copy", "from": "/c", "path": "/e"},
        {"op": "move", "from": "/e/d", "path": "/f"},
        {"op": "test", "path": "/a/b", "value": [9, 2, 3, 4.0]},
        {"op": "add", "path": "/k~1l~0", "value": True},
    ]
    assert apply_patch(doc, ops) == {
        "a": {"b": [9, 2, 3, 4]},
        "c": {"d": 1},
        "e": {},
        "f": 1,
        "k/l~": True,
    }
    assert doc == {"a": {"b": [1, 2, 3]}, "c": "x"}  # input untouched


@pytest.mark.parametrize(
    ("ops", "words"),
    [
        ([{"op": "remove", "path": "/nope"}], "no member"),
        ([{"op": "replace", "path": "/a/5", "value": 1}], "out of range"),
        ([{"op": "add", "path": "/a/01", "value": 1}], "not an array index"),
        ([{"op": "add", "path": "a", "value": 1}], "start with '/'"),
        ([{"op": "add", "path": "/s/x", "value": 1}], "cannot add a member to a string"),
        ([{"op": "test", "path": "/s", "value": "t"}], "test failed"),
        ([{"op": "test", "path": "/a/0", "value": True}], "test failed"),
        ([{"op": "move", "from": "/a", "path": "/a/0"}], "its own child"),
        ([{"op": "remove", "path": ""}], "whole document"),
        ([{"op": "jump", "path": "/a"}], "unknown op"),
        ([{"op": "add", "path": "/a"}], "lacks 'value'"),
        ([{"op": "copy", "path": "/a"}], "lacks 'from'"),
        ([{"op": "add", "path": "/~2", "value": 1}], "'~'"),
        ([5], "not an object"),
        ({"remove": "/a"}, "'remove' must be a list"),
        ({"launch": []}, "unknown operation"),
        ("not json", "not JSON"),
        (7, "must be a list"),
    ],
)
def test_patch_errors(ops, words):
    with pytest.raises(PatchError) as err:
        apply_patch({"a": [1], "s": "x"}, ops)
    assert words in str(err.value)


def test_artifact_patch_tolerates_the_oipd_prefix_and_revalidates(signed):
    patched = apply_artifact_patch(
        signed, [{"op": "replace", "path": "/artifact/info/title", "value": "New"}]
    )
    assert patched.info.title == "New"
    with pytest.raises(PatchError, match=r"details\.date"):
        apply_artifact_patch(signed, [{"op": "replace", "path": "/details/date", "value": "x"}])


def test_squash_round_trip():
    ops = normalize_patch(
        [
            {"op": "add", "path": "/a", "value": 1},
            {"op": "remove", "path": "/b"},
            {"op": "move", "from": "/c", "path": "/d"},
        ]
    )
    sq = squash(ops)
    assert sq == {
        "add": [{"path": "/a", "value": 1}],
        "remove": ["/b"],
        "move": [{"from": "/c", "path": "/d"}],
    }
    assert sorted(map(json.dumps, normalize_patch(sq))) == sorted(map(json.dumps, ops))


# -- properties -------------------------------------------------------------------------------

# Text the decoder accepts (decoding.UNSAFE_TEXT: no C0 controls but tab/LF/CR, no surrogates).
_text = st.text(max_size=20).filter(lambda t: UNSAFE_TEXT.search(t) is None)
_float = st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: str(f) != "-0.0")
_number = st.integers(-(10**15), 10**15) | _float
_json = st.recursive(
    st.none() | st.booleans() | _number | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=6,
)
_extras = st.dictionaries(
    st.text(min_size=1, max_size=6)
    .filter(lambda t: UNSAFE_TEXT.search(t) is None)
    .map(lambda s: "x_" + s),
    _json,
    max_size=2,
)


def _opt(strategy):
    return st.none() | strategy


_file = st.builds(
    lambda f, extra: {**{k: v for k, v in f.items() if v is not None}, **extra},
    st.fixed_dictionaries(
        {
            "fname": _opt(_text),
            "fsize": _opt(st.integers(0, 2**40)),
            "subtype": _opt(_text),
            "cType": _opt(_text),
        }
    ),
    _extras,
)
_artifact = st.fixed_dictionaries(
    {
        "floAddress": _opt(_text),
        "timestamp": _opt(st.integers(0, 2**40)),
        "type": _opt(_text),
        "info": _opt(st.fixed_dictionaries({"title": _opt(_text), "tags": _opt(_text)})),
        "details": _opt(
            st.fixed_dictionaries(
                {
                    "date": _opt(st.integers(-(2**40), 2**40)),
                    "NBCItaxID": _opt(st.integers(0, 10**7)),
                    "speciesName": _opt(_text),
                    "defocus": _opt(_number),
                    "tiltMin": _opt(_number),
                    "artNotes": _opt(_text),
                }
            )
        ),
        "storage": _opt(
            st.fixed_dictionaries(
                {"location": _opt(_text), "files": _opt(st.lists(_file, max_size=3))}
            )
        ),
        "signature": _opt(_text),
    }
).flatmap(lambda d: _extras.map(lambda e: {**d, **e}))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_artifact)
def test_encode_decode_round_trip(doc):
    art = Artifact.from_wire(doc)
    text = encode_publish(art, check=False)
    back = decode(text, strict=False).artifact
    assert encode_publish(back, check=False) == text
    # Go prints 5.7e16 as 57376861817295590, which decodes as an int: compare as floats.
    assert _as_floats(back.to_wire()) == _as_floats(json.loads(go_json(art.to_wire())))
    assert _as_floats(back.to_wire()) == _as_floats(art.to_wire())


def _as_floats(value):
    if isinstance(value, dict):
        return {k: _as_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_floats(v) for v in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return value


_fuzz_json = st.recursive(
    st.none() | st.booleans() | _number | _text,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "oip042",
                    "publish",
                    "edit",
                    "deactivate",
                    "artifact",
                    "meta",
                    "txid",
                    "artifactID",
                    "timestamp",
                    "patch",
                    "signature",
                    "floAddress",
                    "info",
                    "details",
                    "storage",
                    "files",
                    "fname",
                    "op",
                    "path",
                    "value",
                    "from",
                    "remove",
                    "add",
                ]
            )
            | _text,
            inner,
            max_size=5,
        )
    ),
    max_leaves=25,
)


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        _fuzz_json.map(json.dumps),
        _fuzz_json.map(lambda v: "json:" + json.dumps(v)),
        st.text(max_size=60),
        st.binary(max_size=40),
    )
)
def test_decode_fuzz_raises_only_record_errors(data):
    for strict in (True, False):
        try:
            msg = decode(data, strict=strict, bare_artifact=True)
        except RecordError:
            continue
        assert isinstance(msg, Publish | Edit | Deactivate)


_ops = st.lists(
    st.fixed_dictionaries(
        {
            "op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test", "x"]),
            "path": st.sampled_from(["", "/a", "/a/0", "/a/-", "/b/c", "/a/1/x", "/~1", "/b"])
            | _text,
        },
        optional={"value": _json, "from": st.sampled_from(["/a", "/b", "/a/0", ""]) | _text},
    )
    | _json,
    max_size=5,
)


@settings(max_examples=200, deadline=None)
@given(_json | st.fixed_dictionaries({"a": st.lists(_json, max_size=3), "b": _json}), _ops)
def test_patch_fuzz_raises_only_patch_errors(doc, ops):
    with contextlib.suppress(PatchError):
        apply_patch(doc, ops)


@settings(max_examples=150, deadline=None)
@given(_json, _json)
def test_diff_then_apply_reproduces_the_target(old, new):
    assert apply_patch(old, diff(old, new), strip_artifact_prefix=False) == new
