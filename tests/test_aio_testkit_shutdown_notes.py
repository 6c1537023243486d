"""aio test kit: notifications a client sent just before ``await server.shutdown()`` run.

Over TCP they run (55a0b30: shutdown() waits while bytes wait unread in the
socket). Over aio_loopback()'s memory link the bytes were still with the link's
task moving them, the server's connection has no socket, and shutdown() closed it
at once: every run lost them (Review27, session 29: 200 of 200). The memory
transport now counts what has arrived in memory as a socket's FIONREAD does
(``MemoryTransport.unread``): bytes a fault plan still delays are in flight, not
counted, as on a network.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from _aio_support import run

from jsonrpc_mini import ConnectionLost, aio
from jsonrpc_mini.testing import DirectionFaults, FaultPlan, aio_loopback
from jsonrpc_mini.testing._aio_links import memory_link

pytestmark = pytest.mark.timeout(60)


def _server(noted: list[Any]) -> aio.RPCServer:
    server = aio.RPCServer()

    async def note(k: int) -> None:
        noted.append(k)

    server.register_function(note, name="note")
    server.register_function(noted.append, name="plain_note")  # (in the server's thread pool)
    return server


@pytest.mark.parametrize("kind", ["tcp", "aio_loopback"])
def test_notifications_sent_before_shutdown_run(kind: str) -> None:
    noted: list[Any] = []

    async def main() -> None:
        server = _server(noted)
        if kind == "tcp":
            host, port = await server.start("127.0.0.1", 0)
            client = await aio.connect(host, port, timeout=10)
            try:
                while server.connection_count < 1:  # accepted (not in the listen backlog)
                    await asyncio.sleep(0.001)
                for k in range(3):
                    await client.notify("note", k)
                await client.notify("plain_note", 3)
                await server.shutdown()
            finally:
                await client.close()
        else:
            async with aio_loopback(server, timeout=10) as client:
                for k in range(3):
                    await client.notify("note", k)
                await client.notify("plain_note", 3)
                await server.shutdown()
        await server.shutdown()

    run(main)
    assert sorted(noted) == [0, 1, 2, 3]


class _Quiet(asyncio.Protocol):
    pass


@pytest.mark.parametrize("latency", [0.0, 30.0])
def test_a_memory_end_counts_the_bytes_arrived_not_those_in_flight(latency: float) -> None:
    async def main() -> None:
        plan = FaultPlan(client_to_server=DirectionFaults(latency=latency))
        client_end, server_end, link = memory_link(_Quiet(), _Quiet(), plan)
        try:
            client_end.write(b"hello")  # (the link's task has not run yet: written, not delivered)
            assert server_end.unread() == (5 if latency == 0.0 else 0)
            for _ in range(5):
                await asyncio.sleep(0)
            assert server_end.unread() == 0  # delivered, or still in flight for 30 s
            assert client_end.unread() == 0
        finally:
            server_end.abort()
            client_end.abort()
            await link.wait_closed(5.0)

    run(main)


def test_a_client_that_keeps_sending_notifications_does_not_hold_shutdown() -> None:
    # Counting what has arrived in memory made shutdown() wait while the count was not 0:
    # a client that never stops sending held it for its whole shutdown_grace (5.00 s of
    # 5 in a probe). As over a socket, what arrives once shutdown() began is late now:
    # not waited for, its notifications dropped (0.00 s).
    ran: list[int] = []

    async def main() -> None:
        server = aio.RPCServer(shutdown_grace=120.0)

        async def note(k: int) -> None:
            ran.append(k)

        server.register_function(note)
        async with aio_loopback(server, timeout=10) as client:
            stop = asyncio.Event()

            async def flood() -> None:
                with contextlib.suppress(ConnectionLost):  # (once shutdown() closed the connection)
                    while not stop.is_set():
                        await client.notify("note", 1)
                        await asyncio.sleep(0)

            flooder = asyncio.create_task(flood())
            try:
                while len(ran) < 500:
                    await asyncio.sleep(0.01)
                async with asyncio.timeout(30):  # (held, it would wait the 120 s grace)
                    await server.shutdown()
            finally:
                stop.set()
                await asyncio.wait([flooder], timeout=10)
            assert flooder.done() and flooder.exception() is None

    run(main)
    assert len(ran) >= 500
