"""Who reads a sync server's connection while a call runs: lent turns and counted calls.

The part of a :class:`~jsonrpc_mini._session.Session` that passes the reading
turn between the connection's threads and writes the replies; the serving loop is
``_session``'s (``_serve``), the reading ``_session_read``'s.

Lent turns. On a watched connection a call runs, and its small reply is sent,
without a lock: the thread keeps the reading turn (``_reading`` stays True, so no
follower takes it) and lends it, putting a token (1) in its own list (``_lent``).
If the call needs another reader, the watcher's callback (``_wake_reader``, under
the lock) removes the token: it counts the call in ``_busy`` on its thread's
behalf and passes the turn on. When the call ends, its thread takes the token
back itself, storing a 0 in its place (``mine[0] = 0``: an IndexError if the list
is empty) or, after a large reply, removing it. The callback's remove and the
thread's store or remove are each atomic (one C call under the GIL, comparing
small ints), so exactly one of them gets it:

- the thread did: its call was never counted and the turn is still its own, so it
  reads on without a lock; no thread can have started reading meanwhile;
- the callback did: the call is counted, and the thread ends it under the lock as
  any counted call (``_call_ended``).

While a small reply is sent, the 0 in the token's place (popped after the send)
keeps the call in ``busy``; the callback never takes it. Only the turn's holder
lends, ``_lent`` changes hands under the lock with the turn, and a thread that
gave its turn away never touches another's list.
A reply sent by the turn's holder with no call counted needs no write lock: a
counted call's thread writes before it is uncounted, and a call is counted only by
the turn's holder or for it. ``close_when_idle`` sets ``_closing`` and then reads
``_lent``; the thread empties it and then reads ``_closing``: one of the two sees
the other's store, and the connection is closed once the reply is out.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._peer_names import session_label
from ._transport import SocketTransport, Transport
from ._watch import Probe

if TYPE_CHECKING:
    from ._server import ServerOptions
    from ._session_drain import Drain

__all__ = ["SessionTurns"]

log = logging.getLogger("jsonrpc_mini")


def _reads_end(transport: Transport) -> bool:
    """Whether a ConnectionError on a send ends the reads too: TCP's (TLS's too), a reset.

    Its reads give what had arrived, then the error or the end of the stream. Not so
    on a Unix socket whose peer shut down reading only, nor on the test kit's pipe or
    a fault plan's half-close, nor (for all we know) on a transport of the user's own.
    """
    family = getattr(getattr(transport, "sock", None), "family", None)
    return isinstance(transport, SocketTransport) and family in (socket.AF_INET, socket.AF_INET6)


class SessionTurns:
    """Hands the reading turn on, counts the calls run without it, writes the replies."""

    _opts: ServerOptions
    _lock: threading.Lock
    _cond: threading.Condition
    _write_lock: threading.Lock
    _transport: Transport
    _name: str
    _probe: Probe | None
    _reading: bool
    _busy: int
    _lent: list[int]
    _idle: int
    _threads: int
    _closing: bool
    _input_done: bool
    _close_when_idle: bool
    _reply_failed: bool
    _check_events: bool
    draining: Drain | None
    _spawn: Callable[[], bool]
    _close_transport: Callable[[], None]

    def _call_ended(self, mine: list[int], *, counted: bool) -> bool:
        """A call ended the slow way (counted, or the connection closing): True if this thread reads next."""
        probe = self._probe
        opts = self._opts
        with self._lock:
            if counted:
                self._busy -= 1
                # No waiter is woken here. One waits while somebody reads or the limit
                # holds it back; after this end the limit holds nobody back (busy was at
                # most max_concurrent_calls), and either somebody reads (the turn's
                # holder, or this thread: below) or the connection is closing, which
                # woke every waiter (close, close_when_idle, the last read: notify_all).
                # A notify at the limit (as before) woke a waiter that found this thread
                # reading and waited again: a thread switch per call ended at the limit
                # on an unwatched connection (tests/test_session_limit_wakes.py).
                if (
                    self._busy + 1 < opts.max_concurrent_calls
                    and self._reading
                    and not (self._closing or self._input_done)
                ):
                    # The turn's holder may run a call with the turn lent, which
                    # _wake_reader could not take at the limit: take it now (counted
                    # first, as there) and read next, as this thread would have if the
                    # holder had given the turn up. Else requests behind that call wait
                    # for its end, for ever if it waits for one of them (review17 R7).
                    self._busy += 1
                    try:
                        self._lent.remove(1)
                    except ValueError:  # the holder reads, or took its token back
                        self._busy -= 1
                    else:
                        self._reading = False
            else:
                self._reading = False  # (the call kept the turn: the connection is closing)
            # Not while the turn's holder runs a call with the turn lent (or sends its
            # reply): not counted, it is running still, and closes once its reply is out.
            # (Not while closing waits for what was delivered to be read: close_when_idle.)
            close_now = self._close_when_idle and self._closing and not (self._busy or self._lent)
            reader = False
            # This thread reads next if nobody is (saves a lock round).
            if not (self._reading or self._closing or self._input_done or close_now):
                reader = self._reading = self._busy < opts.max_concurrent_calls
                if reader:
                    self._lent = mine
                    if self.draining:
                        # Counted in busy (under the lock, with this call's end) until this
                        # thread has taken what waits: see Session.busy, _read_event.
                        self._check_events = True
            if probe is not None and (reader or not self._reading):
                # This thread reads now, or nobody does (so nobody runs a call with the
                # turn). Else the turn's holder may have stamped its own call.
                probe.since = None
        if close_now:
            self._close_transport()
        return reader

    def _promote(self) -> None:
        """Let another thread read next (called with the condition held)."""
        if self._idle:
            self._cond.notify()
        elif self._threads <= self._opts.max_concurrent_calls:
            self._spawn()

    def _wake_reader(self) -> None:
        # The watcher saw bytes arrive (or requests wait) while a call runs: another
        # thread must read, if the limit of concurrent calls lets one more run.
        with self._cond:
            if self._closing or self._input_done:
                return
            if not self._reading:
                if self._busy < self._opts.max_concurrent_calls:
                    self._promote()
                return
            # The turn's holder reads (nothing to do) or runs a call with the turn lent:
            # take the token, so that call is counted and the turn passes on. Counted
            # first: busy (read without the lock) must not drop to 0 in between.
            if self._busy + 1 >= self._opts.max_concurrent_calls:
                return
            self._busy += 1
            try:
                self._lent.remove(1)
            except ValueError:  # it reads, or took the token back: its call has ended
                self._busy -= 1
                return
            self._reading = False
            self._promote()

    def _send(self, data: bytes) -> bool:
        lock = self._write_lock
        try:
            # Speed: acquire()/release() in try/finally; a with statement costs about
            # twice as much (~80 ns more a round on 3.11).
            lock.acquire()
            try:
                self._transport.send(data)
            finally:
                lock.release()
            return True
        except OSError as exc:
            self._send_failed(exc)
            return False

    def _send_reading(self, data: bytes) -> bool:
        """``_send`` for the reading turn's holder (an invalid message's error, -32000 while draining).

        Its failure leaves the transport open for ``_read_left`` as ``_send``'s does:
        the thread that would wait in recv is this one (see ``_send_failed``).
        """
        try:
            with self._write_lock:
                self._transport.send(data)
            return True
        except OSError as exc:
            self._send_failed(exc, reading=True)
            return False

    def _send_failed(self, exc: OSError, reading: bool = False) -> None:
        """A reply could not be sent: nothing more is read, and the session ends.

        When the peer has gone (a reset, a broken pipe: a ``ConnectionError``), the
        transport stays open for the session's last thread, which reads what the peer
        sent before it went and runs the notifications in it
        (``_run_notifications_left``): at ``max_concurrent_calls`` nobody reads, and a
        client that pipelined notifications behind its calls and closed lost them
        (API.md: "A notification is executed even when its sender closes the
        connection right after"). Other sends fail too; over TCP a reader gets what had
        arrived, then the reset (``_reads_end``). Elsewhere it is closed here all the
        same when another thread holds the reading turn and reads (its list holds no
        token; ``reading``: the failed reply was this reader's own): that reader would
        wait in recv up to ``idle_timeout`` on a peer that stopped reading only, then
        run the request it got. Any other failure closes it here: a send that timed
        out (the peer is there but takes no replies: the threads waiting to send
        theirs, or to read, must wake; what it sends meanwhile is not read), or an
        error of the transport.
        """
        log.debug("%s: write failed: %s", session_label(self._name, self._transport), exc)
        with self._cond:
            self._input_done = True
            self._reply_failed = True
            self._cond.notify_all()
            # (_input_done stored before _lent is read: the turn's holder empties _lent,
            # then reads _input_done before it reads again; one of the two sees the other.)
            reader_waits = self._reading and not (self._lent or reading)
        if not isinstance(exc, ConnectionError) or (reader_waits and not _reads_end(self._transport)):
            self._close_transport()
