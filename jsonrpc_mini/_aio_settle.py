"""Storing the replies an ``aio.RPCClient`` reads in their calls: the base of ``_aio_link.Link``.

``_deliver`` settles one event of the sans-IO core (a reply, an unusable reply, an
error with id null, the end of the connection) in the call it names; ``Link``
keeps the connection, reading, writing and timeouts. Moved out of ``_aio_link``.
"""

from __future__ import annotations

import logging

from ._aio_call_future import Call
from ._client_protocol import ClientConnection
from ._codec import ErrorResponse, Id, Response
from ._errors import error_from_response, unread_mark, unreadable_reply, unusable_reply
from ._protocol import Closed, Violation

__all__ = ["ReplySettler"]

log = logging.getLogger("jsonrpc_mini")


class ReplySettler:
    """Settles the core's events in the pending calls; ``Link`` sets the attributes below."""

    proto: ClientConnection
    pending: dict[Id, Call]  # the calls waiting for their reply, by id
    said: str | None  # the last error with id null given to no call, until a reply follows it
    # The last reply that could not be read and no call took: (the highest id pending
    # then, its parse error), for the RPCTimeouts of the calls sent before it
    # (_errors.unread_since). Kept, not cleared by later replies: they do not
    # explain a reply that is missing.
    unread: tuple[int, str] | None

    def fail_all(self, reason: str) -> None:
        """The single error path: fail every pending call (``Link``'s)."""
        raise NotImplementedError

    def _deliver(self, event: Response | ErrorResponse | Violation | Closed) -> None:
        if isinstance(event, Closed):
            self.fail_all(event.reason or "connection closed by the server")
            return
        if isinstance(event, Violation):
            self._violation(event)
            return
        self.said = None  # a reply after it: that error was not the server's last word
        future = self.pending.pop(event.id, None)
        if future is None:
            log.debug("dropping reply for unknown or timed-out id %r", event.id)
            return
        if future.done():  # the caller gave up (cancelled): drop the late reply
            return
        if type(event) is Response:
            future.set_result(event.result)
        else:
            err = event.error  # type: ignore[union-attr]
            future.set_exception(error_from_response(err.code, err.message, err.data, future.method))

    def _violation(self, event: Violation) -> None:
        # A reply that names a pending call but cannot be used fails that call: its
        # answer will not come. An error with id null answers a message the server
        # could not read: with a single call outstanding and no message that gets no
        # reply possibly unread (ClientConnection.unread_before) it can only be that
        # call's. So is a reply that cannot be decoded and whose id cannot be read
        # either (when it can, ``event.id`` names the call). Anything else is logged
        # (and an unreadable reply remembered for the timeouts: ``unread``).
        if event.id is not None:  # (also a reply that could not be read but whose id could)
            self.said = None  # a reply after it, though it cannot be used: as in _deliver
            future = self.pending.pop(event.id, None)
            if future is None:
                log.warning("ignoring message from server: %s", event.reason)
            elif not future.done():  # (done: the caller gave up)
                if event.unreadable is None:
                    future.set_exception(unusable_reply(event.reason, future.method))
                else:
                    future.set_exception(unreadable_reply(event.unreadable, future.method))
            return
        live = [id_ for id_, future in self.pending.items() if not future.done()]
        if (
            (event.error is None and event.unreadable is None)
            or len(live) != 1
            or self.proto.unread_before(self.pending)
        ):
            if event.error is not None:
                self.said = event.error.message
            elif event.unreadable is not None:
                self.said = f"a reply that could not be read, {event.unreadable}"
                self.unread = unread_mark(self.pending, event.unreadable)
            # A reply the server's close cut short: the calls get ConnectionLost for it.
            log.log(
                logging.DEBUG if event.at_eof else logging.WARNING, "ignoring message from server: %s", event.reason
            )
            return
        if event.error is not None:
            self._deliver(ErrorResponse(live[0], event.error))
            return
        self.said = None  # a reply after it, though it cannot be read: as in _deliver
        future = self.pending.pop(live[0])
        future.set_exception(unreadable_reply(event.unreadable or "", future.method))
