"""The sans-IO JSON-RPC connection: bytes in, events out; messages in, bytes out.

One :class:`ServerConnection` or :class:`ClientConnection` (in ``_client_protocol``)
per transport. They hold the framer and codec state, never a socket, thread or
clock, so every protocol behaviour can be tested by feeding bytes. This module
holds the server side: reading requests (the usual one in one step) and writing
replies. What both sides share is in ``_connection_base``, the events they yield
in ``_events`` (both imported here too).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, overload

from ._codec import (
    ErrorObject,
    ErrorResponse,
    Id,
    Notification,
    Outgoing,
    Request,
    Response,
    encode_message,
    message_value,
    parse_request,
)
from ._connection_base import DEFAULT_MAX_DEPTH, DEFAULT_MAX_MESSAGE_SIZE, NOT_ONE, _Base
from ._errors import InvalidRequest
from ._events import Batch, Call, ClientEvent, Closed, Reply, ServerEvent, Violation
from ._framing import FrameError, FramingName, JsonStreamFramer
from ._json import JsonCodec

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "NOT_ONE",
    "Batch",
    "Call",
    "ClientEvent",
    "Closed",
    "Reply",
    "ServerConnection",
    "ServerEvent",
    "Violation",
]

# receive_plain_call checks the arguments of a request with at most this many one by
# one (~12 ns each); with more, the codec's digit-run check costs less (~0.3 ns a byte).
_FEW_ARGUMENTS = 4
# The fixed text around each reply that encode_int_results writes.
_FIRST_ID = b'[{"jsonrpc":"2.0","id":'
_NEXT_ID = b'},{"jsonrpc":"2.0","id":'
_RESULT = b',"result":'


def _usual_request(value: Any) -> bool:
    """Whether a decoded message is the usual request, run from its JSON object.

    ``{"jsonrpc": "2.0", "method": str, "params": list, "id": int or str}``. KeyError:
    a member is missing; TypeError: ``value`` is a list (a batch). Speed: subscripts,
    not get() (a method call each); a member missing is rare and takes
    parse_request's way.
    """
    return (
        type(value["params"]) is list
        and (type(id_ := value["id"]) is int or type(id_) is str)
        and type(value["method"]) is str
        and value["jsonrpc"] == "2.0"
    )


class ServerConnection(_Base):
    """Server side of one connection: framing auto-detected unless told."""

    def __init__(
        self,
        *,
        framing: FramingName = "auto",
        codec: JsonCodec | None = None,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_depth: int = DEFAULT_MAX_DEPTH,
        scan_steps: int | None = None,
    ) -> None:
        super().__init__(framing, codec, max_message_size, max_depth, scan_steps)

    @property
    def scan_pending(self) -> bool:
        """True when ``next_event`` returned None only because it used up its ``scan_steps``.

        An event loop calls ``next_event`` again after letting other work run:
        one peer's large, deeply nested value then cannot hold the loop for
        seconds. Without ``scan_steps`` (the default) it is never set.
        """
        framer = self._framer
        return type(framer) is JsonStreamFramer and framer.scan_pending

    def next_event(self) -> ServerEvent | None:
        """The next thing to do, or None if more bytes are needed (or :attr:`scan_pending`)."""
        event = self._framer.next_event()
        if event is None:
            return None if self.scan_pending else self._closed()
        if isinstance(event, FrameError):
            return Reply(self.encode(ErrorResponse(None, ErrorObject(event.code, event.message))), event.fatal)
        value = event.value
        if isinstance(value, list):
            if not value:
                empty = ErrorResponse(None, ErrorObject(InvalidRequest.CODE, "Invalid Request: empty batch"))
                return Reply(self.encode(empty))
            return Batch(value)
        message = parse_request(value)
        if isinstance(message, ErrorResponse):
            return Reply(self.encode(message))
        return Call(message)

    def receive_request(self, data: bytes) -> Request | Notification | None:
        """Like :meth:`receive_data`, but return the call at once when ``data`` is exactly one.

        Speed: most clients send one compact request per line and wait for its reply,
        so most reads hold exactly one whole request. Such a read is decoded and
        checked here in one step, skipping the framer's bookkeeping and the event
        objects. Anything else (more or less than one line, bytes already buffered,
        Content-Length framing, a batch, an invalid request, nesting near the limit)
        goes to the framer as with ``receive_data`` and None is returned; then
        :meth:`next_event` yields what the bytes hold, errors included.
        """
        value = self._single_line(data)
        if value is not NOT_ONE:
            message = parse_request(value)
            if not isinstance(message, ErrorResponse):
                return message
        self.receive_data(data)
        return None

    @overload
    def receive_plain_call(
        self, data: bytes, newline: int | None = None, batches: Literal[False] = False
    ) -> dict[str, Any] | Request | Notification | None: ...
    @overload
    def receive_plain_call(
        self, data: bytes, newline: int | None, batches: bool
    ) -> dict[str, Any] | Request | Notification | Batch | None: ...
    @overload
    def receive_plain_call(
        self, data: bytes, *, batches: bool
    ) -> dict[str, Any] | Request | Notification | Batch | None: ...

    def receive_plain_call(
        self, data: bytes, newline: int | None = None, batches: bool = False
    ) -> dict[str, Any] | Request | Notification | Batch | None:
        """Like :meth:`receive_request`, but the usual request comes back as its JSON object.

        The usual request is ``{"jsonrpc": "2.0", "method": <string>, "params": <array>,
        "id": <integer or string>}`` (other members are ignored, as ``parse_request``
        ignores them). Speed: a driver that runs it straight from the object (as the
        sync server does) needs no Request; everything else is what ``receive_request``
        gives for the same bytes. A driver that has looked for the read's first newline
        passes its offset, ``data.find(b"\n")``, as ``newline`` (it is not looked for again).

        With ``batches`` (the sync server), a read that is exactly one non-empty
        batch line comes back as the :class:`Batch` that :meth:`next_event` would
        give for it. Speed: the framer would copy the line into its buffer and out
        again (61 KB each for 1,000 calls).
        """
        loads = self.codec.unchecked_loads
        if (
            loads is not None
            and newline == len(data) - 1
            and self._between
            and 0 <= newline < self._short_line  # (so the line is not empty, and within it)
            and data[0] == 0x7B  # "{"
        ):
            # Speed: _single_line's work for the usual line (see there: one object, short,
            # the framer between values) in line, and the codec's digit-run check (~1.8k
            # instructions, two C passes and a copy of the line) replaced by a look at the
            # value: the usual request with few arguments, each an int or a string, holds
            # no float, so orjson's value is the codec's (see unchecked_loads). ~2.2k of
            # ~29.3k instructions per call (data[0], not data[:1] and len(data): ~0.3k of
            # them). Anything else takes the codec's check, or (a text orjson cannot
            # read, or with a digit run) the general way below.
            try:
                value = loads(data)
            except (ValueError, TypeError):
                value = NOT_ONE
            else:
                try:
                    if (
                        len(value) == 4  # (no other member: it could hold a float)
                        and type(params := value["params"]) is list
                        and (type(id_ := value["id"]) is int or type(id_) is str)
                        and type(value["method"]) is str
                        and value["jsonrpc"] == "2.0"
                    ):
                        if len(params) <= _FEW_ARGUMENTS:
                            for item in params:
                                if type(item) is not int and type(item) is not str:
                                    break
                            else:
                                return value  # type: ignore[no-any-return]
                        # More arguments, or one of another type: still the usual request if
                        # the codec's check lets orjson's value stand (no second look below).
                        if self.codec.orjson_exact(data):
                            return value  # type: ignore[no-any-return]
                        value = NOT_ONE
                except KeyError:
                    pass
                if value is not NOT_ONE and not self.codec.orjson_exact(data):
                    value = NOT_ONE
        else:
            value = NOT_ONE
        if value is NOT_ONE:
            value = self._single_line(data, batches, newline)
        if value is not NOT_ONE:
            # (value is a dict, or a list if the line starts with "[".)
            try:
                if _usual_request(value):
                    return value  # type: ignore[no-any-return]
            except KeyError:
                pass
            except TypeError:
                # A list (a string subscript raises this on a list, never on a dict):
                # a batch. Speed: no type test on the usual request's way. An empty
                # one goes on to the framer, which answers it.
                if value:
                    return Batch(value)
            message = parse_request(value)
            if not isinstance(message, ErrorResponse):
                return message
        self.receive_data(data)
        return None

    def receive_requests(self, data: bytes, limit: int, start: int = 0) -> tuple[list[Request | Notification], int]:
        """Take up to ``limit`` whole request lines from ``data[start:]`` in one decode.

        Returns the calls and the offset just past the last line taken; ``([], start)``
        when fewer than two lines qualify. Nothing is given to the framer: the
        caller goes on with the rest of ``data`` as usual (``receive_request`` per
        line, or ``receive_data``). Speed: a pipelining client's read holds many
        lines, and one decode of all of them costs less than one per line.

        A line qualifies when the framer is between values and the line starts with
        ``{``, is short enough that it cannot nest past ``max_depth`` and has
        balanced brackets with its strings closed on it (``lines_balanced``). Lines
        joined with a comma and a newline then decode to one value per line exactly
        when each line is one value, so the calls are those the framer would give;
        if the count differs, or any value is not a valid call, nothing is taken.
        """
        values, end = self._whole_lines(data, limit, start)
        calls: list[Request | Notification] = []
        for value in values:
            message = parse_request(value)
            if isinstance(message, ErrorResponse):
                return [], start
            calls.append(message)
        return calls, end

    def receive_plain_calls(
        self, data: bytes, limit: int, start: int = 0
    ) -> tuple[list[dict[str, Any] | Request | Notification], int]:
        """Like :meth:`receive_requests`, but the usual request comes back as its JSON object.

        As :meth:`receive_plain_call` gives it for a line on its own (the same test on
        the codec's value). Speed: the sync server runs it straight from the object
        (``_plain_reply``), so a pipelining client's calls take the way a lone
        request takes, without a Request and the general reply path (~150 bytecodes
        less per call for the server, traced).
        """
        values, end = self._whole_lines(data, limit, start)
        calls: list[dict[str, Any] | Request | Notification] = []
        for value in values:
            # (receive_plain_call's test. Every value here is an object: each line starts with "{".)
            try:
                if _usual_request(value):
                    calls.append(value)
                    continue
            except KeyError:
                pass
            message = parse_request(value)
            if isinstance(message, ErrorResponse):
                return [], start
            calls.append(message)
        return calls, end

    def encode_result(self, id_: Id, result: Any) -> bytes:
        """The framed reply for a call that returned ``result``."""
        try:
            return self._line({"jsonrpc": "2.0", "id": id_, "result": result})
        except BaseException:  # (not only TypeError: a result's own methods may raise anything)
            return self.encode(Response(id_, result))  # the general path turns it into -32603

    def encode_int_results(self, ids: list[Id], results: list[int]) -> bytes | None:
        """Frame the replies of a batch's calls that all succeeded, every result an ``int``.

        The bytes ``encode_replies`` writes for their JSON objects. Speed: no object
        per reply (~1.3k instructions to make and free, ~0.7k for orjson to walk):
        each list is written by one ``dumps``, split at its commas and woven into
        the replies' fixed text, ~1k instructions per reply. Neither an integer nor
        any other id but a string holds a comma; a string id that does splits into
        more pieces than there are ids, and the replies take ``encode_replies``.
        """
        dumps = self.codec.dumps
        try:
            written_ids = dumps(ids)[1:-1].split(b",")
            written_results = dumps(results)[1:-1].split(b",")
        except ValueError:  # an integer too long to write: encode_replies answers it
            written_ids = []
        if len(written_ids) != len(ids):
            replies = [{"jsonrpc": "2.0", "id": i, "result": r} for i, r in zip(ids, results, strict=True)]
            return self.encode_replies(replies)
        parts = [_NEXT_ID, b"", _RESULT, b""] * len(ids)
        parts[0] = _FIRST_ID
        parts[1::4] = written_ids
        parts[3::4] = written_results
        if self._framer.name == "content-length":
            parts.append(b"}]")
            return self._frame(b"".join(parts))
        parts.append(b"}]\n")
        return b"".join(parts)

    def encode(self, reply: Outgoing | Sequence[Response | ErrorResponse]) -> bytes:
        """Frame one reply, or a batch's replies as one array."""
        return self._frame(encode_message(reply, self.codec.dumps))

    def encode_batch(self, replies: Sequence[Response | ErrorResponse | None]) -> bytes | None:
        """Frame a batch's replies; None when every member was a notification."""
        return self.encode_replies([reply for reply in replies if reply is not None])

    def encode_replies(self, replies: Sequence[dict[str, Any] | Response | ErrorResponse]) -> bytes | None:
        """Frame a batch's replies as one array; None if there are none.

        A success may be given as its JSON object (``{"jsonrpc": "2.0", "id": ...,
        "result": ...}``) instead of a Response: speed, a batch member then needs no
        message object. A member that cannot be encoded becomes a -32603 error.
        """
        if not replies:
            return None
        # Speed: the usual batch's replies are all successes, given as their objects:
        # one pass in C tells, and they are encoded as they are (no list made again).
        values = (
            replies
            if set(map(type, replies)) == {dict}
            else [reply if isinstance(reply, dict) else message_value(reply) for reply in replies]
        )
        try:
            return self._line(values)
        except BaseException:  # (as encode_result: encode_message makes the -32603s)
            return self.encode([Response(r["id"], r["result"]) if isinstance(r, dict) else r for r in replies])
