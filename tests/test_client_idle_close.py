"""A sync client's call after the server closed the idle connection is refused before it is sent.

The sync client reads nothing between calls, so a server's idle close waited
unread in the socket and the next request went out into the dead connection: its
ConnectionLost could not say whether the server had run it (request_sent True), so
a call that is not idempotent could not be retried. A lone call after a quiet
spell now looks first (a peek that takes nothing): the close is told at once, the
request is not written, and ``request_sent`` is False. Plain TCP and Unix sockets,
and TLS from the sync server (no close_notify); the aio server's TLS close_notify is
bytes waiting, so there the request is written (True).
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from _driver_helpers import WAIT, serving, tls_contexts, wait_for

from jsonrpc_mini import ConnectionLost, RPCClient, RPCServer, RPCTimeout, aio
from jsonrpc_mini.testing import loopback, pipe_pair

pytestmark = pytest.mark.timeout(60)


def counting_server(runs: list[int]) -> RPCServer:
    server = RPCServer(idle_timeout=0.2)

    @server.register
    def add(a: int, b: int) -> int:
        runs.append(a)
        return a + b

    return server


@pytest.mark.parametrize("tls", [False, True])
def test_sync_server_idle_close_is_told_before_sending(tls: bool) -> None:
    # Over TLS too: the sync server's idle close sends no close_notify, so the peek
    # finds the end itself (README, Errors).
    server_ctx, client_ctx = tls_contexts() if tls else (None, None)
    runs: list[int] = []
    server = counting_server(runs)
    with serving(server, ssl=server_ctx) as address, RPCClient(*address, ssl=client_ctx, timeout=WAIT) as client:
        assert client.add(1, 2) == 3
        wait_for(lambda: server.connection_count == 0, "the idle close")
        with pytest.raises(ConnectionLost) as info:
            client.add(5, 5)
        assert str(info.value) == "add: connection closed by the server"
        assert info.value.request_sent is False
        assert info.value.__cause__ is None
        with pytest.raises(ConnectionLost) as again:  # stays lost, as before
            client.add(6, 6)
        assert again.value.request_sent is False
    assert runs == [1]


def test_over_a_unix_socket() -> None:
    runs: list[int] = []
    server = counting_server(runs)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "s.sock")
        with serving(server, path=path), RPCClient(path=path, timeout=WAIT) as client:
            assert client.add(1, 2) == 3
            wait_for(lambda: server.connection_count == 0, "the idle close")
            with pytest.raises(ConnectionLost) as info:
                client.add(5, 5)
            assert info.value.request_sent is False
    assert runs == [1]


@pytest.mark.parametrize("tls", [False, True])
def test_aio_server_idle_close_is_told_before_sending(tls: bool) -> None:
    # Over TLS the aio server sends a close_notify first: bytes waiting, not an end, so
    # the request is written and the call says request_sent True (README, Errors).
    server_ctx, client_ctx = tls_contexts() if tls else (None, None)
    runs: list[int] = []
    server = aio.RPCServer(idle_timeout=0.2)

    @server.register
    async def add(a: int, b: int) -> int:
        runs.append(a)
        return a + b

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever)
    thread.start()
    try:
        started: Any = asyncio.run_coroutine_threadsafe(server.start("127.0.0.1", 0, ssl=server_ctx), loop)
        host, port = started.result(WAIT)
        with RPCClient(host, port, ssl=client_ctx, timeout=WAIT) as client:
            assert client.add(1, 2) == 3
            wait_for(lambda: server.connection_count == 0, "the idle close")
            with pytest.raises(ConnectionLost) as info:
                client.add(5, 5)
            assert info.value.request_sent is tls
    finally:
        asyncio.run_coroutine_threadsafe(server.shutdown(), loop).result(WAIT)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(WAIT)
        loop.close()
    assert runs == [1]


@contextmanager
def answer_once_then_reset() -> Iterator[tuple[tuple[str, int], threading.Event]]:
    """A server that answers one request, then resets the connection (SO_LINGER 0).

    Gives its address and an event set once the reset is sent.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(WAIT)
    done = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(WAIT)
            data = b""
            while b"\n" not in data:
                data += conn.recv(4096)
            conn.sendall(b'{"jsonrpc":"2.0","id":1,"result":3}\n')
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        done.set()

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        yield listener.getsockname()[:2], done
    finally:
        thread.join(WAIT)
        listener.close()
        assert done.is_set()


def test_a_reset_while_quiet_is_told_with_its_cause() -> None:
    with answer_once_then_reset() as (address, reset), RPCClient(*address, timeout=WAIT) as client:
        assert client.add(1, 2) == 3
        # The reset is sent (so here: loopback delivers at once), whatever the load; then
        # the quiet spell passes. (A fixed 0.2 s let a slow server thread reset only after
        # the request went out: request_sent True, a failure that says nothing.)
        assert reset.wait(WAIT)
        time.sleep(0.06)
        with pytest.raises(ConnectionLost) as info:
            client.add(5, 5)
    assert info.value.request_sent is False
    assert isinstance(info.value.__cause__, ConnectionResetError)
    assert str(info.value) == "add: connection lost: [Errno 104] Connection reset by peer"


def test_bytes_waiting_after_a_quiet_spell_are_read_as_before() -> None:
    # A late reply (its call timed out) waits unread: not an end, the call goes on.
    server = RPCServer()

    @server.register
    def slow(delay: float) -> str:
        time.sleep(delay)
        return "late"

    server.register_function(lambda a, b: a + b, name="add")
    with serving(server) as address, RPCClient(*address, timeout=WAIT) as client:
        with pytest.raises(RPCTimeout):
            client.with_timeout(0.05).slow(0.1)
        time.sleep(0.3)  # the late reply arrives and waits
        assert client.add(1, 2) == 3
        assert client.add(2, 2) == 4


def test_over_the_kit_s_pipe_as_over_tcp() -> None:
    # loopback()'s pipe tells the close as a socket does (PipeTransport.peer_closed).
    runs: list[int] = []
    server = counting_server(runs)
    with loopback(server) as client:
        assert client.add(1, 2) == 3
        wait_for(lambda: server.connection_count == 0, "the idle close")
        time.sleep(0.06)  # (a quiet spell, however fast the close came)
        with pytest.raises(ConnectionLost) as info:
            client.add(5, 5)
        assert str(info.value) == "add: connection closed by the server"
        assert info.value.request_sent is False
    server.shutdown()
    assert runs == [1]


def test_pipe_peer_closed_takes_nothing() -> None:
    a, b = pipe_pair()
    assert b.peer_closed() is False  # nothing yet
    a.send(b"late")
    a.close()
    assert b.peer_closed() is False  # bytes come before the end
    assert b.recv(16, timeout=WAIT) == b"late"
    assert b.peer_closed() is True
    assert b.recv(16, timeout=WAIT) == b""  # the EOF is still there to read
    c, d = pipe_pair()
    c.abort()
    reset = d.peer_closed()
    assert isinstance(reset, ConnectionResetError)
    with pytest.raises(ConnectionResetError):
        d.recv(16, timeout=WAIT)
    b.close()
    d.close()
