"""Hostile-input suites: payloads, blocks and requests a public ledger or a peer can send."""
