"""A reply over the client's max_message_size: a clear ConnectionLost, no misleading WARNING.

Both clients used to log, beside the call's ConnectionLost ("a reply exceeded this
client's max_message_size ..."), the WARNING "ignoring message from server:
unreadable data from server: Invalid Request: message too large": the message was
not ignored (the client closed the connection for it), and "Invalid Request" is the
server's label, not the client's. The line is now at DEBUG, as for a reply the
server's close cut short; the ConnectionLost is unchanged.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from jsonrpc_mini import ConnectionLost, RPCClient, RPCServer, aio

pytestmark = pytest.mark.timeout(60)

LIMIT = 1000
SAYS = r"^big: a reply exceeded this client's max_message_size \(1000 bytes\), so the client closed the connection"


def _server() -> RPCServer:
    server = RPCServer()
    server.register_function(lambda n: "y" * n, name="big")
    return server


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "jsonrpc_mini" and r.levelno >= logging.WARNING]


def test_the_sync_client_says_it_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="jsonrpc_mini")
    server = _server()
    host, port = server.start("127.0.0.1", 0)
    try:
        with RPCClient(host, port, timeout=10, max_message_size=LIMIT) as client:
            assert client.big(10) == "y" * 10
            with pytest.raises(ConnectionLost, match=SAYS):
                client.big(5 * LIMIT)
    finally:
        server.shutdown()
    assert _warnings(caplog) == []


def test_the_aio_client_says_it_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="jsonrpc_mini")
    server = _server()
    host, port = server.start("127.0.0.1", 0)

    async def main() -> None:
        async with aio.connect(host, port, timeout=10, max_message_size=LIMIT) as client:
            assert await client.big(10) == "y" * 10
            with pytest.raises(ConnectionLost, match=SAYS):
                await client.big(5 * LIMIT)

    try:
        asyncio.run(main())
    finally:
        server.shutdown()
    assert _warnings(caplog) == []
