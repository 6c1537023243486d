"""Reading the sync server's connection: the next request from the core or the transport.

The half of a :class:`~jsonrpc_mini._session.Session` that reads, with the idle and
read timeouts; the threads, the reader's turn and the writing are the session's own
(``_session``), running the calls is ``_session_calls``'s.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._codec import Notification, Request, parse_request
from ._peer_names import session_label
from ._protocol import Batch, Call, Closed, Reply, ServerConnection, ServerEvent
from ._ready import feed_ready, unread_of
from ._session_drain import Drain
from ._transport import RECV_SIZE, SocketTransport, Transport

if TYPE_CHECKING:
    from ._server import ServerOptions

__all__ = ["SessionReader"]

log = logging.getLogger("jsonrpc_mini")

_LINES = 64  # at most this many request lines of one read are decoded together


class SessionReader:
    """Takes one connection's requests, one at a time, for the thread holding the reader's turn."""

    _opts: ServerOptions
    _lock: threading.Lock
    _proto: ServerConnection
    _transport: Transport
    _name: str
    _busy: int
    _closing: bool
    _input_done: bool
    draining: Drain | None
    _close_when_idle: bool
    _idle_since: float
    _message_started: float | None
    _check_events: bool
    _framer_empty: bool
    _queued: deque[Request | Notification | Batch | dict[str, Any]]  # (a dict: a plain call, see _serve)
    _send: Callable[[bytes], bool]
    _send_reading: Callable[[bytes], bool]
    _answer: Callable[[Request | Notification | Batch], bytes | None]

    def _read_event(self, fresh: bool = False) -> Request | Notification | Batch | dict[str, Any] | None:
        """The next request, batch or plain request object; None once the connection ends.

        ``fresh``: this thread has just ended a call, so ``_idle_since`` is now.
        """
        proto = self._proto
        while True:
            if self._queued:  # they came before anything the core holds
                return self._queued.popleft()
            if self._check_events:
                event: ServerEvent | None = proto.next_event()
                if event is not None:
                    self._idle_since = time.monotonic()
                    if isinstance(event, Reply):
                        if not self._send_reading(event.data) or event.close:
                            return None
                        continue
                    if isinstance(event, Closed):
                        return None
                    self._message_started = None
                    return event.message if isinstance(event, Call) else event
                if self.draining:
                    # Kept True: busy counts this thread until a read without waiting
                    # finds nothing (below). At max_concurrent_calls nobody read the
                    # requests sent behind the calls; shutdown() must not close the
                    # connection under them (README: they get -32000, notifications run).
                    fresh = False
                else:
                    self._check_events = False
            if self._closing:
                return None
            if fresh and self._framer_empty:
                # Speed: a sequential client's next request is read right after its
                # call ended: the idle time left is all of idle_timeout, taken without
                # _recv_timeout's call and clock read (~1.1k instructions). (The read
                # may time out the few microseconds since the call ended late.)
                timeout = self._opts.idle_timeout
                fresh = False
            else:
                timeout = 0.0 if self._check_events else self._recv_timeout()  # (True: draining, above)
            drain = self.draining
            try:
                data = self._transport.recv(RECV_SIZE, timeout) if drain is None else self._drained_recv(drain, timeout)
            except OSError as exc:
                if self._check_events:
                    # Draining, nothing waits (TimeoutError; BlockingIOError from a transport
                    # of the user's own): the read that waits is not counted in busy. (An
                    # error of the transport's: that read meets it again.)
                    self._check_events = False
                    if drain is not None:
                        drain.none_waiting(self._transport)
                    continue
                if isinstance(exc, TimeoutError):
                    if self._timed_out():
                        return None
                    continue
                log.debug("%s: read failed: %s", session_label(self._name, self._transport), exc)
                return None
            newline = data.find(b"\n")
            if 0 <= newline < len(data) - 1:
                # Speed: a pipelining client's read holds many whole request lines; the
                # core decodes up to _LINES of them in one step (when nothing is
                # buffered before them). The rest of the read goes to the framer. The
                # usual request comes as its JSON object, as a lone one does (below).
                calls, end = proto.receive_plain_calls(data, _LINES)
                if calls:
                    self._queued.extend(calls[1:])
                    if end < len(data):
                        proto.receive_data(data[end:])
                        self._check_events = True
                        self._framer_empty = False
                    self._message_started = None
                    return calls[0]
            message = proto.receive_plain_call(data, newline, True)  # (a batch read whole too)
            if message is not None:
                # The usual case: the read held exactly one request and nothing else is
                # buffered, so the core need not be asked for more before the next read.
                # (The call's end restarts the idle time.) The usual request comes as its
                # JSON object: _serve runs it from there (_plain_reply).
                self._framer_empty = True
                self._message_started = None
                return message
            self._check_events = True
            self._framer_empty = False
            # Read what has arrived already before parsing a request partly in (see
            # feed_ready): the newline framer would scan the part. Not with Content-Length
            # framing: its framer reads a frame in parts at no cost, and before parsing
            # cannot tell a whole frame from part of one (in_message is True for both),
            # so every request cost a read that found nothing (as _Link.read_ahead says).
            # Not once shutdown() began either: the bytes there then are counted, and
            # this would take what came after them as delivered in time (its
            # notifications run: a flooding client's held shutdown() for megabytes).
            # Nor once it begins meanwhile (_ready_in_time).
            if data and proto.in_message and proto.framing != "content-length" and self.draining is None:
                limit = self._opts.max_message_size
                error = feed_ready(self._transport, proto.receive_data, limit, self._ready_in_time, True)
                if error is not None:
                    # The read before it brought bytes, whole requests maybe: they are served
                    # as if the peer had closed after them (a reset, typically: a client that
                    # sent a notification and closed at once with SO_LINGER 0). Replies fail
                    # to send; the core then gives Closed, and the connection ends.
                    log.debug("%s: read failed: %s", session_label(self._name, self._transport), error)
                    proto.receive_data(b"")

    def drain(self) -> None:
        """Answer new requests with 'server is shutting down' from now on (see ``_session_drain``)."""
        transport = self._transport
        with self._lock:  # (the count is taken between two of _ready_in_time's reads)
            if isinstance(transport, SocketTransport):
                # A read that fills the size asked goes on with what has arrived since
                # (_gather): a read capped to the count would take late bytes as delivered
                # in time (a flooding client's megabytes of notifications ran, holding shutdown()).
                transport.gather = 0
            self.draining = Drain(transport)

    def _ready_in_time(self, size: int) -> bytes | None:
        """The reader's read-on (``feed_ready``) before shutdown(): None once it has begun.

        A read-on that was going as shutdown() began read on, up to ``max_message_size``,
        what came after the count as delivered in time, and the count still held the
        bytes it had taken: megabytes of a flooding client's late notifications ran
        (probe: 1.5-4.7 MB in 4 runs of 5). drain() counts under the same lock, so each
        of these reads is wholly before the count (and not in it) or not done.
        """
        recv_ready = getattr(self._transport, "recv_ready", None)
        with self._lock:
            if recv_ready is None or self.draining is not None:
                return None
            data: bytes | None = recv_ready(size)
            return data

    def _drained_recv(self, drain: Drain, timeout: float | None) -> bytes:
        """A read once shutdown() began: of the bytes there then; after them, :meth:`_refuse_late` till the end."""
        size = drain.budget(RECV_SIZE)
        if size is not None:
            data = self._transport.recv(size, timeout)
            drain.taken(len(data))
            return data
        with self._lock:  # (close_when_idle decides under it whether this reader serves first)
            closing = self._close_when_idle
            drain.late = not closing
        if closing:
            return b""  # (shutdown() was called from a handler here: it ends once that is read)
        self._refuse_late(drain)
        return b""  # (the peer's end: the core ends the connection)

    def _refuse_late(self, drain: Drain) -> None:
        """Serve what arrives after shutdown() began until the stream ends: -32000 to requests, notifications dropped.

        This reader is not counted in busy meanwhile (``_check_events`` False, nothing
        queued): shutdown() waits for the calls running only, then closes the
        connection, which ends the read here (OSError). Returns at the peer's end.
        """
        self._check_events = False
        self._framer_empty = False  # (the framer is fed here: _recv_timeout applies read_timeout)
        drain.late = True
        proto, dropped = self._proto, 0
        try:
            while True:
                try:
                    data = self._transport.recv(RECV_SIZE, self._recv_timeout())
                except TimeoutError:
                    if self._timed_out():
                        raise ConnectionAbortedError("timed out after shutdown() began") from None
                    continue
                if not data:
                    return
                proto.receive_data(data)
                while (event := proto.next_event()) is not None:
                    self._idle_since = time.monotonic()
                    if isinstance(event, Closed):
                        raise ConnectionAbortedError("the connection ended after shutdown() began")
                    if isinstance(event, Reply):  # (an invalid message's error)
                        if not self._send_reading(event.data) or event.close:
                            raise ConnectionAbortedError("the connection ended after shutdown() began")
                        continue
                    message: Request | Notification | Batch | None = event.message if isinstance(event, Call) else event
                    if isinstance(message, Batch):
                        # (its notifications dropped; an invalid member still gets its error)
                        kept = message.without_notifications()
                        dropped += len(message.values) - (0 if kept is None else len(kept.values))
                        message = kept
                    elif isinstance(message, Notification):
                        dropped += 1
                        message = None
                    reply = None if message is None else self._answer(message)  # (-32000: draining)
                    if reply is not None and not self._send_reading(reply):
                        raise ConnectionAbortedError("a reply failed after shutdown() began")
        finally:
            if dropped:
                log.debug("%s: %d notification(s) that came after shutdown() began dropped", self._name, dropped)

    def serve_first(self) -> bool:
        """Whether ``close_when_idle`` waits for what was delivered to be taken (the lock held).

        The bytes unread as shutdown() began, and the messages read and not taken yet:
        those the reader took with the handler's request in one read (queued, or in the
        core) were dropped, the requests among them unanswered (3 runs of 3). Not once
        this reader went on to what came late (``_drained_recv`` marks it under the
        lock: it then does not look at ``_close_when_idle`` again), nor where the
        bytes could not be counted (it would read on, as before).
        """
        drain = self.draining
        if drain is None or drain.late or drain.left is None:
            return False
        return bool(self._queued) or self._check_events or (not drain.spent and self.unread())

    def unread(self) -> bool:
        """Whether the peer's bytes wait in the socket for this connection's reader (shutdown lets it take them).

        A reader blocked in ``recv`` takes them at once; so does the first read of a
        connection accepted just now. Until one has, ``busy`` reads 0: closing then
        would drop notifications the client had delivered (README, How calls run). Not
        once reading has ended (nobody would take them) or the socket is closed.
        """
        if self._closing or self._input_done:
            return False
        drain = self.draining
        if drain is not None and drain.spent:  # (what there was is read: the rest came late)
            return False
        return (unread_of(self._transport) or 0) > 0

    def _run_notifications_left(self, closed: bool) -> None:
        """A reply could not be sent: run the notifications the peer sent, skip the requests.

        ``closed``: shutdown() closed the connection (a reply may have failed on it
        since): run them all the same (else a close stops them).

        API.md: "A notification is executed even when its sender closes the connection
        right after", requests before it or not. What the session and the core hold is
        taken, then what the transport still holds (read without waiting, until about
        ``max_message_size`` is in: the last read may go past it; at
        ``max_concurrent_calls`` nobody read it); a batch's notification members run
        too. Called by the session's last thread, once no other reads or runs calls.
        Runs nothing once the reads came after shutdown() began (``Drain.late``): what
        the core holds then is late too (a failed reply stopped ``_refuse_late``).
        """
        drain = self.draining
        if drain is not None and drain.late:
            return
        self._read_left()
        proto, queued = self._proto, self._queued
        while closed or not self._closing:
            if queued:
                message: Request | Notification | Batch | dict[str, Any] = queued.popleft()
            else:
                event = proto.next_event()
                if event is None or isinstance(event, Closed) or (isinstance(event, Reply) and event.close):
                    return
                if isinstance(event, Reply):  # an invalid message's error: nobody can read it
                    continue
                message = event.message if isinstance(event, Call) else event
            if isinstance(message, Notification):
                self._answer(message)
            elif isinstance(message, Batch):
                for value in message.values:
                    member = parse_request(value)
                    if type(member) is Notification:
                        self._answer(member)

    def _read_left(self) -> None:
        """Give the core the bytes the transport holds still, without waiting, then its end."""
        proto = self._proto
        total, limit = 0, self._opts.max_message_size
        drain = self.draining
        if drain is not None:  # (closed by shutdown(): only what was there when it began)
            limit = drain.budget(limit) or 0
        while total < limit:
            try:
                # (At most what is left of the limit: once shutdown() began, bytes past
                # the count came late, and a whole RECV_SIZE look ran their notifications.)
                data = self._ready(min(RECV_SIZE, limit - total))
            except OSError:  # a reset, or closed already
                break
            if not data:  # nothing waits, or the end of the stream
                break
            proto.receive_data(data)
            total += len(data)
        proto.receive_data(b"")  # (nothing more will be read: a message cut short is dropped)
        self._check_events = True

    def _ready(self, size: int) -> bytes | None:
        """Up to ``size`` bytes that have arrived, without waiting: None if there are none, ``b""`` at the end."""
        transport = self._transport
        ready = getattr(transport, "recv_ready", None)
        if ready is not None:
            for _ in range(2):  # (a first look may take part of a TLS record, and decrypt none)
                data: bytes | None = ready(size)
                if data is not None:
                    return data
        try:  # (a transport that cannot tell, or an SSLSocket's: its recv_ready always says None)
            return transport.recv(size, 0.0)
        except TimeoutError:
            return None

    def _recv_timeout(self) -> float | None:
        opts = self._opts
        if not self._framer_empty and self._proto.in_message:
            if self._message_started is None:
                self._message_started = time.monotonic()
            if opts.read_timeout is None:
                return None
            left = self._message_started + opts.read_timeout - time.monotonic()
        else:
            self._message_started = None
            if opts.idle_timeout is None:
                return None
            left = self._idle_since + opts.idle_timeout - time.monotonic()
        return left if left > 0.0 else 0.0  # (max() parses its arguments the slow way: ~1k instructions)

    def _timed_out(self) -> bool:
        if self._proto.in_message:
            log.info(
                "%s: message not completed within read_timeout; closing", session_label(self._name, self._transport)
            )
            return True
        if self._busy:
            self._idle_since = time.monotonic()  # calls still running: the connection is not idle
            return False
        if self._recv_timeout():
            return False  # a call ended meanwhile: its end restarted the idle time
        log.info("%s: idle for idle_timeout; closing", session_label(self._name, self._transport))
        return True
