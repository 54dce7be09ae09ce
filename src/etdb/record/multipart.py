"""OIP multipart messages: ``oip-mp(part,max,address,reference,signature):data`` (reference §3).

A record too long for one floData (1040 bytes) is cut into parts. ``max`` is the index of the
last part; part 0 has an empty reference, later parts carry part 0's txid, so they can only be
signed once part 0 is on the ledger: :func:`plan_parts` cuts the data, :func:`sign_part`
builds each part when its reference is known (:func:`split` does both when the txid is known).

Differences from go-etdb, on purpose: no empty final part (go-etdb emitted one when
``len - 840`` was a multiple of 790, and oipd then never completed the record), and chunk
sizes are UTF-8 byte budgets shrunk so that header + data always fits in ``limit`` bytes.
For ASCII data and a 34-character address the cut points are exactly go-etdb's.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass

from etdb.record.errors import MultipartError
from etdb.record.messages import VerifyResult, check_signature
from etdb.record.signing import Network, PrivateKey, multipart_preimage, sign_message

__all__ = [
    "FLO_DATA_LIMIT",
    "MAX_INDEX",
    "MULTIPART_PREFIXES",
    "Completed",
    "MultipartAssembler",
    "Part",
    "join",
    "parse_part",
    "plan_parts",
    "sign_part",
    "split",
    "verify_part",
]

FLO_DATA_LIMIT = 1040  # MAX_FLO_DATA_SIZE, bytes
MAX_INDEX = 999  # oipd never assembles more than 1000 parts
LEGACY_PART0_REFERENCE = "0" * 64  # older signers put 64 zeros in part 0's preimage
#: How a multipart part opens: oipd's ``oip-mp(`` and the older Alexandria spelling.
MULTIPART_PREFIXES = ("oip-mp(", "alexandria-media-multipart(")
_SIGNATURE_CHARS = 88  # base64 of a 65-byte compact signature
_NUMBER = re.compile(r"0|[1-9][0-9]{0,8}")
_TXID = re.compile(r"[0-9a-fA-F]{64}")
_ADDRESS = re.compile(r"[1-9A-HJ-NP-Za-km-z]{20,64}")  # base58; the network is checked later


@dataclass(frozen=True)
class Part:
    """One parsed part; ``data`` is exactly what follows the first ``"):"``."""

    part: int
    max_index: int
    address: str
    reference: str
    signature: str
    data: str

    @property
    def preimages(self) -> list[str]:
        """What the signature may cover: the modern preimage, plus the legacy 64-zero one."""
        found = [
            multipart_preimage(self.part, self.max_index, self.address, self.reference, self.data)
        ]
        if self.part == 0 and self.reference == "":
            found.append(
                multipart_preimage(
                    0, self.max_index, self.address, LEGACY_PART0_REFERENCE, self.data
                )
            )
        return found

    def same_content(self, other: Part) -> bool:
        """Same part of the same message (signatures may differ and both be valid)."""
        return (self.part, self.max_index, self.address, self.reference, self.data) == (
            other.part,
            other.max_index,
            other.address,
            other.reference,
            other.data,
        )

    def to_flo_data(self) -> str:
        return (
            f"oip-mp({self.part},{self.max_index},{self.address},{self.reference},"
            f"{self.signature}):{self.data}"
        )


def verify_part(part: Part, network: Network | None = None) -> VerifyResult:
    return check_signature("multipart", part.address, part.preimages, part.signature, network)


def _number(text: str, what: str) -> int:
    if not _NUMBER.fullmatch(text):
        raise MultipartError(f"multipart {what} {text[:20]!r} is not a plain decimal number")
    return int(text)


def parse_part(text: str, *, verify: bool = True, network: Network | None = None) -> Part:
    """Parse (and by default verify) one part, as oipd does: split on the first ``"):"``."""
    if not isinstance(text, str):
        raise MultipartError(f"a multipart part is text, not {type(text).__name__}")
    prefix = next((p for p in MULTIPART_PREFIXES if text.startswith(p)), None)
    if prefix is None:
        raise MultipartError(f"not a multipart part: expected 'oip-mp(', got {text[:12]!r}")
    header, sep, data = text[len(prefix) :].partition("):")
    if not sep:
        raise MultipartError("multipart header is not closed by '):'")
    fields = header.split(",")
    if len(fields) == 6 and fields[5] == "":  # fluffy-enigma's trailing comma
        fields = fields[:5]
    if len(fields) == 4:  # oipd: reference omitted
        fields.insert(3, "")
    if len(fields) != 5:
        raise MultipartError(
            f"multipart header has {len(fields)} fields; expected "
            "part,max,address,reference,signature"
        )
    part_s, max_s, address, reference, signature = fields
    part, max_index = _number(part_s, "part"), _number(max_s, "max")
    if max_index < 1:
        raise MultipartError("multipart max must be at least 1 (max is the last part's index)")
    if max_index > MAX_INDEX:
        raise MultipartError(f"multipart max {max_index} exceeds {MAX_INDEX} (oipd's limit)")
    if part > max_index:
        raise MultipartError(f"multipart part {part} exceeds max {max_index}")
    if not _ADDRESS.fullmatch(address):
        raise MultipartError(f"multipart address {address[:40]!r} is not a base58 address")
    if part > 0 and not _TXID.fullmatch(reference):
        raise MultipartError(
            f"part {part} must reference part 0's 64-hex txid, got {reference[:70]!r}"
        )
    if part == 0 and reference not in ("", LEGACY_PART0_REFERENCE):
        raise MultipartError(f"part 0 must have an empty reference, got {reference[:70]!r}")
    try:
        raw_sig = base64.b64decode(signature.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise MultipartError("multipart signature is not valid base64") from None
    if len(raw_sig) != 65:
        raise MultipartError(f"multipart signature is {len(raw_sig)} bytes, expected 65")
    result = Part(part, max_index, address, reference, signature, data)
    if verify:
        check = verify_part(result, network)
        if not check.valid:
            raise MultipartError(f"part {part}: {check.reason}")
    return result


# -- writing ----------------------------------------------------------------------------------


def _header_bytes(part_digits: int, max_digits: int, address: str, reference_len: int) -> int:
    # oip-mp( P , M , ADDRESS , REF , SIG ):
    return 7 + part_digits + 1 + max_digits + 1 + len(address) + 1 + reference_len + 1 + 90


def _chunks(data: str, first: int, rest: int) -> list[str]:
    """Cut ``data`` into chunks of at most ``first`` then ``rest`` UTF-8 bytes, never a char."""
    if data.isascii():
        out = [data[:first]]
        out.extend(data[i : i + rest] for i in range(first, len(data), rest))
        return [c for c in out if c]
    out, start, used, budget = [], 0, 0, first
    for i, ch in enumerate(data):
        size = len(ch.encode("utf-8", "surrogatepass"))
        if used + size > budget:
            out.append(data[start:i])
            start, used, budget = i, 0, rest
        used += size
    out.append(data[start:])
    return [c for c in out if c]


def plan_parts(
    data: str,
    *,
    address: str,
    part0_size: int = 840,
    part_size: int = 790,
    limit: int = FLO_DATA_LIMIT,
) -> list[str]:
    """The data of each part (at least two, none empty), each fitting ``limit`` with its header."""
    if not data:
        raise MultipartError("nothing to split: the data is empty")
    if part0_size < 1 or part_size < 1:
        raise MultipartError("part sizes must be positive")
    digits = 1
    while True:
        first = min(part0_size, limit - _header_bytes(1, digits, address, 0))
        rest = min(part_size, limit - _header_bytes(digits, digits, address, 64))
        if first < 4 or rest < 4:  # room for at least one UTF-8 character
            raise MultipartError(f"a {limit}-byte limit leaves no room for data after the header")
        chunks = _chunks(data, first, rest)
        needed = len(str(len(chunks) - 1))
        if needed <= digits:
            break
        digits = needed  # more parts, longer header: cut again
    if len(chunks) < 2:
        raise MultipartError(
            f"the data fits in one part ({len(data.encode('utf-8', 'surrogatepass'))} bytes); "
            "a multipart needs at least two, so send it as plain floData"
        )
    if len(chunks) - 1 > MAX_INDEX:
        raise MultipartError(f"the data needs {len(chunks)} parts; oipd assembles at most 1000")
    return chunks


def sign_part(
    key: PrivateKey,
    part: int,
    max_index: int,
    reference: str,
    data: str,
    *,
    limit: int = FLO_DATA_LIMIT,
) -> str:
    """One signed part as floData; ``reference`` is "" for part 0, else part 0's txid."""
    if not data:
        raise MultipartError("refusing to emit an empty part")
    if not 1 <= max_index <= MAX_INDEX or not 0 <= part <= max_index:
        raise MultipartError(f"part {part} of max {max_index} is out of range")
    if part == 0 and reference:
        raise MultipartError("part 0 has an empty reference")
    if part > 0 and not _TXID.fullmatch(reference):
        raise MultipartError(f"part {part} needs part 0's 64-hex txid as reference")
    preimage = multipart_preimage(part, max_index, key.address, reference, data)
    signature = sign_message(key, preimage)
    text = Part(part, max_index, key.address, reference, signature, data).to_flo_data()
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise MultipartError(f"part {part} is {size} bytes, over the {limit}-byte floData limit")
    return text


