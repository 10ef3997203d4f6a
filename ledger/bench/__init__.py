"""Benchmarks of DESIGN §8's targets (not timed tests)."""
