"""Benchmarks: each module times gridpatrol against a named baseline and prints a table (docs/benchmarks.md)."""
