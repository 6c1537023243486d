"""The synchronous client: ``RPCClient``.

Go net/rpc's shape with Leader/Followers reading: a map of pending calls keyed by
id, and whichever caller is waiting reads the socket itself, handing other
callers' replies to them as it goes. With one caller there is no thread hand-off
at all. When reading fails, every pending call fails with ConnectionLost (one
function: ``_Link.fail_all``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import ssl as _ssl
import threading
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any, cast

from ._batch import BatchBuilder, BatchResult, QueuedCalls, call_values, not_sent
from ._codec import ErrorResponse, Id, Notification, Params, Response, build_params, plain_successes, success_id
from ._errors import ConnectionLost, RPCError, RPCTimeout, error_from_response
from ._framing import FramingName
from ._protocol import DEFAULT_MAX_MESSAGE_SIZE, ClientConnection, Closed, Violation
from ._remote import KeptMethod, RemoteMethod, check_timeout, kept_attribute
from ._transport import RECV_SIZE, Transport, feed_ready, open_connection

__all__ = ["RPCClient"]

log = logging.getLogger("jsonrpc_mini")

# A waiting follower re-checks this often, so a lost wake-up can never stall it.
_POLL = 0.5
# At most this many reply lines of one read are decoded together.
_LINES = 64
# A request up to this size takes the reader's turn as it is registered (see _Link.request),
# or is left for the thread that claimed the outbox to write (see _Link.send).
_EARLY_TURN = 16 * 1024


class _Waiter(BatchResult):
    """One outstanding call: filled in by whichever thread reads its reply.

    It is a BatchResult: a batch member's waiter is the result its caller holds
    (speed: one object per call, made when the call is queued; ``id`` is set when
    the batch is sent).
    """

    # ``method`` a slot of its own, over BatchResult's read-only property: set once, read directly.
    __slots__ = ("done", "error", "id", "method", "signal", "value", "waiting")
    method: str

    def __init__(self, id_: Id, method: str) -> None:
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


class _Link:
    """One connection, shared by an RPCClient and its ``with_timeout`` views."""

    def __init__(self, transport: Transport, proto: ClientConnection) -> None:
        self.transport = transport
        self.proto = proto
        self.lock = threading.Lock()
        self.send_lock = threading.Lock()
        self.pending: dict[Id, _Waiter] = {}
        self.reading = False
        # Small requests left by callers while another thread has claimed the outbox
        # (``sending``: it holds the send lock or waits for it, and writes them after
        # its own request before it gives the claim up; see send). Both under ``lock``.
        self.outbox: list[tuple[_Waiter, bytes]] = []
        self.sending = False
        self.lost: str | None = None
        # The last error with id null that no call could take (e.g. "message too
        # large" answering a notification), until the server sends anything else:
        # told with ConnectionLost if one follows.
        self.said: str | None = None

    # -- sending ---------------------------------------------------------------

    def start(self, waiters: Sequence[_Waiter], data: bytes, deadline: float | None, what: str) -> None:
        """Register ``waiters`` (their replies may come as soon as ``data`` is out) and send ``data``."""
        with self.lock:
            if self.lost is not None:
                raise ConnectionLost(self.lost)
            for waiter in waiters:
                self.pending[waiter.id] = waiter
        try:
            self.send(data, deadline, what)
        except BaseException:
            with self.lock:
                for waiter in waiters:
                    self.pending.pop(waiter.id, None)
            raise

    def request(self, method: str, params: Params, timeout: float | None) -> Any:
        """Call ``method`` and wait for its result (RPCTimeout after ``timeout`` seconds).

        Speed: ``start`` then ``wait`` cost two lock rounds. A caller that is alone
        (no call pending, nobody reading, nobody sending: it takes the send lock in
        the same round) with a small request takes the reader's turn in the round
        that registers it. Only then: a caller holding the turn while its send
        waits (for the send lock, or for room in a full socket buffer) would keep
        everyone else's replies unread, and a server blocked writing them would
        never read that send (a hang, a7a2f56). A small send on an idle connection
        returns at once.

        A small request made while another thread has claimed the outbox is left
        there for that thread to write (see send): this caller sends nothing and
        goes straight to waiting for its reply, where it may take the reading turn.
        """
        proto = self.proto
        id_ = proto.next_id()
        data = proto.encode_request(method, params, id_)
        deadline = None if timeout is None else time.monotonic() + timeout
        waiter = _Waiter(id_, method)
        small = len(data) <= _EARLY_TURN
        with self.lock:
            if self.lost is not None:
                raise ConnectionLost(self.lost)
            queued = small and self.sending
            if queued:
                self.outbox.append((waiter, data))
                locked = lead = drain = False
            else:
                locked = self.send_lock.acquire(blocking=False)
                lead = locked and small and not self.reading and not self.pending
                # Claim the outbox, unless reading; a caller still to wait for the send
                # lock claims it only if it may wait for ever (no deadline): it could
                # not give up waiting while others' requests depend on it.
                drain = not lead and not self.sending and (locked or deadline is None)
                if lead:
                    self.reading = True
                elif drain:
                    self.sending = True
            self.pending[waiter.id] = waiter
        if not queued:
            try:
                self.send(data, deadline, waiter.method, locked=locked, reader=lead, drain=drain)
            except BaseException as exc:
                with self.lock:
                    self.pending.pop(waiter.id, None)
                if lead:
                    self._release_reader()
                if isinstance(exc, ConnectionLost) and waiter.error is not None:
                    # The server answered this call before it closed (see _read_last_words).
                    raise waiter.error from exc
                raise
            if lead:
                self._lead(waiter, deadline)
                if waiter.done:
                    return waiter.outcome()
        self.wait(waiter, deadline)
        return waiter.outcome()

    def send(
        self,
        data: bytes,
        deadline: float | None = None,
        method: str = "",
        *,
        locked: bool = False,
        reader: bool = False,
        drain: bool = False,
    ) -> None:
        """Send ``data`` whole; RPCTimeout if that cannot happen by ``deadline``.

        A send cut short by the deadline may have put part of a message on the
        wire, so the connection is closed (other pending calls get ConnectionLost).
        ``locked``: the caller holds the send lock already (it is released here);
        ``reader``: it holds the reader's turn; ``drain``: it has claimed the outbox
        (see request) and writes what other callers leave there meanwhile, after
        ``data`` and before the send lock is released.

        Speed: with threads sharing the client, callers waited for the send lock
        while its holder's send ran (a send releases the GIL): a sleep and a
        wake-up per call, and one system call per request. A caller that finds the
        outbox claimed leaves its small request there instead; the claimant writes
        all of them in one send. It never holds the reading turn (so no reply waits
        for it: see above); if it is interrupted before they are written, the
        connection is closed (see _fail_outbox).
        """
        try:
            if not locked:
                if deadline is None:
                    self.send_lock.acquire()
                elif not self.send_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
                    raise RPCTimeout(f"{method}: could not send within the timeout (another send is stuck)")
        except BaseException:
            if drain:  # (only a caller without a deadline claims before it has the lock)
                self._fail_outbox()
            raise
        drained = False
        try:
            self._write(data, deadline, method, reader)
            if drain:
                self._drain(deadline)
            drained = True
        finally:
            if drain and not drained:
                self._fail_outbox()
            self.send_lock.release()

    def _drain(self, deadline: float | None) -> None:
        """Write what callers left in the outbox until it stays empty, then give up the claim (send lock held)."""
        while True:
            with self.lock:
                outbox = self.outbox
                if not outbox or self.lost is not None:
                    self.sending = False
                    return
                self.outbox = []
            data = outbox[0][1] if len(outbox) == 1 else b"".join([data for _, data in outbox])
            # A failed write closed the connection and failed every pending call (fail_all):
            # the loop ends at its next look. The callers whose requests these were wait.
            with contextlib.suppress(RPCTimeout, ConnectionLost):
                self._write(data, deadline, "", False)

    def _fail_outbox(self) -> None:
        """The claimant stops without writing the outbox: it was interrupted, or the connection failed.

        Requests left there are never sent, and one of their callers may be reading
        (nobody else was), blocked in a read that only the connection's end
        interrupts: so the connection is closed and every pending call fails
        (ConnectionLost), rather than that caller waiting for ever. (An interrupted
        send may also have put part of a message on the wire.)
        """
        with self.lock:
            self.sending = False
            unsent = bool(self.outbox)
            self.outbox = []
        if unsent:
            self.fail_all("a thread sending requests for others was interrupted; the connection is closed")

    def _write(self, data: bytes, deadline: float | None, method: str, reader: bool) -> None:
        """Write ``data``, the send lock held; if that fails, the connection is closed (fail_all)."""
        try:
            send_within = None if deadline is None else getattr(self.transport, "send_within", None)
            if send_within is not None and deadline is not None:
                send_within(data, deadline - time.monotonic())
            else:
                self.transport.send(data)
        except TimeoutError as exc:
            self.fail_all(f"the server took no data for too long: {exc}")
            raise RPCTimeout(f"{method}: could not send within the timeout; the connection is closed") from exc
        except OSError as exc:
            self._read_last_words(reader)
            self.fail_all(f"connection lost while sending: {exc}")
            raise ConnectionLost(self.lost or "connection lost") from exc
        except BaseException:
            # Interrupted inside the write (e.g. Ctrl-C): part of the request may be on
            # the wire, and the server would read whatever is sent next as its rest.
            self.fail_all("a send was interrupted; part of a request may be on the wire, so the connection is closed")
            raise

    def _read_last_words(self, held: bool) -> None:
        """After a failed send, take in what the server sent before closing, without waiting.

        A server that refuses a message (too large, too many connections) answers
        and closes while the request is still going out, so the send fails with a
        broken pipe; the answer is usually here already and says why. Skipped
        when another thread holds the reader's turn (it reads the answer).
        """
        if not held:
            with self.lock:
                if self.reading:
                    return
                self.reading = True
        try:
            proto = self.proto
            feed_ready(self.transport, proto.receive_data, proto.max_message_size, alone=True)
            events: list[Response | ErrorResponse | Violation | Closed] = []
            while (event := proto.next_event()) is not None:
                if not isinstance(event, Closed):  # the failed send is the reason given
                    events.append(event)
            self._deliver_all(events)
        finally:
            if not held:
                self._release_reader()

    # -- waiting ---------------------------------------------------------------

    def wait(self, waiter: _Waiter, deadline: float | None) -> None:
        """Block until ``waiter`` is done or ``deadline`` passes (then RPCTimeout)."""
        if waiter.done:  # e.g. a batch member delivered with the others: no lock round
            return
        while True:
            with self.lock:
                if waiter.done:
                    return
                lead = not self.reading
                if lead:
                    self.reading = True
                else:
                    waiter.waiting = True
                    signal = waiter.wait_signal()  # under the lock: a reply cannot slip past it
            if lead:
                self._lead(waiter, deadline)
                if waiter.done:  # filled by this thread: no lock round needed to see it
                    return
            else:
                pause = _POLL if deadline is None else min(_POLL, deadline - time.monotonic())
                try:
                    # Take the signal (waiting for it at most ``pause``): the next wait blocks again.
                    signal.acquire(timeout=max(pause, 0.0))
                except BaseException:  # e.g. KeyboardInterrupt: this caller stops waiting
                    self._abandon(waiter)
                    raise
                waiter.waiting = False
            if deadline is not None and time.monotonic() >= deadline:
                with self.lock:
                    if waiter.done:
                        return
                    self.pending.pop(waiter.id, None)
                    waiter.done = True
                    unsent = self._unqueue(waiter)
                if unsent:  # still in the outbox: the claimant's send has not ended
                    raise RPCTimeout(f"{waiter.method}: could not send within the timeout (another send is stuck)")
                raise RPCTimeout(f"{waiter.method}: no reply within the timeout; a late reply will be dropped")

    def _unqueue(self, waiter: _Waiter) -> bool:
        """Take ``waiter``'s request out of the outbox if it is still there (lock held); True if it was."""
        outbox = self.outbox
        for index, (queued, _) in enumerate(outbox):
            if queued is waiter:
                del outbox[index]
                return True
        return False

    def _lead(self, waiter: _Waiter, deadline: float | None) -> None:
        """Read, holding the reader's turn, until ``waiter`` is done or ``deadline`` passes; the turn is passed on."""
        handed_back = False
        try:
            handed_back = self._read_until(waiter, deadline)
        except BaseException:  # e.g. KeyboardInterrupt: this caller stops waiting
            self._abandon(waiter)  # (the turn is still held: no follower is picked there)
            raise
        finally:
            if not handed_back:
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

    def _read_until(self, waiter: _Waiter, deadline: float | None) -> bool:
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
            if data and self.said is not None:
                self.said = None  # the server sent more since: that error was not its last word
            # The usual read: whole compact reply lines (one for a lone caller, several
            # for threads sharing the client), decoded in one step by the core. What
            # it does not take (part of a line, a value over many reads) goes to the
            # framer, after the lines before it.
            start = 0
            while start < len(data):
                values, end = proto.decode_lines(data, _LINES, start)
                if not values:
                    break
                if end == len(data) and len(values) == 1 and success_id(values[0]) == waiter.id:
                    # The usual read: this caller's own success reply and nothing else.
                    # Stored and the turn handed back in one lock round (what
                    # _settle_lines does, without its lists and calls).
                    with self.lock:
                        if self.pending.pop(waiter.id, None) is not None:  # else failed by close()
                            waiter.value = values[0]["result"]
                            waiter.done = True
                        self.reading = False
                        follower = self._follower() if self.pending else None
                    if follower is not None:
                        follower.wake()
                    return True
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
        return False

    def _settle_lines(self, values: list[Any], waiter: _Waiter | None) -> bool:
        """Settle the calls of the reply lines the core decoded as ``values``, in order.

        Plain success replies are stored straight from their JSON objects (no reply
        objects; ``plain_successes``), consecutive ones in one lock round; anything else
        is checked by the core (``parse_reply``: errors, violations). If ``waiter``
        is given and the lines complete it, the reader's turn is handed back in the
        last lock round and True is returned.
        """
        start = 0
        while (end := plain_successes(values, start)) < len(values):
            self._settle_results(values, start, end, None)
            self._deliver(self.proto.parse_reply(values[end]))
            start = end + 1
        return self._settle_results(values, start, end, waiter)

    def _settle_results(self, values: list[Any], start: int, end: int, waiter: _Waiter | None) -> bool:
        """Store the results of ``values[start:end]`` (plain successes).

        If that completes ``waiter``, the reader's turn is also handed back (True).
        """
        if start == end and waiter is None:
            return False
        woken: list[_Waiter] = []
        with self.lock:
            pending = self.pending
            for value in values[start:end] if start or end < len(values) else values:
                # _fill_result's work in line (a batch reply stores 1,000 of these).
                filled = pending.pop(value["id"], None)
                if filled is None:
                    log.debug("dropping reply for unknown or timed-out id %r", value["id"])
                    continue
                filled.value = value["result"]
                filled.done = True
                if filled.signal is not None:  # only a caller that waited on its signal needs waking
                    woken.append(filled)
            handing_back = waiter is not None and waiter.done
            if handing_back:
                self.reading = False
                follower = self._follower()
        for other in woken:
            if other is not waiter:
                other.wake()
        if handing_back and follower is not None:
            follower.wake()
        return handing_back

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
            self.fail_all("connection closed by the server")
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
        # An error with id null answers a request the server could not read. With a
        # single call outstanding it can only be that call's; otherwise it is logged.
        with self.lock:
            only = next(iter(self.pending.values())) if len(self.pending) == 1 else None
            if event.error is None or only is None:
                only = None
            else:
                del self.pending[only.id]
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
        """The single error path: mark the link lost and fail every pending call."""
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
        self.transport.close()


