"""Client arguments that cannot all be meant are refused before connecting.

``server_hostname=`` without ``ssl=`` was accepted silently by the sync client (and
ignored), while ``aio.connect`` refused it with asyncio's ValueError: both refuse it
now, with the same words. ``RPCClient(host, port, path=...)`` connected to ``path``
and ignored the host and port: it is refused too.
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator

import pytest
from _aio_support import run

from jsonrpc_mini import RPCClient, RPCServer, aio

pytestmark = pytest.mark.timeout(60)

WAIT = 10.0
ONLY_WITH_SSL = r"^server_hostname is only meaningful with ssl$"
NOT_BOTH = r"^RPCClient takes host and port, or path= for a Unix socket, not both$"


@pytest.fixture
def tcp_server() -> Iterator[tuple[str, int]]:
    server = RPCServer()
    server.register_function(lambda: "reached", name="who")
    address = server.start("127.0.0.1", 0)
    assert isinstance(address, tuple)
    try:
        yield address
    finally:
        server.shutdown()


def test_server_hostname_without_ssl_is_refused_by_both_clients(tcp_server: tuple[str, int]) -> None:
    host, port = tcp_server
    with pytest.raises(ValueError, match=ONLY_WITH_SSL):
        RPCClient(host, port, server_hostname="example.org", timeout=WAIT)
    client = RPCClient(timeout=WAIT)
    with pytest.raises(ValueError, match=ONLY_WITH_SSL):
        client.connect(host, port, server_hostname="example.org")

    async def main() -> None:
        with pytest.raises(ValueError, match=ONLY_WITH_SSL):
            await aio.connect(host, port, server_hostname="example.org", timeout=WAIT)

    run(main)
    with client.connect(host, port) as good:  # the same client, without it: connects
        assert good.call("who") == "reached"


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets on this platform")
def test_rpcclient_refuses_a_host_or_port_given_with_path(tcp_server: tuple[str, int]) -> None:
    host, port = tcp_server
    directory = tempfile.mkdtemp(prefix="jrpc", dir="/tmp")  # short: AF_UNIX paths are limited
    path = os.path.join(directory, "s.sock")
    server = RPCServer()
    server.register_function(lambda: "unix", name="who")
    server.start(path=path)
    try:
        for given in [{"host": host, "port": port}, {"host": host}, {"port": port}]:
            with pytest.raises(ValueError, match=NOT_BOTH):
                RPCClient(**given, path=path, timeout=WAIT)  # type: ignore[arg-type]
        with RPCClient(path=path, timeout=WAIT) as good:
            assert good.call("who") == "unix"
    finally:
        server.shutdown()
        os.rmdir(directory)


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets on this platform")
def test_connect_and_aio_connect_take_the_path_over_a_host_and_port(tcp_server: tuple[str, int]) -> None:
    # README (Client, Framing and transports): their host and port have defaults, so
    # they cannot tell them given, and path= wins there (RPCClient(...) refuses both).
    host, port = tcp_server
    directory = tempfile.mkdtemp(prefix="jrpc", dir="/tmp")
    path = os.path.join(directory, "s.sock")
    server = RPCServer()
    server.register_function(lambda: "unix", name="who")
    server.start(path=path)
    try:
        with RPCClient(timeout=WAIT).connect(host, port, path=path) as sync_client:
            assert sync_client.call("who") == "unix"

        async def main() -> None:
            async with await aio.connect(host, port, path=path, timeout=WAIT) as aio_client:
                assert await aio_client.call("who") == "unix"

        run(main)
    finally:
        server.shutdown()
        os.rmdir(directory)
