"""CID, multibase and dag-pb primitives against published vectors."""

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from etdb.content.cid import (
    CID,
    DAG_PB,
    RAW,
    CIDError,
    b58decode,
    b58encode,
    decode_varint,
    encode_varint,
)
from etdb.content.dagpb import (
    DagPBError,
    PBLink,
    PBNode,
    UnixFSData,
    UnixFSType,
    decode_node,
    decode_unixfs,
    encode_node,
    encode_unixfs,
    file_leaf_frame,
)

EMPTY_DIR_V0 = "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn"
EMPTY_DIR_V1 = "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354"


def test_known_vectors():
    # kubo test/cli/add_test.go: "hello world" as a single raw block (CIDv1).
    assert str(CID.hash(b"hello world")) == (
        "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
    )
    empty_dir = encode_node(PBNode(data=encode_unixfs(UnixFSData(UnixFSType.DIRECTORY))))
    assert str(CID.hash(empty_dir, version=0)) == EMPTY_DIR_V0
    assert str(CID.hash(empty_dir, DAG_PB)) == EMPTY_DIR_V1
    assert CID.decode(EMPTY_DIR_V0).to_v1() == CID.decode(EMPTY_DIR_V1)


def test_file_leaf_frame_matches_full_encoding():
    for chunk in (b"", b"a", b"x" * 300, b"y" * 262144):
        prefix, suffix = file_leaf_frame(len(chunk))
        inner = UnixFSData(UnixFSType.FILE, chunk or None, filesize=len(chunk))
        assert prefix + chunk + suffix == encode_node(PBNode(data=encode_unixfs(inner)))
    # Byte layouts kubo writes for the empty file and for "a".
    assert b"".join(file_leaf_frame(0)) == bytes.fromhex("0a0408021800")
    p, s = file_leaf_frame(1)
    assert (
        str(CID.hash(p + b"a" + s, version=0)) == "QmfDmsHTywy6L9Ne5RXsj5YumDedfBLMvCvmaxjBoe6w4d"
    )


@pytest.mark.parametrize(
    "text", [EMPTY_DIR_V0, EMPTY_DIR_V1, "zdj7WhuEjrB52m1BisYCtmjH1hSKa7yZ3jEZ9JcXaFRD51wVz"]
)
def test_decode_roundtrip(text):
    cid = CID.decode(text)
    assert CID.from_bytes(bytes(cid)) == cid
    assert CID.decode(str(cid)) == cid


@pytest.mark.parametrize(
    "bad",
    ["", "Qm", "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3N0", "xyz", "bafy", "b!!!", "f0z"],
)
def test_decode_rejects(bad):
    with pytest.raises(CIDError):
        CID.decode(bad)


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_varint_roundtrip(n):
    enc = encode_varint(n)
    assert decode_varint(enc) == (n, len(enc))


@given(st.binary(max_size=64))
def test_base58_roundtrip(data):
    assert b58decode(b58encode(data)) == data


@given(st.binary(max_size=200))
def test_decoders_raise_only_typed_errors(data):
    for fn in (decode_node, decode_unixfs):
        with contextlib.suppress(DagPBError):
            fn(data)
    with contextlib.suppress(CIDError):
        CID.from_bytes(data)


def test_node_roundtrip_keeps_empty_names():
    leaf = CID.hash(b"abc")
    node = PBNode(
        (PBLink(leaf, "", 3), PBLink(leaf, "ünï", 3), PBLink(leaf, None, None)), b"\x08\x01"
    )
    assert decode_node(encode_node(node)) == node
    assert CID.hash(b"x", RAW).codec_name == "raw"
