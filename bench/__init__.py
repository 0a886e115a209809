"""Benchmarks: run against the real local stack and job; they print tables and write JSON."""