def split(
    data: str,
    key: PrivateKey,
    *,
    part0_txid: str,
    part0_size: int = 840,
    part_size: int = 790,
    limit: int = FLO_DATA_LIMIT,
) -> list[str]:
    """All signed parts, given part 0's txid (signatures are deterministic, so part 0 is
    the same string whether it is made before or after its txid is known)."""
    chunks = plan_parts(
        data, address=key.address, part0_size=part0_size, part_size=part_size, limit=limit
    )
    max_index = len(chunks) - 1
    return [
        sign_part(key, i, max_index, part0_txid if i else "", chunk, limit=limit)
        for i, chunk in enumerate(chunks)
    ]


# -- reading ----------------------------------------------------------------------------------


def _ranges(indexes: list[int]) -> str:
    spans: list[str] = []
    for i in indexes:
        if spans and spans[-1].split("-")[-1] == str(i - 1):
            spans[-1] = f"{spans[-1].split('-')[0]}-{i}"
        else:
            spans.append(str(i))
    return ", ".join(spans)


def join(
    parts: Iterable[Part | str],
    *,
    part0_txid: str | None = None,
    verify: bool = True,
    network: Network | None = None,
) -> str:
    """Reassemble the data, rejecting gaps, conflicts, foreign signers and bad references."""
    parsed = [p if isinstance(p, Part) else parse_part(p, verify=False) for p in parts]
    if not parsed:
        raise MultipartError("no parts to join")
    head = parsed[0]
    by_index: dict[int, Part] = {}
    for p in parsed:
        if p.max_index != head.max_index:
            raise MultipartError(f"parts disagree on max: {head.max_index} and {p.max_index}")
        if p.address != head.address:
            raise MultipartError(
                f"parts are signed by different addresses: {head.address}, {p.address}"
            )
        if verify:
            check = verify_part(p, network)
            if not check.valid:
                raise MultipartError(f"part {p.part}: {check.reason}")
        seen = by_index.get(p.part)
        if seen is not None and not seen.same_content(p):
            raise MultipartError(f"two different parts claim index {p.part}")
        by_index[p.part] = p
    missing = [i for i in range(head.max_index + 1) if i not in by_index]
    if missing:
        raise MultipartError(f"missing parts {_ranges(missing)} of 0-{head.max_index}")
    empty = [i for i, p in sorted(by_index.items()) if not p.data]
    if empty:
        raise MultipartError(f"parts {_ranges(empty)} are empty (oipd never completes those)")
    references = {p.reference.lower() for i, p in by_index.items() if i > 0}
    if len(references) > 1:
        raise MultipartError("later parts reference different part-0 txids")
    if part0_txid is not None and references != {part0_txid.lower()}:
        raise MultipartError(f"later parts do not reference part 0's txid {part0_txid}")
    return "".join(by_index[i].data for i in range(head.max_index + 1))


