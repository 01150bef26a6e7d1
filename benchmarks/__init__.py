"""Benchmarks that print numbers: `python -m benchmarks.zoo`, `python -m benchmarks.speed`."""
