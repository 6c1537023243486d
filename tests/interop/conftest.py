"""Fixtures of the interoperability tests (defined in ``_interop``)."""

from __future__ import annotations

from _interop import methods, node, our_server, rpc_server

__all__ = ["methods", "node", "our_server", "rpc_server"]
