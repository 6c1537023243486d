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
Who reads while a call runs (lent turns, counted calls) is ``_session_turn``'s.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._codec import Notification, Request
from ._peer_names import session_label
from ._protocol import Batch, ServerConnection
from ._session_calls import SessionCalls
from ._session_drain import Drain
from ._session_read import SessionReader
from ._session_turn import SessionTurns
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


class Session(SessionReader, SessionCalls, SessionTurns):
    """A connection being served; created by the server for each client.

    ``server`` is the RPCServer serving it; ``draining`` turns True once the server
    shuts down (new requests then get -32000); :meth:`execute` runs one call.
    """

    def __init__(self, server: RPCServer, transport: Transport, on_done: Callable[[Session], None], name: str) -> None:
        # Speed: a Session has 29 instance attributes (these and its mixins'). CPython
        # 3.11 keeps instance attribute lookups specialized up to 29 (measured); a
        # 30th loses the specialized form (~0.7k instructions more per call, by
        # callgrind). Read a new value through an existing one where you can.
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
        self._busy = 0  # calls counted: run without the reading turn (_session_turn)
        # The turn's holder's list: its token (1) while it runs a call with the turn, a 0
        # while it sends the reply of a call not counted (see _session_turn).
        self._lent: list[int] = []
        self._threads = 0
        self._idle = 0
        self._input_done = False
        self._reply_failed = False  # a reply could not be sent: see _run_notifications_left
        self._closing = False
        self.draining: Drain | None = None  # (set by shutdown(): see _session_drain)
        self._close_when_idle = False
        self._all_threads: list[threading.Thread] = []
        self._probe: Probe | None = None  # the watcher's view of our socket (set once serving starts)
        self._message_started: float | None = None
        self._check_events = True  # the core may hold an event: ask it before reading
        self._framer_empty = True  # no byte went to the framer since the last one-step read
        # Requests of one read decoded together (a pipelining client), not taken yet.
        self._queued: deque[Request | Notification | Batch | dict[str, Any]] = deque()
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
            log.warning("%s: could not start a thread: %s", session_label(self._name, self._transport), exc)
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
        the next is on its way: shutdown() must not close the connection then. Once
        draining, the same holds for requests held in the transport behind calls at
        ``max_concurrent_calls``: the thread reading next counts until it has found
        nothing more without waiting (see _read_event). Without the lock, a read may
        fall inside a counted call's end and its thread's turn to read (one step under
        the lock, _call_ended): shutdown() reads :meth:`busy_now`.
        """
        # The turn's holder counts once: running a call with the turn lent, sending its
        # reply (_lent holds the token, or the 0), or taking requests.
        held = self._lent or (self._reading and (self._check_events or self._queued))
        return self._busy + (1 if held else 0)

    def busy_now(self) -> int:
        """``busy`` read under the session's lock (not to be held by the caller): shutdown()'s poll."""
        with self._lock:
            return self.busy

    def close(self) -> None:
        """Stop reading, close the transport, wake every thread; idempotent."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._close_transport()

    def _close_transport(self) -> None:
        """Close the transport, the watcher told first (see ReadWatcher.detach); idempotent."""
        if self._probe is not None:
            self.server._watcher.detach(self._probe)
        self._transport.close()

    def close_when_idle(self) -> None:
        """Stop reading and close once no call is running (replies still go out).

        shutdown() called from a handler, for that handler's connection. What the
        client had delivered when shutdown() began and nobody took yet (its other
        requests at ``max_concurrent_calls``: unread, or read with the handler's) is
        taken first, once the handler's call ends: their notifications run, their
        requests get -32000; the connection closes when they are all read
        (``_drained_recv``; ``SessionReader.serve_first``).
        """
        with self._cond:
            serve_first = self.serve_first()
            if not serve_first:
                self._closing = True
            self._cond.notify_all()
            # (_closing set before _lent is read: a call's thread that empties it reads
            # _closing after, so one of the two closes; see _session_turn.)
            if self._busy or self._lent or serve_first:
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
            log.exception("%s: connection handler failed", session_label(self._name, self._transport))
        finally:
            with self._cond:
                self._threads -= 1
                last = self._threads == 0
                self._input_done = True
                self._cond.notify_all()
            if last:
                if self.draining and self._closing:
                    # shutdown() closed it: they run still, also when a reply then failed
                    # on the closed socket (that failure is not the peer's going).
                    self._notifications_left(True)
                elif self._reply_failed:
                    self._notifications_left(False)
                self._end()

    def _notifications_left(self, closed: bool) -> None:
        """Run the notifications read and not started (the last thread: nobody else reads)."""
        with self._cond:
            self._busy += 1  # (shutdown waits for them within its grace period)
        try:
            self._run_notifications_left(closed)
        except Exception:  # pragma: no cover - a bug in the driver; keep the server alive
            log.exception("%s: connection handler failed", session_label(self._name, self._transport))
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
                probe = self._probe = Probe(fd, self._wake_reader)
        opts = self._opts
        cond, lock = self._cond, self._lock
        monotonic = time.monotonic
        send = self._transport.send
        watcher = self.server._watcher
        # This thread's token (1), in the list while it runs a call holding the reading
        # turn ("Lent turns" in _session_turn). Only this thread appends to it; taking the
        # token (a remove, or this thread's store of a 0 over it) is atomic, so either
        # this thread takes it back or _wake_reader takes it.
        mine: list[int] = []
        lend, take_back, unmark = mine.append, mine.remove, mine.pop
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
                    self._lent = mine
                    if probe is not None:
                        probe.since = None  # someone reads: no call needs the watcher now
            event = self._read_event(reader)
            if event is None or self._input_done:
                # (A reply failed while this thread read: what it took is left to the last
                # thread, which runs the notifications only; see _held_back.)
                if event is not None:
                    self._held_back(event)
                with lock:
                    self._reading = False
                    self._input_done = True
                    cond.notify_all()
                return
            if probe is None:
                with lock:  # nothing to watch: the call is counted, another thread reads meanwhile
                    self._reading = False
                    self._busy += 1
                    # Not at the limit: nobody may read then, and the first call to end
                    # reads next itself (_call_ended); a thread woken (or started) here
                    # would only wait again, a wake-up per call at the limit.
                    if self._busy < opts.max_concurrent_calls:
                        self._promote()
            else:
                # The call runs with the turn, its token lent (before the stamp: a stamp
                # acted on finds it). The watcher takes it if the call runs past the grace
                # period and bytes arrive, or at once (eager) if more requests wait in the
                # core's buffer (a pipelining client: this thread runs them after this
                # call unless it takes that long).
                lend(1)
                probe.eager = True if self._queued else (not self._framer_empty and self._proto.in_message)
                probe.since = monotonic()
                # (after the stamp: see _watch; attach also wakes a watcher that stopped polling)
                if not probe.active or probe.nudge:
                    probe.nudge = False
                    watcher.attach(probe)  # the first call after a quiet spell
            reader = False
            solo = False  # the token came back: the call was never counted, the turn is ours
            try:
                # The usual request comes as its JSON object (see _read_event).
                data = self._plain_reply(event) if isinstance(event, dict) else self._answer(event)
                # Let go of the request now (and of the reply once sent, below), not when the
                # next request comes: a batch's members (or a message up to max_message_size)
                # would otherwise be held while the connection idles, or while a send waits
                # for a peer that does not read, and freed on the next request's time
                # (server CPU per batch of 1,000 -4..-8 % in interleaved A/Bs).
                event = None
                if mine and (data is None or len(data) <= _SMALL_REPLY):
                    # The token (and with it the stamp) is taken back before the reply goes
                    # out: a sequential client's next request often arrives before send()
                    # returns here, and after a call longer than the grace period it would
                    # wake a thread for nothing. A small reply cannot block in send().
                    # The 0 keeps the call in busy until its reply is sent. Speed: one
                    # store takes the token back and leaves the 0 (IndexError: the list is
                    # empty, the token taken); an append and a remove cost ~0.5k
                    # instructions more per call.
                    try:
                        mine[0] = 0
                    except IndexError:
                        pass  # taken: the call is counted (the way below)
                    else:
                        solo = True
                        if self.draining:
                            # Before the 0 goes: this thread reads next, counted in busy until
                            # it has taken what waits (requests held back at the limit get
                            # -32000 instead of a close; see _read_event).
                            self._check_events = True
                        if probe is not None:
                            probe.since = None  # (the turn is ours alone: nobody else stamps)
                        try:
                            if data is not None:
                                if self._busy:
                                    self._send(data)  # counted calls may be writing their replies
                                else:
                                    # Nobody else can be writing: this thread holds the reading
                                    # turn and no call is counted (see _session_turn).
                                    try:
                                        send(data)
                                    except OSError as exc:
                                        self._send_failed(exc)
                                data = None
                        finally:
                            unmark()  # (the 0)
                if data is not None:
                    self._send(data)
                data = None
            finally:
                self._idle_since = monotonic()
                if mine:  # lent still: a large reply went out (the watcher could act meanwhile)
                    try:
                        take_back(1)
                        solo = True
                        if self.draining:
                            self._check_events = True  # (as for a small reply, above)
                        if probe is not None:
                            probe.since = None
                    except ValueError:
                        pass
            if solo and not (self._closing or self._input_done):
                reader = True  # the usual way: no lock taken
            else:
                reader = self._call_ended(mine, counted=not solo)

    def _held_back(self, event: Request | Notification | Batch | dict[str, Any]) -> None:
        """Leave a message read once a reply had failed to ``_run_notifications_left``.

        Over TCP the transport stays open then (``_send_failed``): a thread holding the
        reading turn may still read what the peer sent before it went. Its requests are
        skipped, its notifications run. (A plain call's object is always a request.)
        """
        if not isinstance(event, dict):
            self._queued.appendleft(event)  # (before what the core and the queue hold: it came first)

    def _watchable_fd(self) -> int | None:
        transport = self._transport
        if self.server._watcher.available() and isinstance(transport, SocketTransport):
            return transport.watchable_fd()
        return None


def current_session() -> Session | None:
    """The session whose handler is running in this thread, if any."""
    return getattr(_local, "session", None)
