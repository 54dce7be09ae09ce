"""Multipart (oip-mp) parts: parsing, signing, splitting, joining, assembling."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etdb.record import (
    MultipartAssembler,
    MultipartError,
    Part,
    PrivateKey,
    RecordError,
    join,
    parse_part,
    plan_parts,
    sign_part,
    split,
    verify_part,
)
from etdb.record.signing import multipart_preimage, sign_message

KEY = PrivateKey(bytes.fromhex("11" * 32))
OTHER = PrivateKey(bytes.fromhex("22" * 32))


def txid(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


TX0 = txid("part0")


def test_go_etdb_cut_points_for_ascii():
    data = "x" * (840 + 790 + 5)
    chunks = plan_parts(data, address=KEY.address)
    assert [len(c) for c in chunks] == [840, 790, 5]


@pytest.mark.parametrize("k", [1, 2, 3, 12])
def test_exact_multiples_never_produce_an_empty_part(k):
    # go-etdb emitted k+2 parts here, the last one empty (reference §3).
    data = "".join(chr(97 + i % 26) for i in range(840 + 790 * k))
    parts = split(data, KEY, part0_txid=TX0)
    assert len(parts) == k + 1
    parsed = [parse_part(p) for p in parts]
    assert all(p.data for p in parsed) and all(len(p.encode()) <= 1040 for p in parts)
    assert join(parts, part0_txid=TX0) == data


def test_data_that_fits_one_part_is_refused():
    with pytest.raises(MultipartError, match="fits in one part"):
        plan_parts("x" * 840, address=KEY.address)
    with pytest.raises(MultipartError, match="empty"):
        plan_parts("", address=KEY.address)


def test_long_headers_shrink_the_chunks():
    data = "y" * 5000
    chunks = plan_parts(data, address=KEY.address, part0_size=1000, part_size=1000)
    parts = split(data, KEY, part0_txid=TX0, part0_size=1000, part_size=1000)
    assert max(len(p) for p in parts) == 1040 and "".join(chunks) == data


def test_multibyte_text_is_cut_on_characters_within_the_byte_limit():
    data = "Å😀µ" * 900
    parts = split(data, KEY, part0_txid=TX0)
    assert all(len(p.encode("utf-8")) <= 1040 for p in parts)
    assert join(parts) == data


def test_sign_part_checks_its_arguments():
    with pytest.raises(MultipartError, match="empty part"):
        sign_part(KEY, 1, 2, TX0, "")
    with pytest.raises(MultipartError, match="out of range"):
        sign_part(KEY, 3, 2, TX0, "d")
    with pytest.raises(MultipartError, match="out of range"):
        sign_part(KEY, 0, 0, "", "d")
    with pytest.raises(MultipartError, match="empty reference"):
        sign_part(KEY, 0, 2, TX0, "d")
    with pytest.raises(MultipartError, match="64-hex txid"):
        sign_part(KEY, 1, 2, "abc", "d")
    with pytest.raises(MultipartError, match="over the 1040-byte"):
        sign_part(KEY, 1, 2, TX0, "d" * 900)


def test_parse_round_trip_and_first_separator_split():
    text = sign_part(KEY, 1, 2, TX0, "a):b):c")
    part = parse_part(text)
    assert (part.part, part.max_index, part.address, part.reference) == (1, 2, KEY.address, TX0)
    assert part.data == "a):b):c" and part.to_flo_data() == text


def test_legacy_zero_reference_preimage_is_accepted_for_part_0():
    sig = sign_message(KEY, multipart_preimage(0, 1, KEY.address, "0" * 64, "data"))
    part = parse_part(f"oip-mp(0,1,{KEY.address},,{sig}):data")
    assert verify_part(part).valid
    # ... but not for later parts
    sig1 = sign_message(KEY, multipart_preimage(1, 1, KEY.address, "0" * 64, "data"))
    with pytest.raises(MultipartError, match="bad signature"):
        parse_part(f"oip-mp(1,1,{KEY.address},{TX0},{sig1}):data")


def test_trailing_comma_and_omitted_reference_are_tolerated():
    text = sign_part(KEY, 0, 1, "", "data")
    head, data = text.split("):", 1)
    assert parse_part(head + ",):" + data).data == "data"
    fields = head.split(",")
    del fields[3]
    assert parse_part(",".join(fields) + "):" + data).reference == ""


SIG = "A" * 87 + "="  # 65 zero bytes


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("json:{}", "not a multipart part"),
        (f"oip-mp(0,1,{KEY.address},,{SIG}", "not closed"),
        (f"oip-mp(0,1,{KEY.address}):d,e,f):x", "has 3 fields"),
        (f"oip-mp(0,1,{KEY.address},,,,,{SIG}):d", "has 8 fields"),
        (f"oip-mp(0,1,{KEY.address},,{SIG},x):d", "6 fields"),
        (f"oip-mp(a,1,{KEY.address},,{SIG}):d", "part 'a' is not a plain decimal"),
        (f"oip-mp(-1,1,{KEY.address},,{SIG}):d", "not a plain decimal"),
        (f"oip-mp(01,1,{KEY.address},,{SIG}):d", "not a plain decimal"),
        (f"oip-mp(0,0,{KEY.address},,{SIG}):d", "at least 1"),
        (f"oip-mp(0,1000,{KEY.address},,{SIG}):d", "exceeds 999"),
        (f"oip-mp(2,1,{KEY.address},,{SIG}):d", "exceeds max"),
        (f"oip-mp(0,1,F0O,,{SIG}):d", "not a base58 address"),
        (f"oip-mp(1,1,{KEY.address},,{SIG}):d", "64-hex txid"),
        (f"oip-mp(0,1,{KEY.address},abc,{SIG}):d", "empty reference"),
        (f"oip-mp(0,1,{KEY.address},,not*base64):d", "not valid base64"),
        (f"oip-mp(0,1,{KEY.address},,AAAA):d", "3 bytes, expected 65"),
        (f"oip-mp(0,1,{KEY.address},,{SIG}):d", "part 0:"),
    ],
)
def test_parse_errors_are_precise(text, words):
    with pytest.raises(MultipartError) as err:
        parse_part(text)
    assert words in str(err.value)


@pytest.fixture
def parts() -> list[str]:
    return split("z" * 2500, KEY, part0_txid=TX0)


def test_join_any_order_and_identical_duplicates(parts):
    assert join([parts[2], parts[0], parts[1], parts[3], parts[1]], part0_txid=TX0) == "z" * 2500


@pytest.mark.parametrize(
    ("mutate", "words"),
    [
        (lambda ps: ps[:2] + ps[3:], "missing parts 2 of 0-3"),
        (lambda ps: ps[1:2], "missing parts 0, 2-3"),
        (lambda ps: [*ps, sign_part(KEY, 1, 3, TX0, "other")], "two different parts claim index 1"),
        (lambda ps: [*ps[:3], sign_part(OTHER, 3, 3, TX0, "z")], "different addresses"),
        (lambda ps: [*ps[:3], sign_part(KEY, 3, 4, TX0, "z")], "disagree on max"),
        (lambda ps: [*ps[:3], sign_part(KEY, 3, 3, txid("x"), "z")], "different part-0 txids"),
        (lambda ps: [], "no parts"),
    ],
)
def test_join_rejects(parts, mutate, words):
    with pytest.raises(MultipartError) as err:
        join(mutate(parts))
    assert words in str(err.value)


def test_join_checks_the_part0_txid_and_signatures(parts):
    with pytest.raises(MultipartError, match="do not reference part 0's txid"):
        join(parts, part0_txid=txid("other"))
    forged = dataclasses.replace(parse_part(parts[1]), data="evil")
    with pytest.raises(MultipartError, match="part 1: bad signature"):
        join([parts[0], forged, *parts[2:]])
    assert join([parts[0], forged, *parts[2:]], verify=False).count("evil") == 1


def test_join_rejects_an_empty_part_like_go_etdbs():
    data_parts = ["a" * 840, "b" * 790]
    texts = [sign_part(KEY, i, 2, TX0 if i else "", d) for i, d in enumerate(data_parts)]
    empty = Part(
        2,
        2,
        KEY.address,
        TX0,
        sign_message(KEY, multipart_preimage(2, 2, KEY.address, TX0, "")),
        "",
    ).to_flo_data()
    with pytest.raises(MultipartError, match="parts 2 are empty"):
        join([*texts, empty])


def test_assembler(parts):
    asm = MultipartAssembler()
    assert asm.add(parts[3]) is None and asm.add(parts[1]) is None
    assert asm.pending() == {TX0: [0, 2]} and len(asm) == 1
    assert asm.add(parts[1]) is None  # identical duplicate
    with pytest.raises(MultipartError, match="own txid"):
        asm.add(parts[0])
    with pytest.raises(MultipartError, match="two different parts"):
        asm.add(sign_part(KEY, 1, 3, TX0, "other"))
    with pytest.raises(MultipartError, match="does not belong"):
        asm.add(sign_part(KEY, 2, 5, TX0, "z"))
    assert asm.add(parts[0], txid=TX0.upper()) is None
    done = asm.add(parts[2])
    assert done is not None and done.txid == TX0 and done.data == "z" * 2500
    assert done.address == KEY.address and len(asm) == 0


def test_assembler_verifies(parts):
    forged = dataclasses.replace(parse_part(parts[1]), data="evil")
    with pytest.raises(MultipartError, match="bad signature"):
        MultipartAssembler().add(forged)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(841, 6000).flatmap(
        lambda n: st.text(st.characters(codec="utf-8"), min_size=n, max_size=n) | st.just("q" * n)
    )
)
def test_split_join_round_trip(data):
    try:
        parts = split(data, KEY, part0_txid=TX0)
    except MultipartError as exc:
        assert "fits in one part" in str(exc)
        return
    assert len(parts) >= 2
    for text in parts:
        assert len(text.encode("utf-8")) <= 1040
        assert parse_part(text).data
    assert join(reversed(parts), part0_txid=TX0) == data


_field = st.sampled_from(
    ["0", "1", "2", "51", "-1", "", "x", KEY.address, SIG, "0" * 64]
) | st.text(max_size=12)


@settings(max_examples=200, deadline=None)
@given(
    st.text(max_size=80)
    | st.builds(lambda s: "oip-mp(" + s, st.text(max_size=80))
    | st.builds(
        lambda fs, data: "oip-mp(" + ",".join(fs) + "):" + data,
        st.lists(_field, min_size=3, max_size=7),
        st.text(max_size=20),
    )
)
def test_parse_part_fuzz_raises_only_record_errors(text):
    try:
        part = parse_part(text)
    except RecordError:
        return
    assert isinstance(part, Part)
