"""The client side of the sans-IO JSON-RPC connection: numbering requests, reading replies.

See ``_connection_base`` for what both sides share, ``_events`` for the events,
``_client_batches`` for matching batch reply arrays to the batches sent.
"""

from __future__ import annotations

import itertools
import reprlib
from collections import deque
from collections.abc import Container, Sequence
from typing import Any

from ._client_batches import BatchAnswer, _BatchReplies
from ._codec import (
    CallParams,
    ErrorResponse,
    Id,
    Notification,
    Request,
    Response,
    call_value,
    encode_message,
    parse_response,
)
from ._connection_base import DEFAULT_MAX_DEPTH, DEFAULT_MAX_MESSAGE_SIZE, NOT_ONE, _Base
from ._errors import InvalidRequest, ParseError
from ._events import ClientEvent, Closed, Violation
from ._frames import deeper_than
from ._framing import FrameError, FramingName
from ._json import ORJSON_OPTS, JsonCodec
from ._json_write import _has_null as has_null
from ._reply_id import named_id

__all__ = ["BatchAnswer", "ClientConnection"]

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


class ClientConnection(_BatchReplies, _Base):
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
        # The request ids: next_id() and next_ids() take from it, and so may a
        # driver directly (``next(proto.ids)``: next_id() without its Python call).
        self.ids = itertools.count(1)
        self._queue: deque[ClientEvent | BatchAnswer] = deque()
        # The last value decode_line found to be a plain success reply: exactly
        # "jsonrpc": "2.0", an int or string "id" and an int or string "result". Its
        # reader tells its own reply by ``value is proto.plain_reply`` and the id
        # alone, without testing the members again (speed: ~35 bytecodes per call).
        self.plain_reply: Any = None
        # The batches sent and not answered yet, by their first id (see expect_batch
        # and _BatchReplies). Only single dict operations touch it: a sync client's
        # caller may add or forget a batch while another thread reads.
        self._batches: dict[Id, list[Id]] = {}
        # An error with id null answers a message the server could not read; the
        # drivers give it to the one call in flight only if no other message can be
        # its cause (see unread_before). ``unread``: a message that gets no reply (a
        # notification, a call given up on after it may have gone out) went out,
        # and the server may not have read it yet. ``witness``: the first call
        # registered since; its answer proves the server read past that message.
        self.unread = False
        self.witness: Id | None = None
        # Set by a driver that settles a batch as one (the sync client): an array that
        # answers one batch whole and in order comes as one BatchAnswer (from
        # decode_lines and next_event), not as its members (see _batch_reply).
        self.whole_batches = False

    def sent_unanswered(self) -> None:
        """A message that gets no reply went out (or may have): a notification, a call given up on.

        Until a call registered after it is answered, an error with id null may be
        that message's (the server could not read it: too large, too deep, cut
        short), so no call in flight is blamed for one (:meth:`unread_before`).
        """
        self.unread = True
        self.witness = None

    def witness_call(self, id_: Id) -> None:
        """A call ``id_`` is registered while :attr:`unread` (drivers call this only then)."""
        if self.witness is None:
            self.witness = id_

    def unread_before(self, pending: Container[Id]) -> bool:
        """Whether the server may still have to read a message that gets no reply.

        ``pending``: the ids of the calls still waiting for a reply. The server reads
        a connection's messages in order and answers one it cannot read as it reads
        it, so once a call sent after such a message is answered (it left
        ``pending``; a call given up on instead makes a new :meth:`sent_unanswered`),
        an error with id null cannot be that message's any more. The drivers mark
        a notification where its bytes take their place in the output (the sync
        client under the send lock, the aio client as it writes or holds them), so
        a call registered after the mark is written after the notification.
        """
        if not self.unread:
            return False
        witness = self.witness
        if witness is not None and witness not in pending:
            self.unread = False
            self.witness = None
            return False
        return True

    def next_id(self) -> int:
        """A fresh request id."""
        return next(self.ids)

    def next_ids(self, count: int) -> list[int]:
        """``count`` fresh request ids (a batch's) in one step."""
        return list(itertools.islice(self.ids, count))

    def encode(self, message: Request | Notification | Sequence[Request | Notification]) -> bytes:
        """Frame a request, a notification, or a list of them as one batch array.

        Encoding marks nothing: a driver calls :meth:`sent_unanswered` for a
        notification (or a batch holding one) where its bytes take their place in
        the connection's output, so that only calls written after it witness it.
        """
        return self._frame(encode_message(message, self.codec.dumps))

    def encode_request(self, method: str, params: CallParams, id_: Id) -> bytes:
        """Frame one request (the same bytes as ``encode(Request(method, params, id_))``)."""
        return self._line(call_value(method, params, id_, False))

    def encode_values(self, values: list[dict[str, Any]]) -> bytes:
        """Frame request objects (as ``call_value`` makes them) as one batch array."""
        return self._line(values)

    def encode_calls(self, method: Any, params: list[CallParams], ids: list[int]) -> bytes | None:
        """Frame requests of ``method`` with ``params`` and ``ids`` as one batch array, or None.

        The bytes :meth:`encode_values` writes for their ``call_value`` objects, or
        None when that is not sure here (no orjson, a codec subclass, a value orjson
        cannot write, a ``null`` written, params that are no array, a bracket inside
        an argument): then encode them that way. A call's params are as queued:
        the tuple of its positional arguments, an object (a dict) or None.

        Speed: no object per request (~2k instructions each to make, walk and free:
        ~3.2M of the client's ~13.8M for a 1,000-call batch, against ~1.0M this
        way). orjson writes the params and ids in one list, alternately, and two
        replaces weave that text into the requests: ``],`` (an array's end, then
        an id) gains the id's name, ``,[`` (an id, then an array) the next
        request's fixed text. When each params is an array (no id holds a
        bracket), the text has those two at least once per request (but the first
        ``,[``); more means one in an argument, which the lengths tell. The params
        are arrays when the text holds no ``null`` and no ``{`` (one memchr each);
        only if it holds a ``{`` are their types looked at.
        """
        dumps = self.codec.orjson_dumps
        count = len(params)
        if dumps is None or not count or count != len(ids):
            return None
        mixed: list[Any] = [None] * (2 * count)
        mixed[::2] = params
        mixed[1::2] = ids
        try:
            # (In a list of its own: the arguments sit as deep as in the request
            # objects, where orjson's depth limit meets them: it refuses alike.)
            text = dumps([mixed], None, ORJSON_OPTS)
            written_method = dumps(method, None, ORJSON_OPTS)
        except (TypeError, ValueError):
            return None
        if has_null(text):
            return None  # (None params, or maybe a NaN: the general way tells)
        if b"{" in text and set(map(type, params)) != {tuple}:
            return None  # (params given as an object)
        head = b'{"jsonrpc":"2.0","method":' + written_method + b',"params":'
        named = text.replace(b"],", b'],"id":')
        if len(named) - len(text) != 5 * count:
            return None
        body = named.replace(b",[", b"}," + head + b"[")
        if len(body) - len(named) != (len(head) + 1) * (count - 1):
            return None
        if self._framer.name == "content-length":
            return self._frame(b"".join((b"[", head, body[2:-2], b"}]")))
        return b"".join((b"[", head, body[2:-2], b"}]\n"))

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
        :meth:`next_event` gives them (or one :class:`BatchAnswer`: see
        ``whole_batches``). The values are not checked as responses: check
        each with :meth:`parse_reply` (or as strictly as ``parse_response``).

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
        if self._batches and type(value) is list and value:
            return self._batch_reply(value, self.whole_batches), end
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
        if (
            self._between
            and (newline := data.find(b"\n")) == len(data) - 1
            and 0 <= newline < self._short_line  # (so the line is not empty, and within it)
            and data[0] == 0x7B  # "{"
        ):
            # Speed: _single_line's usual case (the framer between values, a short line:
            # no size or depth test) without its call (change both). A line that does
            # not decode here takes _single_line's way below, which tells the framer.
            codec = self.codec
            loads = codec.unchecked_loads
            if loads is None:
                try:
                    return codec.loads(data)
                except ParseError:
                    pass
            else:
                # And as ServerConnection.receive_plain_call: orjson's value looked at
                # instead of the codec's digit-run check of the text (two C passes and a
                # copy). The usual reply, with an int or string id and result, holds no
                # float, so orjson read no too-long integer as one: its value is the
                # codec's (see JsonCodec.unchecked_loads). Any other is checked as the
                # codec checks it (orjson_exact), on the same text.
                try:
                    value = loads(data)
                except (ValueError, TypeError):
                    pass  # (the codec decides, below)
                else:
                    # Speed: subscripts, not get() (a method call each, ~0.1k instructions
                    # more). The value is an object (the line starts with "{"): a member
                    # missing is a KeyError.
                    try:
                        if (
                            len(value) == 3
                            and (type(id_ := value["id"]) is int or type(id_) is str)
                            and (type(result := value["result"]) is int or type(result) is str)
                            and value["jsonrpc"] == "2.0"
                        ):
                            self.plain_reply = value
                            return value
                    except KeyError:
                        pass
                    if codec.orjson_exact(data):
                        return value
        value = self._single_line(data)
        return None if value is NOT_ONE else value

    def next_event(self) -> ClientEvent | None:
        """The next reply (or protocol violation), or None if more bytes are needed.

        Not with ``whole_batches`` set (use :meth:`next_reply`): a BatchAnswer raises TypeError.
        """
        event = self.next_reply()
        if isinstance(event, BatchAnswer):
            raise TypeError("a BatchAnswer: this connection has whole_batches set; use next_reply()")
        return event

    def next_reply(self) -> ClientEvent | BatchAnswer | None:
        """:meth:`next_event`, which with ``whole_batches`` set may also give a :class:`BatchAnswer`."""
        while not self._queue:
            event = self._framer.next_event()
            if event is None:
                return self._closed()
            if isinstance(event, FrameError):
                if event.value is not None:
                    self._queue.extend(self._too_deep(event.value))
                    continue
                self._queue.append(
                    Violation(
                        f"unreadable data from server: {event.message}",
                        unreadable=event.message if event.opened else None,
                        id=named_id(event.text) if event.opened else None,
                        at_eof=event.at_eof or event.fatal,  # (fatal: the Closed below says why, to every call)
                    )
                )
                if event.fatal:
                    self._queue.append(Closed(self._unreadable(event.code, event.message)))
                    self._closed_reported = True
            else:
                value = event.value
                if self._batches and type(value) is list and value:
                    value = self._batch_reply(value, self.whole_batches)
                for member in _reply_values(value):
                    self._queue.append(member if type(member) is BatchAnswer else self.parse_reply(member))
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
        if self._batches and type(value) is list and value:
            value = self._batch_reply(value)
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
        a batch reply is one such value. The events :meth:`decode_lines` adds after
        a batch reply's members (see :meth:`expect_batch`) are returned as they are.
        """
        reply = parse_response(value)
        if reply is None:
            if type(value) is Violation or type(value) is ErrorResponse:
                return value
            return Violation(f"not a JSON-RPC 2.0 response: {_SHOWN.repr(value)}", id=_answered_id(value))
        if isinstance(reply, ErrorResponse) and reply.id is None:
            return Violation(f"error without id: {reply.error.message}", reply.error)
        return reply
