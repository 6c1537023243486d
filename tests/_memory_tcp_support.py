"""Running one asyncio scenario over a real 127.0.0.1 TCP connection and over ``memory_link``.

The differential tests of MemoryTransport (test_memory_transport_vs_tcp*.py) compare
what the protocols observe over both.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from _aio_support import WAIT, run

from jsonrpc_mini.testing import FaultPlan
from jsonrpc_mini.testing._aio_links import memory_link

__all__ = ["BIG", "KINDS", "Events", "Warned", "both", "connected", "ends", "small_send_buffer"]

KINDS = ("tcp", "memory")
BIG = 4 * 2**20  # more than the kernel holds while the reader pauses (the writer's send buffer made small)


class Events(asyncio.Protocol):
    """Records what the transport tells its protocol, in order (consecutive data merged)."""

    def __init__(self, keep_open: bool = True) -> None:
        self.keep_open = keep_open
        self.events: list[tuple[Any, ...]] = []
        self.data = bytearray()
        self.transport: asyncio.Transport | None = None
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()
        self.got_eof = asyncio.Event()
        self.resumed = asyncio.Event()
        self.on_eof: Callable[[], None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.data += data
        if self.events and self.events[-1][0] == "data":
            self.events[-1] = ("data", self.events[-1][1] + len(data))
        else:
            self.events.append(("data", len(data)))

    def eof_received(self) -> bool:
        self.events.append(("eof",))
        self.got_eof.set()
        if self.on_eof is not None:
            self.on_eof()
        return self.keep_open

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.append(("lost", None if exc is None else type(exc).__name__))
        self.lost.set_result(exc)

    def pause_writing(self) -> None:
        assert self.transport is not None
        self.events.append(
            ("pause", self.transport.get_write_buffer_size() > self.transport.get_write_buffer_limits()[1])
        )

    def resume_writing(self) -> None:
        assert self.transport is not None
        self.events.append(
            ("resume", self.transport.get_write_buffer_size() <= self.transport.get_write_buffer_limits()[0])
        )
        self.resumed.set()


@asynccontextmanager
async def connected(kind: str, a: Events, b: Events, plan: FaultPlan | None = None) -> AsyncIterator[None]:
    """``a`` and ``b`` joined over ``kind``; on exit both ends are closed and gone (bounded)."""
    if kind == "memory":
        _, _, link = memory_link(a, b, plan)
        try:
            yield
        finally:
            await _close_both(a, b, lambda: link.wait_closed(WAIT))
        return
    assert plan is None
    loop = asyncio.get_running_loop()
    accepted = loop.create_future()

    def factory() -> Events:
        accepted.set_result(None)
        return b

    server = await loop.create_server(factory, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        await asyncio.wait_for(loop.create_connection(lambda: a, "127.0.0.1", port), WAIT)
        await asyncio.wait_for(accepted, WAIT)
    finally:
        server.close()
    try:
        yield
    finally:
        await _close_both(a, b)
        # (From Python 3.12 on, wait_closed waits for the accepted connection's end too.)
        await asyncio.wait_for(server.wait_closed(), WAIT)


async def _close_both(a: Events, b: Events, closed: Callable[[], Awaitable[Any]] | None = None) -> None:
    """Close both ends' transports; await ``closed`` (the link's end), then both ends' loss (bounded)."""
    for p in (a, b):
        assert p.transport is not None
        p.transport.close()
    if closed is not None:
        await closed()
    await asyncio.wait_for(asyncio.gather(a.lost, b.lost), WAIT)


def ends(a: Events, b: Events) -> tuple[asyncio.Transport, asyncio.Transport]:
    assert a.transport is not None and b.transport is not None
    return a.transport, b.transport


def small_send_buffer(transport: asyncio.Transport) -> None:
    """Over TCP, have the kernel take little of what is written (asyncio then buffers the rest)."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)


def both(scenario: Callable[[str], Any]) -> dict[str, Any]:
    """What ``scenario`` observed over each kind of connection."""
    return {kind: run(lambda kind=kind: scenario(kind)) for kind in KINDS}  # type: ignore[misc]


class Warned(logging.Handler):
    """The messages of the WARNING records it is given, but asyncio's debug-mode note of a slow step.

    That note ("Executing <Task ...> took 0.107 seconds") says the machine was busy,
    not what a transport did: under load it was counted as one of the transport's
    warnings and failed a test (once, in a full suite on a loaded machine).
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Executing ") and " took " in message and message.endswith(" seconds"):
            return
        self.messages.append(message)
