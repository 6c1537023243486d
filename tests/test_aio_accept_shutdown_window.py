"""A connection accepted just before ``shutdown()`` closes the asyncio listener is closed too.

The accept loop (``_aio_listener``) gives each accepted socket its transport in a task
of its own; ``shutdown()`` takes its list of connections at once. A connection whose
task had not run yet joined the server afterwards and was served after ``shutdown()``
had returned (left open for as long as the loop ran).
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


def _ended(sock: socket.socket) -> bool:
    """Whether the server closed ``sock`` (EOF or reset) within 5 s; False if it stayed open."""
    sock.settimeout(5.0)
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


@pytest.mark.parametrize("path", [False, True], ids=["tcp", "unix"])
@pytest.mark.parametrize("steps", range(5))
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
        # The loop steps between the accept and shutdown() vary: one of them is the window.
        for _ in range(steps):
            await asyncio.sleep(0)
        await srv.shutdown()
        assert srv.connection_count == 0
        assert await loop.run_in_executor(None, _ended, client), "left open after shutdown()"
    finally:
        client.close()
        await srv.shutdown()
