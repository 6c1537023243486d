"""A connection accepted just before ``shutdown()`` closes the asyncio listener is closed too.

The accept loop (``_aio_listener``) gives each accepted socket its transport in a task
of its own; ``shutdown()`` takes its list of connections at once. A connection whose
task had not run yet joined the server afterwards and was served after ``shutdown()``
had returned (left open for as long as the loop ran). One that has joined the server
as ``shutdown()`` begins is shut down as any other: what its client sent is read and
answered (-32000 "shutting down"), not reset unread.
"""

from __future__ import annotations

import asyncio
import socket

import pytest
from _aio_support import run

from jsonrpc_mini import aio

pytestmark = [
    pytest.mark.filterwarnings("error::ResourceWarning"),
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.timeout(60),
]


def _read_to_end(sock: socket.socket) -> bytes:
    """What the server sent until it closed ``sock`` (+ b"<reset>"); b"<open>" if not closed within 5 s."""
    sock.settimeout(5.0)
    got = b""
    try:
        while chunk := sock.recv(4096):
            got += chunk
    except ConnectionResetError:
        return got + b"<reset>"
    except TimeoutError:
        return got + b"<open>"
    return got


@pytest.mark.parametrize("path", [False, True], ids=["tcp", "unix"])
@pytest.mark.parametrize("steps", range(7))
def test_connection_accepted_as_shutdown_begins_is_closed(steps: int, path: bool, tmp_path: object) -> None:
    run(lambda: _accept_then_shut_down(steps, path, f"{tmp_path}/s.sock"))


async def _accept_then_shut_down(steps: int, path: bool, sock_path: str) -> None:
    srv = aio.RPCServer()
    srv.register_function(lambda: "pong", name="ping")
    if path:
        await srv.start(path=sock_path)
        client = socket.socket(socket.AF_UNIX)
        target: object = sock_path
    else:
        await srv.start("127.0.0.1", 0)
        client = socket.socket()
        target = srv.address
    loop = asyncio.get_running_loop()
    try:
        client.connect(target)  # (done by the kernel: the listener accepts it at its next wake-up)
        client.sendall(b'{"jsonrpc":"2.0","id":1,"method":"ping"}\n')
        # The loop steps between the accept and shutdown() vary: some of them are the window.
        for _ in range(steps):
            await asyncio.sleep(0)
        joined = srv.connection_count == 1
        await srv.shutdown()
        assert srv.connection_count == 0
        got = await loop.run_in_executor(None, _read_to_end, client)
        assert not got.endswith(b"<open>"), f"left open after shutdown(): {got!r}"
        if joined:  # served as shutdown() began: its request is answered, not reset unread
            assert b"-32000" in got or b'"pong"' in got, got
    finally:
        client.close()
        await srv.shutdown()
