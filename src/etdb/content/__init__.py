"""IPFS-compatible content addressing: CIDs, dag-pb/UnixFS, blockstore, CAR, gateway, fetch.

Layered like boxo: ``cid`` (identifiers) <- ``dagpb`` (node codec) <- ``unixfs`` (importer,
HAMT) <- ``blockstore`` / ``exporter`` / ``car``. Lower modules never import higher ones.
"""
