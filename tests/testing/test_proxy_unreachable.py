"""A ``LoopbackServer`` whose proxy cannot reach the server resets the client's connection.

The client's connect is accepted (by the kernel, before the proxy can try the
server), so it cannot be refused as the server itself would refuse it; the proxy then
resets it (SO_LINGER 0), the closest it can come: the client reads a reset, and the
library's client fails its call with ``ConnectionLost`` naming the reset. The old code
closed it: a plain EOF, which the client took for the server closing the connection
("connection closed by the server"). The "server" here is a bound socket that does
not listen: connecting to it is refused, and no one else can take its port meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator

import pytest
from _driver_helpers import WAIT

from jsonrpc_mini import ConnectionLost, RPCServer, aio
from jsonrpc_mini.testing import FaultPlan, LoopbackServer

pytestmark = pytest.mark.timeout(60)

PLANS = [None, FaultPlan(seed=1, max_chunk=3)]
PLAN_IDS = ["no plan", "plan"]


@pytest.fixture(params=PLANS, ids=PLAN_IDS)
def kit(request: pytest.FixtureRequest) -> Iterator[LoopbackServer]:
    """A LoopbackServer pointed at a port that refuses connections."""
    server = RPCServer()
    server.register_function(lambda a, b: a + b, name="add")
    try:
        with socket.socket() as refusing:
            refusing.bind(("127.0.0.1", 0))
            with LoopbackServer(server, faults=request.param) as kit:
                kit.direct_address = refusing.getsockname()[:2]
                yield kit
    finally:
        server.shutdown()


def test_a_socket_reads_a_reset(kit: LoopbackServer, caplog: pytest.LogCaptureFixture) -> None:
    # The reset can reach the connect itself, while it checks the connection, or the read.
    with caplog.at_level(logging.WARNING, "jsonrpc_mini.testing"):
        with pytest.raises(ConnectionResetError), socket.create_connection(kit.address, timeout=WAIT) as sock:
            sock.recv(100)  # (the old code: b"", an EOF)
        assert "cannot reach the server" in caplog.text  # (logged before the reset)


def test_the_client_call_fails_naming_the_reset(kit: LoopbackServer) -> None:
    # As for aio below: the client's connect ("cannot connect to ...") or its call fails.
    with pytest.raises(ConnectionLost, match=r"(?i)reset"):
        kit.client().add(1, 2)


def test_the_aio_client_fails_naming_the_reset(kit: LoopbackServer) -> None:
    # The reset can come while aio.connect() still checks the connection (then it fails,
    # "cannot connect to ...: [Errno 104] Connection reset by peer", the OS's words) or
    # after (the call fails): either way ConnectionLost, not "closed by the server".
    async def call() -> None:
        client = await aio.connect(*kit.address, timeout=WAIT)
        try:
            await client.add(1, 2)
        finally:
            await client.close()

    with pytest.raises(ConnectionLost) as caught:
        asyncio.run(call())
    assert "closed by the server" not in str(caught.value)
    assert "reset" in str(caught.value).lower()
