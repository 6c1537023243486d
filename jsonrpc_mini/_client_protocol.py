"""The client side of the sans-IO JSON-RPC connection: numbering requests, reading replies.

See ``_protocol`` for the events and what both sides share.
"""

from __future__ import annotations

import itertools
import reprlib
from collections import deque
from collections.abc import Sequence
from typing import Any

from ._codec import (
    ErrorResponse,
    Id,
    Notification,
    Params,
    Request,
    Response,
    call_value,
    encode_message,
    parse_response,
)
from ._errors import InvalidRequest
from ._frames import deeper_than
from ._framing import FrameError, FramingName
from ._json import JsonCodec
from ._protocol import DEFAULT_MAX_DEPTH, DEFAULT_MAX_MESSAGE_SIZE, NOT_ONE, ClientEvent, Closed, Violation, _Base

__all__ = ["ClientConnection"]

# How an unusable reply is shown in errors and logs: bounded in size and nesting
# (str() of a value 1,000 levels deep raises RecursionError; of 16 MiB takes a while).
_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxdict, _SHOWN.maxlist, _SHOWN.maxstring, _SHOWN.maxother = 4, 8, 8, 60, 60


def _reply_values(value: Any) -> list[Any]:
    """The replies one JSON value from a server holds: a batch reply's members, else the value itself.

    An empty array is a value of its own (``parse_reply`` finds it is no reply).
    """
    return value if type(value) is list and value else [value]


def _answered_id(value: Any) -> Id | None:
    """The call an unusable reply names: its integer or string id (None for a request from the server)."""
    if type(value) is not dict or "method" in value:
        return None
    id_ = value.get("id")
    return id_ if type(id_) is int or type(id_) is str else None


