"""The asyncio server's connections have TCP_NODELAY, plain and TLS, as the sync server's.

asyncio sets TCP_NODELAY on a transport's socket only if the socket says
IPPROTO_TCP, and an accepted socket takes its listener's protocol number. Since
the aio server binds its own listening socket (07b7297) that socket said 0, so
small replies waited for Nagle's algorithm: 1,000 pipelined calls from the aio
client went from ~100k to ~20k calls/s (benchmarks/aio_bench.py).
"""

from __future__ import annotations

import socket
from typing import Any

import pytest
from _aio_support import run, until
from _driver_helpers import WAIT, tls_contexts

from jsonrpc_mini import aio

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_the_aio_servers_connections_have_tcp_nodelay(tls: bool, host: str) -> None:
    server_ctx, client_ctx = tls_contexts() if tls else (None, None)

    async def main() -> list[Any]:
        srv = aio.RPCServer()
        srv.register_function(lambda: 1, name="one")
        address = await srv.start(host, 0, ssl=server_ctx)
        assert isinstance(address, tuple)
        try:
            async with await aio.connect(*address, ssl=client_ctx, timeout=WAIT) as client:
                assert await client.one() == 1
                await until(lambda: srv.connection_count == 1)
                found = []
                for conn in srv._conns:
                    sock = conn._transport.get_extra_info("socket")
                    found.append((sock.proto, sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)))
                return found
        finally:
            await srv.shutdown()

    found = run(main)
    assert len(found) == 1
    proto, nodelay = found[0]
    assert nodelay != 0, "Nagle's algorithm delays the server's small replies"
    assert proto == socket.IPPROTO_TCP
