"""An in-memory, thread-safe pair of connected transports (no sockets).

Each ``send`` is kept as one segment and a ``recv`` never returns bytes of two
segments, so the chunking a writer chooses (or a fault plan imposes) is exactly
what the reader sees. ``send_at`` queues a segment that the reader gets only from
a given time on (bytes still in flight: the writer does not wait); ``recv_stamped``
also tells when the segment arrived; ``call_at`` does something (a fault plan's reset)
once a time has come. Every wait is bounded by the caller's timeout.
"""

from __future__ import annotations

import collections
import errno
import itertools
import threading
import time
from collections.abc import Callable

__all__ = ["PipeTransport", "pipe_pair"]


class _Channel:
    """One direction: segments in flight plus how that direction ended."""

    __slots__ = ("reader_closed", "reader_gone", "reset", "segments", "timers", "writer_done")

    def __init__(self) -> None:
        # (when, what): a fault a plan sent after the segments, done once it arrives
        self.timers: list[tuple[float, Callable[[], None], bool]] = []  # (due, action, kept at drop_in_flight)
        # (when it arrives: may be read, its bytes); a segment waits for the ones before it all the same
        self.segments: collections.deque[tuple[float, bytes]] = collections.deque()
        self.writer_done = False  # the reader gets EOF once the segments are read
        self.reader_gone = False  # the writer gets BrokenPipeError
        # The reader closed its end (not a shutdown_read): as over TCP, the writer's next
        # bytes still go out (and are lost: the peer's kernel answers them with a reset);
        # only the sends after them fail.
        self.reader_closed = False
        self.reset = False  # both ends get ConnectionResetError


