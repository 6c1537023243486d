"""AioLoopbackServer's proxy (two ``_SocketEnd``s and a link) passes on what a direct connection would.

Each scenario runs twice: a client protocol connected straight to a raw asyncio
server on 127.0.0.1, and the same client connected through the proxy of an
``AioLoopbackServer`` (no faults) whose server address is pointed at that raw server.
What the client and the server protocols observe must agree.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from _aio_support import WAIT, run, spin_until

from jsonrpc_mini import aio
from jsonrpc_mini.testing import AioLoopbackServer

pytestmark = [
    pytest.mark.filterwarnings("error::ResourceWarning"),
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.timeout(60),
]

KINDS = ("direct", "proxied")
BIG = 16 * 2**20  # more than the kernel buffers of both hops and the proxy's queue hold together


class Events(asyncio.Protocol):
    """Records what the transport tells its protocol, in order (consecutive data merged)."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.data = bytearray()
        self.transport: asyncio.Transport | None = None
        self.made = asyncio.Event()
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()
        self.got_eof = asyncio.Event()
        self.resumed = asyncio.Event()
        self.on_eof: Callable[[], None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.made.set()

    def data_received(self, data: bytes) -> None:
        self.data += data
        if not (self.events and self.events[-1][0] == "data"):
            self.events.append(("data",))

    def eof_received(self) -> bool:
        self.events.append(("eof",))
        self.got_eof.set()
        if self.on_eof is not None:
            self.on_eof()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.append(("lost", None if exc is None else type(exc).__name__))
        self.lost.set_result(exc)

    def pause_writing(self) -> None:
        self.events.append(("pause",))

    def resume_writing(self) -> None:
        self.events.append(("resume",))
        self.resumed.set()


@asynccontextmanager
async def connected(kind: str, client: Events, server: Events) -> AsyncIterator[AioLoopbackServer | None]:
    """``client`` joined to ``server`` directly or through the proxy; both gone on exit (bounded)."""
    loop = asyncio.get_running_loop()
    raw = await loop.create_server(lambda: server, "127.0.0.1", 0)
    rpc = aio.RPCServer()
    try:
        raw_address = raw.sockets[0].getsockname()[:2]
        if kind == "direct":
            await asyncio.wait_for(loop.create_connection(lambda: client, *raw_address), WAIT)
            await asyncio.wait_for(server.made.wait(), WAIT)
            raw.close()
            yield None
        else:
            async with AioLoopbackServer(rpc) as lb:
                lb.direct_address = raw_address  # the proxy now connects its clients to the raw server
                await asyncio.wait_for(loop.create_connection(lambda: client, *lb.address), WAIT)
                await asyncio.wait_for(server.made.wait(), WAIT)
                raw.close()
                yield lb
                for p in (client, server):
                    assert p.transport is not None
                    p.transport.close()
        for p in (client, server):
            assert p.transport is not None
            p.transport.close()
        await asyncio.wait_for(asyncio.gather(client.lost, server.lost), WAIT)
    finally:
        raw.close()
        await raw.wait_closed()
        await rpc.shutdown()


def ends(client: Events, server: Events) -> tuple[asyncio.Transport, asyncio.Transport]:
    assert client.transport is not None and server.transport is not None
    return client.transport, server.transport


def both(scenario: Callable[[str], Any]) -> dict[str, Any]:
    return {kind: run(lambda kind=kind: scenario(kind)) for kind in KINDS}  # type: ignore[misc]


def test_a_server_that_stops_reading_holds_the_client_back_through_the_proxy() -> None:
    async def scenario(kind: str) -> list[Any]:
        client, server = Events(), Events()
        async with connected(kind, client, server) as lb:
            tc, ts = ends(client, server)
            ts.pause_reading()
            tc.write(b"z" * BIG)
            if lb is not None:
                # The proxy stops reading from the client once it holds too much: it
                # must not take everything the client writes while the server reads nothing.
                ((link, (down, _)),) = lb._links
                assert down.transport is not None
                await spin_until(lambda: not down.transport.is_reading())  # type: ignore[union-attr]
                assert link.c2s.queued < BIG // 2
            seen: list[Any] = [list(client.events), tc.get_write_buffer_size() > 0]
            ts.resume_reading()
            await asyncio.wait_for(client.resumed.wait(), WAIT)
            await spin_until(lambda: len(server.data) == BIG)
            seen += [list(client.events), bytes(server.data) == b"z" * BIG]
        return seen

    seen = both(scenario)
    assert seen["proxied"] == seen["direct"] == [[("pause",)], True, [("pause",), ("resume",)], True]


def test_a_reset_from_the_server_reaches_the_client_as_a_reset() -> None:
    async def scenario(kind: str) -> list[Any]:
        client, server = Events(), Events()
        async with connected(kind, client, server):
            tc, ts = ends(client, server)
            tc.write(b"hello")
            await spin_until(lambda: server.data == b"hello")
            ts.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            ts.abort()
            exc = await asyncio.wait_for(client.lost, WAIT)
            return [type(exc), list(client.events)]

    seen = both(scenario)
    assert seen["proxied"] == seen["direct"] == [ConnectionResetError, [("lost", "ConnectionResetError")]]


def test_a_half_close_either_way_passes_through_and_the_other_direction_carries_on() -> None:
    async def scenario(kind: str) -> list[Any]:
        client, server = Events(), Events()
        async with connected(kind, client, server):
            tc, ts = ends(client, server)
            server.on_eof = lambda: (ts.write(b"answer"), ts.write_eof())  # type: ignore[func-returns-value]
            tc.write(b"question")
            tc.write_eof()
            await asyncio.wait_for(client.got_eof.wait(), WAIT)
            return [list(client.events), bytes(client.data), list(server.events), bytes(server.data)]

    seen = both(scenario)
    assert seen["proxied"] == seen["direct"] == [[("data",), ("eof",)], b"answer", [("data",), ("eof",)], b"question"]
