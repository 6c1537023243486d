"""ConnectionLost names the remote method of the call that raises it (review12 F5).

README: every exception carries ``.method``, the remote method, when known. A call
(or notification) made once the client already knows its connection is lost knows
its method as well as the call that found the loss: both drivers name it in
``.method`` and in the message ("second: connection closed by the server"). A batch
names no remote method (``.method`` None), on both drivers.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from _aio_support import run
from _driver_helpers import WAIT, FakeServer, Peer

from jsonrpc_mini import ConnectionLost, RPCClient, SocketTransport, aio
from jsonrpc_mini.testing import FakeSocket

pytestmark = pytest.mark.timeout(60)

CLOSED = "connection closed by the server"


def first_reply(id_: Any = 1) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": id_, "result": "first"}).encode() + b"\n"


def assert_names(lost: pytest.ExceptionInfo[ConnectionLost], method: str | None) -> None:
    assert lost.value.method == method
    assert str(lost.value) == (f"{method}: {CLOSED}" if method else CLOSED)


def test_sync_calls_on_a_connection_known_lost_name_their_method() -> None:
    sock = FakeSocket([first_reply()])  # one reply, then the server's EOF
    with RPCClient(transport=SocketTransport(sock), timeout=WAIT) as client:
        assert client.first() == "first"
        with pytest.raises(ConnectionLost) as found:
            client.second()  # finds the loss
        assert_names(found, "second")
        with pytest.raises(ConnectionLost) as known:
            client.third()  # the loss is known: nothing is sent
        assert_names(known, "third")
        with pytest.raises(ConnectionLost) as notified:
            client.notify("log", "x")
        assert_names(notified, "log")
        with pytest.raises(ConnectionLost) as batched, client.batch() as batch:
            batch.fourth()
        assert_names(batched, None)
    assert b'"third"' not in sock.sent


def one_reply_then_close(peer: Peer) -> None:
    request = peer.json_line()
    peer.sendall(first_reply(request["id"]))
    peer.json_line()  # the second call
    peer.close()


def test_aio_calls_on_a_connection_known_lost_name_their_method() -> None:
    async def main() -> None:
        client = await aio.connect(*fake.address, timeout=WAIT)
        async with client:
            assert await client.first() == "first"
            with pytest.raises(ConnectionLost) as found:
                await client.second()
            assert_names(found, "second")
            with pytest.raises(ConnectionLost) as known:
                await client.third()
            assert_names(known, "third")
            with pytest.raises(ConnectionLost) as notified:
                await client.notify("log", "x")
            assert_names(notified, "log")
            with pytest.raises(ConnectionLost) as batched:
                async with client.batch() as batch:
                    batch.fourth()
            assert_names(batched, None)

    with FakeServer(one_reply_then_close) as fake:
        run(main)
    assert not fake.errors


SEND_FAILED = "connection lost while sending: the peer is gone"


@pytest.mark.parametrize("timeout", [None, WAIT])
@pytest.mark.parametrize("kind", ["call", "notification", "batch"])
def test_sync_a_send_that_fails_names_its_method(kind: str, timeout: float | None) -> None:
    # The first send fails (the server is gone): the ConnectionLost names the method
    # as the other paths do; a notification's used to name none (aio writes later:
    # its notify names the method once the loss is known, as tested above).
    sock = FakeSocket([], eof=False, fail_send_after=0, send_error=BrokenPipeError("the peer is gone"))
    with RPCClient(transport=SocketTransport(sock), timeout=timeout) as client, pytest.raises(ConnectionLost) as lost:
        if kind == "call":
            client.first()
        elif kind == "notification":
            client.notify("log", "x")
        else:
            with client.batch() as batch:
                batch.fourth()
    method = {"call": "first", "notification": "log", "batch": None}[kind]
    assert lost.value.method == method
    assert str(lost.value) == (f"{method}: {SEND_FAILED}" if method else SEND_FAILED)
