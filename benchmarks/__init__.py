"""Benchmarks: `python -m benchmarks` runs every `bench_*.py` module's `run()`.

A bench module defines `run() -> list[str]` that measures against a baseline taken in the same
run (absolute figures depend on the machine, ratios much less) and returns the lines to print.
"""
