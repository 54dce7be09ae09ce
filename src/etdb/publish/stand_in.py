"""A key that plans for a publisher without its secret: what `etdb publish --dry-run` signs with.

It reports the publisher's address (the keystore stores it in the clear) and signs with a
throw-away secret, so every planned record and part has the real address and a signature of
the real length: sizes, transactions and fees come out exact, yet nothing it signs verifies
(the planner lets that pass only for this key, which is never used to send).
"""

from __future__ import annotations

from etdb.record.signing import Network, PrivateKey

__all__ = ["StandInKey"]


class StandInKey(PrivateKey):
    """Signs with a random secret while claiming ``address`` (see the module docstring)."""

    plans_only = True

    def __init__(self, address: str, network: Network) -> None:
        super().__init__(PrivateKey.generate(network).secret_bytes(), network)
        self._claimed = address

    @property
    def address(self) -> str:
        return self._claimed
