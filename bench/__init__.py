"""Benchmarks for toolkit: scripts that measure, not timed tests.

Run them all with ``python -m bench`` or one with ``python -m bench recorder``
(or ``verify``, ``startup``); ``--quick`` uses smaller sizes. Each run prints a
table and writes a JSON result to ``bench/results/``. See bench/README.md.
"""
