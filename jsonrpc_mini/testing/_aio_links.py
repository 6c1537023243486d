"""Seeded faults under asyncio: the same ``LinkState`` decisions, moved by one task per direction.

A :class:`Link` holds both directions of one connection (each a ``Direction``, in
``_aio_direction``: it takes the bytes one end wrote, asks the plan's
``DirectionState`` how many may cross now, how long to hold them and which fault
follows, then hands them to the other end) and runs one task for each. Ends are
small adapters: an in-memory ``asyncio.Transport`` (:class:`MemoryTransport`, for
``aio_loopback``) or a real socket transport (for the proxy of ``AioLoopbackServer``).
"""

from __future__ import annotations

import asyncio
import errno
from asyncio.log import logger as asyncio_logger

from .._aio_runner import log_destroy
from ._aio_direction import Direction, End
from ._plan import FaultPlan, LinkState

__all__ = ["Direction", "End", "Link", "MemoryTransport", "memory_link"]

# Writes to a lost connection asyncio's TCP transport counts before it logs each one
# (asyncio.constants.LOG_THRESHOLD_FOR_CONNLOST_WRITES).
_LOG_THRESHOLD = 5


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

    def break_link(self, exc: Exception | None, spare: End | None = None) -> None:
        """Close (``exc`` None) or reset the whole connection: both ends lose it.

        ``spare``, the end that broke it itself (``MemoryTransport.abort``), is left
        to tell its own protocol.
        """
        if self._broken:
            return
        self._broken = True
        self.c2s.stop()
        self.s2c.stop()
        for end in (self.client, self.server):
            if end is spare:
                continue
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
    """One end of an in-memory asyncio connection, with the plan applied in between.

    It answers as asyncio's TCP transport does on what a protocol can observe:
    ``write()`` takes bytes-like data only (TypeError) and raises RuntimeError after
    ``write_eof()``; after ``close()``, ``abort()`` or a lost connection writes are
    dropped (each from the fifth logs "socket.send() raised exception."),
    ``is_closing()`` is true, ``is_reading()`` false, and the protocol's
    ``connection_lost`` comes from the loop, never from inside the call;
    ``set_write_buffer_limits`` computes and checks the marks as asyncio does and
    calls ``pause_writing()`` at once when more than the new high mark is queued;
    ``get_extra_info("peername")`` of one end is the ``"sockname"`` of the other;
    writing to an end that has closed, once its close reached this end (after the
    plan's ``close_delay``: the EOF), sends the first write (into the void: TCP's
    peer answers it with a reset), and the next fails: ``connection_lost`` with
    ``BrokenPipeError``, and each write from the fifth after it logs "socket.send()
    raised exception." on asyncio's logger; ``close()`` with bytes from the peer not
    read yet resets the peer after what it was sent (TCP's RST), no EOF; a protocol
    that paused reading hears the peer's EOF or reset once it resumes (or, a reset,
    when it writes).

    Deliberate differences: bytes are queued until the peer's protocol takes them
    (no kernel buffer takes them first), so ``get_write_buffer_size()`` counts
    everything not yet delivered; ``abort()`` resets the peer (it gets
    ``ConnectionResetError``), as a TCP socket closed with SO_LINGER 0 does (what this
    library's drivers do when they drop a connection), where a plain asyncio TCP
    ``abort()`` may send the queued bytes and an EOF, and drops every byte the peer
    has not taken, written in the same loop round or not, right after ``close()``
    too (TCP's peer has those in its kernel and reads them first); there is no
    ``get_extra_info("socket")`` (None), the addresses are ``("memory", name)``; and
    ``close()`` ends this end on the next loop round (``connection_lost``) even with
    bytes still queued for a peer that is not reading (they reach it when it reads),
    where TCP waits for asyncio's buffer to drain: an ``abort()`` after that
    ``connection_lost`` drops nothing, and writes after the ``close()`` are dropped
    silently (TCP sends them).
    """

    def __init__(self, name: str, peer: str | None = None) -> None:
        """``name``: this end (its ``sockname``); ``peer``: the other end's (default ``name``)."""
        super().__init__(extra={"peername": ("memory", name if peer is None else peer), "sockname": ("memory", name)})
        self.name = name
        self.protocol: asyncio.Protocol | None = None
        self.out: Direction | None = None  # the direction this end writes into
        self.inbound: Direction | None = None
        self._closing = False
        self._lost = False
        self._conn_lost = 0  # writes since the connection was found lost (as asyncio's TCP transport counts)
        self._into_void = False  # a write went to an end that had closed (the next one fails)
        self._eof_in = False  # the peer's EOF reached this end (its close, after close_delay)
        self._eof_held = False  # ... while our protocol paused reading: it reads it once it resumes
        self._reset_held: ConnectionResetError | None = None  # a reset that came meanwhile (read or write: lost)
        self._eof = False
        self._reading = asyncio.Event()
        self._reading.set()
        self._write_paused = False
        self._high, self._low = 64 * 1024, 16 * 1024

    # -- asyncio.Transport -------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data`` for the peer (dropped after close or once the link broke)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data argument must be a bytes-like object, not {type(data).__name__!r}")
        if self._eof:
            raise RuntimeError("Cannot call write() after write_eof()")
        if not data:
            return
        if self._conn_lost:
            if self._conn_lost >= _LOG_THRESHOLD:
                asyncio_logger.warning("socket.send() raised exception.")
            self._conn_lost += 1
            return
        if self._reset_held is not None:  # a reset came while not reading: this send meets it
            self._closing, self._conn_lost = True, 1
            asyncio.get_running_loop().call_soon(self.lose, self._reset_held)
            return
        if self._closing or self.out is None:
            return
        peer = self.out.dst
        if isinstance(peer, MemoryTransport) and peer._closing and self._eof_in:
            # The peer closed: over TCP the first write still leaves (its kernel answers
            # with a reset), the next fails with EPIPE and the connection is lost. Not
            # before the close reached this end (the plan's close_delay holds it).
            if self._into_void:
                self._conn_lost = 1
                self._closing = True
                asyncio.get_running_loop().call_soon(self.lose, BrokenPipeError(errno.EPIPE, "Broken pipe"))
            self._into_void = True
            return
        self.out.push(bytes(data))
        self._maybe_pause()

    def _maybe_pause(self) -> None:
        if not self._write_paused and self.get_write_buffer_size() > self._high and self.protocol is not None:
            self._write_paused = True
            self.protocol.pause_writing()

    def write_eof(self) -> None:
        """Half-close: the peer reads EOF after the queued bytes; later writes raise RuntimeError."""
        if self._closing or self._eof:
            return
        self._eof = True
        if self.out is not None:
            self.out.finish()

    def can_write_eof(self) -> bool:
        """Half-close is supported."""
        return True

    def close(self) -> None:
        """Send what is queued, then EOF; the protocol's connection_lost follows.

        With bytes from the peer not read yet (a paused protocol, bytes in flight),
        a reset follows them instead of the EOF, as a TCP socket closed so sends RST.
        """
        if self._closing:
            return
        self._closing = True
        if not self.get_write_buffer_size():
            self._conn_lost = 1  # as asyncio: lost at once, later writes are counted (and logged)
        if self.out is not None:
            unread = self.inbound is not None and self.inbound.queued > 0
            self.out.finish(ConnectionResetError(f"{self.name}: connection reset by peer") if unread else None)
        if self.inbound is not None:
            self.inbound.stop()
        asyncio.get_running_loop().call_soon(self.lose, None)

    def abort(self) -> None:
        """Drop what is queued and reset the peer (ConnectionResetError); our protocol gets None."""
        if self._lost:
            return
        self._closing = True
        self._conn_lost = self._conn_lost or 1
        loop = asyncio.get_running_loop()
        if self.out is not None:
            link = self.out.link
            link.c2s.stop()  # nothing moves any more, either way
            link.s2c.stop()
            loop.call_soon(link.break_link, ConnectionResetError(f"{self.name}: connection reset by peer"), self)
        loop.call_soon(self.lose, None)

    def is_closing(self) -> bool:
        """Whether close(), abort() or a fault has ended this end."""
        return self._closing

    def pause_reading(self) -> None:
        """Stop delivering bytes to the protocol (a no-op once closing)."""
        if not self._closing:
            self._reading.clear()

    def resume_reading(self) -> None:
        """Deliver bytes again (and an EOF or a reset that came meanwhile, from the loop)."""
        self._reading.set()
        if self._reset_held is not None:
            asyncio.get_running_loop().call_soon(self.lose, self._reset_held)
        elif self._eof_held:
            self._eof_held = False
            asyncio.get_running_loop().call_soon(self._eof_received)

    def is_reading(self) -> bool:
        """Whether bytes are delivered (never once closing)."""
        return self._reading.is_set() and not self._closing

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        """Set the protocol that receives the bytes (an ``asyncio.Protocol``: TypeError otherwise)."""
        if not isinstance(protocol, asyncio.Protocol):
            raise TypeError(f"MemoryTransport delivers to an asyncio.Protocol, not {type(protocol).__name__}")
        self.protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        """The protocol that receives the bytes."""
        assert self.protocol is not None
        return self.protocol

    def get_write_buffer_size(self) -> int:
        """Bytes written but not yet delivered."""
        return 0 if self.out is None else self.out.queued

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Flow-control marks for pause_writing/resume_writing, set and checked as asyncio does.

        ``high`` defaults to 64 KiB, or ``4 * low`` when only ``low`` is given; ``low``
        to ``high // 4``; ValueError unless ``high >= low >= 0``. More than ``high``
        bytes queued already pauses the protocol's writing at once.
        """
        if high is None:
            high = 64 * 1024 if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high, self._low = high, low
        self._maybe_pause()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        """The low and high flow-control marks."""
        return self._low, self._high

    # -- End (what the directions call) --------------------------------------------

    def deliver(self, data: bytes) -> None:
        """Bytes for our protocol (none once it closed this end, as asyncio reads no more then)."""
        if not self._closing and self.protocol is not None:
            self.protocol.data_received(data)

    def deliver_eof(self) -> None:
        """The peer finished sending; close unless the protocol keeps the write side open.

        A protocol that paused reading reads it once it resumes, as over TCP.
        """
        self._eof_in = True
        if self._reading.is_set():
            self._eof_received()
        else:
            self._eof_held = True

    def _eof_received(self) -> None:
        if self._closing or self.protocol is None:
            return
        keep_open = self.protocol.eof_received()
        if not keep_open:
            self.close()

    def lose(self, exc: Exception | None) -> None:
        """The connection ended for this end: tell the protocol once.

        A reset to a protocol that paused reading waits, as over TCP, until it
        resumes or writes (``_reset_held``).
        """
        if self._lost:
            return
        if isinstance(exc, ConnectionResetError) and not self._closing and not self._reading.is_set():
            self._reset_held = exc
            self._reading.set()  # (wakes a direction waiting for this end to read: it ends)
            self._reading.clear()
            return
        self._lost = True
        self._closing = True
        if exc is not None:
            self._conn_lost = self._conn_lost or 1
        self._reading.set()
        if self.inbound is not None:
            self.inbound.stop()
        if self.protocol is not None:
            self.protocol.connection_lost(exc)

    def unread(self) -> int:
        """Bytes the peer wrote that have arrived at this end and our protocol was not given (FIONREAD's count).

        What a socket would hold unread: the aio server's ``shutdown()`` lets its
        connections read these first (0 once this end is closing).
        """
        if self._closing or self.inbound is None:
            return 0
        return self.inbound.arrived(asyncio.get_running_loop().time())

    def unread_or_none(self) -> int:
        """As :meth:`unread` (memory can always tell): what servers ask a transport (as the pipe's)."""
        return self.unread()

    async def readable(self) -> bool:
        """Wait while our protocol paused reading; False once this end is gone."""
        while not self._reading.is_set() and self._reset_held is None:
            await self._reading.wait()
        return not self._lost and self._reset_held is None

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
    client, server = MemoryTransport("client", "server"), MemoryTransport("server", "client")
    link = Link(plan if plan is not None else FaultPlan(), connection, client, server)
    client.out, client.inbound = link.c2s, link.s2c
    server.out, server.inbound = link.s2c, link.c2s
    client.set_protocol(client_protocol)
    server.set_protocol(server_protocol)
    link.start()
    server_protocol.connection_made(server)
    client_protocol.connection_made(client)
    return client, server, link
