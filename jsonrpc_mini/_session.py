"""One served connection: Leader/Followers threads over the sans-IO core.

One thread at a time reads. When it has a request it runs the call itself and
writes the reply; someone else must read meanwhile, so that a slow call never
delays a fast one sent after it. The reader stamps the connection's probe for
the server's ReadWatcher (``_watch``), which promotes an idle thread (or starts
one, up to ``max_concurrent_calls``) only if the call is still running after a
short grace period and bytes arrive meanwhile, or more requests are already
buffered. A sequential client thus costs no thread hand-off at all, and a
pipelining client's quick calls run one after another on one thread (waking a
thread per request used to double the cost of a round trip). Transports the
watcher cannot watch get a promotion at once. Running a call and making its
reply is in ``_session_calls``, taking the next request in ``_session_read``.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._codec import Notification, Request
from ._protocol import ServerConnection
from ._session_calls import SessionCalls
from ._session_read import SessionReader
from ._transport import Setup, SocketTransport, Transport
from ._watch import Probe

if TYPE_CHECKING:
    from ._server import RPCServer

__all__ = ["Session", "serving"]

log = logging.getLogger("jsonrpc_mini")

_POLL = 0.5
_SMALL_REPLY = 16 * 1024  # fits in any socket send buffer: send() returns at once

_local = threading.local()

serving: contextvars.ContextVar[object] = contextvars.ContextVar("jsonrpc_mini_sync_serving", default=None)
"""The server whose connection thread this context is (None elsewhere): set once as each
thread of a session starts, so a handler sees it, and so does code it runs in a copy of its
context (``contextvars.copy_context().run``); a plain new thread starts without it."""


class Session(SessionReader, SessionCalls):
    """A connection being served; created by the server for each client.

    ``server`` is the RPCServer serving it; ``draining`` turns True once the server
    shuts down (new requests then get -32000); :meth:`execute` runs one call.
    """

    def __init__(self, server: RPCServer, transport: Transport, on_done: Callable[[Session], None], name: str) -> None:
        self.server = server
        self._opts = server.options
        self._transport = transport
        self._on_done = on_done
        self._name = name
        self._proto = ServerConnection(
            framing=self._opts.framing,
            codec=server.codec,
            max_message_size=self._opts.max_message_size,
            max_depth=self._opts.max_depth,
        )
        # A plain lock under the condition: entering it directly (``with self._lock``)
        # skips Condition's Python-level __enter__ on the per-request path.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._write_lock = threading.Lock()
        self._dumps_line = server.codec.dumps_line
        self._positional = server.plain_handlers
        self._reading = False
        self._busy = 0
        self._threads = 0
        self._idle = 0
        self._input_done = False
        self._reply_failed = False  # a reply could not be sent: see _run_notifications_left
        self._closing = False
        self.draining = False
        self._close_when_idle = False
        self._all_threads: list[threading.Thread] = []
        self._watcher = server._watcher
        self._probe: Probe | None = None  # the watcher's view of our socket (set once serving starts)
        self._message_started: float | None = None
        self._check_events = True  # the core may hold an event: ask it before reading
        self._framer_empty = True  # no byte went to the framer since the last one-step read
        # Requests of one read decoded together (a pipelining client), not taken yet.
        self._queued: deque[Request | Notification] = deque()
        # idle_timeout counts from the last message or call end, not the last byte:
        # trickled whitespace or skipped garbage must not keep a connection open.
        self._idle_since = time.monotonic()
        self.finished = threading.Event()

    # -- lifecycle -----------------------------------------------------------

    def start(self, setup: Setup | None = None) -> None:
        """Start serving in a new thread; ``setup`` (e.g. a TLS handshake) runs there first.

        If no thread can be started (the process is at its limit), the connection
        is closed and the session ends at once, as if the peer had gone.
        """
        with self._cond:
            started = self._spawn(setup)
            if not started:
                self._input_done = True
        if not started:
            self._end()

    def _spawn(self, setup: Setup | None = None) -> bool:
        """Start one more thread (the condition held); False if none could be started."""
        thread = threading.Thread(
            target=self._worker, args=(setup,), name=f"{self._name}-{self._threads + 1}", daemon=True
        )
        try:
            thread.start()
        except RuntimeError as exc:  # "can't start new thread"
            log.warning("%s: could not start a thread: %s", self._name, exc)
            return False
        # Counted once started (the new thread cannot end before we release the
        # condition): a count for a thread that never ran would keep the session open.
        self._threads += 1
        self._all_threads = [t for t in self._all_threads if t.is_alive()]
        self._all_threads.append(thread)
        return True

    @property
    def busy(self) -> int:
        """Calls running now on this connection, plus one while requests already received are taken.

        Between two requests that arrived together no call runs for a moment, but
        the next is on its way: shutdown() must not close the connection then.
        """
        return self._busy + (1 if self._reading and (self._check_events or self._queued) else 0)

    def drain(self) -> None:
        """Answer new requests with 'server is shutting down' from now on."""
        self.draining = True

    def close(self) -> None:
        """Stop reading, close the transport, wake every thread; idempotent."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._close_transport()

    def _close_transport(self) -> None:
        """Close the transport, the watcher told first (see ReadWatcher.detach); idempotent."""
        if self._probe is not None:
            self._watcher.detach(self._probe)
        self._transport.close()

    def close_when_idle(self) -> None:
        """Stop reading and close once no call is running (replies still go out)."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            if self._busy:
                self._close_when_idle = True
                return
        self._close_transport()

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for every thread to end; True if they did.

        ``finished`` is set by the last thread before it runs ``on_done``: the threads
        themselves are joined too, so that none is alive when this returns True.
        """
        deadline = time.monotonic() + timeout
        if not self.finished.wait(timeout):
            return False
        with self._lock:
            threads = [thread for thread in self._all_threads if thread is not threading.current_thread()]
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in threads)

    # -- the worker ----------------------------------------------------------

    def _worker(self, setup: Setup | None) -> None:
        _local.session = self
        serving.set(self.server)
        try:
            if setup is not None:
                transport = setup()
                if transport is None:
                    return
                self._transport = transport
            self._serve()
        except Exception:  # pragma: no cover - a bug in the driver; keep the server alive
            log.exception("%s: connection handler failed", self._name)
        finally:
            with self._cond:
                self._threads -= 1
                last = self._threads == 0
                self._input_done = True
                self._cond.notify_all()
            if last:
                if self._reply_failed:
                    self._notifications_left()
                self._end()

    def _notifications_left(self) -> None:
        """Run the notifications read and not started (the last thread: nobody else reads)."""
        with self._cond:
            self._busy += 1  # (shutdown waits for them within its grace period)
        try:
            self._run_notifications_left()
        except Exception:  # pragma: no cover - a bug in the driver; keep the server alive
            log.exception("%s: connection handler failed", self._name)
        finally:
            with self._cond:
                self._busy -= 1

    def _end(self) -> None:
        """No thread serves the connection any more: release it and tell the server."""
        self._close_transport()
        self.finished.set()
        self._on_done(self)

    def _serve(self) -> None:
        probe = self._probe
        if probe is None:
            fd = self._watchable_fd()
            if fd is not None:
                probe = self._probe = Probe(fd, self._wake_reader, self._lock)
        opts = self._opts
        cond, lock = self._cond, self._lock
        # Speed: the two lock rounds per request use acquire()/release() in try/finally;
        # a with statement costs about twice as much (~80 ns more a round on 3.11).
        acquire, release = lock.acquire, lock.release
        monotonic = time.monotonic
        reader = False  # this thread already holds the reader's turn
        while True:
            if not reader:
                with lock:
                    while (self._reading or self._busy >= opts.max_concurrent_calls) and not (
                        self._closing or self._input_done
                    ):
                        self._idle += 1
                        cond.wait(_POLL)
                        self._idle -= 1
                    if self._closing or self._input_done:
                        return
                    self._reading = True
                    if probe is not None:
                        probe.since = None  # someone reads: no call needs the watcher now
            event = self._read_event(reader)
            attach = False
            acquire()
            try:
                self._reading = False
                if event is None:
                    self._input_done = True
                    cond.notify_all()
                    return
                self._busy += 1
                if probe is None:
                    self._promote()  # nothing to watch: another thread reads meanwhile
                else:
                    # Nobody reads while this call runs: the watcher promotes a reader if
                    # it runs past the grace period and bytes arrive, or at once (eager)
                    # if more requests wait in the core's buffer (a pipelining client:
                    # this thread runs them after this call unless it takes that long).
                    probe.eager = True if self._queued else (not self._framer_empty and self._proto.in_message)
                    probe.since = monotonic()
                    # (attach also wakes a watcher that stopped polling: see _watch)
                    attach = not probe.active or probe.nudge
                    if attach:
                        probe.nudge = False
            finally:
                release()
            if attach and probe is not None:
                self._watcher.attach(probe)  # the first call after a quiet spell
            reader = False
            try:
                # The usual request comes as its JSON object (see _read_event).
                data = self._plain_reply(event) if isinstance(event, dict) else self._answer(event)
                if probe is not None and (data is None or len(data) <= _SMALL_REPLY):
                    # Clear the stamp before the reply goes out: a sequential client's next
                    # request often arrives before send() returns here, and after a call
                    # longer than the grace period it would wake a thread for nothing. A
                    # small reply cannot block in send(); this thread reads again right
                    # after it (so a stamp of another call it clears here needs no watch).
                    probe.since = None
                if data is not None:
                    self._send(data)
                # Let go of the request and the reply now, not when the next request comes:
                # a batch's members (or a message up to max_message_size) would otherwise be
                # held while the connection idles, and freed on the next request's time
                # (server CPU per batch of 1,000 -4..-8 % in interleaved A/Bs).
                event = data = None
            finally:
                self._idle_since = monotonic()
                acquire()
                try:
                    self._busy -= 1
                    # This thread reads next if nobody is (taking the turn here saves a
                    # lock round per request); wake a waiter only if the limit of
                    # concurrent calls held it back.
                    if self._busy + 1 >= opts.max_concurrent_calls:
                        cond.notify()
                    close_now = self._close_when_idle and not self._busy
                    if not (self._reading or self._closing or self._input_done or close_now):
                        reader = self._reading = self._busy < opts.max_concurrent_calls
                    if probe is not None:
                        # This thread reads now, or someone already does, or nobody must.
                        probe.since = None
                finally:
                    release()
                if close_now:
                    self._close_transport()

    def _promote(self) -> None:
        """Let another thread read next (called with the condition held)."""
        if self._idle:
            self._cond.notify()
        elif self._threads <= self._opts.max_concurrent_calls:
            self._spawn()

    def _watchable_fd(self) -> int | None:
        transport = self._transport
        if self._watcher.available() and isinstance(transport, SocketTransport):
            return transport.watchable_fd()
        return None

    def _wake_reader(self) -> None:
        # The watcher saw bytes arrive while every thread of ours was busy.
        with self._cond:
            blocked = self._reading or self._closing or self._input_done
            if not blocked and self._busy < self._opts.max_concurrent_calls:
                self._promote()

    def _send(self, data: bytes) -> bool:
        lock = self._write_lock
        try:
            lock.acquire()  # (not a with statement: see _serve)
            try:
                self._transport.send(data)
            finally:
                lock.release()
            return True
        except OSError as exc:
            log.debug("%s: write failed: %s", self._name, exc)
            with self._cond:
                self._input_done = True
                self._reply_failed = True
                self._cond.notify_all()
            self._close_transport()
            return False


def current_session() -> Session | None:
    """The session whose handler is running in this thread, if any."""
    return getattr(_local, "session", None)