class ClientConnection(_Base):
    """Client side of one connection: numbers requests and parses replies.

    A reply nested deeper than ``max_depth`` is decoded whole before it is refused
    (its size is bounded by ``max_message_size``), so that its id is known: the
    call it answers fails (a :class:`Violation` with that id) instead of waiting.
    """

    _DEPTH_AFTER_DECODING = True

    def __init__(
        self,
        *,
        framing: FramingName = "newline",
        codec: JsonCodec | None = None,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_depth: int = DEFAULT_MAX_DEPTH,
    ) -> None:
        if framing == "auto":
            raise ValueError("a client must choose its framing: 'newline' or 'content-length'")
        super().__init__(framing, codec, max_message_size, max_depth)
        self._ids = itertools.count(1)
        self._queue: deque[ClientEvent] = deque()

    def next_id(self) -> int:
        """A fresh request id."""
        return next(self._ids)

    def next_ids(self, count: int) -> list[int]:
        """``count`` fresh request ids (a batch's) in one step."""
        return list(itertools.islice(self._ids, count))

    def encode(self, message: Request | Notification | Sequence[Request | Notification]) -> bytes:
        """Frame a request, a notification, or a list of them as one batch array."""
        return self._frame(encode_message(message, self.codec.dumps))

    def encode_request(self, method: str, params: Params, id_: Id) -> bytes:
        """Frame one request (the same bytes as ``encode(Request(method, params, id_))``)."""
        return self._line(call_value(method, params, id_, False))

    def encode_values(self, values: list[dict[str, Any]]) -> bytes:
        """Frame request objects (as ``call_value`` makes them) as one batch array."""
        return self._frame(self.codec.dumps(values))

    def decode_lines(self, data: bytes, limit: int, start: int = 0) -> tuple[list[Any], int]:
        """Decode up to ``limit`` whole compact lines of ``data[start:]`` without the framer.

        Returns the JSON values (one per line, in order; see below for a batch
        reply) and the offset just past
        the last line taken, or ``([], start)`` when the line at ``start`` does not
        qualify: then nothing is consumed, and the caller gives the bytes to
        :meth:`receive_data` as usual. A line qualifies
        when nothing is buffered or queued before it, it starts with ``{`` and it
        decodes, strictly, to exactly what the framer would read from it (a run
        of lines is taken at once only when that is sure, see
        ``ServerConnection.receive_requests``). A line on its own may also be a
        batch reply (an array): then its members are the values, as
        :meth:`next_event` gives them. The values are not checked as responses:
        check each with :meth:`parse_reply` (or as strictly as ``parse_response``).

        Speed: replies arrive as whole compact lines, one per read (a caller
        waiting for its reply) or many (pipelined calls); decoding a read's lines
        in one step skips the framer's bookkeeping and the reply objects.
        """
        if self._queue or limit < 1:
            return [], start
        end = data.find(b"\n", start) + 1
        if end != len(data) and limit > 1:
            values, after = self._whole_lines(data, limit, start)
            if values:
                return values, after
        if not end:
            return [], start
        value = self._single_line(data[start:end] if start or end != len(data) else data, arrays=True)
        if value is NOT_ONE:
            return [], start
        return _reply_values(value), end

    def decode_line(self, data: bytes) -> Any:
        """The JSON object ``data`` holds when it is exactly one line :meth:`decode_lines` would take, else None.

        Nothing is consumed either way: after None the caller goes on with
        :meth:`decode_lines` or :meth:`receive_data`. As with ``decode_lines`` the
        value is not checked as a response. Speed: a caller waiting for each reply
        reads one reply line at a time; this is ``decode_lines``'s one-line case
        without its list, offsets and look for more lines.
        """
        if self._queue:
            return None
        value = self._single_line(data)
        return None if value is NOT_ONE else value

    def next_event(self) -> ClientEvent | None:
        """The next reply (or protocol violation), or None if more bytes are needed."""
        while not self._queue:
            event = self._framer.next_event()
            if event is None:
                return self._closed()
            if isinstance(event, FrameError):
                if event.value is not None:
                    self._queue.extend(self._too_deep(event.value))
                    continue
                self._queue.append(Violation(f"unreadable data from server: {event.message}"))
                if event.fatal:
                    self._queue.append(Closed(self._unreadable(event.code, event.message)))
                    self._closed_reported = True
            else:
                for value in _reply_values(event.value):
                    self._queue.append(self.parse_reply(value))
        return self._queue.popleft()

    def _unreadable(self, code: int, message: str) -> str:
        """Why this client closes a connection whose bytes it cannot read (a fatal frame error)."""
        if code == InvalidRequest.CODE:  # (the one fatal -32600: a message over the limit)
            return (
                f"a reply exceeded this client's max_message_size ({self.max_message_size} bytes), so the"
                " client closed the connection; raise its max_message_size option to accept larger replies"
            )
        return f"unreadable data from server ({message}), so the client closed the connection"

    def _too_deep(self, value: Any) -> list[Response | ErrorResponse | Violation]:
        """The events for a reply decoded whole but nested deeper than ``max_depth``.

        Each member of a batch reply is judged on its own, as a reply alone would be:
        only the members too deep fail. Walking the value costs time only here.
        """
        reason = f"nested deeper than this client's max_depth ({self._max_depth} levels)"
        return [
            Violation(reason, id=_answered_id(member))
            if deeper_than(member, self._max_depth)
            else self.parse_reply(member)
            for member in _reply_values(value)
        ]

    @staticmethod
    def parse_reply(value: Any) -> Response | ErrorResponse | Violation:
        """Check one JSON value from the server as a reply: what :meth:`next_event` makes of it.

        For values decoded without the framer (:meth:`decode_lines`). Each member of
        a batch reply is one such value.
        """
        reply = parse_response(value)
        if reply is None:
            return Violation(f"not a JSON-RPC 2.0 response: {_SHOWN.repr(value)}", id=_answered_id(value))
        if isinstance(reply, ErrorResponse) and reply.id is None:
            return Violation(f"error without id: {reply.error.message}", reply.error)
        return reply
