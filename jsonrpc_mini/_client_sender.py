"""The sync client's sending side: writing requests, the send lock and the outbox.

``_RequestSender`` writes a request whole under the send lock (``send``); a caller
that finds another thread sending leaves a small request in the outbox, and that
thread writes it after its own (``_drain``). A failed write closes the connection
and fails every pending call (``_write_failed``), after taking in what the server
said before it closed (``_read_last_words``). A call made from a signal handler
while its thread is inside a call on this connection (``_nested``) is refused
where it could only wait for its own thread (``_refused``); a notification then
never waits (``_defer``). After an exception anywhere in a call, what its thread
holds is freed (``_let_go``). Registering requests and the usual call's path are
``_client_link._Link``; reading replies is the base class's part
(``_client_reader._ReplyReader``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import NoReturn

from ._client_protocol import BatchAnswer
from ._client_reader import _ReplyReader
from ._client_settle import _OwnedLock
from ._client_waiter import _Waiter, timed_out, within
from ._codec import ErrorResponse, Id, Response
from ._errors import ConnectionLost, RPCError, RPCTimeout, detached
from ._protocol import Closed, Violation
from ._ready import feed_ready

__all__ = ["_INSIDE", "_OwnedLock", "_RequestSender"]

log = logging.getLogger("jsonrpc_mini")

# Why a call from a signal handler is refused (see _RequestSender._refused).
_WAITING = (
    " this thread is waiting for a reply on this connection (the call was made from a signal"
    " handler?), so nothing could read this call's reply"
)
_INSIDE = (
    " this thread is inside a call on this connection (the call was made from a signal handler?),"
    " which holds what this call would wait for"
)


class _RequestSender(_ReplyReader):
    """The sending half of a connection (``_Link``): the send lock, the outbox, failed writes."""

    # Set by _Link.__init__ (with _ReplyReader's).
    send_lock: _OwnedLock
    sending: int  # the outbox claimant's thread id, 0 when nobody has claimed it
    # Notifications made while their thread was inside a call on this connection (see
    # _defer): data, deadline, method, timeout. Always the same list (appended to and
    # popped from, both atomic, so a signal handler may add to it at any step).
    deferred: list[tuple[bytes, float | None, str | None, float | None]]
    # The transport's peer_closed, None if it has none (see _closed_while_quiet).
    peer_closed: Callable[[], OSError | bool] | None
    # The transport's send, or the socket's sendall it comes down to (see send_of).
    send_now: Callable[[bytes], None]

    def _closed_while_quiet(self, method: str) -> None:
        """Raise ConnectionLost (request_sent False) if the server ended the connection while it was quiet.

        The sync client reads nothing between calls, so a server's idle close
        (``idle_timeout``) waits unread in the socket: without this look the next
        request went out into the dead connection, and its ConnectionLost could not
        say whether the server ran it. Plain TCP and Unix sockets (TLS's close_notify
        is bytes, not an end).
        """
        peer_closed = self.peer_closed
        if peer_closed is None or self.lost is not None or not (gone := peer_closed()):
            return
        # What arrived before the end may say why (an error, id null): taken in first, so
        # that the error quotes it. Over TLS a record read with the last reply's waits
        # in the TLS layer, where the peek (at the socket under it) does not look.
        self._read_last_words(False)
        if isinstance(gone, OSError):
            self.fail_all(f"connection lost: {gone}", gone)
        else:
            self.fail_all("connection closed by the server")
        raise self._lost_error(method)

    def _lost_error(self, method: str | None, *, sent: bool = False) -> ConnectionLost:
        """The error of a call (of ``method``) made once the connection is known lost: it names the method.

        ``sent`` False (most callers): refused before any byte of it was written.
        """
        return self.lost_error(method or None, sent=sent)  # ("": not given, see send)

    def send(
        self,
        data: bytes,
        deadline: float | None = None,
        method: str | None = "",
        *,
        locked: bool = False,
        reader: bool = False,
        drain: bool = False,
        unanswered: bool = False,
        witness: Id | None = None,
        timeout: float | None = None,
    ) -> None:
        """Send ``data`` whole; RPCTimeout if that cannot happen by ``deadline`` (its message names ``timeout``).

        A send cut short by the deadline may have put part of a message on the
        wire, so the connection is closed (other pending calls get ConnectionLost).
        ``locked``: the caller holds the send lock already (it is released here);
        ``reader``: it holds the reader's turn; ``drain``: it has claimed the outbox
        (see _Link.request) and writes what other callers leave there meanwhile, after
        ``data`` and before the send lock is released. ``unanswered``: ``data`` holds
        a notification, marked (ClientConnection.sent_unanswered) once the send lock
        is held: every call registered from then on is written after it, so only
        such a call witnesses it (a call registered before the mark but written
        after it is no witness, which only keeps the doubt longer); ``witness``:
        the id of a call in ``data`` itself (a batch's first), which does.

        Speed: with threads sharing the client, callers waited for the send lock
        while its holder's send ran (a send releases the GIL): a sleep and a
        wake-up per call, and one system call per request. A caller that finds the
        outbox claimed leaves its small request there instead; the claimant writes
        all of them in one send. It never holds the reading turn (so no reply waits
        for it: see _Link.request); if it is interrupted before they are written, the
        connection is closed (see _fail_outbox).
        """
        drained = False
        send_lock = self.send_lock
        try:
            if not locked:
                if send_lock._is_owned():
                    self._reclaim(method)
                if deadline is None:
                    send_lock.acquire()
                elif not send_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
                    raise timed_out(method, f"could not send {within(timeout)} (another send is stuck)")
            if unanswered:  # (see ClientConnection.unread_before)
                with self.lock:
                    self.proto.sent_unanswered()
                    if witness is not None:
                        self.proto.witness_call(witness)
            self._write(data, deadline, method, reader, timeout)
            if drain:
                self._drain(deadline)
            drained = True
        finally:
            # Whether an interruption came before or after the lock was taken, the
            # lock's owner record tells. (Nested: a second Ctrl-C during the first
            # step still releases the lock.)
            try:
                if drain and not drained:  # (only a caller without a deadline claims before it has the lock)
                    self._fail_outbox()
            finally:
                if send_lock._is_owned():
                    send_lock.release()
                    if self.deferred:  # (see _defer)
                        self._flush_deferred()

    def _nested(self) -> bool:
        """Whether this thread holds part of this connection: a call made now (from a signal handler) is nested.

        The lock, the send lock (maybe in the middle of writing a message), the
        reader's turn or the outbox claim, each of which the thread's outer call
        gives up only once the nested call has returned.
        """
        me = threading.get_ident()
        return self.lock._is_owned() or self.send_lock._is_owned() or me in (self.reading, self.sending)

    @staticmethod
    def _refused(method: str | None, why: str = _WAITING) -> RPCError:
        """The error of a call made while this thread waits for a reply on this connection.

        Only a signal handler (or code run from inside the client) can do that; the
        thread's own read is suspended under it, so the call's reply could never be
        read: nothing is sent, and the connection and the outer call go on.
        ``method`` None: a batch (named in the message only, see timed_out).
        ``why``: _INSIDE for a call made while the thread is inside a round of the
        lock: it could wait for what only the suspended outer call gives up.
        """
        exc = RPCError(
            None,
            ("refused:" if method is not None else "batch: refused:")
            + why
            + "; nothing was sent. Make such calls from another thread or on another client",
        )
        exc.method = method or None
        return exc

    def _defer(self, data: bytes, deadline: float | None, method: str | None, timeout: float | None) -> None:
        """Send a notification made while this thread is inside a call on this connection (see _nested).

        Waiting for the send lock could then be waiting for ever: its holder is this
        thread's outer call, suspended under the signal handler, or another thread
        that needs the lock this thread holds, or the replies it should be reading.
        So the notification never waits: it is written at once if the send lock is
        free, else by the lock's holder as it lets the lock go, right after the
        message it is writing (its own, or this thread's outer call's). Dropped if
        the connection is lost first, or (logged) if its deadline passes before then.
        """
        if self.lost is not None:
            raise self._lost_error(method)
        self.deferred.append((data, deadline, method, timeout))
        self._flush_deferred()

    def _flush_deferred(self) -> None:
        """Write the notifications left by nested calls (see _defer), if the send lock is free; else its holder does.

        Every holder looks again after letting the lock go (send, _Link._alone, _let_go),
        and a notification is added before the lock is tried: one of the two writes it.
        Never while this thread holds it: it may be in the middle of writing a message.
        """
        send_lock = self.send_lock
        deferred = self.deferred
        while deferred and not send_lock._is_owned() and send_lock.acquire(False):
            try:
                while deferred:
                    data, deadline, method, timeout = deferred.pop(0)
                    if self.lost is None:
                        self._write_deferred(data, deadline, method, timeout)
            finally:
                send_lock.release()

    def _write_deferred(self, data: bytes, deadline: float | None, method: str | None, timeout: float | None) -> None:
        """Write one notification of _flush_deferred (the send lock held), marked as send marks one."""
        if deadline is not None and deadline <= time.monotonic():
            log.warning("dropping notification %s: could not send it %s", method or "batch", within(timeout))
            return
        with self.lock:
            self.proto.sent_unanswered()  # (see ClientConnection.unread_before)
        if not self.lock._is_owned():
            # A failed write closes the connection (fail_all); nobody waits for this one.
            with contextlib.suppress(RPCTimeout, ConnectionLost):
                self._write(data, deadline, method, False, timeout)
            return
        # This thread is inside a round of the lock (a signal handler's call): the
        # calls and replies its outer frame is working on are not touched here. A
        # failed write only marks the connection lost and closes it: whoever reads
        # or waits next fails every pending call.
        try:
            send_within = None if deadline is None else getattr(self.transport, "send_within", None)
            if send_within is not None and deadline is not None:
                send_within(data, deadline - time.monotonic())
            else:
                self.transport.send(data)
        except BaseException as exc:
            if self.lost is None:
                self.lost_cause = detached(exc)  # (first: see fail_all)
                self.lost = f"connection lost while sending: {exc}"
            self.transport.close()
            if not isinstance(exc, Exception):
                raise

    def _reclaim(self, method: str | None) -> NoReturn:
        """This thread holds the send lock as it starts a send: close the connection, free the lock, name ``method``.

        Either an interruption left the lock held (a second Ctrl-C while the first
        was being handled) or a signal handler calls the client while this thread
        is inside a send: writing now would put a request in the middle of another.
        """
        self.fail_all("a send was interrupted and left the connection in use; the connection is closed")
        while self.send_lock._is_owned():
            self.send_lock.release()
        raise self._lost_error(method)

    def _drain(self, deadline: float | None) -> None:
        """Write what callers left in the outbox until it stays empty, then give up the claim (send lock held)."""
        while True:
            with self.lock:
                outbox = self.outbox
                if not outbox or self.lost is not None:
                    self.sending = 0
                    return
                self.outbox = []
            data = outbox[0][1] if len(outbox) == 1 else b"".join([data for _, data in outbox])
            # A failed write closed the connection and failed every pending call (fail_all):
            # the loop ends at its next look. The callers whose requests these were wait.
            with contextlib.suppress(RPCTimeout, ConnectionLost):
                self._write(data, deadline, "", False, None)

    def _fail_outbox(self) -> None:
        """The claimant stops without writing the outbox: it was interrupted, or the connection failed.

        Requests left there are never sent, and one of their callers may be reading
        (nobody else was), blocked in a read that only the connection's end
        interrupts: so the connection is closed and every pending call fails
        (ConnectionLost), rather than that caller waiting for ever. (An interrupted
        send may also have put part of a message on the wire.)
        """
        with self.lock:
            self.sending = 0
            unsent = bool(self.outbox)
            self.outbox = []
        if unsent:
            self.fail_all("a thread sending requests for others was interrupted; the connection is closed")

    def _let_go(self, waiters: Sequence[_Waiter]) -> None:
        """After an exception anywhere in a call (e.g. Ctrl-C), free what this thread holds; forget ``waiters``.

        The send lock (its owner is recorded by the lock itself), the outbox claim
        and the reader's turn (their owner's thread id): each is released if this
        thread holds it, whichever step the interruption cut short. Each release
        runs even if a second interruption cuts the one before.
        """
        me = threading.get_ident()
        try:
            if self.send_lock._is_owned():
                self.send_lock.release()
                if self.deferred:  # (see _defer)
                    self._flush_deferred()
        finally:
            try:
                if self.sending == me:
                    self._fail_outbox()
            finally:
                try:
                    for waiter in waiters:
                        if not waiter.done:
                            self._abandon(waiter)
                finally:
                    if self.reading == me:
                        self._release_reader()

    def _write(
        self, data: bytes, deadline: float | None, method: str | None, reader: bool, timeout: float | None
    ) -> None:
        """Write ``data``, the send lock held; if that fails, the connection is closed (fail_all).

        ``deadline``: the call's (``timeout`` seconds after it started).
        """
        try:
            send_within = None if deadline is None else getattr(self.transport, "send_within", None)
            if send_within is not None and deadline is not None:
                send_within(data, deadline - time.monotonic())
            else:
                self.send_now(data)
        except BaseException as exc:
            self._write_failed(exc, method, reader, timeout)

    def _write_failed(self, exc: BaseException, method: str | None, reader: bool, timeout: float | None) -> NoReturn:
        """A write failed with ``exc`` (being handled): close the connection (fail_all), raise what the caller gets."""
        if isinstance(exc, TimeoutError):
            self.fail_all(f"could not send in time: {exc}", exc)  # exc says why: the peer, or a fault plan
            raise timed_out(method, f"could not send {within(timeout)}; the connection is closed") from exc
        if isinstance(exc, OSError):
            try:
                self._read_last_words(reader)
            finally:
                self.fail_all(f"connection lost while sending: {exc}", exc)
            raise self._lost_error(method, sent=True) from exc
        # Interrupted inside the write (e.g. Ctrl-C): part of the request may be on
        # the wire, and the server would read whatever is sent next as its rest.
        self.fail_all("a send was interrupted; part of a request may be on the wire, so the connection is closed")
        raise exc

    def _read_last_words(self, held: bool) -> None:
        """After a failed send, take in what the server sent before closing, without waiting.

        A server that refuses a message (too large, too many connections) answers
        and closes while the request is still going out, so the send fails with a
        broken pipe; the answer is usually here already and says why. Skipped
        when another thread holds the reader's turn (it reads the answer).
        """
        me = threading.get_ident()
        try:
            if not held:
                with self.lock:
                    if self.reading:
                        return
                    self.reading = me
            proto = self.proto
            feed_ready(self.transport, proto.receive_data, proto.max_message_size)
            events: list[Response | ErrorResponse | Violation | Closed | BatchAnswer] = []
            while (event := proto.next_reply()) is not None:
                if not isinstance(event, Closed):  # the failed send is the reason given
                    events.append(event)
            self._deliver_all(events)
        finally:
            if not held and self.reading == me:
                self._release_reader()
