"""Publishing side of etdb: publisher keys (:mod:`etdb.publish.keystore`) and record submission."""
