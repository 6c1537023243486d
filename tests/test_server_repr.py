"""``repr()`` of both servers says where they listen, as the clients' reprs say their state.

A server printed in a log or a debugger read ``<jsonrpc_mini._server.RPCServer
object at 0x...>``: no address (the port ``start("127.0.0.1", 0)`` picked), and a
private module's name.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from _driver_helpers import LeakCheck

from jsonrpc_mini import RPCClient, RPCServer, aio

pytestmark = pytest.mark.timeout(60)


def two_methods(server: RPCServer | aio.RPCServer) -> None:
    server.register_function(lambda a, b: a + b, name="add")
    server.register_function(lambda: None, name="ping")


def test_sync_server_repr_follows_its_state(tmp_path: Path) -> None:
    server = RPCServer()
    two_methods(server)
    assert repr(server) == "<RPCServer not listening methods=2 connections=0>"
    with LeakCheck():
        host, port = server.start("127.0.0.1", 0)
        try:
            with RPCClient(host, port, timeout=5) as client:
                assert client.add(1, 2) == 3
                assert repr(server) == f"<RPCServer listening on 127.0.0.1:{port} methods=2 connections=1>"
        finally:
            server.shutdown()
        assert repr(server) == "<RPCServer not listening methods=2 connections=0>"
        path = str(tmp_path / "s.sock")
        server.start(path=path)
        try:
            assert repr(server) == f"<RPCServer listening on {path} methods=2 connections=0>"
        finally:
            server.shutdown()


def test_sync_reprs_bracket_ipv6() -> None:
    server = RPCServer()
    try:
        _, port = server.start("::1", 0)
    except OSError as exc:  # (a system without IPv6 loopback)
        pytest.skip(f"no ::1 here: {exc}")
    try:
        assert repr(server) == f"<RPCServer listening on [::1]:{port} methods=0 connections=0>"
        with RPCClient("::1", port, timeout=5) as client:  # (the client's: tests/test_client_repr.py)
            assert repr(client) == f"<RPCClient connected to [::1]:{port} timeout=5>"
    finally:
        server.shutdown()


def test_aio_server_repr_follows_its_state() -> None:
    async def main() -> None:
        server = aio.RPCServer()
        two_methods(server)
        assert repr(server) == "<aio.RPCServer not listening methods=2 connections=0>"
        host, port = await server.start("127.0.0.1", 0)
        try:
            async with await aio.connect(host, port, timeout=5) as client:
                assert await client.add(1, 2) == 3
                assert repr(server) == f"<aio.RPCServer listening on 127.0.0.1:{port} methods=2 connections=1>"
        finally:
            await server.shutdown()
        assert repr(server) == "<aio.RPCServer not listening methods=2 connections=0>"

    asyncio.run(main())
