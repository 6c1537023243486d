"""The connection's events: what the sans-IO core hands its drivers.

``ServerConnection`` (``_protocol``) yields the server events (:class:`Call`,
:class:`Batch`, :class:`Reply`, :class:`Closed`); ``ClientConnection``
(``_client_protocol``) yields the client ones (responses, :class:`Violation`,
:class:`Closed`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._codec import ErrorObject, ErrorResponse, Id, Notification, Request, Response, parse_request

__all__ = ["Batch", "Call", "ClientEvent", "Closed", "Reply", "ServerEvent", "Violation"]


@dataclass(frozen=True, slots=True)
class Call:
    """A single request or notification to run."""

    message: Request | Notification


@dataclass(frozen=True, slots=True)
class Batch:
    """A batch: run the calls, keep the ready-made errors, answer all in one array.

    ``values`` are its members as received (JSON values, not yet checked): a
    driver may run valid calls straight from them, by the rules of ``items``.
    """

    values: list[Any]

    @property
    def items(self) -> list[Request | Notification | ErrorResponse]:
        """The members checked: each a call to run or the -32600 error to send in its place."""
        return [parse_request(value) for value in self.values]

    def without_notifications(self) -> Batch | None:
        """This batch less its notification members (None if none is left): what a server that
        is shutting down still answers of a batch that came after ``shutdown()`` began."""
        kept = [value for value in self.values if type(parse_request(value)) is not Notification]
        return Batch(kept) if kept else None


@dataclass(frozen=True, slots=True)
class Reply:
    """Bytes to send at once (an error the protocol itself answers); ``close`` after if set."""

    data: bytes
    close: bool = False


@dataclass(frozen=True, slots=True)
class Closed:
    """The peer closed its side and every message before that has been delivered.

    ``reason`` (client side) is set when this end must close instead: what the
    server sent cannot be read (a reply over ``max_message_size``, say).
    """

    reason: str | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Violation:
    """The server sent something that is not a valid response (client side).

    ``error`` is set for an error response with id null (the server could not
    read a request). ``id`` is set when the message, though unusable, names one
    (an integer or string ``id``, and no ``method``): the reply of that call,
    which should fail rather than wait for a reply that will not come.
    ``unreadable`` is set (to the parse error) for a message that could not be
    decoded but opens an object or array: perhaps a reply; ``id`` is then set too
    when the id it names could still be read for certain (``_reply_id``).
    ``at_eof``: a value the end of the stream cut short, the connection ending
    inside a reply rather than a message of the server's (logged at DEBUG); also
    set when this client closes the connection for it (a reply over
    ``max_message_size``): the ``Closed`` that follows gives every call the reason.
    """

    reason: str
    error: ErrorObject | None = None
    id: Id | None = None
    unreadable: str | None = None
    at_eof: bool = field(default=False, compare=False)


ServerEvent = Call | Batch | Reply | Closed
ClientEvent = Response | ErrorResponse | Violation | Closed
