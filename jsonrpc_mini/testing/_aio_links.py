"""Seeded faults under asyncio: the same ``LinkState`` decisions, moved by one task per direction.

A :class:`_Direction` takes the bytes one end wrote, asks the plan's
``DirectionState`` how many may cross now, how long to hold them and which fault
follows, then hands them to the other end. Ends are small adapters: an in-memory
``asyncio.Transport`` (:class:`MemoryTransport`, for ``aio_loopback``) or a real
socket transport (for the proxy of ``AioLoopbackServer``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from typing import Protocol

from .._aio_runner import log_destroy
from ._plan import DirectionState, FaultPlan, LinkState, Step

__all__ = ["Direction", "End", "Link", "MemoryTransport", "memory_link"]

log = logging.getLogger("jsonrpc_mini.testing")

CHUNK = 64 * 1024  # at most this many bytes cross per step, like one socket read


class End(Protocol):
    """What a direction needs from the end it delivers to."""

    def deliver(self, data: bytes) -> None:
        """Hand ``data`` to the reader."""

    def deliver_eof(self) -> None:
        """The writer finished: the reader reads EOF."""

    def lose(self, exc: Exception | None) -> None:
        """The connection is gone for this end (``exc`` None: closed, else e.g. a reset)."""

    async def readable(self) -> bool:
        """Wait until the reader takes bytes; False if it never will again."""
        ...

    def drained(self, size: int) -> None:
        """Tell the writing end how many bytes are still queued (write flow control)."""


class Direction:
    """Bytes one end wrote, on their way to the other end, paced by the plan.

    As over a network link (and as ``FaultyTransport`` over ``loopback()``'s pipe):
    each chunk is cut and sent as soon as it is written, and is in flight until its
    delay (latency, jitter) after that, so chunks in flight together wait their
    delays out together; only their time at the plan's bandwidth adds up, and none
    overtakes one sent before it. A fault happens when the chunk before it arrives.
    """

    def __init__(self, link: Link, state: DirectionState, src: End, dst: End) -> None:
        self.link = link
        self.state = state
        self.src = src
        self.dst = dst
        self.buf = bytearray()
        # Chunks sent, not delivered yet: (when they arrive, the bytes, their step).
        self.flight: collections.deque[tuple[float, bytes, Step]] = collections.deque()
        self._flying = 0  # bytes in flight
        self._due = 0.0  # when the last chunk sent arrives
        self._faulted = False  # a step with a fault is in flight: nothing more is sent
        self.eof = False
        self.ended = False
        self.dropping = False  # the kit is leaving: what the plan delays is dropped, not waited for
        self._wake = asyncio.Event()
        self._cut = asyncio.Event()  # set by stop() and drop_in_flight(): a delay under way ends now
        max_chunk = state.faults.max_chunk
        self._limit = CHUNK if max_chunk is None else min(CHUNK, max_chunk)

    @property
    def queued(self) -> int:
        """Bytes written but not delivered yet (in flight included)."""
        return len(self.buf) + self._flying

    def push(self, data: bytes) -> None:
        """Queue bytes the source end wrote (dropped once this direction has ended)."""
        if not self.ended and not self.eof and data:
            self.buf += data
            self._wake.set()

    def finish(self) -> None:
        """The source end closed its side: deliver EOF after the queued bytes."""
        self.eof = True
        self._wake.set()

    def stop(self) -> None:
        """End this direction at once (the queued bytes vanish)."""
        self.ended = True
        self.buf.clear()
        self.flight.clear()
        self._flying = 0
        self._wake.set()
        self._cut.set()

    def drop_in_flight(self) -> None:
        """From now on drop the bytes the plan would delay (connect, latency, jitter, bandwidth).

        For the kit's exit: bytes still in flight (the request of a call that already
        timed out) never arrive, as when a connection is torn down, instead of holding
        the exit for their delays. Bytes with no delay still cross, then the EOF
        (after ``close_delay``).
        """
        self.dropping = True
        self._cut.set()
        self._wake.set()

    async def _delay(self, seconds: float) -> bool:
        """Hold the bytes ``seconds`` (the plan's delay); False if they are to be dropped.

        ``stop()`` and ``drop_in_flight()`` end a delay under way.
        """
        if seconds > 0 and not self.dropping and not self.ended:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._cut.wait(), seconds)
        return not (seconds > 0 and self.dropping)

    def _send(self, now: float) -> None:
        """Cut what was written into chunks and put them in flight (not past a fault)."""
        while self.buf and not self._faulted:
            view = bytes(self.buf[: self._limit])
            step = self.state.next_step(view)
            chunk = view[: step.size]
            del self.buf[: len(chunk)]
            self._due = self.state.arrival(now, step, self._due)
            if step.fault is None:
                self.state.commit(chunk, step)
            else:  # the bytes are counted now; the fault happens when they arrive
                self.state.commit(chunk, Step(step.size, step.delay))
                self._faulted = True
            self.flight.append((self._due, chunk, step))
            self._flying += len(chunk)

    async def _wait(self, seconds: float | None) -> None:
        """Wait ``seconds`` (None: no limit), or until bytes are written or cut."""
        self._wake.clear()
        if seconds is not None and seconds <= 0:
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def run(self) -> None:
        """Move bytes until EOF, a fault, or ``stop()``."""
        loop = asyncio.get_running_loop()
        if not await self._delay(self.link.plan.connect_delay):
            self.buf.clear()
        while not self.ended:
            self._send(loop.time())
            if self.flight:
                due, chunk, step = self.flight[0]
                if due > loop.time():
                    if self.dropping:  # in flight when the kit leaves: it (and all behind it) never arrives
                        self.flight.clear()
                        self._flying = 0
                        self._faulted = False  # (a fault dropped with them: decided again if more comes)
                        self.buf.clear()
                        self.src.drained(0)
                        continue
                    await self._wait(due - loop.time())
                    continue
                if not await self.dst.readable():
                    self.stop()
                    return
                if self.ended or not self.flight:
                    continue
                self.flight.popleft()
                self._flying -= len(chunk)
                if chunk:
                    self.dst.deliver(chunk)
                self.src.drained(self.queued)
                if step.fault is not None:
                    self.state.commit(b"", step)
                    await self._fault(step)
                    return
                continue
            if self.eof and not self.buf:
                await self._end_of_stream()
                return
            await self._wait(None)

    async def _end_of_stream(self) -> None:
        if self.link.plan.close_delay:
            await asyncio.sleep(self.link.plan.close_delay)
        self.ended = True
        self.dst.deliver_eof()

    async def _fault(self, step: Step) -> None:
        self.ended = True
        self.buf.clear()
        log.debug("fault plan: %s", step.reason)
        if step.fault == "stall":
            return  # nothing more arrives, nothing closes
        if self.link.plan.close_delay and step.fault in ("close", "half_close"):
            await asyncio.sleep(self.link.plan.close_delay)
        if step.fault == "half_close":
            self.dst.deliver_eof()
        elif step.fault == "reset":
            self.link.break_link(ConnectionResetError(step.reason))
        else:
            self.link.break_link(None)


class Link:
    """Both directions of one connection and the tasks moving them."""

    def __init__(self, plan: FaultPlan, connection: int, client: End, server: End) -> None:
        self.plan = plan
        self.state = LinkState(plan, connection)
        self.client = client
        self.server = server
        self.c2s = Direction(self, self.state.client_to_server, client, server)
        self.s2c = Direction(self, self.state.server_to_client, server, client)
        self.tasks: list[asyncio.Task[None]] = []
        self._broken = False

    def start(self) -> None:
        """Start moving bytes (one task per direction)."""
        loop = asyncio.get_running_loop()
        self.tasks = [
            loop.create_task(direction.run(), name=f"jsonrpc_mini-link-{direction.state.name}")
            for direction in (self.c2s, self.s2c)
        ]
        # A loop closed without closing its async generators (loop.close() right after
        # run_until_complete) never lets aio_loopback or AioLoopbackServer close, and
        # destroys these tasks. They only move bytes between the two ends (no user code
        # runs in them), so that is not reported, as with the aio server's idle runner.
        for task in self.tasks:
            log_destroy(task, False)

    def drop_in_flight(self) -> None:
        """Both directions drop what the plan still delays (see ``Direction.drop_in_flight``)."""
        self.c2s.drop_in_flight()
        self.s2c.drop_in_flight()

    def break_link(self, exc: Exception | None) -> None:
        """Close (``exc`` None) or reset the whole connection: both ends lose it."""
        if self._broken:
            return
        self._broken = True
        self.c2s.stop()
        self.s2c.stop()
        for end in (self.client, self.server):
            if exc is None:
                end.deliver_eof()
            end.lose(exc)

    async def wait_closed(self, timeout: float) -> None:
        """Wait for both directions to end (bounded), then cancel what is left."""
        if self.tasks:
            _, pending = await asyncio.wait(self.tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)


class MemoryTransport(asyncio.Transport):
    """One end of an in-memory asyncio connection, with the plan applied in between."""

    def __init__(self, name: str) -> None:
        super().__init__(extra={"peername": ("memory", name), "sockname": ("memory", name)})
        self.name = name
        self.protocol: asyncio.Protocol | None = None
        self.out: Direction | None = None  # the direction this end writes into
        self.inbound: Direction | None = None
        self._closing = False
        self._lost = False
        self._reading = asyncio.Event()
        self._reading.set()
        self._write_paused = False
        self._high, self._low = 64 * 1024, 16 * 1024

    # -- asyncio.Transport -------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data`` for the peer (dropped after close or once the link broke)."""
        if self._closing or self.out is None:
            return
        self.out.push(bytes(data))
        if not self._write_paused and self.out.queued > self._high and self.protocol is not None:
            self._write_paused = True
            self.protocol.pause_writing()

    def write_eof(self) -> None:
        """Half-close: the peer reads EOF after the queued bytes."""
        if self.out is not None:
            self.out.finish()

    def can_write_eof(self) -> bool:
        """Half-close is supported."""
        return True

    def close(self) -> None:
        """Send what is queued, then EOF; the protocol's connection_lost follows."""
        if self._closing:
            return
        self._closing = True
        if self.out is not None:
            self.out.finish()
        if self.inbound is not None:
            self.inbound.stop()
        asyncio.get_running_loop().call_soon(self.lose, None)

    def abort(self) -> None:
        """Reset the connection: both ends get ConnectionResetError (this one: None)."""
        if self.out is not None:
            self.out.link.break_link(ConnectionResetError(f"{self.name}: connection reset by peer"))
        self.lose(None)

    def is_closing(self) -> bool:
        """Whether close() or a fault has ended this end."""
        return self._closing

    def pause_reading(self) -> None:
        """Stop delivering bytes to the protocol."""
        self._reading.clear()

    def resume_reading(self) -> None:
        """Deliver bytes again."""
        self._reading.set()

    def is_reading(self) -> bool:
        """Whether bytes are delivered."""
        return self._reading.is_set()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        """Set the protocol that receives the bytes."""
        assert isinstance(protocol, asyncio.Protocol)
        self.protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        """The protocol that receives the bytes."""
        assert self.protocol is not None
        return self.protocol

    def get_write_buffer_size(self) -> int:
        """Bytes written but not yet delivered."""
        return 0 if self.out is None else self.out.queued

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Flow-control marks for pause_writing/resume_writing."""
        self._high = 64 * 1024 if high is None else high
        self._low = self._high // 4 if low is None else low

    def get_write_buffer_limits(self) -> tuple[int, int]:
        """The low and high flow-control marks."""
        return self._low, self._high

    # -- End (what the directions call) --------------------------------------------

    def deliver(self, data: bytes) -> None:
        """Bytes for our protocol."""
        if not self._lost and self.protocol is not None:
            self.protocol.data_received(data)

    def deliver_eof(self) -> None:
        """The peer finished sending; close unless the protocol keeps the write side open."""
        if self._lost or self.protocol is None:
            return
        keep_open = self.protocol.eof_received()
        if not keep_open:
            self.close()

    def lose(self, exc: Exception | None) -> None:
        """The connection ended for this end: tell the protocol once."""
        if self._lost:
            return
        self._lost = True
        self._closing = True
        self._reading.set()
        if self.inbound is not None:
            self.inbound.stop()
        if self.protocol is not None:
            self.protocol.connection_lost(exc)

    async def readable(self) -> bool:
        """Wait while our protocol paused reading; False once this end is gone."""
        while not self._reading.is_set():
            await self._reading.wait()
        return not self._lost

    def drained(self, size: int) -> None:
        """The peer took bytes: resume our protocol's writing below the low mark."""
        if self._write_paused and size <= self._low and self.protocol is not None and not self._lost:
            self._write_paused = False
            self.protocol.resume_writing()


def memory_link(
    client_protocol: asyncio.Protocol,
    server_protocol: asyncio.Protocol,
    plan: FaultPlan | None = None,
    connection: int = 0,
) -> tuple[MemoryTransport, MemoryTransport, Link]:
    """Connect two protocols in memory through ``plan``; returns both ends and the link."""
    client, server = MemoryTransport("client"), MemoryTransport("server")
    link = Link(plan if plan is not None else FaultPlan(), connection, client, server)
    client.out, client.inbound = link.c2s, link.s2c
    server.out, server.inbound = link.s2c, link.c2s
    client.set_protocol(client_protocol)
    server.set_protocol(server_protocol)
    link.start()
    server_protocol.connection_made(server)
    client_protocol.connection_made(client)
    return client, server, link
