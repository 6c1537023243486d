"""JSON-RPC 2.0 message objects and the rules that turn JSON values into them.

Incoming values are validated against the specification here; invalid ones become
the :class:`ErrorResponse` the peer should receive. Outgoing messages become JSON
bytes (unframed); a result that cannot be encoded turns into a -32603 error for
that one call.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ._errors import InternalError, InvalidRequest

__all__ = [
    "CallParams",
    "ErrorObject",
    "ErrorResponse",
    "Id",
    "Notification",
    "Params",
    "Request",
    "Response",
    "build_params",
    "call_value",
    "decoded_keys",
    "encode_message",
    "message_value",
    "parse_request",
    "parse_response",
    "split_params",
    "success_id",
    "valid_id",
]

log = logging.getLogger("jsonrpc_mini")

Id = str | int | float | None
Params = list[Any] | dict[str, Any] | None
# A call's params as the client sends them: positional arguments stay the tuple they
# came in (JSON has no tuples: a tuple is written as the same array its list would be).
CallParams = Params | tuple[Any, ...]


# Speed: a server makes a Request or Notification per call and per batch member. A
# frozen dataclass's own __init__ sets each field with object.__setattr__ (~0.45 us
# for a Request); these set the slots through their descriptors (~0.28 us), and the
# classes stay frozen (assigning a field still raises).
@dataclass(frozen=True, slots=True, init=False)
class Request:
    """A call that expects a reply with the same ``id``."""

    method: str
    params: Params
    id: Id

    def __init__(self, method: str, params: Params, id: Id) -> None:
        _set_request_method(self, method)
        _set_request_params(self, params)
        _set_request_id(self, id)


@dataclass(frozen=True, slots=True, init=False)
class Notification:
    """A call without an id: it runs, and nothing is ever sent back."""

    method: str
    params: Params

    def __init__(self, method: str, params: Params) -> None:
        _set_notification_method(self, method)
        _set_notification_params(self, params)


_set_request_method, _set_request_params, _set_request_id = (
    getattr(Request, name).__set__ for name in ("method", "params", "id")
)
_set_notification_method, _set_notification_params = (
    getattr(Notification, name).__set__ for name in ("method", "params")
)


@dataclass(frozen=True, slots=True)
class ErrorObject:
    """The ``error`` member of an error response."""

    code: int
    message: str
    data: Any = None


@dataclass(frozen=True, slots=True)
class Response:
    """A successful reply."""

    id: Id
    result: Any


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    """A failed reply; ``id`` is None when the request's id could not be read."""

    id: Id
    error: ErrorObject


Incoming = Request | Notification | ErrorResponse
Outgoing = Request | Notification | Response | ErrorResponse

_MISSING: Final = object()


def valid_id(value: object) -> bool:
    """Whether ``value`` may be used as a request id (string, number or null; not bool)."""
    return value is None or (isinstance(value, (str, int, float)) and not isinstance(value, bool))


def _invalid(id_: Id, why: str) -> ErrorResponse:
    return ErrorResponse(id_, ErrorObject(InvalidRequest.CODE, f"Invalid Request: {why}"))


def parse_request(value: Any) -> Incoming:
    """Validate one JSON value received by a server.

    Returns the :class:`Request` or :class:`Notification`, or the
    :class:`ErrorResponse` (-32600) to send back. The error echoes the id only when
    that id is valid.
    """
    if type(value) is dict:
        # Speed: the common case, a valid call, in as few checks as possible (a batch
        # runs this per member); anything else gets the precise checks below.
        method = value.get("method")
        params = value.get("params")
        if (
            type(method) is str
            and (params is None or type(params) is list or type(params) is dict)
            and value.get("jsonrpc") == "2.0"
        ):
            id_ = value.get("id", _MISSING)
            if id_ is _MISSING:
                return Notification(method, params)
            if type(id_) is int or type(id_) is str:
                return Request(method, params, id_)
    if not isinstance(value, dict):
        return _invalid(None, f"expected an object, got {_kind(value)}")
    id_ = value.get("id", _MISSING)
    if id_ is not _MISSING and not valid_id(id_):
        return _invalid(None, f"id must be a string, number or null, not {_kind(id_)}")
    echo: Id = None if id_ is _MISSING else id_
    if value.get("jsonrpc") != "2.0":
        return _invalid(echo, 'member "jsonrpc" must be exactly "2.0"')
    method = value.get("method", _MISSING)
    if not isinstance(method, str):
        why = 'member "method" is missing' if method is _MISSING else f'"method" must be a string, not {_kind(method)}'
        return _invalid(echo, why)
    params = value.get("params")
    if params is not None and not isinstance(params, (list, dict)):
        return _invalid(echo, f'"params" must be an array or an object, not {_kind(params)}')
    if id_ is _MISSING:
        return Notification(method, params)
    return Request(method, params, echo)


