"""Ratio benchmarks: jsonrpc_mini against a hand-written socket baseline and peer libraries.

Run ``python -m benchmarks --quick`` (or ``tox -e bench``); see benchmarks/README.md.
"""
