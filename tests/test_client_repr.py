"""``repr()`` of both clients names the server they reached, as the servers' name where they listen.

A client printed in a log read ``<RPCClient connected timeout=None>``: with
several clients, nothing told which server each one talks to.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from _driver_helpers import LeakCheck

from jsonrpc_mini import RPCClient, RPCServer, aio
from jsonrpc_mini.testing import loopback

pytestmark = pytest.mark.timeout(60)


def test_sync_client_repr_names_the_server_it_reached(tmp_path: Path) -> None:
    server = RPCServer()
    server.register_function(lambda: 1, name="one")
    with LeakCheck():
        _, port = server.start("127.0.0.1", 0)
        path = str(tmp_path / "s.sock")
        unix = RPCServer()
        unix.start(path=path)
        try:
            client = RPCClient("127.0.0.1", port, timeout=5)
            assert repr(client) == f"<RPCClient connected to 127.0.0.1:{port} timeout=5>"
            view = client.with_timeout(2)  # the same connection: the same server
            assert repr(view) == f"<RPCClient connected to 127.0.0.1:{port} timeout=2>"
            client.close()
            assert repr(client) == "<RPCClient not connected timeout=5>"
            client.connect(path=path)  # a reconnect names the new server
            assert repr(client) == f"<RPCClient connected to {path} timeout=5>"
            client.close()
        finally:
            server.shutdown()
            unix.shutdown()


def test_a_client_on_a_transport_has_no_address_to_name() -> None:
    server = RPCServer()
    server.register_function(lambda: 1, name="one")
    with loopback(server) as client:
        assert client.one() == 1
        assert repr(client).startswith("<RPCClient connected timeout=")


def test_aio_client_repr_names_the_server_it_reached(tmp_path: Path) -> None:
    async def main() -> None:
        server = aio.RPCServer()
        _, port = await server.start("127.0.0.1", 0)
        path = str(tmp_path / "a.sock")
        unix = aio.RPCServer()
        await unix.start(path=path)
        try:
            client = await aio.connect("127.0.0.1", port, timeout=5)
            assert repr(client) == f"<aio.RPCClient connected to 127.0.0.1:{port} timeout=5>"
            assert repr(client.with_timeout(2)) == f"<aio.RPCClient connected to 127.0.0.1:{port} timeout=2>"
            await client.close()
            assert repr(client) == "<aio.RPCClient not connected timeout=5>"
            await client.connect(path=path)
            assert repr(client) == f"<aio.RPCClient connected to {path} timeout=5>"
            await client.close()
        finally:
            await server.shutdown()
            await unix.shutdown()

    asyncio.run(main())
