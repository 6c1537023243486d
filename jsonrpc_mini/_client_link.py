"""The sync client's connection, ``_Link``: registering requests and the usual call.

A request is registered as pending, then sent. A small request on an idle
connection takes the reading turn in the same lock round (see ``_Link.request``);
one made while another thread sends is left in the outbox for that thread to
write (see ``_client_sender._RequestSender.send``). Registering and sending
notifications and batches is the base class's part (``_client_start._Starter.start``),
sending its base's (``_client_sender._RequestSender``, which also frees what a call
holds after an exception, ``_let_go``, and refuses a call from a signal handler,
``_refused``), reading replies the next one's (``_client_reader._ReplyReader``).
"""

from __future__ import annotations

import threading
import time
from typing import Any, cast

from ._client_protocol import ClientConnection
from ._client_sender import _INSIDE, _OwnedLock
from ._client_start import _Starter
from ._client_waiter import _Waiter
from ._codec import CallParams, Id, success_id
from ._errors import ConnectionLost
from ._json import ORJSON_LINE_OPTS, SMALL_OUTPUT
from ._json_write import _finite as finite
from ._transport import RECV_SIZE, Transport, send_of

# (A module-level name: one lookup less than threading.get_ident on the usual call's path.)
_get_ident = threading.get_ident

# A request up to this size takes the reader's turn as it is registered (see _Link.request),
# or is left for the thread that claimed the outbox to write (see _RequestSender.send).
_EARLY_TURN = 16 * 1024
# A lone call this long (s) after the last one began first asks whether the server
# closed the connection meanwhile (see _RequestSender._closed_while_quiet): an idle close is
# then told before the request goes out. Back-to-back calls never ask.
_QUIET = 0.05
_monotonic = time.monotonic