class PipeTransport:
    """One end of an in-memory connection; a :class:`~jsonrpc_mini.Transport`.

    Besides ``send``/``recv``/``close`` it offers what a TCP socket can do to its
    peer: ``shutdown_write`` (the peer reads EOF), ``shutdown_read`` (the peer's
    writes fail with BrokenPipeError) and ``abort`` (a reset: both ends get
    ConnectionResetError).

    Example::

        a, b = pipe_pair()
        a.send(b"ping")
        assert b.recv(1024, timeout=1.0) == b"ping"
    """

    def __init__(self, cond: threading.Condition, inbound: _Channel, outbound: _Channel, name: str) -> None:
        self._cond = cond
        self._in = inbound
        self._out = outbound
        self._closed = False
        self._close_reset: Callable[[], None] | None = None  # (close()'s reset, in flight behind our bytes)
        self.name = name

    def send(self, data: bytes) -> None:
        """Queue ``data`` for the peer as one segment."""
        self.send_at(data, 0.0)

    def send_at(self, data: bytes, due: float) -> None:
        """Queue ``data`` as one segment the peer reads from ``time.monotonic()`` = ``due`` on.

        The bytes are in flight until then (a fault plan's latency): the writer
        does not wait. Segments keep their order: none is read before the ones
        sent earlier.
        """
        with self._cond:
            self._fire(time.monotonic())
            if self._closed:
                raise OSError(f"{self.name}: send on a closed transport")
            if self._out.reset:
                raise ConnectionResetError(f"{self.name}: connection reset")
            if self._out.writer_done:
                raise BrokenPipeError(errno.EPIPE, f"{self.name}: this end shut down writing")
            if self._out.reader_gone:  # (the client's error quoted this as "closed for writing")
                if self._out.reader_closed:  # these are lost; the send after them fails
                    self._out.reader_closed = not data  # (nothing goes out for b"", no reset comes back)
                    return
                raise BrokenPipeError(errno.EPIPE, f"{self.name}: the peer closed the connection")
            if data:
                self._out.segments.append((max(due, time.monotonic()), bytes(data)))
                self._cond.notify_all()

    def call_at(self, due: float, action: Callable[[], None], *, keep: bool = False) -> None:
        """Run ``action`` once ``time.monotonic()`` passes ``due`` (in flight until then).

        For a fault plan's close, reset or half-close sent after bytes still in
        flight: it happens when they arrive. It runs in whichever thread uses the pair
        next (a read waiting on either end wakes for it), holding the pair's lock.
        ``keep``: ``drop_in_flight`` leaves it (an end's own close held for the plan's
        ``close_delay``: it still reaches the peer then).
        """
        with self._cond:
            self._out.timers.append((due, action, keep))
            self._out.timers.sort(key=lambda timer: timer[0])
            self._cond.notify_all()

    def _fire(self, now: float) -> float | None:
        """Run the actions now due (both directions); when the next one is due, if any."""
        nearest: float | None = None
        for channel in (self._in, self._out):
            while channel.timers and channel.timers[0][0] <= now:
                channel.timers.pop(0)[1]()
            if channel.timers and (nearest is None or channel.timers[0][0] < nearest):
                nearest = channel.timers[0][0]
        return nearest

    def recv(self, max_bytes: int, timeout: float | None) -> bytes:
        """Return up to ``max_bytes`` of the next segment; ``b""`` at EOF; TimeoutError on timeout."""
        return self.recv_stamped(max_bytes, timeout)[0]

    def recv_stamped(self, max_bytes: int, timeout: float | None) -> tuple[bytes, float]:
        """As :meth:`recv`, with the ``time.monotonic()`` at which those bytes arrived.

        That is when they were sent, or the ``due`` time of ``send_at`` when later (a
        fault plan on the reading side counts its delays from it: bytes that waited in
        the pipe were in flight meanwhile). At EOF the time is that of the call.
        """
        channel = self._in
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                now = time.monotonic()
                timer = self._fire(now)
                if channel.reset and not (channel.segments and channel.segments[0][0] <= now):
                    raise ConnectionResetError(f"{self.name}: connection reset by peer")
                if self._closed or channel.reader_gone:
                    return b"", now
                wait: float | None
                if channel.segments:
                    due, head = channel.segments[0]
                    wait = due - now
                    if wait <= 0:
                        if len(head) <= max_bytes:
                            channel.segments.popleft()
                            return head, due
                        channel.segments[0] = (due, head[max_bytes:])
                        return head[:max_bytes], due
                elif channel.writer_done:
                    return b"", now
                else:
                    wait = None
                if deadline is not None:
                    left = deadline - now
                    if left <= 0:
                        raise TimeoutError(f"{self.name}: read timed out")
                    wait = left if wait is None else min(wait, left)
                if timer is not None:
                    wait = timer - now if wait is None else min(wait, timer - now)
                self._cond.wait(wait)

    def unread(self) -> int:
        """Bytes that have arrived at this end and are not read yet (a socket's FIONREAD): 0 once closed.

        The segments due, in order (one still in flight holds back those after it).
        A server's ``shutdown()`` reads these before it closes the connection, as it
        does a socket's.
        """
        with self._cond:
            if self._closed or self._in.reader_gone:
                return 0
            now = time.monotonic()
            total = 0
            for due, data in self._in.segments:
                if due > now:
                    break
                total += len(data)
            return total

    def unread_or_none(self) -> int:
        """As :meth:`unread` (the pipe can always tell), for ``SocketTransport``'s callers."""
        return self.unread()

    def peer_closed(self) -> OSError | bool:
        """As ``SocketTransport.peer_closed``: whether the peer's end is next, taking nothing.

        True when its EOF is (nothing unread or in flight before it), a
        ConnectionResetError when its reset is; False otherwise. The sync client asks
        before a call after a quiet spell, so a server's idle close is told before
        the request is written, as over TCP.
        """
        with self._cond:
            self._fire(time.monotonic())
            channel = self._in
            if self._closed or channel.reader_gone or channel.segments:
                return False
            if channel.reset:
                return ConnectionResetError(f"{self.name}: connection reset by peer")
            return channel.writer_done

    def drop_in_flight(self) -> None:
        """Drop the segments this end sent that the peer may not read yet (still in flight).

        For the test kit's exit: bytes a fault plan still delays (the request of a call
        that already timed out) never arrive, as when a connection is torn down, instead
        of holding the exit for their delay. Segments already due are still read.
        """
        with self._cond:
            now = time.monotonic()
            segments = self._out.segments
            # The first segment not yet due holds back every one after it (the order is
            # kept even where a later one has an earlier due time): drop from there on.
            for index, (due, _) in enumerate(segments):
                if due > now:
                    for _ in range(len(segments) - index):
                        segments.pop()
                    break
            self._out.timers = [timer for timer in self._out.timers if timer[0] <= now or timer[2]]  # (a fault too)
            if self._close_reset is not None and not self._out.reset:
                self._close_reset()  # (our close's reset waited for the bytes dropped: it comes now)
            self._cond.notify_all()

    def shutdown_write(self) -> None:
        """Send EOF: the peer reads what was sent, then ``b""``; our later sends fail."""
        with self._cond:
            self._out.writer_done = True
            self._cond.notify_all()

    def shutdown_read(self) -> None:
        """Stop reading: our reads return ``b""``, the peer's sends raise BrokenPipeError."""
        with self._cond:
            self._in.reader_gone = True
            self._in.segments.clear()
            self._cond.notify_all()

    def abort(self) -> None:
        """Reset the connection (like a TCP RST): both ends get ConnectionResetError.

        As a TCP peer does, the peer first reads what it had received from us (the
        segments already due); what is still in flight is lost, and so is what we had
        not read.
        """
        with self._cond:
            self._reset()

    def _reset(self) -> None:
        """``abort``'s work, the pair's lock held."""
        now = time.monotonic()
        for channel in (self._in, self._out):
            channel.reset = True
        self._in.segments.clear()
        self._out.segments = collections.deque(itertools.takewhile(lambda seg: seg[0] <= now, self._out.segments))
        self._closed = True
        self._cond.notify_all()

    def _reset_after_flight(self) -> None:
        """``close``'s reset, the pair's lock held: it reaches the peer after the bytes we sent.

        As the RST a socket's close sends goes out behind the bytes already sent, the
        peer first reads all of ours, those still in flight too (a notification sent
        just before the close, under a plan's latency), then gets ConnectionResetError.
        What we had not read is lost at once.
        """
        self._closed = True
        self._in.segments.clear()
        last = self._out.segments[-1][0] if self._out.segments else 0.0
        if last <= time.monotonic():
            self._reset()
            return
        # abort's work once our last bytes are due (run by _fire or drop_in_flight, the
        # lock held): every segment still out is due then, so the peer reads them all.
        self._close_reset = self._reset
        self.call_at(last, self._reset)  # (the lock is re-entrant; drop_in_flight: at once)

    def close(self) -> None:
        """Close both directions; wakes a ``recv`` blocked in another thread. Idempotent.

        The peer reads what we sent, then EOF. As over TCP, its first send after our
        close goes through (the bytes are lost) and only the sends after it fail with
        BrokenPipeError, so a client whose server closed learns it by reading EOF.
        But with bytes from the peer not read yet (arrived or in flight), TCP answers
        the close with a reset: so does this (the peer reads what we sent, also what was
        still in flight, then gets ConnectionResetError; its sends then fail).
        """
        with self._cond:
            if self._close_reset is not None:
                return  # (closed already, its reset on its way: a second close changes nothing)
            if not self._closed and self._in.segments and not (self._in.reset or self._out.reset):
                self._reset_after_flight()
                return
            if not self._closed and not self._in.reader_gone:
                self._in.reader_closed = True
            self._closed = True
            self._out.writer_done = True
            self._in.reader_gone = True
            self._in.segments.clear()
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        """Whether ``close()`` or ``abort()`` was called on this end."""
        return self._closed

    def __repr__(self) -> str:
        return f"<PipeTransport {self.name}{' closed' if self._closed else ''}>"


def pipe_pair(name: str = "pipe") -> tuple[PipeTransport, PipeTransport]:
    """Two connected in-memory transports: what one sends, the other receives."""
    cond = threading.Condition()
    a_to_b, b_to_a = _Channel(), _Channel()
    return (
        PipeTransport(cond, b_to_a, a_to_b, f"{name}[a]"),
        PipeTransport(cond, a_to_b, b_to_a, f"{name}[b]"),
    )
