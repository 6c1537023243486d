"""jsonrpc_mini.aio: the asyncio client and server, over the same sans-IO core.

Server::

    from jsonrpc_mini import aio
    srv = aio.RPCServer()
    @srv.register
    async def add(a, b): return a + b
    host, port = await srv.start("127.0.0.1", 0)
    ...
    await srv.shutdown()

Client::

    async with await aio.connect(host, port, timeout=5.0) as c:
        await c.add(1, 2)
        await c.call("add", 1, 2)
        await c.notify("log", "x")
        async with c.batch() as b:
            r = b.add(1, 2)
        r.result()

The exceptions are those of :mod:`jsonrpc_mini` (re-exported here for convenience).
"""

from __future__ import annotations

from ._aio_batch import AsyncBatchBuilder
from ._aio_client import Call, RPCClient, connect
from ._aio_server import RPCServer
from ._batch import BatchResult
from ._errors import (
    ConnectionLost,
    InternalError,
    InvalidParams,
    InvalidRequest,
    MethodNotFound,
    ParseError,
    RemoteError,
    RPCError,
    RPCTimeout,
    ServerError,
)

__all__ = [
    "AsyncBatchBuilder",
    "BatchResult",
    "Call",
    "ConnectionLost",
    "InternalError",
    "InvalidParams",
    "InvalidRequest",
    "MethodNotFound",
    "ParseError",
    "RPCClient",
    "RPCError",
    "RPCServer",
    "RPCTimeout",
    "RemoteError",
    "ServerError",
    "connect",
]
