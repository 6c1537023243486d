"""The sync client's reading side: pending calls and the Leader/Followers reader.

A ``_Waiter`` is one outstanding call. ``_ReplyReader`` holds the reading turn:
whichever caller is waiting reads the socket itself and hands other callers'
replies to them as it goes, so with one caller there is no thread hand-off at
all. When reading fails, every pending call fails with ConnectionLost (one
function: ``fail_all``). The connection and its sending side are
``_client_link._Link``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

from ._batch import BatchResult, not_sent
from ._client_protocol import ClientConnection
from ._codec import ErrorResponse, Id, Response, success_id
from ._errors import ConnectionLost, RPCError, RPCTimeout, error_from_response, unusable_reply
from ._protocol import Closed, Violation
from ._transport import RECV_SIZE, Transport, feed_ready

log = logging.getLogger("jsonrpc_mini")

# A waiting follower re-checks this often, so a lost wake-up can never stall it.
_POLL = 0.5
# At most this many reply lines of one read are decoded together.
_LINES = 64


def timed_out(method: str, message: str) -> RPCTimeout:
    """RPCTimeout for a call of ``method`` (named in ``method``, and so in the message)."""
    exc = RPCTimeout(message)
    exc.method = method or None
    return exc


class _Waiter(BatchResult):
    """One outstanding call: filled in by whichever thread reads its reply.

    It is a BatchResult: a batch member's waiter is the result its caller holds
    (speed: one object per call, made when the call is queued; ``id`` is set when
    the batch is sent).
    """

    # ``method`` a slot of its own, over BatchResult's read-only property: set once, read directly.
    __slots__ = ("done", "error", "id", "method", "signal", "value", "waiting")
    method: str

    # (``method`` first, ``id_`` optional: a batch's builder makes a member's waiter
    # from its method alone, without a functools.partial layer per member.)
    def __init__(self, method: str, id_: Id = None) -> None:
        self.id = id_
        self.method = method
        self.done = False
        self.waiting = False
        self.value: Any = None
        self.error: RPCError | None = None
        # Made only when a caller has to wait for another thread to read its reply: a
        # caller that reads its own reply (the usual case) never needs one. A plain
        # lock used as a one-slot signal: held while nobody has signalled, released
        # by wake(). Speed: threading.Event is a Condition written in Python; with
        # threads sharing a client, its wait/set pair cost several us per call.
        self.signal: threading.Lock | None = None

    def wait_signal(self) -> threading.Lock:
        """The signal to wait on (made on first use, not signalled yet)."""
        signal = self.signal
        if signal is None:
            signal = threading.Lock()
            signal.acquire()
            self.signal = signal
        return signal

    def wake(self) -> None:
        signal = self.signal
        if signal is not None:
            # RuntimeError: signalled already and not yet taken; one signal is enough.
            with contextlib.suppress(RuntimeError):
                signal.release()

    def outcome(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value

    def result(self) -> Any:
        """A batch member's return value; raises its error (BatchResult's API)."""
        if not self.done:  # every member is done once the batch's send returned
            raise not_sent(self.method)
        if self.error is not None:  # (outcome()'s work in line: one call less per result)
            raise self.error
        return self.value

    @property
    def _sent(self) -> bool:
        return self.done


class _ReplyReader:
    """The reading half of a connection (``_Link``): waiting for replies and handing them out."""

    # Set by _Link.__init__.
    transport: Transport
    proto: ClientConnection
    lock: threading.Lock
    pending: dict[Id, _Waiter]
    outbox: list[tuple[_Waiter, bytes]]
    reading: int  # the reader's thread id, 0 when nobody reads
    lost: str | None
    said: str | None

    # -- waiting ---------------------------------------------------------------

    def wait(self, waiter: _Waiter, deadline: float | None) -> None:
        """Block until ``waiter`` is done or ``deadline`` passes (then RPCTimeout)."""
        if waiter.done:  # e.g. a batch member delivered with the others: no lock round
            return
        try:
            self._wait(waiter, deadline)
        except BaseException:  # e.g. KeyboardInterrupt: this caller stops waiting
            if not waiter.done:
                self._abandon(waiter)
            if self.reading == threading.get_ident():  # taken, and interrupted before _lead's own handling
                self._release_reader()
            raise

    def _wait(self, waiter: _Waiter, deadline: float | None) -> None:
        while True:
            with self.lock:
                if waiter.done:
                    return
                if self.lost is not None or waiter.id not in self.pending:
                    # Lost, or taken out by a reader interrupted before it stored the
                    # reply (it then closed the connection): no reply will come.
                    waiter.error = ConnectionLost(self.lost or "a thread reading replies was interrupted")
                    waiter.error.method = waiter.method
                    waiter.done = True
                    return
                lead = not self.reading
                if lead:
                    self.reading = threading.get_ident()
                else:
                    waiter.waiting = True
                    signal = waiter.wait_signal()  # under the lock: a reply cannot slip past it
            if lead:
                self._lead(waiter, deadline)
                if waiter.done:  # filled by this thread: no lock round needed to see it
                    return
            else:
                pause = _POLL if deadline is None else min(_POLL, deadline - time.monotonic())
                # Take the signal (waiting for it at most ``pause``): the next wait blocks again.
                signal.acquire(timeout=max(pause, 0.0))
                waiter.waiting = False
            if deadline is not None and time.monotonic() >= deadline:
                with self.lock:
                    if waiter.done:
                        return
                    self.pending.pop(waiter.id, None)
                    waiter.done = True
                    unsent = self._unqueue(waiter)
                if unsent:  # still in the outbox: the claimant's send has not ended
                    raise timed_out(waiter.method, "could not send within the timeout (another send is stuck)")
                raise timed_out(waiter.method, "no reply within the timeout; a late reply will be dropped")

    def _unqueue(self, waiter: _Waiter) -> bool:
        """Take ``waiter``'s request out of the outbox if it is still there (lock held); True if it was."""
        outbox = self.outbox
        for index, (queued, _) in enumerate(outbox):
            if queued is waiter:
                del outbox[index]
                return True
        return False

    def _lead(self, waiter: _Waiter, deadline: float | None) -> None:
        """Read, holding the reader's turn, until ``waiter`` is done or ``deadline`` passes; the turn is passed on.

        Interrupted (e.g. Ctrl-C) after a read took bytes off the connection and before
        they were all handed out, the connection is closed if other calls are pending:
        their replies may be among those bytes, and they would wait for ever. (Alone,
        the caller loses only its own reply, which it no longer waits for.)
        """
        handed_back = False
        taken = [False]  # set by _read_replies while it holds bytes not yet handed out
        try:
            handed_back = self._read_replies(waiter, deadline, taken)
        except BaseException:  # e.g. KeyboardInterrupt: this caller stops waiting
            transport: Any = self.transport
            if getattr(transport, "interrupted_read", False):  # cut inside the transport's read
                transport.interrupted_read = False
                taken[0] = True
            with self.lock:
                others = any(other is not waiter for other in self.pending.values())
            if taken[0] and others:
                self.fail_all("a read was interrupted after taking bytes off the connection; the connection is closed")
            self._abandon(waiter)  # (the turn is still held: no follower is picked there)
            raise
        finally:
            if not handed_back and self.reading == threading.get_ident():
                self._release_reader()

    def _abandon(self, waiter: _Waiter) -> None:
        """Forget a caller that stops waiting (interrupted): its late reply is dropped.

        Left pending, an error reply with id null could not be matched to the one
        call really outstanding, and a follower would stay ``waiting`` and could be
        picked to take over reading, a wake-up nobody takes (the other callers
        would then sit until their next poll). If it was just picked, the turn
        goes to another follower.
        """
        with self.lock:
            self.pending.pop(waiter.id, None)
            self._unqueue(waiter)  # not to be sent any more
            if not waiter.done:  # a batch member's result() raises this (its reply, if it came, stands)
                waiter.error = RPCError(None, f"{waiter.method}: interrupted before its reply came")
            waiter.done = True
            waiter.waiting = False
            follower = None if self.reading else self._follower()
        if follower is not None:
            follower.wake()

    def _read_replies(self, waiter: _Waiter, deadline: float | None, taken: list[bool]) -> bool:
        """Read replies until ``waiter`` is done or ``deadline`` passes (the reader's turn held).

        True if the turn was handed back here, together with storing the reply that
        completed ``waiter`` (one lock round for both); otherwise the caller hands it back.
        """
        proto = self.proto
        while not waiter.done:
            timeout = None
            if deadline is not None:
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    return False
            try:
                data = self.transport.recv(RECV_SIZE, timeout)
            except TimeoutError:
                return False
            except OSError as exc:
                self.fail_all(f"connection lost: {exc}")
                return False
            taken[0] = True
            if data and self.said is not None:
                self.said = None  # the server sent more since: that error was not its last word
            # The usual read (a lone caller's): one reply line, decoded by the core's
            # one-line step (decode_lines without its list, offsets and look for more
            # lines: ~3,400 of ~17,000 instructions less). decode_line itself tells
            # whether the read is one line (a look here first cost ~1.2k more per call).
            value = proto.decode_line(data)
            if value is not None:
                if success_id(value) == waiter.id:
                    # This caller's own success reply: stored and the turn handed
                    # back in one lock round (what _settle_lines does, without its
                    # lists and calls).
                    with self.lock:
                        if self.pending.pop(waiter.id, None) is not None:  # else failed by close()
                            waiter.value = value["result"]
                            waiter.done = True
                        self.reading = False
                        follower = self._follower() if self.pending else None
                    if follower is not None:
                        follower.wake()
                    return True
                # Another caller's reply, or an error: as decode_lines' values are.
                if self._settle_lines([value], waiter):
                    return True
                taken[0] = False
                continue
            # Whole compact reply lines (several for threads sharing the client), decoded
            # in one step by the core. What it does not take (part of a line, a value over
            # many reads) goes to the framer, after the lines before it.
            start = 0
            while start < len(data):
                values, end = proto.decode_lines(data, _LINES, start)
                if not values:
                    break
                if self._settle_lines(values, waiter if end == len(data) else None):
                    return True
                one_line = data.find(b"\n", start) + 1 == end
                start = end
                if one_line:
                    # The lines after it did not qualify as a group (an escape or a
                    # bracket in a string, say): asked again, the core would look at
                    # up to _LINES of them once per line. The framer reads them.
                    break
            if data and start == len(data):
                taken[0] = False
                continue
            proto.receive_data(data[start:] if start else data)
            error = None
            if data and proto.in_message:
                error = feed_ready(self.transport, proto.receive_data, proto.max_message_size)
            events = []
            while (event := proto.next_event()) is not None:
                events.append(event)
            self._deliver_all(events)
            if error is not None:  # after delivering what arrived before it
                self.fail_all(f"connection lost: {error}")
                return False
            if not data:
                self.fail_all("connection closed by the server")
                return False
            taken[0] = False
        return False

    def _settle_lines(self, values: list[Any], waiter: _Waiter | None) -> bool:
        """Settle the calls of the reply lines the core decoded as ``values``, in order.

        Replies are stored straight from their JSON objects in one lock round: a
        plain success without a reply object, anything else as the core checks it
        (``parse_reply``). A violation (a reply that cannot be used) is delivered
        outside the lock, then the rest goes on in a new round. If ``waiter`` is
        given and the lines complete it, the reader's turn is handed back in the
        last lock round and True is returned.

        Speed: a batch reply stores 1,000 of these. One loop that checks and stores
        each member (before: ``plain_successes`` over the members, then a second loop
        storing them, and a lock round of its own for each error) costs ~1,100 fewer
        instructions per member.
        """
        start = 0
        count = len(values)
        parse_reply = self.proto.parse_reply
        while True:
            woken: list[_Waiter] = []
            violation = None
            with self.lock:
                pending = self.pending
                for value in values[start:] if start else values:
                    start += 1
                    # A plain success (what success_id finds, in fewer steps: an object
                    # of exactly these three members has no "error" and no "method").
                    if (
                        type(value) is dict
                        and len(value) == 3
                        and "result" in value
                        and value.get("jsonrpc") == "2.0"
                        and (type(id_ := value.get("id")) is int or type(id_) is str)
                    ):
                        filled = pending.pop(id_, None)
                        if filled is None:
                            log.debug("dropping reply for unknown or timed-out id %r", id_)
                            continue
                        filled.value = value["result"]
                        filled.done = True
                    else:
                        reply = parse_reply(value)
                        if not isinstance(reply, (Response, ErrorResponse)):
                            violation = reply
                            break
                        filled = self._fill(reply)
                        if filled is None:
                            continue
                    if filled.signal is not None:  # only a caller that waited on its signal needs waking
                        woken.append(filled)
                handing_back = violation is None and waiter is not None and waiter.done
                if handing_back:
                    self.reading = False
                    follower = self._follower()
            for other in woken:
                if other is not waiter:
                    other.wake()
            if handing_back and follower is not None:
                follower.wake()
            if violation is None:
                return handing_back
            self._deliver(violation)
            if start == count and waiter is None:
                return False

    def _release_reader(self) -> None:
        with self.lock:
            self.reading = False
            follower = self._follower()
        if follower is not None:
            follower.wake()

    def _follower(self) -> _Waiter | None:
        """A caller waiting for another thread to read, to promote to reader (lock held)."""
        for other in self.pending.values():
            if other.waiting and not other.done:
                return other
        return None

    def _deliver(self, event: Response | ErrorResponse | Violation | Closed) -> None:
        if isinstance(event, Closed):
            self.fail_all(event.reason or "connection closed by the server")
        elif isinstance(event, Violation):
            self._violation(event)
        else:
            self._settle_one(event)

    def _settle_one(self, reply: Response | ErrorResponse) -> None:
        with self.lock:
            waiter = self._fill(reply)
        if waiter is not None:
            waiter.wake()

    def _deliver_all(self, events: list[Response | ErrorResponse | Violation | Closed]) -> None:
        """Deliver what one read produced, in order; consecutive replies (a batch's) in one lock round."""
        replies: list[Response | ErrorResponse] = []
        for event in events:
            if isinstance(event, (Response, ErrorResponse)):
                replies.append(event)
                continue
            self._settle(replies)
            replies = []
            self._deliver(event)
        self._settle(replies)

    def _settle(self, replies: list[Response | ErrorResponse]) -> None:
        # The outcome is stored before ``done`` is set, both under the lock: a caller
        # that sees ``done`` (it may be polling) must also see its result or error.
        if not replies:
            return
        with self.lock:
            settled = [waiter for waiter in map(self._fill, replies) if waiter is not None]
        for waiter in settled:
            waiter.wake()

    def _fill(self, reply: Response | ErrorResponse) -> _Waiter | None:
        """Store ``reply`` in its waiter (lock held); None if nobody waits for it any more."""
        if isinstance(reply, Response):
            return self._fill_result(reply.id, reply.result)
        waiter = self.pending.pop(reply.id, None)
        if waiter is None:
            log.debug("dropping reply for unknown or timed-out id %r", reply.id)
            return None
        err = reply.error
        waiter.error = error_from_response(err.code, err.message, err.data, waiter.method)
        waiter.done = True
        return waiter

    def _fill_result(self, id_: Id, result: Any) -> _Waiter | None:
        """Store a call's result in its waiter (lock held); None if nobody waits for it any more."""
        waiter = self.pending.pop(id_, None)
        if waiter is None:
            log.debug("dropping reply for unknown or timed-out id %r", id_)
            return None
        waiter.value = result
        waiter.done = True
        return waiter

    def _violation(self, event: Violation) -> None:
        # A reply that names a pending call but cannot be used fails that call: its
        # answer will not come. An error with id null answers a message the server
        # could not read: with a single call outstanding and no notification ever sent
        # (see ClientConnection.notified) it can only be that call's. Anything else
        # is logged.
        with self.lock:
            if event.id is not None:
                only = self.pending.pop(event.id, None)
                if only is not None:
                    only.error = unusable_reply(event.reason, only.method)
                    only.done = True
            elif event.error is None or len(self.pending) != 1 or self.proto.notified:
                only = None
            else:
                only = self.pending.pop(next(iter(self.pending)))
                err = event.error
                only.error = error_from_response(err.code, err.message, err.data, only.method)
                only.done = True
            lost = self.lost
        if only is None:
            if event.error is not None:
                self.said = event.error.message
            # Once the connection is lost (closed by us, say, while a reply was half
            # received), what is left of it concerns nobody: no warning for it.
            log.log(logging.DEBUG if lost else logging.WARNING, "ignoring message from server: %s", event.reason)
            return
        only.wake()

    def fail_all(self, reason: str) -> None:
        """The single error path: mark the link lost and fail every pending call.

        The transport is closed even if this is interrupted (Ctrl-C): a reader blocked
        in it returns only then. (A call not yet failed sees ``lost`` when it looks.)
        """
        try:
            with self.lock:
                if self.lost is None:
                    self.lost = reason if self.said is None else f"{reason} (the server said: {self.said})"
                waiters = list(self.pending.values())
                self.pending.clear()
                for waiter in waiters:
                    exc = ConnectionLost(self.lost)
                    exc.method = waiter.method
                    waiter.error = exc
                    waiter.done = True  # after the error: see _deliver
            for waiter in waiters:
                waiter.wake()
        finally:
            self.transport.close()
