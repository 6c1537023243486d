"""jsonrpc_mini.testing: fake sockets, in-memory loopback and seeded fault injection.

Importable without pytest. The pytest plugin (fixtures ``jsonrpc_*`` and the
``--jsonrpc-seed`` option) is registered by entry point when the package is installed.
"""

from __future__ import annotations

__all__: list[str] = []
