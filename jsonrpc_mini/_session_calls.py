"""Running the sync server's calls: a request (or a batch) in, the bytes of its reply out.

The part of a :class:`~jsonrpc_mini._session.Session` that dispatches; the threads
and the writing are the session's own (``_session``), the reading is in
``_session_read``. A batch's members run in ``_batch_serve``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ._batch_serve import batch_reply
from ._codec import Notification, Request
from ._dispatch import PLAIN_RESULTS, await_result, error_response, outcome_response
from ._errors import RPCError
from ._json import ORJSON_LINE_OPTS, SMALL_OUTPUT
from ._json_write import _finite as finite
from ._peer_names import session_label
from ._protocol import Batch, ServerConnection

if TYPE_CHECKING:
    from ._server import RPCServer, ServerOptions
    from ._session_drain import Drain
    from ._transport import Transport

__all__ = ["SHUTTING_DOWN", "SessionCalls"]

SHUTTING_DOWN = -32000
_SHUTTING_DOWN = RPCError(SHUTTING_DOWN, "Server error: the server is shutting down")
# The reply line of a call with an int id that returned an int (see _plain_reply).
_INT_REPLY = b'{"jsonrpc":"2.0","id":%d,"result":%d}\n'


class SessionCalls:
    """Runs one connection's calls; ``draining`` turns True once the server shuts down."""

    server: RPCServer
    draining: Drain | None
    _opts: ServerOptions
    _proto: ServerConnection
    _dumps_line: Callable[[Any], bytes]
    _positional: Mapping[str, tuple[Callable[..., Any], int, int]]  # the server's plain_handlers
    _name: str
    _transport: Transport

    def peer_label(self) -> str:
        """This connection in a log line: ``jsonrpc_mini-conn-3 (127.0.0.1:5555)`` (for a failing call's)."""
        return session_label(self._name, self._transport)

    def _answer(self, event: Request | Notification | Batch) -> bytes | None:
        """Run the call(s); the reply's bytes, or None when nothing is to be sent."""
        proto = self._proto
        if isinstance(event, Batch):
            return batch_reply(self, event.values)
        result, exc = self.execute(event)
        if exc is None and isinstance(event, Request):
            return proto.encode_result(event.id, result)
        reply = outcome_response(event, result, exc, debug=self._opts.debug, peer=self)
        return None if reply is None else proto.encode(reply)

    def _plain_reply(self, value: dict[str, Any]) -> bytes:
        """Run the usual request (as ``receive_plain_call`` checked it) straight from its object.

        Speed: what ``_execute`` and ``encode_result`` do for it, without a Request, an
        outcome tuple or the general reply path; errors take that path's functions.
        """
        id_ = value["id"]
        method = value["method"]
        if self.draining:
            return self._proto.encode(error_response(id_, _SHUTTING_DOWN, method, self._opts.debug))
        params = value["params"]
        try:
            # Speed: resolve's usual case (arguments that bind for sure) looked up right
            # here: its call, the tuple it returns and an empty keywords dict cost ~1.4k
            # of ~44k instructions per request.
            known = self._positional.get(method)
            if known is not None and known[1] <= (count := len(params)) <= known[2]:
                # One or two arguments passed one by one: a call the interpreter
                # specializes, without a tuple made of the list (see _batch_serve).
                if count == 2:
                    result = known[0](params[0], params[1])
                elif count == 1:
                    result = known[0](params[0])
                else:
                    result = known[0](*params)
            else:
                function, args, kwargs = self.server.resolve(method, params)
                result = function(*args, **kwargs)
            # (An int, the usual result, is looked at first: it is not awaitable, and the
            # test below costs a set lookup more.)
            if (kind := type(result)) is not int and kind not in PLAIN_RESULTS and inspect.isawaitable(result):
                result = asyncio.run(await_result(result))
                kind = type(result)
        except BaseException as exc:  # (see execute)
            return self._proto.encode(error_response(id_, exc, method, self._opts.debug, self))
        try:
            if kind is int and type(id_) is int:
                # Speed: the usual small reply written by formatting, as both codecs would
                # write it (two plain ints, so no NaN to look for): no dict, no codec
                # call and no scan of its output for "null" (~110 ns of ~190 ns). (An
                # int too long to write raises ValueError here too: see below.)
                return _INT_REPLY % (id_, result)
            # The request came as one line, so the framing is newline: the codec writes
            # the line itself (encode_result's work without its two calls).
            reply = {"jsonrpc": "2.0", "id": id_, "result": result}
            # (Not a Session attribute of its own: one more and the interpreter no longer
            # specializes the attribute lookups on Session, ~0.7k instructions per call.)
            dumps = self._proto.codec.orjson_dumps
            if dumps is None:
                return self._dumps_line(reply)
            # Speed: dumps_line's work in line (see JsonCodec.dumps_line: change all three):
            # orjson's output, returned at once when small and free of null (so of NaN
            # and Infinity), without dumps_line's Python call (~0.4k instructions).
            try:
                data = dumps(reply, None, ORJSON_LINE_OPTS)
            except (TypeError, ValueError):  # an int past 64 bits, a lone surrogate, ...
                return self._dumps_line(reply)  # (orjson refuses it again: the stdlib decides)
            if len(data) >= SMALL_OUTPUT or data.replace(b"null", b"") is not data:
                return finite(reply, data)
            return data
        except BaseException:  # (SystemExit from a hook too: encode_message's -32603)
            return self._proto.encode_result(id_, result)  # turns it into the -32603 it must be

    def execute(self, message: Request | Notification) -> tuple[Any, BaseException | None]:
        """Run one call: ``(result, None)``, or ``(None, exc)`` if it could not run or raised.

        A handler raising SystemExit, KeyboardInterrupt or the like gets a -32603 answer
        too: it runs in a connection's thread, where no signal arrives, so it raised
        that itself, and its caller must not be left without an answer.
        """
        if self.draining and isinstance(message, Request):
            return None, _SHUTTING_DOWN
        try:
            function, args, kwargs = self.server.resolve(message.method, message.params)
            result = function(*args, **kwargs)
            if type(result) not in PLAIN_RESULTS and inspect.isawaitable(result):
                result = asyncio.run(await_result(result))
        except BaseException as exc:
            return None, exc
        return result, None
