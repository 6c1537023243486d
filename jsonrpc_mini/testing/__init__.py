"""jsonrpc_mini.testing: fake sockets, in-memory loopback and seeded fault injection.

Importable without pytest. Everything plugs into the transport seam the drivers use
(``send``/``recv``/``close``), so no monkeypatching is involved:

- :class:`FakeSocket`: a socket-like object fed with scripted bytes.
- :class:`FaultPlan`: a seeded plan of partial reads/writes, latency, disconnects,
  half-close, reset, stalls...; :class:`FaultyTransport` applies it to any transport.
- :func:`loopback`: an ``RPCClient`` joined to a server in memory.
- :class:`LoopbackServer`: the server on a real 127.0.0.1 port behind a fault proxy.
- :func:`aio_loopback` / :class:`AioLoopbackServer`: the same for ``jsonrpc_mini.aio``.
- :func:`check`: spec-conformance and fault probes against any JSON-RPC 2.0 server
  (also ``python -m jsonrpc_mini.testing check HOST:PORT``).

The pytest plugin (fixtures ``jsonrpc_*``, the ``jsonrpc_faults`` marker and the
``--jsonrpc-seed`` option) is registered by entry point when the package is installed.
Its factory fixtures' types, for a test's type hints: :class:`LoopbackFactory`
(``jsonrpc_loopback``), :class:`LoopbackServerFactory` (``jsonrpc_server``) and
:class:`FakeSocketFactory` (``jsonrpc_fake_socket``); ``KitFaults`` is what the
real-port kits take as ``faults`` (a plan, a sequence of plans or None, or None).
"""

from __future__ import annotations

from ._aio_loopback import aio_loopback
from ._aio_loopback_server import AioLoopbackServer
from ._check import CheckReport, ProbeResult, check
from ._fake_socket import FakeSocket
from ._faults import FaultyTransport
from ._fixture_types import FakeSocketFactory, LoopbackFactory, LoopbackServerFactory
from ._leaks import Resources
from ._loopback import loopback
from ._per_connection import KitFaults
from ._pipe import PipeTransport, pipe_pair
from ._plan import DirectionFaults, FaultPlan, LinkState, Step
from ._proxy import LoopbackServer

__all__ = [
    "AioLoopbackServer",
    "CheckReport",
    "DirectionFaults",
    "FakeSocket",
    "FakeSocketFactory",
    "FaultPlan",
    "FaultyTransport",
    "KitFaults",
    "LinkState",
    "LoopbackFactory",
    "LoopbackServer",
    "LoopbackServerFactory",
    "PipeTransport",
    "ProbeResult",
    "Resources",
    "Step",
    "aio_loopback",
    "check",
    "loopback",
    "pipe_pair",
]
