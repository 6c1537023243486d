"""The aio server's accept loop pauses after a failed ``accept()`` that would recur.

A listening socket that stays readable while ``accept()`` fails (shut down by
someone: EINVAL at every try) made the accept loop run at every wake-up of the
event loop, a busy loop taking a CPU, only EMFILE-like failures paused it. Now any
failure but a waiting connection's own network error pauses accepting for
``RETRY`` seconds, as out of descriptors.
"""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from jsonrpc_mini import aio
from jsonrpc_mini._aio_listener import Listener

pytestmark = pytest.mark.timeout(30)


def test_a_listening_socket_that_fails_for_ever_is_not_retried_at_every_wake_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="jsonrpc_mini")

    async def main() -> int:
        server = aio.RPCServer()
        await server.start("127.0.0.1", 0)
        try:
            listener = server._listener
            assert isinstance(listener, Listener)
            listener.sockets[0].shutdown(socket.SHUT_RDWR)  # readable from now on, accept(): EINVAL
            for _ in range(50):  # 0.25 s of wake-ups (each sleep is one)
                await asyncio.sleep(0.005)
            return sum("accept failed" in r.getMessage() for r in caplog.records)
        finally:
            await asyncio.wait_for(server.shutdown(), 10)

    failed = asyncio.run(main())
    # One failure, then a pause of RETRY (1 s); it was one per wake-up: thousands.
    assert failed == 1, failed
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "accept" in r.getMessage()]
    assert warning and warning[0].startswith("accept failed: [Errno 22]"), warning
