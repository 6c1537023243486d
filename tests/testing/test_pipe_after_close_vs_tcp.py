"""After one end closes, the in-memory pipe behaves toward the other end as TCP does.

Over TCP the first send after the peer's close goes out (the peer's kernel answers it
with a reset), reads return EOF, and only the sends after the reset fail with
EPIPE. The pipe failed that first send at once, so a ``loopback()`` client whose
server had shut down got "connection lost while sending: ... the peer closed the
connection" where a TCP client reads the EOF: "connection closed by the server".
"""

from __future__ import annotations

import asyncio
import select
import socket
from typing import Any

import pytest
from _driver_helpers import wait_for

from jsonrpc_mini import ConnectionLost, RPCClient, RPCServer, aio
from jsonrpc_mini.testing import aio_loopback, loopback, pipe_pair

pytestmark = pytest.mark.timeout(30)

KINDS = ("tcp", "pipe")
SEQUENCES = (
    ("recv", "send", "send", "recv", "send"),
    ("send", "recv", "recv", "send"),
    ("send", "send", "send", "recv"),
    ("recv", "recv", "send", "send"),
)


class _TcpEnd:
    """A connected TCP socket whose sends wait for the peer's answer (a reset) to be back."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)
        poller = select.poll()
        poller.register(self.sock, select.POLLERR)
        wait_for(lambda: bool(poller.poll(0)), "the closed peer's reset")  # (it comes back asynchronously)

    def recv(self, max_bytes: int, timeout: float | None) -> bytes:
        self.sock.settimeout(timeout)
        return self.sock.recv(max_bytes)

    def close(self) -> None:
        self.sock.close()


def _ends(kind: str) -> tuple[Any, Any]:
    if kind == "pipe":
        return pipe_pair("p")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        a = socket.create_connection(listener.getsockname())
        b, _ = listener.accept()
    return _TcpEnd(a), _TcpEnd(b)


def _outcome(end: Any, op: str) -> object:
    try:
        result = end.recv(10, 5.0) if op == "recv" else end.send(b"x")
    except OSError as exc:
        return (type(exc).__name__, exc.errno)
    return "sent" if result is None else result


@pytest.mark.parametrize("ops", SEQUENCES, ids=["-".join(ops) for ops in SEQUENCES])
def test_the_first_send_after_the_peers_close_goes_out_and_the_next_fails(ops: tuple[str, ...]) -> None:
    seen: dict[str, list[object]] = {}
    for kind in KINDS:
        a, b = _ends(kind)
        try:
            b.close()
            seen[kind] = [_outcome(a, op) for op in ops]
        finally:
            a.close()
    assert seen["pipe"] == seen["tcp"]
    first_send = ops.index("send")
    assert seen["tcp"][first_send] == "sent"
    assert seen["tcp"][ops.index("send", first_send + 1)] == ("BrokenPipeError", 32)
    assert [seen["tcp"][k] for k, op in enumerate(ops) if op == "recv"] == [b""] * ops.count("recv")


def test_an_empty_send_does_not_use_up_the_send_that_goes_out() -> None:
    # send(b"") puts nothing on the wire over TCP: no reset comes back for it.
    a, b = pipe_pair()
    b.close()
    a.send(b"")
    a.send(b"x")
    with pytest.raises(BrokenPipeError):
        a.send(b"x")


def test_after_shutdown_read_the_peers_sends_still_fail_at_once() -> None:
    # (shutdown_read is the kit's "stop reading", not a close: unchanged)
    a, b = pipe_pair()
    b.shutdown_read()
    with pytest.raises(BrokenPipeError):
        a.send(b"x")


def _server() -> RPCServer:
    server = RPCServer()
    server.register_function(lambda: 1, name="one")
    return server


def _calls_after_shutdown(client: RPCClient, server: RPCServer) -> list[str]:
    assert client.one() == 1
    server.shutdown()
    seen = []
    for _ in range(2):
        with pytest.raises(ConnectionLost) as caught:
            client.one()
        seen.append(f"{caught.value} | cause: {type(caught.value.__cause__).__name__}")
    return seen


def test_a_loopback_client_whose_server_shut_down_sees_what_a_tcp_client_sees() -> None:
    server = _server()
    server.start("127.0.0.1", 0)
    address = server.address
    assert isinstance(address, tuple)
    client = RPCClient(timeout=5).connect(address[0], address[1])
    try:
        tcp = _calls_after_shutdown(client, server)
    finally:
        client.close()
    server = _server()
    with loopback(server, timeout=5) as client:
        memory = _calls_after_shutdown(client, server)
    assert memory == tcp == ["one: connection closed by the server | cause: NoneType"] * 2


async def _aio_calls_after_shutdown(client: aio.RPCClient, server: aio.RPCServer) -> list[str]:
    assert await client.one() == 1
    await server.shutdown()
    seen = []
    for _ in range(2):
        with pytest.raises(ConnectionLost) as caught:
            await client.one()
        seen.append(f"{caught.value} | cause: {type(caught.value.__cause__).__name__}")
    return seen


def test_an_aio_loopback_client_whose_server_shut_down_sees_what_a_tcp_client_sees() -> None:
    def aio_server() -> aio.RPCServer:
        server = aio.RPCServer()
        server.register_function(lambda: 1, name="one")
        return server

    async def tcp() -> list[str]:
        server = aio_server()
        await server.start("127.0.0.1", 0)
        address = server.address
        assert isinstance(address, tuple)
        client = await aio.connect(address[0], address[1], timeout=5)
        try:
            return await _aio_calls_after_shutdown(client, server)
        finally:
            await client.close()

    async def memory() -> list[str]:
        server = aio_server()
        async with aio_loopback(server, timeout=5) as client:
            return await _aio_calls_after_shutdown(client, server)

    assert asyncio.run(memory()) == asyncio.run(tcp()) == ["one: connection closed by the server | cause: NoneType"] * 2
