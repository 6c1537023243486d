"""The connection under an ``aio.RPCClient``: an ``asyncio.Protocol`` over ClientConnection.

A map of pending calls (id -> :class:`Call` future); ``data_received`` feeds the
sans-IO core and resolves futures by id (``ReplySettler`` in ``_aio_settle``).
``fail_all`` is the one error path: when the connection breaks, every pending call
fails with the same ConnectionLost.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

from ._aio_buffer import read_buffer
from ._aio_call_future import Call
from ._aio_deadlines import Deadlines
from ._aio_linger import close_under
from ._aio_settle import ReplySettler
from ._client_protocol import ClientConnection
from ._codec import CallParams, Id, success_id
from ._errors import ConnectionLost, RPCTimeout, detached, lost_link_error, unread_since

__all__ = ["Link"]

log = logging.getLogger("jsonrpc_mini")

# At most this many reply lines are decoded at once (bounds the joined copy).
_GROUP = 1024
# Pipelined calls of one loop iteration are written this many at a time (measured:
# 16-32 cost the server more reads, one write for all delays the server's start).
_FLUSH_EVERY = 64
# Every this many calls (or as many as are in flight, if more), entries of cancelled
# calls whose reply never came and deadlines of answered calls are swept.
_SWEEP_EVERY = 1024


class Link(ReplySettler, asyncio.BufferedProtocol, asyncio.Protocol):
    """One connection, shared by an RPCClient and its ``with_timeout`` views.

    Both kinds of protocol: asyncio's socket transports read into the thread's
    shared buffer (see ``_aio_buffer``), other transports call ``data_received``.
    """

    peer: str | None = None  # what connect() reached, as its errors name it (for repr)

    def __init__(self, proto: ClientConnection) -> None:
        self.proto = proto
        self.loop = asyncio.get_running_loop()
        self._buffer = read_buffer()
        self.transport: asyncio.Transport | None = None
        # Over TLS, the plain transport under it (set by connect): closed with it, so
        # a close does not wait long for the server's close_notify (see fail_all).
        self.under: asyncio.Transport | None = None
        self.pending: dict[Id, Call] = {}  # the calls waiting for their reply, by id
        self.lost: str | None = None
        # The exception that broke the connection, if one did: the ``__cause__`` of
        # every ConnectionLost it gives (as in the sync client's _client_settle).
        self.lost_cause: BaseException | None = None
        # The last error with id null given to no call, until a reply follows it: a
        # server that closes right after it said why (``fail_all`` quotes it).
        self.said: str | None = None
        self.unread: tuple[int, str] | None = None  # (see ReplySettler.unread)
        self.closed: asyncio.Future[None] = self.loop.create_future()
        self._write_ready: asyncio.Future[None] | None = None
        self._out: list[bytes] | None = None
        self._until_sweep = _SWEEP_EVERY
        # Writes of calls made while writing is paused, in order, sent as the buffer
        # drains (resume_writing). Not a task per call: a loop closed by hand would
        # destroy those ("Task was destroyed", "coroutine ... was never awaited").
        self._held: list[tuple[bytes, str | None]] = []
        # Call timeouts: a FIFO of (deadline, id) per timeout value under one timer (see
        # _aio_deadlines); a call appends to its FIFO here, dropping answered heads first.
        self._deadlines = Deadlines(self.loop, self._timed_out)
        self._queues = self._deadlines.queues
        self._time = self.loop.time
        self._dumps_line = proto.codec.dumps_line
        self._next_id = proto.ids.__next__  # (proto.next_id without its Python frame)
        self._newline = proto.framing == "newline"

    # -- asyncio callbacks -----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Remember the transport."""
        self.transport = cast(asyncio.Transport, transport)

    def get_buffer(self, sizehint: int) -> memoryview:
        """Where asyncio reads into: the thread's shared buffer."""
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        """``nbytes`` were read into the shared buffer: take them out at once, then as data_received."""
        data = self._buffer[:nbytes].tobytes()
        if self._newline:
            # Speed: the usual read of a caller waiting for each reply holds one whole
            # reply line; the core decodes it in one step (decode_line) and a plain
            # success settles its call right here, as in _settle_lines, without
            # data_received's layers (in-process, 16 clients: ~0.55 us less per call).
            proto = self.proto
            value = proto.decode_line(data)
            if value is not None:
                # A value decode_line found to be a plain success reply needs only its id
                # (see ClientConnection.plain_reply; success_id's tests again: ~40 bytecodes).
                id_ = value["id"] if value is proto.plain_reply else success_id(value)
                if id_ is None:
                    self._deliver(proto.parse_reply(value))
                    return
                if self.said is not None:
                    self.said = None  # a reply after it: that error was not the server's last word
                future = self.pending.pop(id_, None)
                if future is None:
                    log.debug("dropping reply for unknown or timed-out id %r", id_)
                elif not future.done():  # (done: the caller gave up; drop the late reply)
                    future.set_result(value["result"])
                return
        self.data_received(data)

    def data_received(self, data: bytes) -> None:
        """Feed the core; hand each reply to the call waiting for its id."""
        proto = self.proto
        if not data or not self._newline:
            proto.receive_data(data)
            self._drain()
            return
        # Speed: replies are whole compact lines, usually, one per read (a caller
        # waiting for each reply) or many (pipelined calls). The core decodes a read's
        # lines in one step (``decode_lines``) and plain success replies settle their
        # calls here, without reply objects (see ``_settle_lines``). A line it does not
        # take goes to the framer (drained before the next line, so the order is kept);
        # once the framer holds part of a value, the rest of the read goes there too.
        start, size = 0, len(data)
        while start < size:
            values, after = proto.decode_lines(data, _GROUP, start)
            if values:
                self._settle_lines(values)
                if after == size:
                    return  # (the usual read: its lines all taken)
                one_line = data.find(b"\n", start) + 1 == after
                start = after
                if one_line and start < size:
                    # The lines after it did not qualify as a group (an escape or a
                    # bracket in a string, say): asked again, the core would look at
                    # up to _GROUP of them once per line. The framer reads them.
                    proto.receive_data(data[start:])
                    self._drain()
                    return
                continue
            end = data.find(b"\n", start) + 1
            if not end:
                proto.receive_data(data[start:] if start else data)
                self._drain()
                return
            proto.receive_data(data[start:end] if start or end != size else data)
            self._drain()
            start = end
            if proto.in_message and start < size:
                proto.receive_data(data[start:])
                self._drain()
                return

    def _settle_lines(self, values: list[Any]) -> None:
        """Settle the calls of whole reply lines the core decoded at once as ``values``, in order.

        The core proved that ``values`` are what the framer would read from the
        lines. A plain success reply (``success_id``) settles its call here; any
        other value is checked by the core (``parse_reply``: errors, violations).
        """
        pending = self.pending
        for value in values:
            id_ = success_id(value)
            if id_ is not None:
                if self.said is not None:
                    self.said = None  # a reply after it: that error was not the server's last word
                future = pending.pop(id_, None)
                if future is None:
                    log.debug("dropping reply for unknown or timed-out id %r", id_)
                elif not future.done():  # (done: the caller gave up; drop the late reply)
                    future.set_result(value["result"])
                continue
            self._deliver(self.proto.parse_reply(value))

    def _drain(self) -> None:
        proto = self.proto
        while (event := proto.next_event()) is not None:
            self._deliver(event)

    def eof_received(self) -> bool:
        """The server closed its side: every call still pending has lost its reply."""
        self.data_received(b"")
        self.fail_all("connection closed by the server")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        """Fail every pending call; wake anyone waiting to write."""
        self.fail_all(f"connection lost: {exc}" if exc is not None else "connection closed", exc)
        if self._write_ready is not None and not self._write_ready.done():
            self._write_ready.set_result(None)
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        """The server reads slower than we send: new calls wait before writing."""
        if self._write_ready is None or self._write_ready.done():
            self._write_ready = self.loop.create_future()

    def resume_writing(self) -> None:
        """The write buffer drained: send the writes held meanwhile, until it fills again."""
        if self._write_ready is not None and not self._write_ready.done():
            self._write_ready.set_result(None)
        held = self._held
        if held:
            sent = 0
            while sent < len(held) and not self.paused and self.lost is None:
                data, method = held[sent]
                sent += 1
                self.send(data, method)
            del held[:sent]  # (all of them if the connection broke: fail_all cleared the list)

    # -- sending ---------------------------------------------------------------

    def check(self, method: str | None) -> None:
        """Raise ConnectionLost if the connection is gone (before anything of the call is written)."""
        if self.lost is not None:
            raise self._lost_error(method, sent=False)

    def _lost_error(self, method: str | None, *, sent: bool = True) -> ConnectionLost:
        """The ConnectionLost of a call of ``method`` on this lost link (its ``__cause__``: what broke it)."""
        return lost_link_error(self.lost or "connection lost", self.lost_cause, method, sent=sent)

    @property
    def paused(self) -> bool:
        """True while writes should wait for ``writable()``."""
        return self._write_ready is not None and not self._write_ready.done()

    async def writable(self, timeout: float | None = None) -> bool:
        """Wait while the transport's write buffer is over its high-water mark; False if ``timeout`` passed first.

        The shared future is waited for with ``asyncio.wait``, which never cancels it:
        a waiter cancelled or timed out leaves the others (and ``paused``) as they were.
        """
        end = None if timeout is None else self.loop.time() + timeout
        while (ready := self._write_ready) is not None and not ready.done():
            left = None if end is None else end - self.loop.time()
            if left is not None and left <= 0:
                return False
            await asyncio.wait([ready], timeout=left)
        return True

    def send(self, data: bytes, method: str | None) -> None:
        """Write ``data`` now, or (pipelined) with the others of this loop iteration."""
        self.check(method)
        # With several calls in flight, messages sent in the same loop iteration
        # (pipelined calls) are joined into one write (one system call) by flush().
        out = self._out
        if out is not None:
            out.append(data)
            # Speed: a long run of calls (asyncio.gather of 1,000) goes out in pieces,
            # so the server works on the first ones while later ones are encoded.
            if len(out) >= _FLUSH_EVERY:
                self.flush()
                self._out = []  # the rest of this loop iteration's calls; call_soon flushes them
            return
        assert self.transport is not None
        if len(self.pending) > 1:
            self._out = [data]
            self.loop.call_soon(self.flush)
        else:
            self.transport.write(data)

    def send_soon(self, data: bytes, method: str | None) -> None:
        """Send now, or once the write buffer has drained (back-pressure from a slow server)."""
        if not self.paused and not self._held:
            self.send(data, method)
            return
        self._held.append((data, method))

    def flush(self) -> None:
        """Write what send() held back in this loop iteration."""
        out, self._out = self._out, None
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(out))

    def request(self, method: str, params: CallParams, timeout: float | None) -> Call:
        """Send a request (now, or with the others of this loop iteration); return its call.

        Raises ConnectionLost if the connection is gone, TypeError/ValueError if the
        arguments are not JSON (then nothing is sent).
        """
        if self.lost is not None:
            self.check(method)
        id_ = self._next_id()
        if self._newline:
            # Speed: the bytes of ``proto.encode_request`` (a test compares them) without
            # its two layers of calls (0.9 -> 0.6 us per call).
            value = {"jsonrpc": "2.0", "method": method, "params": params, "id": id_}
            if params is None:
                del value["params"]
            data = self._dumps_line(value)
        else:
            data = self.proto.encode_request(method, params, id_)
        future = self.expect(id_, method, timeout)
        if self._write_ready is None or self._write_ready.done():
            if self._out is None and len(self.pending) == 1 and self.transport is not None:
                # Speed: the usual call of a caller waiting for each reply (the only one
                # in flight, nothing held back) goes straight out: send()'s first branch
                # without its call and checks.
                self.transport.write(data)
            else:
                self.send(data, method)
        else:
            self.send_soon(data, method)
        return future

    def expect(self, id_: Id, method: str, timeout: float | None) -> Call:
        """Register a pending call; its future gets the result or the call's exception."""
        future = self.pending[id_] = Call(loop=self.loop)
        if self.proto.unread:  # (see ClientConnection.unread_before)
            self.proto.witness_call(id_)
        future._steps = None
        future.method = method
        future.proto = self.proto
        future.timeout = timeout
        if timeout is not None:
            queue = self._queues.get(timeout)
            if queue:
                pending = self.pending
                while queue and queue[0][1] not in pending:
                    queue.popleft()  # answered: keeps the queue of a caller waiting for each reply short
                queue.append((self._time() + timeout, id_))
            else:
                self._deadlines.first(timeout, id_)
        self._until_sweep -= 1
        if not self._until_sweep:
            self._sweep()
        return future

    def forget(self, id_: Id) -> None:
        """Drop a pending call: a reply arriving for it later is ignored."""
        if self.pending.pop(id_, None) is not None:
            self.proto.sent_unanswered()  # given up on (see ClientConnection.unread_before)

    def _sweep(self) -> None:
        # A cancelled call keeps its entry until its reply arrives; drop those whose
        # reply never does, so the map stays bounded by the calls really in flight.
        for id_ in [id_ for id_, future in self.pending.items() if future.done()]:
            self.forget(id_)
        # Keep the deadline queues bounded by the calls in flight (+ the calls until the
        # next sweep); with many in flight, sweep less often (a sweep looks at them all).
        self._deadlines.keep(self.pending)
        self._until_sweep = max(_SWEEP_EVERY, len(self.pending))

    def _timed_out(self, id_: Id) -> None:
        future = self.pending.pop(id_, None)  # (None: answered, forgotten or failed)
        if future is not None:
            self.proto.sent_unanswered()  # given up on (see ClientConnection.unread_before)
            if not future.done():
                late = f"no reply within {future.timeout} s; a late reply will be dropped"
                exc = RPCTimeout(late + unread_since(self.unread, id_))
                exc.method = future.method or None  # (str(exc) names it, as the sync client's)
                future.set_exception(exc)

    # -- receiving (storing each reply in its call: _aio_settle.ReplySettler) ------

    def fail_all(self, reason: str, cause: BaseException | None = None) -> None:
        """The single error path: mark the link lost (by ``cause``, if an exception) and fail every pending call."""
        if self.lost is None:
            self.lost = reason if self.said is None else f"{reason} (the server said: {self.said})"
            self.lost_cause = None if cause is None else detached(cause)  # (no traceback: see detached)
        self._held.clear()
        pending, self.pending = self.pending, {}
        self._deadlines.clear()
        for future in pending.values():
            if not future.done():
                future.set_exception(self._lost_error(future.method))
        if self.transport is not None:
            self.flush()
            self.transport.close()
            if self.under is not None:
                # Over TLS, the close_notify follows what is written; the server's is waited
                # for a short while only (see _aio_linger), not asyncio's 30 s.
                close_under(self.under, self.transport)