@dataclass(frozen=True)
class Completed:
    """A reassembled message: its txid is part 0's (as in oipd)."""

    txid: str
    address: str
    data: str


class MultipartAssembler:
    """Collects parts in any order, keyed by part 0's txid; returns each message once complete."""

    def __init__(self, *, verify: bool = True, network: Network | None = None) -> None:
        self._verify, self._network = verify, network
        self._groups: dict[str, dict[int, Part]] = {}

    def add(self, part: Part | str, txid: str | None = None) -> Completed | None:
        """Add one part (``txid`` is the part's own txid; required for part 0)."""
        p = part if isinstance(part, Part) else parse_part(part, verify=False)
        if self._verify:
            check = verify_part(p, self._network)
            if not check.valid:
                raise MultipartError(f"part {p.part}: {check.reason}")
        if p.part == 0:
            if not txid or not _TXID.fullmatch(txid):
                raise MultipartError("part 0 is keyed by its own txid: pass its 64-hex txid")
            key = txid.lower()
        else:
            key = p.reference.lower()
        group = self._groups.setdefault(key, {})
        other = next(iter(group.values()), None)
        if other is not None and (other.max_index, other.address) != (p.max_index, p.address):
            raise MultipartError(f"part {p.part} does not belong with the parts of {key[:10]}…")
        seen = group.get(p.part)
        if seen is not None:
            if seen.same_content(p):
                return None
            raise MultipartError(f"two different parts claim index {p.part} of {key[:10]}…")
        group[p.part] = p
        if len(group) < p.max_index + 1:
            return None
        data = join(group.values(), part0_txid=key, verify=False)
        del self._groups[key]
        return Completed(key, p.address, data)

    def pending(self) -> dict[str, list[int]]:
        """Incomplete messages and the part indexes still missing."""
        out: dict[str, list[int]] = {}
        for key, group in self._groups.items():
            top = next(iter(group.values())).max_index
            out[key] = [i for i in range(top + 1) if i not in group]
        return out

    def __len__(self) -> int:
        return len(self._groups)
