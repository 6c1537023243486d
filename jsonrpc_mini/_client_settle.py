"""The sync client's settling side: storing replies in the calls waiting for them.

``ReplySettler`` holds what every reading thread hands over: replies matched to
their pending calls by id, protocol violations, and the one error path
(``fail_all``). ``_client_reader._ReplyReader`` adds the reading turn on top.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any, Protocol

from ._client_protocol import ClientConnection
from ._client_waiter import _Waiter
from ._codec import ErrorResponse, Id, Response
from ._errors import ConnectionLost, error_from_response, unreadable_reply, unusable_reply
from ._protocol import Closed, Violation
from ._transport import Transport

__all__ = ["ReplySettler"]

log = logging.getLogger("jsonrpc_mini")


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
    lost: str | None
    said: str | None

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
        self.said = None  # replies came after any error delivered before them
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
        # could not read: with a single call outstanding and no message that gets no
        # reply possibly unread (ClientConnection.unread_before) it can only be that
        # call's. So is a reply that cannot be decoded (its id is unknown: NaN in it,
        # say). Anything else is logged.
        with self.lock:
            if event.id is not None:
                only = self.pending.pop(event.id, None)
                if only is not None:
                    only.error = unusable_reply(event.reason, only.method)
                    only.done = True
            elif (
                (event.error is None and event.unreadable is None)
                or len(self.pending) != 1
                or self.proto.unread_before(self.pending)
            ):
                only = None
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
            elif event.unreadable is not None:
                self.said = f"a reply that could not be read, {event.unreadable}"
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
