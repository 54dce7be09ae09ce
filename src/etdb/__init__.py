"""etdb: a blockchain-indexed, content-addressed public database for electron tomography.

Packages, lowest layer first (imports only flow downward):

- ``etdb.record``  the Research-Tomogram record, OIP 0.4.2 wire codec, FLO signing, multipart
- ``etdb.content`` CIDs, UnixFS/dag-pb, blockstore, CAR
- ``etdb.ledger``  append-only ledgers (embedded chain, FLO/Bitcoin-family RPC, EVM)
- ``etdb.index``   ledger -> validated records -> catalog
- ``etdb.publish`` lab database -> signed records on a ledger; keys
- ``etdb.api`` / ``etdb.web`` / ``etdb.client`` the REST API, portal and client
"""

from etdb._version import __version__

__all__ = ["__version__"]


def __getattr__(name: str) -> object:
    # `etdb.Client` without making `import etdb` pay for httpx and the catalog types.
    if name == "Client":
        from etdb.client.client import Client

        return Client
    raise AttributeError(f"module 'etdb' has no attribute {name!r}")
