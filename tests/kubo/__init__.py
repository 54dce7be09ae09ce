"""Real kubo (IPFS) daemons for the tests: built from the Go module proxy, started on loopback."""