def success_id(value: Any) -> int | str | None:
    """The id of ``value`` if it is a plain success response, else None (look with ``parse_response``).

    Speed: the common case, in as few checks as possible; a client that finds an
    id here can take ``value["result"]`` without making a Response.
    """
    if type(value) is dict and "result" in value and "error" not in value and "method" not in value:
        id_ = value.get("id")
        if (type(id_) is int or type(id_) is str) and value.get("jsonrpc") == "2.0":
            return id_
    return None


def plain_successes(values: list[Any], start: int = 0) -> int:
    """How far the plain success responses in ``values`` run from ``start``: the index of the first other value.

    Each value before that index passes ``success_id``. Speed: the check of a batch
    reply's members in one loop, without a call per member.
    """
    end = start
    for value in values[start:] if start else values:
        if type(value) is dict and "result" in value and "error" not in value and "method" not in value:
            id_ = value.get("id")
            if (type(id_) is int or type(id_) is str) and value.get("jsonrpc") == "2.0":
                end += 1
                continue
        break
    return end


def decoded_keys(first: Any, keys: tuple[str, ...]) -> tuple[str, ...]:
    """``keys``, each as the decoder made it in ``first`` (an array's first member) when it has it.

    For the loops over a batch's members (the server's requests, a client's replies).
    Speed: a dict lookup whose key is the very object stored in the dict skips the
    string comparison (~60 of ~250 instructions per lookup). orjson makes one object
    per distinct key of a document (its key cache), the stdlib decoder too (its memo),
    so the first member's keys are the other members' keys as well; where they are
    not, the lookup compares the strings, as with the literals (the same results).
    ``keys`` itself when ``first`` is no object.
    """
    if type(first) is not dict:
        return keys
    own = {key: key for key in first}
    return tuple(own.get(key, key) for key in keys)


def parse_response(value: Any) -> Response | ErrorResponse | None:
    """Validate one JSON value received by a client; ``None`` if it is not a response."""
    id_ = success_id(value)
    if id_ is not None:
        return Response(id_, value["result"])
    if not isinstance(value, dict) or value.get("jsonrpc") != "2.0" or "method" in value:
        return None
    id_ = value.get("id", _MISSING)
    if id_ is _MISSING or not valid_id(id_):
        return None
    if "error" in value:
        err = value["error"]
        if not isinstance(err, dict):
            return None
        code = err.get("code")
        if not isinstance(code, int) or isinstance(code, bool):
            return None
        message = err.get("message")
        text = message if isinstance(message, str) else str(message)
        return ErrorResponse(id_, ErrorObject(code, text, err.get("data")))
    if "result" in value:
        return Response(id_, value["result"])
    return None


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def build_params(args: Sequence[Any], kwargs: Mapping[str, Any]) -> Params:
    """Shape call arguments as ``params``: array, object, or both via digit keys.

    Positional and keyword arguments together become one object whose keys
    ``"0"``, ``"1"``, ... hold the positional ones (JSON-RPC 1.1 WD convention).
    """
    if not kwargs:
        return list(args) if args else None
    if not args:
        return dict(kwargs)
    params: dict[str, Any] = {str(i): arg for i, arg in enumerate(args)}
    for key, arg in kwargs.items():
        if key in params:
            raise TypeError(f"keyword argument {key!r} collides with positional argument {key}")
        params[key] = arg
    return params


