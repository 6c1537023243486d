"""The sync client's settling side: storing replies in the calls waiting for them.

``ReplySettler`` holds what every reading thread hands over: replies matched to
their pending calls by id, protocol violations, and the one error path
(``fail_all``). ``_client_turn.ReadingTurn`` adds the reading turn's hand-over
on top, ``_client_reader._ReplyReader`` reading.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any, Final, Protocol

from ._client_protocol import BatchAnswer, ClientConnection
from ._client_waiter import _BatchWaiter, _Waiter
from ._codec import ErrorResponse, Id, Response, decoded_keys
from ._errors import (
    ConnectionLost,
    detached,
    error_from_response,
    lost_link_error,
    unread_mark,
    unreadable_reply,
    unusable_reply,
)
from ._protocol import Closed, Violation
from ._transport import Transport

__all__ = ["ReplySettler"]

log = logging.getLogger("jsonrpc_mini")


_KEYS: Final = ("jsonrpc", "id", "result")  # a plain success's (see decoded_keys)


class _OwnedLock(Protocol):
    """threading.RLock as the client's locks use it: ``_is_owned()`` tells whether this thread holds it.

    (An RLock records its owner in C as it is acquired, so no interruption can come
    between the two; threading.Condition relies on the same method. typeshed does
    not declare it.)
    """

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool: ...
    def release(self) -> None: ...
    def _is_owned(self) -> bool: ...
    def __enter__(self) -> bool: ...
    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class ReplySettler:
    """Pending calls of a connection and how replies, violations and failures reach them."""

    # Set by _Link.__init__.
    transport: Transport
    proto: ClientConnection
    lock: _OwnedLock
    pending: dict[Id, _Waiter]
    # The batches being sent or waited for, by their first id (added and removed by
    # their caller: _client.RPCClient._send_batch); one is *live* while its
    # _BatchWaiter is in ``pending``.
    batch_waiters: dict[Id, _BatchWaiter]
    lost: str | None
    # The exception that broke the connection (an OSError, say), if one did: the
    # ``__cause__`` of every ConnectionLost it gives, as ``raise ... from`` would set.
    lost_cause: BaseException | None
    said: str | None
    # The last reply that could not be read and no call took: (the highest id pending
    # then, its parse error), for the RPCTimeouts of the calls sent before it
    # (_errors.unread_since). Kept, not cleared by later replies: they do not
    # explain a reply that is missing.
    unread: tuple[int, str] | None

    def _deliver(self, event: Response | ErrorResponse | Violation | Closed | BatchAnswer) -> None:
        if isinstance(event, Closed):
            self.fail_all(event.reason or "connection closed by the server")
        elif isinstance(event, Violation):
            self._violation(event)
        elif isinstance(event, BatchAnswer):
            self._settle_answer(event)
        else:
            self._settle_one(event)

    def _settle_answer(self, answer: BatchAnswer) -> None:
        """Settle a batch's whole reply array (from the framer: see _take_answer)."""
        self.said = None  # a reply came after any error delivered before it
        with self.lock:
            batch, rest = self._take_answer(answer)
        if batch is not None:
            batch.wake()
        for value in rest:  # (as the framer's events would have been, one per member)
            self._deliver(self.proto.parse_reply(value))

    def _take_answer(self, answer: BatchAnswer) -> tuple[_BatchWaiter | None, list[Any]]:
        """Store a batch's whole reply array in its members (lock held): the batch (to wake), the values left.

        The values left are to settle one by one as any reply (the batch is then
        expanded, or still pending as one: see _BatchWaiter): all of the array's
        members (and the events of those it leaves out: ``batch_events``) if the
        batch is no longer pending as one (given up on, failed, or expanded
        already) or the array does not carry its ids in order; the members from
        the first that is no plain reply (a Violation: its handling needs the
        general way) on.
        """
        batch = self.pending.get(answer.first)
        if type(batch) is not _BatchWaiter:
            return None, self.proto.batch_events(answer)
        values = answer.members
        # The array should answer the batch in order (BatchAnswer): member i is waiter
        # i's reply, carrying its id. So a member of exactly three names, one
        # "jsonrpc": "2.0", one "result" and waiter i's id, is a plain success (as in
        # _ReplyReader._settle_lines). Speed: this loop tests that with three lookups
        # and len(), no calls or type tests (~550 instructions a member less than the
        # general loop below, ~0.6M of ~15.6M in a 1,000-call batch), and the id
        # test here spares the core a pass of its own (see _batch_reply): a member
        # it does not take (an error, a wrong id, anything unusual) makes it stop,
        # and _take_members goes on from there. (A member that is not what the
        # lookups expect raises KeyError or TypeError: the same. Nothing is stored
        # in a waiter before its member was found a plain success.)
        # Each member's id is set here too (see _BatchWaiter.ids). The keys are the
        # first member's own key objects (see decoded_keys).
        jsonrpc_key, id_key, result_key = decoded_keys(values[0], _KEYS)
        try:
            for waiter, value, id_ in zip(batch.members, values, batch.ids, strict=True):
                if len(value) != 3 or value[jsonrpc_key] != "2.0" or value[id_key] != id_:
                    break
                waiter.id = id_
                waiter.value = value[result_key]
                waiter.done = True
            else:
                del self.pending[answer.first]
                self.proto.forget_answered(answer)
                batch.numbered = True
                batch.done = True
                return batch, []
        except (KeyError, TypeError):
            pass
        if not self.proto.in_order(answer, batch.ids):
            # Not this batch's array in order after all. The members stored above carried
            # their own ids: they keep their replies. The array goes the general way,
            # member by member (the batch stays pending as one until one of them
            # concerns it: _pop expands it then, and drops the replies stored here).
            return None, self.proto.batch_events(answer)
        del self.pending[answer.first]
        self.proto.forget_answered(answer)
        return self._take_members(batch, values)

    def _take_members(self, batch: _BatchWaiter, values: list[Any]) -> tuple[_BatchWaiter, list[Any]]:
        """_take_answer's general loop: store ``values`` in ``batch``'s members not done (lock held)."""
        parse_reply = self.proto.parse_reply
        for waiter, value in zip(batch.members, values, strict=True):
            if waiter.done:  # (stored by _take_answer's loop: the members before its stop)
                continue
            # A plain success (as in _ReplyReader._settle_lines; its id is known to match).
            if type(value) is dict and len(value) == 3 and "result" in value and value.get("jsonrpc") == "2.0":
                waiter.value = value["result"]
            else:
                reply = parse_reply(value)
                if isinstance(reply, Response):
                    waiter.value = reply.result
                elif isinstance(reply, ErrorResponse):
                    err = reply.error
                    waiter.error = error_from_response(err.code, err.message, err.data, waiter.method)
                else:  # the rest goes the general way
                    self.pending[batch.id] = batch
                    self._expand(batch)
                    done = sum(member.done for member in batch.members)
                    return batch, values[done:]
            waiter.done = True
        batch.done = True
        return batch, []

    def _expand(self, batch: _BatchWaiter) -> None:
        """Put ``batch``'s members not done in ``pending`` in its place (lock held); see _BatchWaiter.

        The batch's entry leaves ``pending`` done and ``expanded``: its caller,
        waiting on it, wakes and waits for each member in turn.
        """
        batch.number()
        pending = self.pending
        if pending.get(batch.id) is batch:
            del pending[batch.id]
        for waiter in batch.members:
            if not waiter.done:
                # (A member queued by b.name(...) has these two empty until now: see
                # _client_waiter._QueuedWaiter. Only a call in ``pending`` is waited
                # for alone or woken.)
                waiter.waiting = False
                waiter.signal = None
                pending[waiter.id] = waiter
        batch.expanded = True
        batch.done = True
        batch.wake()

    def _expand_live(self) -> None:
        """Expand every batch still pending as one (lock held): a reply concerns single members."""
        for batch in list(self.batch_waiters.values()):  # (a copy: another thread may add one)
            if self.pending.get(batch.id) is batch:
                self._expand(batch)

    def _pop(self, id_: Id) -> _Waiter | None:
        """Take the waiter of call ``id_`` out of ``pending`` (lock held); None if nobody waits for it.

        The usual case is one dict pop. A reply for a member of a batch pending as one
        (missed, or the batch's own entry found under its first id) expands the
        batches pending as one first (see _BatchWaiter).
        """
        waiter = self.pending.pop(id_, None)
        if type(waiter) is _BatchWaiter:  # its first member's reply, alone
            self.pending[id_] = waiter  # (put back: expanding takes it out)
            self._expand(waiter)
        elif waiter is not None or not self.batch_waiters:
            return waiter
        self._expand_live()
        return self.pending.pop(id_, None)

    def _settle_one(self, reply: Response | ErrorResponse) -> None:
        with self.lock:
            waiter = self._fill(reply)
        if waiter is not None:
            waiter.wake()

    def _deliver_all(self, events: list[Response | ErrorResponse | Violation | Closed | BatchAnswer]) -> None:
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
        self.said = None  # replies came after any error delivered before them
        with self.lock:
            settled = [waiter for waiter in map(self._fill, replies) if waiter is not None]
        for waiter in settled:
            waiter.wake()

    def _fill(self, reply: Response | ErrorResponse) -> _Waiter | None:
        """Store ``reply`` in its waiter (lock held); None if nobody waits for it any more."""
        if isinstance(reply, Response):
            return self._fill_result(reply.id, reply.result)
        waiter = self._pop(reply.id)
        if waiter is None:
            log.debug("dropping reply for unknown or timed-out id %r", reply.id)
            return None
        err = reply.error
        waiter.error = error_from_response(err.code, err.message, err.data, waiter.method)
        waiter.done = True
        return waiter

    def _fill_result(self, id_: Id, result: Any) -> _Waiter | None:
        """Store a call's result in its waiter (lock held); None if nobody waits for it any more."""
        waiter = self._pop(id_)
        if waiter is None:
            log.debug("dropping reply for unknown or timed-out id %r", id_)
            return None
        waiter.value = result
        waiter.done = True
        return waiter

    def _violation(self, event: Violation) -> None:
        # A reply that names a pending call but cannot be used fails that call: its
        # answer will not come. An error with id null answers a message the server
        # could not read: with a single call outstanding and no message that gets no
        # reply possibly unread (ClientConnection.unread_before) it can only be that
        # call's. So is a reply that cannot be decoded and whose id cannot be read
        # either (when it can, ``event.id`` names the call). Anything else is logged
        # (and an unreadable reply remembered for the timeouts: ``unread``).
        with self.lock:
            if self.batch_waiters:  # (the calls counted below are single calls)
                self._expand_live()
            if event.id is not None:  # (also a reply that could not be read but whose id could)
                only = self.pending.pop(event.id, None)
                if only is not None:
                    if event.unreadable is None:
                        only.error = unusable_reply(event.reason, only.method)
                    else:
                        only.error = unreadable_reply(event.unreadable, only.method)
                    only.done = True
            elif (
                (event.error is None and event.unreadable is None)
                or len(self.pending) != 1
                or self.proto.unread_before(self.pending)
            ):
                only = None
                if event.unreadable is not None:
                    self.unread = unread_mark(self.pending, event.unreadable)
            else:
                only = self.pending.pop(next(iter(self.pending)))
                err = event.error
                if err is None:
                    only.error = unreadable_reply(event.unreadable or "", only.method)
                else:
                    only.error = error_from_response(err.code, err.message, err.data, only.method)
                only.done = True
            lost = self.lost
        if event.id is not None or only is not None:
            # A reply after an id-null error, even one that cannot be used (it names a
            # call), or an error some call takes: that error was not the server's last word.
            self.said = None
        if only is None:
            if event.error is not None:
                self.said = event.error.message
            elif event.unreadable is not None and event.id is None:  # (an id read: a late reply)
                self.said = f"a reply that could not be read, {event.unreadable}"
            # Once the connection is lost (closed by us, say, while a reply was half
            # received), what is left of it concerns nobody: no warning for it. Nor for
            # a reply the server's close cut short: the calls get ConnectionLost for it.
            quiet = lost or event.at_eof
            log.log(logging.DEBUG if quiet else logging.WARNING, "ignoring message from server: %s", event.reason)
            return
        only.wake()

    def lost_error(self, method: str | None, unknown: str = "connection lost", *, sent: bool = True) -> ConnectionLost:
        """The ConnectionLost of a call of ``method`` on this lost link.

        Its message says why the link was lost (``unknown`` if nothing was recorded);
        its ``__cause__`` is the exception that broke it, if one did. ``sent`` False:
        the call was refused before any byte of it was written.
        """
        return lost_link_error(self.lost or unknown, self.lost_cause, method, sent=sent)

    def fail_all(self, reason: str, cause: BaseException | None = None) -> None:
        """The single error path: mark the link lost (by ``cause``, if an exception) and fail every pending call.

        The transport is closed even if this is interrupted (Ctrl-C): a reader blocked
        in it returns only then. (A call not yet failed sees ``lost`` when it looks.)
        """
        try:
            with self.lock:
                if self.lost is None:
                    # The cause first: a look at ``lost`` without the lock (_defer) then finds both.
                    self.lost_cause = None if cause is None else detached(cause)
                    self.lost = reason if self.said is None else f"{reason} (the server said: {self.said})"
                waiters = list(self.pending.values())
                self.pending.clear()
                for waiter in waiters:
                    waiter.error = self.lost_error(waiter.method)
                    waiter.done = True  # after the error: see _deliver
            for waiter in waiters:
                waiter.wake()
        finally:
            self.transport.close()
