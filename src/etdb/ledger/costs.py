"""What publishing N records costs on a ledger: transactions, bytes and fee, multipart counted.

Shared by ``etdb ledger cost``, the publisher's ``--dry-run`` and ``bench/ledger.py``, so all
three count the same way: a record of B bytes goes out exactly as ``messages.plan`` would send
it (one transaction, or signed ``oip-mp`` parts with their headers when B exceeds the ledger's
``max_payload``), and the ledger's own ``estimate_fee`` prices the lot.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from etdb.ledger.base import FeeEstimate, Ledger, LedgerConfigError, payload_size
from etdb.ledger.messages import plan
from etdb.record.errors import MultipartError
from etdb.record.multipart import MAX_INDEX
from etdb.record.signing import PrivateKey

# Only the sizes of the signed parts matter, and signatures have a fixed size: any key will do.
# A fixed one keeps estimates reproducible and never touches the keystore.
_THROWAWAY_KEY = PrivateKey(bytes([1]) * 32)

#: The URL option each backend family takes a fee rate in, and its unit (for ``--fee-rate``).
FEE_RATE_OPTIONS: dict[str, tuple[str, str]] = {
    "flo": ("fee_rate", "FLO per 1000 virtual bytes"),
    "btc": ("fee_rate", "coin per 1000 virtual bytes"),
    "evm": ("gas_price", "gwei per gas"),
}


@dataclass(frozen=True, slots=True)
class CostReport:
    """Publishing ``records`` records of ``record_bytes`` bytes each."""

    records: int
    record_bytes: int
    transactions: int
    payload_bytes: int
    fee: FeeEstimate
    per_record: Decimal

    @property
    def transactions_per_record(self) -> int:
        return self.transactions // self.records if self.records else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "record_bytes": self.record_bytes,
            "transactions": self.transactions,
            "transactions_per_record": self.transactions_per_record,
            "payload_bytes": self.payload_bytes,
            "fee": str(self.fee.total),
            "fee_per_record": str(self.per_record),
            "unit": self.fee.unit,
            "basis": self.fee.basis,
        }


def sample_record(record_bytes: int) -> str:
    """An ASCII stand-in of exactly ``record_bytes`` bytes, shaped like an OIP floData."""
    if record_bytes < 1:
        raise ValueError("a record has at least 1 byte")
    prefix = "json:"[:record_bytes]
    return prefix + "x" * (record_bytes - len(prefix))


def estimate_records_cost(ledger: Ledger, records: int, record_bytes: int) -> CostReport:
    """Transactions, payload bytes and fee to publish ``records`` records of ``record_bytes``.

    ValueError for a size no ledger message can carry (more than the most multipart parts
    of ``max_payload`` bytes), checked before the sample record is built.
    """
    if records < 0:
        raise ValueError("the number of records cannot be negative")
    most = ledger.max_payload * (MAX_INDEX + 1)
    if record_bytes > most:
        raise ValueError(
            f"a record of {record_bytes} bytes cannot be published on this ledger: at most "
            f"{MAX_INDEX + 1} parts of {ledger.max_payload} bytes"
        )
    try:
        texts = plan(ledger, sample_record(record_bytes), _THROWAWAY_KEY)
    except MultipartError as exc:  # just under the bound, the parts' headers tip it over
        raise ValueError(f"a record of {record_bytes} bytes cannot be published: {exc}") from None
    transactions = len(texts) * records
    payload_bytes = sum(payload_size(t) for t in texts) * records
    fee = ledger.estimate_fee(payload_bytes, transactions)
    per_record = fee.total / records if records else Decimal(0)
    return CostReport(records, record_bytes, transactions, payload_bytes, fee, per_record)


def with_fee_rate(url: str, rate: Decimal) -> str:
    """``url`` with its backend's fee-rate option set to ``rate`` (see FEE_RATE_OPTIONS).

    Raises LedgerConfigError for a backend without fees (the embedded ledger).
    """
    parts = urlsplit(url)
    family = parts.scheme.lower().split("+")[0]
    if family not in FEE_RATE_OPTIONS:
        raise LedgerConfigError(f"a {family or 'this'} ledger has no fee rate to set")
    name, _ = FEE_RATE_OPTIONS[family]
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != name]
    query.append((name, format(rate, "f")))
    return urlunsplit(parts._replace(query=urlencode(query)))