def _is_index(key: str) -> bool:
    return key.isascii() and key.isdigit()


def split_params(params: Params) -> tuple[list[Any], dict[str, Any]]:
    """Turn ``params`` into ``(args, kwargs)``; the inverse of :func:`build_params`.

    Raises ValueError if digit keys are not exactly ``"0"`` .. ``"n-1"``.
    """
    if params is None:
        return [], {}
    if isinstance(params, list):
        return params, {}
    indexed = [key for key in params if _is_index(key)]
    if not indexed:
        return [], params
    count = len(indexed)
    if set(indexed) != {str(i) for i in range(count)}:
        raise ValueError(f"positional keys must be '0'..'{count - 1}' without gaps or leading zeros")
    args = [params[str(i)] for i in range(count)]
    kwargs = {key: value for key, value in params.items() if not _is_index(key)}
    return args, kwargs


def message_value(message: Outgoing) -> dict[str, Any]:
    """The JSON object of one message."""
    if isinstance(message, Response):
        return {"jsonrpc": "2.0", "id": message.id, "result": message.result}
    if isinstance(message, ErrorResponse):
        err: dict[str, Any] = {"code": message.error.code, "message": message.error.message}
        if message.error.data is not None:
            err["data"] = message.error.data
        return {"jsonrpc": "2.0", "id": message.id, "error": err}
    if isinstance(message, Request):
        return call_value(message.method, message.params, message.id, False)
    return call_value(message.method, message.params, None, True)


def call_value(method: str, params: CallParams, id_: Id, notify: bool) -> dict[str, Any]:
    """The JSON object of a request (or, with ``notify``, a notification: no id)."""
    out: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        out["params"] = params
    if not notify:
        out["id"] = id_
    return out


# What the encoders say of a value they cannot write, quoted to the client (which needs it
# to fix the handler): built from type names only. Any other text (raised by a value's
# own code, an Enum's ``value`` say) may hold what the server keeps to itself: not quoted.
_ENCODER_SAYS: Final = re.compile(
    r"Object of type \w+ is not JSON serializable"
    r"|keys must be str, int, float, bool or None, not \w+"
    r"|NaN and Infinity are not valid JSON|Circular reference detected"
)


def encode_message(message: Outgoing | Sequence[Outgoing], dumps: Any) -> bytes:
    """Encode one message or a batch as JSON bytes (unframed).

    A response whose result or error data is not JSON (NaN, a set, ...) is replaced
    by a -32603 error for that call; requests that cannot be encoded raise
    TypeError/ValueError to the caller.
    """
    if not isinstance(message, (Request, Notification, Response, ErrorResponse)):
        items = list(message)
        try:
            # Speed: one dumps call for the whole batch (a call per member cost more
            # than the encoding itself). Only if some member cannot be encoded are
            # they encoded one by one, so that just that member becomes an error.
            whole: bytes = dumps([message_value(item) for item in items])
        except BaseException as exc:  # (see below)
            if not isinstance(exc, Exception) and not all(
                isinstance(item, (Response, ErrorResponse)) for item in items
            ):
                raise  # a client's batch: its Ctrl-C is the caller's, not to be retried away
            parts = [encode_message(item, dumps) for item in items]
            return b"[" + b",".join(parts) + b"]"
        return whole
    try:
        out: bytes = dumps(message_value(message))
        return out
    except BaseException as exc:
        # Not only TypeError: a result's own methods and a default= hook may raise
        # anything, SystemExit or GeneratorExit too. A reply still gets its -32603
        # (README: as a handler raising them itself); a request raises it to the caller.
        if not isinstance(message, (Response, ErrorResponse)):
            raise
        log.warning("reply for id %r could not be encoded as JSON: %s", message.id, exc)
        what = "error data" if isinstance(message, ErrorResponse) else "result"
        said = str(exc) if _ENCODER_SAYS.fullmatch(str(exc)) else None
        why = f"Internal error: {what} is not JSON-serialisable ({type(exc).__name__}{f': {said}' if said else ''})"
        fallback = ErrorResponse(message.id, ErrorObject(InternalError.CODE, why))
        out = dumps(message_value(fallback))
        return out
