"""The sync client's reading side: the Leader/Followers reader.

A ``_Waiter`` (``_client_waiter``) is one outstanding call. ``_ReplyReader`` holds
the reading turn: whichever caller is waiting reads the socket itself and hands
other callers' replies to them as it goes, so with one caller there is no thread
hand-off at all. Handing the turn on to a follower, and what a caller that stops
waiting leaves behind, is its base class ``ReadingTurn`` (``_client_turn``);
storing what was read in the waiting calls, and failing them all when reading
fails (``fail_all``), that one's base ``ReplySettler`` (``_client_settle``). The
sending side is ``_client_sender._RequestSender``, the connection
``_client_link._Link``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from ._client_doorbell import end_wait, signal_for_wait
from ._client_protocol import BatchAnswer
from ._client_turn import ReadingTurn
from ._client_waiter import _BatchWaiter, _Waiter, timed_out, within
from ._codec import ErrorResponse, Response, success_id
from ._errors import unread_since
from ._ready import feed_ready
from ._transport import RECV_SIZE

log = logging.getLogger("jsonrpc_mini")

# A waiting follower re-checks this often, so a lost wake-up can never stall it.
_POLL = 0.5
# At most this many reply lines of one read are decoded together.
_LINES = 64


class _ReplyReader(ReadingTurn):
    """The reading half of a connection (``_Link``): waiting for replies and handing them out."""

    # Set by _Link.__init__ (with ReadingTurn's and ReplySettler's).
    read_ahead: bool  # see _Link.__init__

    # -- waiting ---------------------------------------------------------------

    def wait(self, waiter: _Waiter, deadline: float | None, timeout: float | None) -> None:
        """Block until ``waiter`` is done or ``deadline`` passes (then RPCTimeout, naming ``timeout``)."""
        if waiter.done:  # e.g. a batch member delivered with the others: no lock round
            return
        try:
            self._wait(waiter, deadline, timeout)
        except BaseException:  # e.g. KeyboardInterrupt: this caller stops waiting
            end_wait(waiter)  # (interrupted between the lock round that set a signal and _wait's finally)
            if not waiter.done:
                self._abandon(waiter)
            if self.reading == threading.get_ident():  # taken, and interrupted before _lead's own handling
                self._release_reader()
            raise

    def _wait(self, waiter: _Waiter, deadline: float | None, timeout: float | None) -> None:
        me = threading.get_ident()
        while True:
            with self.lock:
                if waiter.done:
                    return
                if self.lost is not None or waiter.id not in self.pending:
                    # Lost, or taken out by a reader interrupted before it stored the
                    # reply (it then closed the connection): no reply will come.
                    waiter.error = self.lost_error(waiter.method, "a thread reading replies was interrupted")
                    waiter.done = True
                    return
                lead = not self.reading
                if lead:
                    self.reading = me
                else:
                    waiter.waiting = True
                    # Set in the lock round that looks at the call's state, so a wake-up
                    # decided after that look reaches it; one decided before is seen in
                    # that state (done, or the turn free), and at worst ends a later wait
                    # early (see _client_doorbell).
                    signal = signal_for_wait(waiter)
            if lead:
                self._lead(waiter, deadline)
                if waiter.done:  # filled by this thread: no lock round needed to see it
                    return
            else:
                pause = _POLL if deadline is None else min(_POLL, deadline - time.monotonic())
                # Take the signal (waiting for it at most ``pause``): the next wait blocks again.
                try:
                    signal.acquire(timeout=max(pause, 0.0))
                finally:
                    waiter.waiting = False
                    end_wait(waiter)
                    del signal  # (nor this frame, kept in a traceback: see end_wait)
                if waiter.done:  # filled in, then woken (done is set last): no lock round needed to see it
                    return
            if deadline is not None and time.monotonic() >= deadline:
                with self.lock:
                    if waiter.done:
                        return
                    self.pending.pop(waiter.id, None)
                    self.proto.sent_unanswered()  # given up on (see ClientConnection.unread_before)
                    waiter.done = True
                    unsent = self._unqueue(waiter)
                if unsent:  # still in the outbox: the claimant's send has not ended
                    raise timed_out(waiter.method, f"could not send {within(timeout)} (another send is stuck)")
                late = f"no reply {within(timeout)}; a late reply will be dropped"
                raise timed_out(waiter.method, late + unread_since(self.unread, waiter.id))

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
            self._interrupted(taken[0])
            self._abandon(waiter)  # (the turn is still held: no follower is picked there)
            raise
        finally:
            if not handed_back and self.reading == threading.get_ident():
                self._release_reader()

    def _read_replies(
        self, waiter: _Waiter, deadline: float | None, taken: list[bool], first: bytes | OSError | None = None
    ) -> bool:
        """Read replies until ``waiter`` is done or ``deadline`` passes (the reader's turn held).

        True if the turn was handed back here, together with storing the reply that
        completed ``waiter`` (one lock round for both); otherwise the caller hands it back.
        ``first``: what a read made by the caller gave (bytes, or the OSError it
        raised), taken as this method's first read (see _Link._alone). The caller
        has already found that bytes given there are not one line for decode_line.
        """
        proto = self.proto
        while not waiter.done:
            given = first is not None
            try:
                if first is None:
                    timeout = None
                    if deadline is not None:
                        timeout = deadline - time.monotonic()
                        if timeout <= 0:
                            return False
                    data = self.transport.recv(RECV_SIZE, timeout)
                else:
                    read, first = first, None
                    if isinstance(read, OSError):
                        raise read  # (handled below as if the read were made here)
                    data = read
            except TimeoutError:
                return False
            except OSError as exc:
                self.fail_all(f"connection lost: {exc}", exc)
                return False
            taken[0] = True
            # The usual read (a lone caller's): one reply line, decoded by the core's
            # one-line step (decode_lines without its list, offsets and look for more
            # lines: ~3,400 of ~17,000 instructions less). decode_line itself tells
            # whether the read is one line (a look here first cost ~1.2k more per call).
            # (Not again for the caller's bytes: a line that fails to decode would be
            # decoded once more.)
            value = None if given else proto.decode_line(data)
            if value is not None:
                # This caller's own success reply, or else another caller's reply or an
                # error (as decode_lines' values are).
                if self._own_success(waiter, value) or self._settle_lines([value], waiter):
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
            if data and self.read_ahead and proto.in_message:
                error = feed_ready(self.transport, proto.receive_data, proto.max_message_size)
            events = []
            while (event := proto.next_reply()) is not None:
                events.append(event)
            self._deliver_all(events)
            if error is not None:  # after delivering what arrived before it
                self.fail_all(f"connection lost: {error}", error)
                return False
            if not data:
                self.fail_all("connection closed by the server")
                return False
            taken[0] = False
        return False

    def _own_success(self, waiter: _Waiter, value: Any) -> bool:
        """If ``value`` is ``waiter``'s plain success reply: store it and hand back the reader's turn; True.

        One lock round for both (what _settle_lines does, without its lists and
        calls). False for anything else (another call's reply, an error): the
        caller settles it (_settle_lines). _Link._alone has this test in line (speed:
        no call on the usual call's path; change both), and there hands the turn back
        without the lock (see _wake_follower): it never holds other calls' replies.
        """
        # success_id's test, in fewer steps for the usual reply (an object of exactly
        # these three members has no "error" and no "method"), then success_id itself.
        # (A batch's entry has its first member's id: that member's reply alone is
        # settled as such, see ReplySettler._pop.)
        if type(waiter) is _BatchWaiter or not (
            (
                type(value) is dict
                and len(value) == 3
                and "result" in value
                and value.get("jsonrpc") == "2.0"
                and type(id_ := value.get("id")) is int
                and id_ == waiter.id
            )
            or success_id(value) == waiter.id
        ):
            return False
        if self.said is not None:
            self.said = None  # a reply after it (see _settle_lines)
        with self.lock:
            if self.pending.pop(waiter.id, None) is not None:  # else failed by close()
                waiter.value = value["result"]
                waiter.done = True
            self.reading = 0
            follower = self._follower() if self.pending else None
        if follower is not None:
            follower.wake()
        return True

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
        instructions per member. A batch pending as one gets its whole array as one
        value (a BatchAnswer: see _take_answer); the values it leaves to the general
        way are settled here next, before the values after it.
        """
        start = 0
        count = len(values)
        parse_reply = self.proto.parse_reply
        while True:
            woken: list[_Waiter] = []
            violation = None
            rest: list[Any] = []
            first = start
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
                        if filled is None or type(filled) is _BatchWaiter:  # (see _pop)
                            if filled is not None:
                                pending[id_] = filled
                            filled = self._pop(id_)
                            if filled is None:
                                log.debug("dropping reply for unknown or timed-out id %r", id_)
                                continue
                        filled.value = value["result"]
                        filled.done = True
                    elif type(value) is BatchAnswer:
                        filled, rest = self._take_answer(value)
                        if rest:
                            if filled is not None:
                                woken.append(filled)
                            break
                        if filled is None:
                            continue
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
                handing_back = violation is None and not rest and waiter is not None and waiter.done
                if handing_back:
                    self.reading = 0
                    follower = self._follower()
            for other in woken:
                if other is not waiter:
                    other.wake()
            if handing_back and follower is not None:
                follower.wake()
            # A reply (any: the loop stopped before a violation, or at the end) ends the
            # quote of an id-null error before it: that error was not the server's last
            # word. Per message, as the aio client: not per read.
            if self.said is not None and start - first > (violation is not None):
                self.said = None
            if rest:  # a batch's members to settle one by one, then the values after its array
                values = [*rest, *values[start:]]
                start = 0
                count = len(values)
                continue
            if violation is None:
                return handing_back
            self._deliver(violation)
            if start == count and waiter is None:
                return False
