"""Hypothesis property tests ("fuzz") for jsonrpc_mini; see fuzz/README.md."""
