"""``ConnectionLost.request_sent`` tells a retry loop whether the server may have run the call.

False when no byte of the call's request was written: the connection was already
lost or closed when the call was made, the client was never connected, or
connecting failed. True when the request (or part of it) went out before the link
broke. A client that retries calls that are not idempotent needs exactly this.
"""

from __future__ import annotations

import asyncio
import pickle
import socket

import pytest

from jsonrpc_mini import ConnectionLost, RPCClient, RPCServer, SocketTransport, aio
from jsonrpc_mini.testing import FakeSocket, FaultPlan, aio_loopback, loopback

pytestmark = pytest.mark.timeout(60)


def closed_port() -> int:
    """A 127.0.0.1 port bound but not listening: connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_call_on_a_lost_link_was_not_sent() -> None:
    sock = FakeSocket([ConnectionResetError])
    client = RPCClient(transport=SocketTransport(sock), timeout=5)
    with pytest.raises(ConnectionLost) as first:
        client.add(1, 2)
    assert first.value.request_sent is True  # it went out, then the link broke
    written = sock.sent
    with pytest.raises(ConnectionLost) as later:
        client.add(3, 4)
    assert later.value.request_sent is False
    assert sock.sent == written  # indeed nothing more was written
    with pytest.raises(ConnectionLost) as note:
        client.notify("log", "x")
    assert note.value.request_sent is False
    with pytest.raises(ConnectionLost) as batch, client.batch() as b:
        member = b.add(1, 1)
    assert batch.value.request_sent is False
    del member
    assert sock.sent == written
    client.close()


def test_a_failed_write_may_have_sent_part() -> None:
    sock = FakeSocket([], eof=False, max_send=5, fail_send_after=10)
    client = RPCClient(transport=SocketTransport(sock), timeout=5)
    with pytest.raises(ConnectionLost) as info:
        client.add(1, 2)
    assert info.value.request_sent is True
    assert sock.sent  # part of it is on the wire
    client.close()


def test_closed_and_never_connected_clients_send_nothing() -> None:
    with pytest.raises(ConnectionLost) as never:
        RPCClient().add(1, 2)
    assert never.value.request_sent is False
    server = RPCServer()
    server.register_function(lambda a, b: a + b, name="add")
    with loopback(server) as client:
        assert client.add(1, 2) == 3
        client.close()
        with pytest.raises(ConnectionLost) as closed:
            client.add(1, 2)
    assert closed.value.request_sent is False


def test_connect_failures_send_nothing() -> None:
    port = closed_port()
    with pytest.raises(ConnectionLost) as sync_refused:
        RPCClient("127.0.0.1", port, timeout=5)
    assert sync_refused.value.request_sent is False

    async def refused() -> ConnectionLost:
        with pytest.raises(ConnectionLost) as info:
            await aio.connect("127.0.0.1", port, timeout=5)
        return info.value

    assert asyncio.run(refused()).request_sent is False
    server = RPCServer()
    with pytest.raises(ConnectionLost) as kit_refused, loopback(server, faults=FaultPlan(refuse_connect=True)):
        pass
    assert kit_refused.value.request_sent is False


def test_aio_call_on_a_lost_link_was_not_sent() -> None:
    async def main() -> tuple[ConnectionLost, ConnectionLost, ConnectionLost]:
        server = aio.RPCServer()
        server.register_function(lambda a, b: a + b, name="add")
        async with aio_loopback(server, faults=FaultPlan(seed=1, disconnect_after=20)) as client:
            with pytest.raises(ConnectionLost) as first:
                await client.add(1, 2)
            with pytest.raises(ConnectionLost) as later:
                await client.add(3, 4)
            with pytest.raises(ConnectionLost) as note:
                await client.notify("add", 0, 0)
        await server.shutdown()
        return first.value, later.value, note.value

    first, later, note = asyncio.run(main())
    assert first.request_sent is True
    assert later.request_sent is False
    assert note.request_sent is False


def test_request_sent_survives_pickling_and_defaults_to_true() -> None:
    assert ConnectionLost("gone").request_sent is True  # unknown: assume it may have run
    exc = ConnectionLost("gone", request_sent=False)
    exc.method = "add"
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is ConnectionLost
    assert back.request_sent is False
    assert (back.message, back.method) == ("gone", "add")