class _Link(_Starter):
    """One connection, shared by an RPCClient and its ``with_timeout`` views."""

    peer: str | None = None  # what connect() reached, as its errors name it (for repr)

    def __init__(self, transport: Transport, proto: ClientConnection) -> None:
        self.transport = transport
        # What transport.send comes down to (see send_of): a request's write without
        # send()'s Python call (_alone, _write).
        self.send_now = send_of(transport)
        self.proto = proto
        # Reentrant so that its holder is known (_is_owned, recorded in C as it is
        # acquired): a signal handler can run inside any round of it, and a call it
        # makes on this connection must not wait for its own thread (see _nested).
        self.lock = cast("_OwnedLock", threading.RLock())
        # Reentrant only so that its holder is known (_is_owned): a Ctrl-C landing just
        # after an acquire returns cannot leave it held by a thread that has moved on.
        self.send_lock = cast("_OwnedLock", threading.RLock())
        self.deferred = []  # notifications of nested calls, not yet written (see _defer)
        self.pending: dict[Id, _Waiter] = {}
        # A batch's calls are pending as one _BatchWaiter (see there); the core gives
        # the array answering one whole as one BatchAnswer.
        self.batch_waiters = {}
        proto.whole_batches = True
        # The reader's turn and the outbox claim hold their owner's thread id (0: free),
        # for the same reason: whatever an interruption cuts short, its handler can tell
        # what this thread holds (see _let_go).
        self.reading = 0
        # Small requests left by callers while another thread has claimed the outbox
        # (``sending``: it holds the send lock or waits for it, and writes them after
        # its own request before it gives the claim up; see _RequestSender.send).
        # Both under ``lock``.
        self.outbox: list[tuple[_Waiter, bytes]] = []
        self.sending = 0
        # The waiter of the last lone call that took its reply in _alone's short way,
        # untouched (nobody else can reach it any more), for the next lone call to use
        # instead of a new one (speed: ~1.5k instructions a call). A list: taken with
        # one pop() and given back with one append(), each a single C step, so no
        # interruption or other thread can find one waiter in two places.
        self.spare: list[_Waiter] = []
        # When the last lone call began, and the transport's peer_closed (None: it
        # cannot tell): see _RequestSender._closed_while_quiet.
        self.quiet_mark = _monotonic()
        self.peer_closed = getattr(transport, "peer_closed", None)
        self.lost: str | None = None
        self.lost_cause: BaseException | None = None
        # Encodes a request object as one newline-framed line (None with Content-Length
        # framing): see request.
        self.dumps_line = proto.codec.dumps_line if proto.framing == "newline" else None
        # orjson's writer when dumps_line is JsonCodec's own and writes with it, else None (see request).
        self.orjson_dumps = proto.codec.orjson_dumps if proto.framing == "newline" else None
        # Whether a read that leaves a reply partly in is followed by reading what has
        # arrived already, before parsing (see feed_ready): the newline framer would
        # scan the part. Not with Content-Length framing: its framer reads a frame in
        # parts at no cost, and before parsing cannot tell a whole frame from part of
        # one (in_message is True for both), so every reply cost a read that found nothing.
        self.read_ahead = proto.framing == "newline"
        # The last error with id null that no call could take (e.g. "message too
        # large" answering a notification), until a reply follows it (a whole one:
        # per message, however the bytes were split into reads): told with
        # ConnectionLost if one follows.
        self.said: str | None = None
        self.unread: tuple[int, str] | None = None  # (see ReplySettler.unread)

    # -- the usual call ----------------------------------------------------------

    def request(self, method: str, params: CallParams, timeout: float | None) -> Any:
        """Call ``method`` and wait for its result (RPCTimeout after ``timeout`` seconds).

        Speed: ``start`` then ``wait`` cost two lock rounds. A caller that is alone
        (no call pending, nobody reading, nobody sending: it takes the send lock in
        the same round) with a small request takes the reader's turn in the round
        that registers it. Only then: a caller holding the turn while its send
        waits (for the send lock, or for room in a full socket buffer) would keep
        everyone else's replies unread, and a server blocked writing them would
        never read that send (a hang, a7a2f56). A small send on an idle connection
        returns at once. That caller then sends and reads in _alone; the usual
        call (alone, as most are) is checked for first, in a lock round of its own.

        A small request made while another thread has claimed the outbox is left
        there for that thread to write (see send): this caller sends nothing and
        goes straight to waiting for its reply, where it may take the reading turn.

        An exception anywhere here (Ctrl-C can land between any two steps) frees
        what this thread holds and forgets its call (see _let_go).

        A call made while this thread is inside a call on this connection (from a
        signal handler) waits for nothing this thread holds: while it waits for a
        reply, or is inside a round of the lock, the call is refused at once (see
        _refused; a lone call on an idle connection is served: it waits for nothing but
        its reply); while it sends (or has
        claimed the outbox), the call is not left in the outbox for that suspended
        send but goes to send(): if this thread holds the send lock, that closes the
        connection (as for any call then: see _reclaim), else it waits for the lock.
        """
        proto = self.proto
        id_ = next(proto.ids)  # (proto.next_id() without its Python call: ~0.4k instructions)
        dumps_line = self.dumps_line
        if dumps_line is not None:
            # Speed: proto.encode_request's work in line (call_value's object, so the same
            # bytes): three Python calls less, ~0.2 us in-process (~1.5k instructions).
            if params is None:
                request = {"jsonrpc": "2.0", "method": method, "id": id_}
            else:
                request = {"jsonrpc": "2.0", "method": method, "params": params, "id": id_}
            dumps = self.orjson_dumps
            if dumps is None:
                data = dumps_line(request)
            else:
                # And dumps_line's own work in line (see there: change all three): orjson's output,
                # returned at once when it is small and holds no null (so no NaN or
                # Infinity), without dumps_line's Python call (~0.4k instructions).
                try:
                    data = dumps(request, None, ORJSON_LINE_OPTS)
                except (TypeError, ValueError):  # an int past 64 bits, a lone surrogate, ...
                    data = dumps_line(request)  # (orjson refuses it again: the stdlib decides)
                else:
                    if len(data) >= SMALL_OUTPUT or data.replace(b"null", b"") is not data:
                        data = finite(request, data)
        else:
            data = proto.encode_request(method, params, id_)
        deadline = None if timeout is None else time.monotonic() + timeout
        small = len(data) <= _EARLY_TURN
        if small and not (self.reading or self.pending or self.sending):
            now = _monotonic()
            if now - self.quiet_mark > _QUIET and self.peer_closed is not None:
                self._closed_while_quiet(method)
            self.quiet_mark = now
            # Speed: the usual call, alone on the connection: the lead case below, in a
            # lock round that checks only that (~35 bytecodes less), with the last lone
            # call's waiter (see spare). Looked at without the lock first, so that a
            # call made while others are in flight goes straight to the general way;
            # again under it. This is the call's only lock round when its first read
            # is its reply (see _alone).
            send_lock = self.send_lock
            waiter = None
            try:
                with self.lock:
                    if (
                        self.lost is None
                        and not (self.reading or self.pending or self.sending)
                        and not send_lock._is_owned()
                        and send_lock.acquire(False)
                    ):
                        self.reading = _get_ident()
                        spare = self.spare
                        waiter = spare.pop() if spare else _Waiter(method, id_)
                        waiter.id = id_
                        waiter.method = method
                        self.pending[id_] = waiter
                        if proto.unread:  # (see ClientConnection.unread_before)
                            proto.witness_call(id_)
                if waiter is not None:
                    return self._alone(waiter, data, deadline, timeout)
            except BaseException:
                self._let_go(() if waiter is None else (waiter,))
                raise
        waiter = _Waiter(method, id_)
        reading = self.reading
        if reading and reading == threading.get_ident():
            raise self._refused(method)  # (before the try: what this thread holds is its outer call's)
        if self.lock._is_owned():  # inside a round of it (a signal handler's call): as above
            raise self._refused(method, _INSIDE)
        try:
            with self.lock:
                if self.lost is not None:
                    raise self._lost_error(method)
                sending = self.sending
                # Not for this thread to write later: it is inside its own send (a signal handler's call).
                queued = small and sending and sending != threading.get_ident() and not self.send_lock._is_owned()
                if queued:
                    self.outbox.append((waiter, data))
                    locked = lead = drain = False
                else:
                    send_lock = self.send_lock
                    # (Held already by this thread: a leftover, or a call from a signal
                    # handler that interrupted this thread's send; send() deals with it.)
                    locked = not send_lock._is_owned() and send_lock.acquire(False)
                    lead = locked and small and not self.reading and not self.pending
                    # Claim the outbox, unless reading; a caller still to wait for the send
                    # lock claims it only if it may wait for ever (no deadline): it could
                    # not give up waiting while others' requests depend on it.
                    drain = not lead and not self.sending and (locked or deadline is None)
                    if lead:
                        self.reading = threading.get_ident()
                    elif drain:
                        self.sending = threading.get_ident()
                self.pending[waiter.id] = waiter
                if proto.unread:  # (see ClientConnection.unread_before)
                    proto.witness_call(id_)
            if lead:  # (the state changed since the look above, or a signal handler's call)
                return self._alone(waiter, data, deadline, timeout)
            if not queued:
                try:
                    self.send(data, deadline, method, locked=locked, drain=drain, timeout=timeout)
                except ConnectionLost as exc:
                    if waiter.error is not None:
                        # The server answered this call before it closed (see _read_last_words).
                        raise waiter.error from exc
                    raise
            self.wait(waiter, deadline, timeout)
        except BaseException:
            self._let_go((waiter,))
            raise
        return waiter.outcome()

    def _alone(self, waiter: _Waiter, data: bytes, deadline: float | None, call_timeout: float | None) -> Any:
        """The usual call's send and read: request's lead case (_write, then _lead), in few Python calls.

        The caller (request) holds the send lock and the reader's turn, ``waiter`` is
        pending, and an exception leaves what this thread holds to its handler
        (_let_go). The request is written, the send lock released, and one read
        made. When that read is exactly one line holding this call's success reply
        (the usual case), the turn is handed back without a lock round (see
        _wake_follower), the result returned and ``waiter`` kept for the next lone call
        (``spare``). Anything else (another call's reply, an error, part of a line,
        several lines, a failed read) goes on as in _lead: _read_replies takes what
        this read gave first, as if it had made the read.

        Speed: the general way (_lead, _read_replies, success_id) costs ~90 bytecodes
        and three Python calls more per call. (``call_timeout``: the call's, for an
        RPCTimeout's message; ``deadline`` is that many seconds from its start.)
        """
        try:
            if deadline is None:
                try:
                    self.send_now(data)  # (_write's work without its call)
                except BaseException as exc:
                    self._write_failed(exc, waiter.method, True, None)
            else:
                self._write(data, deadline, waiter.method, True, call_timeout)
        except ConnectionLost as exc:
            if isinstance(waiter.error, ConnectionLost):  # fail_all's: its cause is what broke the link
                raise waiter.error from waiter.error.__cause__
            if waiter.error is not None:
                # The server answered this call before it closed (see _read_last_words).
                raise waiter.error from exc
            raise
        try:  # (not contextlib.suppress: no object made per call)  # noqa: SIM105
            self.send_lock.release()
        except RuntimeError:  # freed already: a signal handler's call closed the connection (_reclaim)
            pass
        if self.deferred:  # a signal handler's notification, made while this thread sent (see _defer)
            self._flush_deferred()
        handed_back = own = False
        # Whether this thread holds bytes taken off the connection and not yet handed
        # out, as _lead's ``taken``; in that list only once _read_replies, which sets it,
        # is called. Speed: a local for the usual call, no list made (~0.3k instructions).
        took = False
        taken: list[bool] | None = None
        try:
            first: bytes | OSError | None = None
            timeout = None if deadline is None else deadline - time.monotonic()
            if timeout is None or timeout > 0:  # (else _read_replies finds the deadline passed)
                try:
                    first = self.transport.recv(RECV_SIZE, timeout)
                except OSError as exc:  # TimeoutError too: _read_replies handles it as its own read's
                    first = exc
            if isinstance(first, bytes):
                took = True
                proto = self.proto
                value = proto.decode_line(first)
                if value is not None:  # one whole line (else the framer's: _read_replies)
                    first = None
                    # This call's plain success reply: _ReplyReader._own_success's test
                    # (kept in line: the shared method, tried, cost ~0.36k instructions
                    # per call, callgrind; change both), then the turn handed back. A
                    # reply decode_line has tested already needs only its id looked at
                    # (that first test is this path's alone: _own_success, the reading
                    # loop's, tests the members as before, whoever decoded the value).
                    if (
                        (value is proto.plain_reply and value["id"] == waiter.id)
                        or (
                            type(value) is dict
                            and len(value) == 3
                            and "result" in value
                            and value.get("jsonrpc") == "2.0"
                            and type(id_ := value.get("id")) is int
                            and id_ == waiter.id
                        )
                        or success_id(value) == waiter.id
                    ):
                        if self.said is not None:
                            self.said = None  # a reply after it (see _ReplyReader._settle_lines)
                        # One step (in C, atomic): from here nobody else can reach
                        # ``waiter`` (fail_all and the readers find calls in pending).
                        if self.pending.pop(waiter.id, None) is not None:
                            took = False  # (nothing left unsettled: an interruption closes nothing)
                            result = value["result"]
                            # The turn handed back without a lock round (see _wake_follower).
                            self.reading = 0
                            if self.pending:  # others called meanwhile: one may wait for the turn
                                self._wake_follower()
                            handed_back = own = True
                        else:  # failed by close(): its round, which stored the error, has ended once we hold the lock
                            self._release_reader()
                            handed_back = True
                    else:  # another call's reply, or an error: as _read_replies settles it
                        handed_back = self._settle_lines([value], waiter)
                        took = False
            if not handed_back:
                taken = [took]
                handed_back = self._read_replies(waiter, deadline, taken, first)
        except BaseException:  # as in _lead
            self._interrupted(took if taken is None else taken[0])
            self._abandon(waiter)
            raise
        finally:
            if not handed_back and self.reading == threading.get_ident():
                self._release_reader()
        if own:
            # Never filled in (its reply was taken here, out of everyone's reach): as
            # good as new. Given back only here, after the handler above: an
            # interruption there would mark it interrupted while another call uses it.
            self.spare.append(waiter)
            return result
        if waiter.done:
            if waiter.error is None:  # (outcome()'s work in line)
                return waiter.value
            raise waiter.error
        self.wait(waiter, deadline, call_timeout)
        return waiter.outcome()
