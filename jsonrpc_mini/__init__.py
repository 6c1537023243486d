"""jsonrpc_mini: JSON-RPC 2.0 over TCP, Unix sockets and TLS, with a test kit.

Server::

    from jsonrpc_mini import RPCServer
    s = RPCServer()
    s.register_function(add)
    s.loop("127.0.0.1", 5000)

Client::

    from jsonrpc_mini import RPCClient
    c = RPCClient(); c.connect("127.0.0.1", 5000)
    c.add(1, 2)
"""

from __future__ import annotations

from ._batch import BatchBuilder, BatchResult
from ._client import RPCClient
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
from ._server import RPCServer, ServerOptions
from ._transport import SocketTransport, Transport

__version__ = "0.1.0"

__all__ = [
    "BatchBuilder",
    "BatchResult",
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
    "ServerOptions",
    "SocketTransport",
    "Transport",
    "__version__",
]
