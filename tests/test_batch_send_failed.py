"""A batch whose send fails: each member's ``result()`` raises the send's error, naming its method.

It used to say "the batch has not been sent yet (leave the with block first)"
after the block was left, on both clients: a retry loop reading members' errors
could not tell a lost connection from its own mistake.
"""

from __future__ import annotations

import asyncio

import pytest

from jsonrpc_mini import ConnectionLost, RPCClient, RPCError, SocketTransport, aio
from jsonrpc_mini.testing import FakeSocket, FaultPlan, aio_loopback

pytestmark = pytest.mark.timeout(60)


def lost_client() -> RPCClient:
    """A client whose connection a reset has already broken."""
    client = RPCClient(transport=SocketTransport(FakeSocket([ConnectionResetError])), timeout=5)
    with pytest.raises(ConnectionLost):
        client.add(1, 2)
    return client


def test_members_of_a_batch_sent_on_a_lost_link() -> None:
    client = lost_client()
    with pytest.raises(ConnectionLost) as info, client.batch() as b:
        first = b.add(1, 1)
        b.notify("log", "x")
        second = b.call("mul", 2, 3)
    for member, method in ((first, "add"), (second, "mul")):
        with pytest.raises(ConnectionLost) as member_info:
            member.result()
        error = member_info.value
        assert error is not info.value  # each member its own copy
        assert error.method == method
        assert str(error) == f"{method}: connection lost: [Errno 104] Connection reset by peer"
        assert error.request_sent is False
        assert isinstance(error.__cause__, ConnectionResetError)
    client.close()


def test_members_of_a_batch_whose_write_failed() -> None:
    sock = FakeSocket([], eof=False, fail_send_after=0)
    client = RPCClient(transport=SocketTransport(sock), timeout=5)
    b = client.batch()
    member = b.add(1, 1)
    with pytest.raises(ConnectionLost):
        b.send()  # explicitly, outside a with block
    with pytest.raises(ConnectionLost) as info:
        member.result()
    assert info.value.request_sent is True  # part of it may be out
    assert "Broken pipe" in str(info.value)
    client.close()


def test_members_of_a_batch_the_encoder_refused() -> None:
    sock = FakeSocket([], eof=False)
    client = RPCClient(transport=SocketTransport(sock), timeout=5)
    with pytest.raises(TypeError) as info, client.batch() as b:
        member = b.add({1, 2})  # a set is not JSON: refused as the batch is sent
    with pytest.raises(RPCError) as member_info:
        member.result()
    assert str(member_info.value) == "add: sending the batch raised TypeError"
    assert member_info.value.__cause__ is info.value
    assert sock.sent == b""
    client.close()


def test_aio_members_of_a_batch_sent_on_a_lost_link() -> None:
    async def main() -> tuple[RPCError, RPCError]:
        server = aio.RPCServer()
        server.register_function(lambda a, b: a + b, name="add")
        async with aio_loopback(server, faults=FaultPlan(seed=1, disconnect_after=20)) as client:
            with pytest.raises(ConnectionLost):
                await client.add(1, 2)
            with pytest.raises(ConnectionLost) as info:
                async with client.batch() as b:
                    member = b.add(1, 1)
            with pytest.raises(ConnectionLost) as member_info:
                member.result()
        await server.shutdown()
        return info.value, member_info.value

    whole, member = asyncio.run(main())
    assert member is not whole
    assert member.method == "add"
    assert str(member) == "add: connection closed by the server"
    assert isinstance(member, ConnectionLost) and member.request_sent is False
