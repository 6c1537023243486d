"""One connection served by the asyncio server: an ``asyncio.Protocol`` over ServerConnection.

Events are pulled from the sans-IO core only while this connection and the whole
server are below their call limits; otherwise reading is paused (back-pressure),
so neither tasks nor buffered bytes grow without bound.

The core scans a value that is not one compact line at most ``SCAN_STEPS`` steps
at a time; the rest is scanned in later loop iterations (``_aio_scans``).

Speed: most reads hold one whole compact request line (a client waiting for each
reply), or many (a pipelining client). Such lines go to the core one at a time
through ``ServerConnection.receive_request``, which decodes a whole line in one
step; whatever it does not take goes to the core's framer, which stays the one
place that handles everything unusual (errors, batches, partial or pretty-printed
values, Content-Length framing). Received bytes not yet given to the core (the
*backlog*) always start at a line boundary with nothing buffered in the framer
before them, so feeding them line by line or all at once gives the same events.

How a call taken here is run and answered is the other half of the class, in
``_aio_calls``; writing the replies is in ``_aio_writes``; the idle and read
timeouts are in ``_aio_timeouts``; closing, aborting and a peer that has gone are
in ``_aio_ending``; scanning a large value in slices is in ``_aio_scans``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast

from ._aio_buffer import read_buffer
from ._aio_linger import close_under
from ._aio_scans import ScanningProtocol
from ._codec import Request
from ._protocol import Batch, Call, Closed, Reply, ServerConnection

if TYPE_CHECKING:
    from ._aio_server import RPCServer

__all__ = ["SCAN_STEPS", "ServerProtocol"]

# Scanner steps per loop iteration: measured 1-3 ms for the costliest shapes (arrays
# of small arrays nested 5 and 30 deep, objects of arrays of objects), ~1-2 us a step.
SCAN_STEPS = 1000


class ServerProtocol(ScanningProtocol):
    """Serves one connection for an ``aio.RPCServer``: reading and back-pressure here, calls in ``CallingProtocol``."""

    # Slots: an idle connection costs less memory (no instance dict), attributes are quicker.
    __slots__ = (
        "_accepted",
        "_bpos",
        "_buffer",
        "_debug",
        "_dumps_line",
        "_entry",
        "_events",
        "_group_from",
        "_keep_open",
        "_limit",
        "_loop",
        "_opts",
        "_plain",
        "_proto",
        "_pumping",
        "_runner",
        "_srv",
        "_start",
        "_tag",
        "_transport",
        "_turn",
        "closed",
        "tasks",
        "under",
    )

    def __init__(self, server: RPCServer) -> None:
        self._srv = server
        opts = self._opts = server.options
        self._proto = ServerConnection(
            framing=opts.framing,
            codec=server.codec,
            max_message_size=opts.max_message_size,
            max_depth=opts.max_depth,
            scan_steps=SCAN_STEPS,
        )
        self._dumps_line = server.codec.dumps_line
        self._plain = server.plain_handlers
        self._limit = opts.max_concurrent_calls
        self._debug = opts.debug
        self._loop = asyncio.get_running_loop()
        self._runner = server.runner(self._loop)
        self._buffer = read_buffer()
        self._transport: asyncio.Transport | None = None
        self.under: asyncio.Transport | None = None  # the plain transport under TLS (set by _aio_tls's gate)
        self.tasks: set[asyncio.Task[None]] = set()  # runner tasks staying with a call that waits
        self.busy = 0
        self.closed: asyncio.Future[None] = self._loop.create_future()
        self._accepted = False
        self._pumping = False
        self._read_paused = False
        self._write_paused = False
        self._input_done = False
        self._gone = False
        self._turn = False  # woken at a free slot: may take one call whatever the gate (take_turn)
        self._start = self._tag = 0  # its held message's start and end tags (see _aio_turns)
        self._entry = 0  # its place in the server's queue while held (see _aio_turns)
        self._draining = False
        self._drain_left: int | None = None  # (from shutdown() on: see _aio_ending)
        self._late = False
        self._late_bytes: bytes | None = None
        self._close_after = False
        self._keep_open = True
        self._events = False  # the core may hold events: ask it before taking more bytes
        self._backlog: bytes | None = None  # received, not yet given to the core (from _bpos on)
        self._bpos = 0
        self._group_from = 0  # backlog lines before this offset are not tried as a group (one failed)
        self.repump = False  # the runner pumps this connection once its queue is empty
        self._last = self._loop.time()
        self._started: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._out: list[bytes] | None = None
        self._flush_soon = False  # a call_soon(_flush) is pending
        self._scan_soon = False  # a call_soon(_scan_more) is pending
        self._scan_from: float | None = None  # when the current scan in slices began

    # -- asyncio callbacks -----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Accept the connection, or refuse it when the server is full or stopping."""
        self._transport = transport = cast(asyncio.Transport, transport)
        srv = self._srv
        self._keep_open = transport.get_extra_info("sslcontext") is None
        if len(srv._conns) >= self._opts.max_connections:
            srv._refusal_log.refused()
            transport.write(srv._refusal)
            transport.close()
            if self.under is not None:  # (TLS: see close())
                close_under(self.under, transport)
            return
        self._accepted = True
        srv._conns.add(self)
        self._last = self._loop.time()  # (a TLS port makes the protocol before the handshake)
        self._arm()

    def get_buffer(self, sizehint: int) -> memoryview:
        """Where asyncio reads into: the thread's shared buffer (see ``_aio_buffer``)."""
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        """``nbytes`` were read into the shared buffer: take them out at once, then as data_received."""
        self.data_received(self._buffer[:nbytes].tobytes())

    def data_received(self, data: bytes) -> None:
        """Feed the core and run what it yields."""
        if type(data) is not bytes:
            data = bytes(data)
        if self._drain_left is not None and not self._late:  # (shutdown() began: see _aio_ending)
            data = self._drained(data)
            if not data:
                self._go_late()
                return
        backlog = self._backlog
        if backlog is not None:
            self._backlog = backlog[self._bpos :] + data
            self._bpos = self._group_from = 0
        else:
            srv = self._srv
            if (
                not self._events
                and self.busy < self._limit
                and srv.total_busy < srv._admit_below
                and not (self._pumping or self._read_paused or self._write_paused or self._input_done)
                and (newline := data.find(b"\n")) == len(data) - 1
            ):
                # Speed: the usual read, one whole request line, in one step without the pump
                # (the usual request as its JSON object: see _aio_calls).
                message = self._proto.receive_plain_call(data, newline)
                if message is not None:
                    self._call(message)
                    if not self.busy:  # (else the idle time starts when the call ends)
                        self._last = self._loop.time()
                    return
                self._events = True  # the core took the bytes
            else:
                self._backlog = data
                self._bpos = self._group_from = 0
        self.pump()

    def eof_received(self) -> bool:
        """The peer finished sending: run what is buffered, answer, then close."""
        self._feed_backlog()
        self._proto.receive_data(b"")
        self._events = True
        self.pump()
        # Keep the write side open for the replies still to come. Over TLS the layer
        # under it does, and takes no answer (_aio_tls_layer; asyncio's own warns at one).
        return self._keep_open

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the connection; calls still running finish (their replies are dropped).

        Its requests not started yet are dropped; the notifications received still
        run, and the connection is kept (in ``_orphans``) until they have (see
        ``_peer_gone``).
        """
        self._peer_gone()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._accepted:
            srv = self._srv
            srv._conns.discard(self)
            if srv._blocked.pop(self, None) is not None:  # (was held: the gate may open)
                srv._unblock()
            if self.busy or not self._input_done:  # calls still running or to run: shutdown() waits for them too
                srv._orphans.add(self)
            if not srv._conns:
                self._runner.release()
            if not (self.busy or self._input_done):  # (else a call that ends pumps)
                self.pump()
        if not self.closed.done():
            self.closed.set_result(None)

    # -- the event pump --------------------------------------------------------

    def repump_now(self) -> None:
        """The runner's deferred pump: the replies so far go out first.

        Writing them first lets a peer that does not read pause writing (and so new
        calls) before more calls are taken in the same runner step, and lets a peer
        that reads work on the first replies while the server works on the next
        calls (measured: holding them to one write per read saved ~0.2 us of server
        CPU per call but cost a reading pipelining client up to 15% of its rate).
        """
        self.repump = False
        if self._out is not None:
            self._flush()
        self.pump()

    def pump(self) -> None:
        """Pull events from the core while below the limits; pause reading when not."""
        if self._pumping or self._input_done:
            self._maybe_close()
            return
        self._pumping = True
        try:
            self._pump()
        finally:
            self._pumping = False
        if self._out is not None and not self._flush_soon:  # replies of this pump: one write
            self._flush()
        if self._drain_left is not None:
            self._go_late()  # (once every message that came before shutdown() is taken)
        self._maybe_close()

    def _pump(self) -> None:
        srv, proto, limit = self._srv, self._proto, self._limit
        pulled = 0
        turn_at = -1  # pulled when a turn began (see take_turn)
        try:
            while not self._input_done:
                if self.busy >= limit or self._write_paused:
                    self._pause()
                    return
                if srv.total_busy >= srv._admit_below:  # (the gate: see RPCServer._unblock)
                    if not self._events and self._backlog is None:
                        break  # nothing to take: not held (it is pumped again when bytes come)
                    if self._turn and pulled > turn_at >= 0:  # its turn's one message is taken
                        srv.turn_used(self)  # (with nobody else waiting, the gate opens)
                        continue
                    if not self._turn or srv.total_busy >= srv.max_total_calls:
                        srv.hold(self)
                        self._pause()
                        return
                    if turn_at < 0:
                        turn_at = pulled  # (bytes given to the core are not a message)
                if self._events:
                    event = proto.next_event()
                    if event is None:
                        if proto.scan_pending:
                            self._scan_later()
                            return
                        self._events = False
                        if self._backlog is not None and proto.in_message:
                            self._feed_backlog()  # the rest belongs to a value begun before
                        continue
                    if isinstance(event, Call):
                        call = event.message
                        if self._gone and type(call) is Request:
                            continue  # nobody can read its reply (see _peer_gone)
                        pulled += 1
                        self._call(call)
                        continue
                    pulled += 1
                    if isinstance(event, Batch):
                        self._start_batch(event)
                    elif isinstance(event, Reply):
                        self._write(event.data)
                        if event.close:
                            self._input_done = True
                    elif isinstance(event, Closed):
                        self._input_done = True
                    continue
                backlog = self._backlog
                if backlog is None:
                    break
                start = self._bpos
                end = backlog.find(b"\n", start) + 1
                if not end or (not start and proto.framing != "newline"):
                    self._feed_backlog()  # a partial line, or framing other than lines (not yet known)
                    continue
                if end < len(backlog) and start >= self._group_from:  # more lines: try one decode
                    room = max(1, min(limit - self.busy, srv._admit_below - srv.total_busy))  # (1: a turn)
                    calls, after = proto.receive_requests(backlog, room, start)
                    if calls:
                        if after == len(backlog):
                            self._backlog = None
                        else:
                            self._bpos = after
                        pulled += len(calls)
                        for call in calls:
                            self._call(call)
                        continue
                    if room >= 2:  # these lines do not qualify: once per read, not on every line
                        self._group_from = len(backlog)
                if end == len(backlog):
                    self._backlog = None
                    line = backlog[start:] if start else backlog
                else:
                    self._bpos = end
                    line = backlog[start:end]
                message = proto.receive_request(line)
                if message is None:
                    self._events = True  # the core took the line: errors, batches, anything unusual
                    continue
                pulled += 1
                self._call(message)
        finally:
            if pulled:  # idle time counts from the last message, not the last byte (slowloris)
                self._last = self._loop.time()
                if self._turn and pulled > turn_at >= 0:
                    srv.turn_used(self)
        if self._gone:
            self._input_done = True  # the peer's messages received are all taken (see _peer_gone)
        if self._input_done:
            self._pause()
            return
        if self._read_paused and self._transport is not None and not self._transport.is_closing():
            self._read_paused = False
            self._transport.resume_reading()
        if proto.in_message:
            if self._started is None:
                self._started = self._loop.time()
                self._arm()
        else:
            self._started = None

    def take_turn(self) -> None:
        """Woken at a slot ``max_total_calls`` freed (``RPCServer._unblock``): take one call.

        One call while others wait (at the next one this connection is held again,
        at the back); as many as it may when nobody else waits. The turn may be
        used before this runs (the connection's own call ended and it pumped); one
        it does not use (nothing to read) goes to the next connection.
        """
        srv = self._srv
        if self._turn:
            self.pump()
            if self._turn:
                srv.turn_taken(self)
        srv._unblock()

    def _feed_backlog(self, more: bytes = b"") -> None:
        """Give every byte not yet given to the core to its framer, then ``more`` (bytes read after them)."""
        backlog = self._backlog
        if backlog is not None:
            self._backlog = None
            self._proto.receive_data(backlog[self._bpos :] if self._bpos else backlog)
            self._events = True
        if more:
            self._proto.receive_data(more)
            self._events = True

    def _pause(self) -> None:
        if not self._read_paused and self._transport is not None and not self._transport.is_closing():
            self._read_paused = True
            self._transport.pause_reading()
        self._started = None  # the peer is not to blame for a message we do not read
