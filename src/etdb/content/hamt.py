"""HAMT-sharded UnixFS directories (UnixFS type 5): building, listing and lookup.

Spec: https://specs.ipfs.tech/unixfs/#dag-pb-hamtdirectory, as implemented by boxo
``ipld/unixfs/hamt`` and js ``ipfs-unixfs-importer`` (``dir-sharded.js``):

* The hash is ``hashType = 0x22`` "murmur3-x64-64": MurmurHash3 x64_128 with seed 0, of which
  only the first 64-bit word ``h1`` is kept (Go's ``murmur3.Sum64``); its big-endian bytes are
  consumed most significant bit first, ``log2(fanout)`` bits per level.
* A shard node is ``PBNode{Links, Data: UnixFS{Type: HAMTShard, Data: bitfield, hashType,
  fanout}}``. The bitfield is the integer Σ 2**slot written big-endian with leading zero bytes
  dropped (go-bitfield ``Bytes()``; js reverses its little-endian array to match).
* Links are in slot order. A slot holding one entry links it as ``HEX(slot) + name``; a slot
  holding several entries links a sub-shard named ``HEX(slot)`` alone. Hex is upper case,
  zero-padded to ``len(hex(fanout - 1))`` characters (2 for fanout 256).
* Built from scratch by insertion only, the trie is canonical: a sub-shard exists exactly where
  two or more names share a slot prefix, so the order of insertion does not matter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from etdb.content.cid import CID
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
)

HASH_MURMUR3_X64_64 = 0x22
_M64 = 0xFFFFFFFFFFFFFFFF
_C1 = 0x87C37B91114253D5
_C2 = 0x4CF5AD432745937F


class HAMTError(DagPBError):
    """A sharded directory is malformed or uses parameters we do not support."""


def _fmix64(k: int) -> int:
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & _M64
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & _M64
    return k ^ (k >> 33)


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _M64


def murmur3_x64_128(data: bytes, seed: int = 0) -> tuple[int, int]:
    """MurmurHash3_x64_128 (Austin Appleby's reference ``MurmurHash3.cpp``) as (h1, h2)."""
    n = len(data)
    h1 = h2 = seed & _M64
    end = n - n % 16
    for i in range(0, end, 16):
        k1 = int.from_bytes(data[i : i + 8], "little")
        k2 = int.from_bytes(data[i + 8 : i + 16], "little")
        h1 ^= (_rotl((k1 * _C1) & _M64, 31) * _C2) & _M64
        h1 = (((_rotl(h1, 27) + h2) & _M64) * 5 + 0x52DCE729) & _M64
        h2 ^= (_rotl((k2 * _C2) & _M64, 33) * _C1) & _M64
        h2 = (((_rotl(h2, 31) + h1) & _M64) * 5 + 0x38495AB5) & _M64
    tail = data[end:]
    if len(tail) > 8:
        h2 ^= (_rotl((int.from_bytes(tail[8:], "little") * _C2) & _M64, 33) * _C1) & _M64
    if tail:
        h1 ^= (_rotl((int.from_bytes(tail[:8], "little") * _C1) & _M64, 31) * _C2) & _M64
    h1 ^= n
    h2 ^= n
    h1 = (h1 + h2) & _M64
    h2 = (h2 + h1) & _M64
    h1 = _fmix64(h1)
    h2 = _fmix64(h2)
    h1 = (h1 + h2) & _M64
    h2 = (h2 + h1) & _M64
    return h1, h2


def murmur3_x64_64(data: bytes) -> int:
    """The HAMT key hash: the first 64 bits (h1) of MurmurHash3_x64_128, seed 0."""
    return murmur3_x64_128(data)[0]


def _geometry(fanout: int) -> tuple[int, int]:
    if fanout < 2 or fanout > 1024 or fanout & (fanout - 1):
        raise HAMTError(f"HAMT fanout must be a power of two in 2..1024, not {fanout}")
    return fanout.bit_length() - 1, len(f"{fanout - 1:X}")


def _slot(hash64: int, depth: int, bits: int) -> int:
    shift = 64 - bits * (depth + 1)
    if shift < 0:
        raise HAMTError("HAMT hash exhausted: two names share all 64 hash bits")
    return (hash64 >> shift) & ((1 << bits) - 1)


def shard_data(bitfield: int, fanout: int) -> bytes:
    """The UnixFS Data of a shard node (fields in boxo's order: Type, Data, hashType, fanout)."""
    raw = bitfield.to_bytes((bitfield.bit_length() + 7) // 8, "big")
    return encode_unixfs(
        UnixFSData(UnixFSType.HAMT_SHARD, data=raw, hash_type=HASH_MURMUR3_X64_64, fanout=fanout)
    )


def build_hamt(
    entries: Iterable[tuple[str, CID, int]], fanout: int, emit: Callable[[bytes], CID]
) -> tuple[CID, int, int]:
    """Build a sharded directory from (name, child CID, child Tsize) entries.

    ``emit(block)`` stores a shard node and returns its CID; sub-shards are emitted before the
    shards that link them. Returns (root CID, root Tsize, number of shard blocks).
    """
    bits, pad = _geometry(fanout)
    keyed = [(murmur3_x64_64(n.encode("utf-8")), n, cid, tsize) for n, cid, tsize in entries]
    count = 0

    def node(items: list[tuple[int, str, CID, int]], depth: int) -> tuple[CID, int]:
        nonlocal count
        slots: dict[int, list[tuple[int, str, CID, int]]] = {}
        for item in items:
            slots.setdefault(_slot(item[0], depth, bits), []).append(item)
        links: list[PBLink] = []
        bitfield = 0
        children_tsize = 0
        for slot in sorted(slots):
            bucket = slots[slot]
            label = f"{slot:0{pad}X}"
            bitfield |= 1 << slot
            if len(bucket) == 1:
                _, name, cid, tsize = bucket[0]
                links.append(PBLink(cid, label + name, tsize))
            else:
                cid, tsize = node(bucket, depth + 1)
                links.append(PBLink(cid, label, tsize))
            children_tsize += tsize
        block = encode_node(PBNode(tuple(links), shard_data(bitfield, fanout)))
        count += 1
        return emit(block), len(block) + children_tsize

    root, tsize = node(keyed, 0)
    return root, tsize, count


# -- reading ------------------------------------------------------------------------------------


def _shard_params(node: PBNode) -> tuple[int, int]:
    if node.data is None:
        raise HAMTError("HAMT shard without UnixFS Data")
    meta = decode_unixfs(node.data)
    if meta.type != UnixFSType.HAMT_SHARD:
        raise HAMTError(f"not a HAMT shard (UnixFS type {int(meta.type)})")
    if meta.hash_type != HASH_MURMUR3_X64_64:
        raise HAMTError(f"unsupported HAMT hash type {meta.hash_type}")
    if meta.fanout is None:
        raise HAMTError("HAMT shard without fanout")
    return _geometry(meta.fanout)


def _split(name: str | None, pad: int) -> tuple[int, str]:
    if name is None or len(name) < pad:
        raise HAMTError(f"bad HAMT link name {name!r}")
    try:
        slot = int(name[:pad], 16)
    except ValueError:
        raise HAMTError(f"bad HAMT link name {name!r}") from None
    return slot, name[pad:]


def hamt_entries(
    get_block: Callable[[CID], bytes], root: PBNode, _depth: int = 0
) -> Iterator[tuple[str, PBLink]]:
    """Yield (entry name, link to the entry) in shard order, descending into sub-shards."""
    bits, pad = _shard_params(root)
    # Each level consumes `bits` of the 64-bit hash: a deeper shard is malformed (or hostile,
    # built to exhaust the stack), never something an importer wrote.
    if bits * (_depth + 1) > 64:
        raise HAMTError("HAMT sub-shards nested deeper than the 64-bit hash allows")
    for link in root.links:
        _, rest = _split(link.name, pad)
        if rest:
            yield rest, link
        else:
            yield from hamt_entries(get_block, decode_node(get_block(link.cid)), _depth + 1)


def hamt_lookup(get_block: Callable[[CID], bytes], root: PBNode, name: str) -> PBLink | None:
    """Find ``name`` by following its hash: one shard block per level, no listing."""
    key = murmur3_x64_64(name.encode("utf-8"))
    node = root
    depth = 0
    while True:
        bits, pad = _shard_params(node)
        label = f"{_slot(key, depth, bits):0{pad}X}"
        for link in node.links:
            if link.name == label:
                node = decode_node(get_block(link.cid))
                depth += 1
                break
            if link.name == label + name:
                return link
        else:
            return None
