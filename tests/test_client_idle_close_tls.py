"""Over TLS, the sync client's look before a call after a quiet spell (577b106) finds a bare close only.

The sync server's idle close over TLS sends no close_notify: the client's peek finds
the end, and the call is refused before its request is written (``request_sent``
False), as over TCP. The aio server sends a close_notify first: bytes waiting, so the
request is written and the call says True. README (Errors) says both.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from _driver_helpers import WAIT, serving, tls_contexts, wait_for

from jsonrpc_mini import ConnectionLost, RPCClient, RPCServer, aio

pytestmark = pytest.mark.timeout(60)


def test_sync_server_tls_idle_close_is_told_before_sending() -> None:
    server_ctx, client_ctx = tls_contexts()
    runs: list[int] = []
    server = RPCServer(idle_timeout=0.2)

    @server.register
    def add(a: int, b: int) -> int:
        runs.append(a)
        return a + b

    with serving(server, ssl=server_ctx) as address, RPCClient(*address, ssl=client_ctx, timeout=WAIT) as client:
        assert client.add(1, 2) == 3
        wait_for(lambda: server.connection_count == 0, "the idle close")
        with pytest.raises(ConnectionLost) as info:
            client.add(5, 5)
        assert info.value.request_sent is False
    assert runs == [1]


def test_aio_server_tls_close_notify_is_read_after_sending() -> None:
    server_ctx, client_ctx = tls_contexts()
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
            assert info.value.request_sent is True
    finally:
        asyncio.run_coroutine_threadsafe(server.shutdown(), loop).result(WAIT)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(WAIT)
        loop.close()
    assert runs == [1]
