"""An in-memory blockstore with the ``FSBlockstore`` API, for tests and only-hash pipelines."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from etdb.content.blockstore import VerifyReport, check_put
from etdb.content.cid import CID, RAW, decode_varint
from etdb.content.errors import BlockMismatchError, BlockNotFoundError, CorruptBlockError


class MemoryBlockstore:
    """A dict of blocks with the FSBlockstore API, for tests and in-memory pipelines."""

    def __init__(self) -> None:
        self._blocks: dict[bytes, bytes] = {}

    def get(self, cid: CID) -> bytes:
        if cid.is_identity:
            return cid.digest
        try:
            data = self._blocks[cid.multihash]
        except KeyError:
            raise BlockNotFoundError(cid) from None
        if not cid.verify(data):  # tests tamper with blocks through ``corrupt``
            raise CorruptBlockError(cid, "memory")
        return data

    def has(self, cid: CID) -> bool:
        return cid.is_identity or cid.multihash in self._blocks

    __contains__ = has

    def put(self, cid: CID, block: bytes, *, verify: bool = True) -> None:
        if cid.is_identity:
            if cid.digest != bytes(block):
                raise BlockMismatchError(cid)
            return
        check_put(cid, block, verify)
        self._blocks.setdefault(cid.multihash, bytes(block))

    def put_many(self, items: Iterable[tuple[CID, bytes]], *, verify: bool = True) -> int:
        n = 0
        for cid, block in items:
            self.put(cid, block, verify=verify)
            n += 1
        return n

    def delete(self, cid: CID) -> None:
        if self._blocks.pop(cid.multihash, None) is None and not cid.is_identity:
            raise BlockNotFoundError(cid)

    def corrupt(self, cid: CID, block: bytes) -> None:
        """Replace a block's bytes without checking (for tests of corruption handling)."""
        self._blocks[cid.multihash] = block

    def cids(self) -> Iterator[CID]:
        for mh in list(self._blocks):
            code, pos = decode_varint(mh)
            _length, pos = decode_varint(mh, pos)
            yield CID.v1(RAW, mh[pos:], code)

    __iter__ = cids

    def __len__(self) -> int:
        return len(self._blocks)

    def size_bytes(self) -> int:
        return sum(len(b) for b in self._blocks.values())

    def sync(self) -> None:
        pass

    def close(self) -> None:
        pass

    def verify(self, *, remove_corrupt: bool = False) -> VerifyReport:
        report = VerifyReport()
        for cid in list(self.cids()):
            report.checked += 1
            if not cid.verify(self._blocks[cid.multihash]):
                report.corrupt.append((cid, None))
                if remove_corrupt:
                    del self._blocks[cid.multihash]
                    report.removed += 1
        return report

    def __enter__(self) -> MemoryBlockstore:
        return self

    def __exit__(self, *exc: object) -> None:
        pass
