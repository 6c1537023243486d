"""README (Server, Methods): registering a name again replaces its handler, also while
the server serves: the next call on an open connection gets the new one (both servers)."""

from __future__ import annotations

import asyncio

import pytest

from jsonrpc_mini import RPCClient, RPCServer, aio

pytestmark = pytest.mark.timeout(60)


def test_sync_server_calls_the_handler_registered_last() -> None:
    server = RPCServer()
    server.register_function(lambda: 1, name="f")
    host, port = server.start("127.0.0.1", 0)
    try:
        with RPCClient(host, port, timeout=10) as c:
            assert c.f() == 1
            server.register_function(lambda: 2, name="f")
            server.register_function(lambda x: x * 3, name="g")
            assert (c.f(), c.g(5)) == (2, 15)
    finally:
        server.shutdown()


def test_aio_server_calls_the_handler_registered_last() -> None:
    async def main() -> None:
        server = aio.RPCServer()
        server.register_function(lambda: 1, name="f")
        host, port = await server.start("127.0.0.1", 0)
        try:
            async with await aio.connect(host, port, timeout=10) as c:
                assert await c.f() == 1
                server.register_function(lambda: 2, name="f")
                server.register_function(lambda x: x * 3, name="g")
                assert (await c.f(), await c.g(5)) == (2, 15)
        finally:
            await server.shutdown()

    asyncio.run(main())
