"""Tests of etdb.mrc: headers, extended headers, sidecars, sections, display."""
