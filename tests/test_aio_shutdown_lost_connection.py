"""aio.RPCServer.shutdown() and the calls of a connection the client already reset.

Invariant: a call keeps running after its client reset the connection (its reply
is dropped), and ``shutdown()`` treats it like any other call in flight: it waits
for it up to ``shutdown_grace``, then cancels it, and returns with no task of it
left. Before, the server forgot a lost connection's calls: shutdown() returned at
once with the handler still running (review q10b; the sync server waits).
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
from typing import Any

import pytest
from _aio_support import WAIT, run, until

from jsonrpc_mini import aio

pytestmark = [
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.filterwarnings("error::ResourceWarning"),
    pytest.mark.timeout(60),
]


def reset(sock: socket.socket) -> None:
    """Close ``sock`` with an RST (SO_LINGER 0), as a killed client does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


async def call_then_reset(srv: aio.RPCServer, address: tuple[str, int], started: Any) -> None:
    """Send one call of "slow", wait until its handler runs, reset the connection, wait until the server saw it."""
    sock = socket.create_connection(address, timeout=WAIT)
    try:
        sock.sendall(json.dumps({"jsonrpc": "2.0", "method": "slow", "id": 1}).encode() + b"\n")
        await until(started)
    finally:
        reset(sock)
    await until(lambda: srv.connection_count == 0)  # the server has lost the connection


async def shutdown_waits_for_slow(srv: aio.RPCServer, events: list[str], release: Any) -> None:
    """Start ``srv``, reset a connection whose "slow" call runs, and check that shutdown() waits for it.

    Still waiting half a second on (``release()`` lets the handler end only after that),
    and it returns once the handler ended; ``events`` records it all.
    """
    address = await srv.start("127.0.0.1", 0)
    assert isinstance(address, tuple)
    await call_then_reset(srv, address, lambda: "started" in events)
    stopping = asyncio.create_task(srv.shutdown())
    stopping.add_done_callback(lambda _: events.append("shutdown returned"))
    await asyncio.wait({stopping}, timeout=0.5)
    assert not stopping.done(), "shutdown() returned while a call of a reset connection ran"
    release()
    await stopping


def test_shutdown_waits_for_an_async_call_of_a_reset_connection() -> None:
    events: list[str] = []

    async def main() -> None:
        release = asyncio.Event()
        srv = aio.RPCServer(shutdown_grace=WAIT)

        @srv.register
        async def slow() -> str:
            events.append("started")
            await release.wait()
            events.append("ended")
            return "late"

        await shutdown_waits_for_slow(srv, events, release.set)

    run(main)
    assert events == ["started", "ended", "shutdown returned"]


def test_shutdown_cancels_a_call_of_a_reset_connection_after_the_grace() -> None:
    events: list[str] = []

    async def main() -> None:
        srv = aio.RPCServer(shutdown_grace=0.2)

        @srv.register
        async def slow() -> None:
            events.append("started")
            try:
                await asyncio.Event().wait()  # never ends by itself
            except asyncio.CancelledError:
                events.append("cancelled")
                raise

        address = await srv.start("127.0.0.1", 0)
        assert isinstance(address, tuple)
        await call_then_reset(srv, address, lambda: "started" in events)
        await srv.shutdown()
        events.append("shutdown returned")
        # run() then fails if any task of the call is left on the loop.

    run(main)
    assert events == ["started", "cancelled", "shutdown returned"]


def test_shutdown_waits_for_a_thread_pool_call_of_a_reset_connection() -> None:
    events: list[str] = []
    release = threading.Event()

    def slow() -> str:
        events.append("started")
        assert release.wait(WAIT)
        events.append("ended")
        return "late"

    async def main() -> None:
        srv = aio.RPCServer(shutdown_grace=WAIT)
        srv.register_function(slow)
        await shutdown_waits_for_slow(srv, events, release.set)

    try:
        run(main)
    finally:
        release.set()
    assert events == ["started", "ended", "shutdown returned"]


def test_a_reset_connection_is_forgotten_once_its_calls_end() -> None:
    # The server keeps a lost connection only while calls of it run: nothing piles up.
    async def main() -> None:
        release = asyncio.Event()
        started: list[int] = []
        srv = aio.RPCServer()

        @srv.register
        async def slow() -> None:
            started.append(1)
            await release.wait()

        address = await srv.start("127.0.0.1", 0)
        assert isinstance(address, tuple)
        try:
            await call_then_reset(srv, address, lambda: started)
            assert len(srv._orphans) == 1
            release.set()
            await until(lambda: not srv._orphans)
        finally:
            await srv.shutdown()

    run(main)
