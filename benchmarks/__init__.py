"""Benchmarks for regjax: scripts that print ratios measured side by side in one run.

Run one with ``python -m benchmarks.NAME`` (add ``--quick`` for a smoke-sized run) or all
of them with ``python -m benchmarks.run_all``. Each script names the machine first;
absolute times are printed only next to that name, and comparisons are ratios of
interleaved measurements taken in the same process.
"""