class _Current:
    """The connection a client uses now; ``connect()`` replaces it.

    ``client.add`` (a KeptMethod) calls through this, so a method kept or saved by
    the caller follows a reconnect, and it holds no reference to the client (a
    cycle would keep a dropped client's connection open until the garbage
    collector ran).
    """

    __slots__ = ("link",)

    def __init__(self, link: _Link | None = None) -> None:
        self.link = link

    def request(self, method: str, params: Params, timeout: float | None) -> Any:
        """Call ``method`` on the current connection (ConnectionLost if there is none)."""
        link = self.link
        if link is None:
            raise ConnectionLost("not connected: call connect(host, port) first")
        return link.request(method, params, timeout)


class RPCClient:
    """A JSON-RPC 2.0 client over one connection, safe to share between threads.

    ``RPCClient()`` then ``connect(host, port)``, or ``RPCClient(host, port)`` to
    connect at once. ``client.add(1, 2)`` calls remote ``add`` and returns its
    result. The client's own names are ``call``, ``notify``, ``batch``,
    ``connect``, ``close``, ``with_timeout``, the read-only properties ``timeout``
    and ``connected``, and anything starting with ``_``; reach a remote method
    named like one of them with ``call("close")``.

    ``timeout`` (seconds, None = wait for ever) bounds connecting and every call.
    ``framing`` is ``"newline"`` (default) or ``"content-length"``. ``path`` picks
    a Unix socket; ``ssl`` (an ``ssl.SSLContext``) turns on TLS.
    """

    def __init__(
        self,
        host: str | None = None,
        port: int | None = None,
        *,
        timeout: float | None = None,
        framing: FramingName = "newline",
        path: str | None = None,
        ssl: _ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        transport: Transport | None = None,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        self._timeout = check_timeout(timeout)
        self._framing = framing
        self._max_message_size = max_message_size
        ClientConnection(framing=framing)  # validate the framing name now
        self._current = _Current()
        if transport is not None:
            self._attach(transport)
        elif host is not None or path is not None:
            self.connect(host, port, path=path, ssl=ssl, server_hostname=server_hostname)
        elif port is not None:
            raise ValueError("RPCClient(port=...) needs a host too")

    def _attach(self, transport: Transport) -> None:
        proto = ClientConnection(framing=self._framing, max_message_size=self._max_message_size)
        self._current.link = _Link(transport, proto)

    def connect(
        self,
        host: str | None = "127.0.0.1",
        port: int | None = 5000,
        *,
        path: str | None = None,
        ssl: _ssl.SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> RPCClient:
        """Connect to a server (TCP, TLS with ``ssl=``, or Unix socket with ``path=``); returns self."""
        if self._link is not None and self._link.lost is None:
            raise RPCError(None, "this client is already connected; close() it first or make a new RPCClient")
        transport = open_connection(
            host, port, path=path, timeout=self._timeout, ssl=ssl, server_hostname=server_hostname
        )
        self._attach(transport)
        return self

    @property
    def _connected(self) -> bool:
        # Private on purpose: API.md reserves only call/notify/batch/connect/close/
        # with_timeout and _names, so "connected" must stay a remote method name.
        return self._link is not None and self._link.lost is None

    @property
    def _link(self) -> _Link | None:
        # The connection, held once: by the holder kept methods call through.
        return self._current.link

    def _require_link(self) -> _Link:
        if self._link is None:
            raise ConnectionLost("not connected: call connect(host, port) first")
        return self._link

    def __getattr__(self, name: str) -> KeptMethod[Any] | RemoteMethod[Any]:
        if name.startswith("_"):
            raise AttributeError(name)  # Python's names, and ours before __init__ set them
        return kept_attribute(self, RPCClient.call, self._current, name, self._timeout)

    def call(self, method: str, /, *args: Any, **kwargs: Any) -> Any:
        """Call remote ``method`` with these arguments and return its result."""
        return self._current.request(method, build_params(args, kwargs), self._timeout)

    def notify(self, method: str, /, *args: Any, **kwargs: Any) -> None:
        """Send a notification: ``method`` runs remotely, nothing comes back."""
        link = self._require_link()
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        link.start([], link.proto.encode(Notification(method, build_params(args, kwargs))), deadline, method)

    def batch(self) -> BatchBuilder:
        """Collect calls and send them as one batch when the ``with`` block ends."""
        return BatchBuilder(self._send_batch, functools.partial(_Waiter, None))

    def _send_batch(self, calls: QueuedCalls) -> list[_Waiter]:
        link = self._require_link()
        proto = link.proto
        waiters = cast("list[_Waiter]", [result for result in calls.results if result is not None])
        ids = proto.next_ids(len(waiters))
        data = proto.encode_values(call_values(calls, iter(ids)))
        for waiter, id_ in zip(waiters, ids, strict=True):
            waiter.id = id_
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        link.start(waiters, data, deadline, "batch")
        try:
            for waiter in waiters:
                if not waiter.done:  # replies come together: most are in once the first wait ends
                    try:
                        link.wait(waiter, deadline)
                    except RPCTimeout as exc:
                        waiter.error = exc
        except BaseException:  # e.g. KeyboardInterrupt: the members not answered stop waiting too
            for waiter in waiters:
                if not waiter.done:
                    link._abandon(waiter)
            raise
        return waiters  # the members' BatchResults, holding their outcomes

    def with_timeout(self, timeout: float | None) -> RPCClient:
        """A view of the same connection whose calls use ``timeout`` seconds."""
        view = object.__new__(RPCClient)
        # Not the kept methods: they carry this client's timeout and connection holder.
        view.__dict__.update((name, value) for name, value in self.__dict__.items() if type(value) is not KeptMethod)
        view._timeout = check_timeout(timeout)
        view._current = _Current(self._link)  # the view stays on this connection
        return view

    def close(self) -> None:
        """Close the connection; pending calls fail with ConnectionLost. Idempotent."""
        if self._link is not None:
            self._link.fail_all("the client was closed")

    def __enter__(self) -> RPCClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "connected" if self._connected else "not connected"
        return f"<RPCClient {state} timeout={self._timeout}>"
