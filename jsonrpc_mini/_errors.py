"""The one exception tree of jsonrpc_mini.

Every exception the library raises derives from :class:`RPCError`::

    RPCError(code, message, data=None)        base; .code .message .data .method
    ├── ParseError          -32700  invalid JSON was received
    ├── InvalidRequest      -32600  the JSON is not a valid request object
    ├── MethodNotFound      -32601  no such method
    ├── InvalidParams       -32602  the arguments do not fit the method's signature
    ├── InternalError       -32603  the handler failed, or its result is not JSON
    ├── ServerError         -32000..-32099  implementation-defined server errors
    ├── RemoteError         any other code sent by the peer
    ├── ConnectionLost      (also ConnectionError) the connection broke; .code is None
    └── RPCTimeout          (also TimeoutError) a call ran out of time; .code is None

A handler that raises any ``RPCError`` sends its code, message and data to the caller.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

__all__ = [
    "ConnectionLost",
    "InternalError",
    "InvalidParams",
    "InvalidRequest",
    "MethodNotFound",
    "ParseError",
    "RPCError",
    "RPCTimeout",
    "RemoteError",
    "ServerError",
    "error_class_for",
]


class RPCError(Exception):
    """Base of every jsonrpc_mini exception; carries a JSON-RPC error object.

    ``code`` is the JSON-RPC error code (``None`` for local failures such as a lost
    connection), ``message`` the human text, ``data`` the optional extra value, and
    ``method`` the name of the remote method involved, when known.
    """

    code: int | None
    message: str
    data: Any
    method: str | None

    def __init__(self, code: int | None, message: str, data: Any = None) -> None:
        super().__init__(code, message, data)
        self.code = code
        self.message = message
        self.data = data
        self.method = None

    def __str__(self) -> str:
        where = f"{self.method}: " if self.method else ""
        code = "" if self.code is None else f"[{self.code}] "
        message = "(no message)" if self.message is None else self.message  # e.g. RPCError(-32000, None)
        return f"{where}{code}{message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r}, data={self.data!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.code, self.message, self.data, self.method))


def _rebuild(cls: type[RPCError], code: int | None, message: str, data: Any, method: str | None) -> RPCError:
    exc = cls.__new__(cls)  # not Exception.__new__: ConnectionLost/RPCTimeout are OSErrors
    RPCError.__init__(exc, code, message, data)
    exc.method = method
    return exc


class _FixedCodeError(RPCError):
    """An error whose code is fixed by the JSON-RPC 2.0 specification."""

    CODE: int = -32603
    DEFAULT_MESSAGE: str = "Internal error"

    def __init__(self, message: str | None = None, data: Any = None) -> None:
        super().__init__(self.CODE, self.DEFAULT_MESSAGE if message is None else message, data)


class ParseError(_FixedCodeError):
    """-32700: the peer sent bytes that are not valid JSON (or not UTF-8)."""

    CODE = -32700
    DEFAULT_MESSAGE = "Parse error"


class InvalidRequest(_FixedCodeError):
    """-32600: the JSON sent is not a valid JSON-RPC 2.0 request object."""

    CODE = -32600
    DEFAULT_MESSAGE = "Invalid Request"


class MethodNotFound(_FixedCodeError):
    """-32601: the method does not exist or is not available."""

    CODE = -32601
    DEFAULT_MESSAGE = "Method not found"


class InvalidParams(_FixedCodeError):
    """-32602: the arguments do not match the method's signature."""

    CODE = -32602
    DEFAULT_MESSAGE = "Invalid params"


class InternalError(_FixedCodeError):
    """-32603: the handler raised, or its result could not be encoded as JSON."""

    CODE = -32603
    DEFAULT_MESSAGE = "Internal error"


class ServerError(RPCError):
    """-32000..-32099: an implementation-defined server error."""


class RemoteError(RPCError):
    """An error response whose code is outside the ranges the specification names."""


class ConnectionLost(RPCError, ConnectionError):
    """The connection broke (or was closed) before the call completed; ``code`` is None.

    ``request_sent`` is False when no byte of the call's request was written (the
    connection was already lost or closed, or never made): the server cannot have
    run it, so even a call that is not idempotent may be retried on a new
    connection. True when the request may have reached the server (it may have run).
    """

    request_sent: bool = True

    def __init__(self, message: str = "connection lost", *, request_sent: bool = True) -> None:
        RPCError.__init__(self, None, message)
        self.request_sent = request_sent

    def __reduce__(self) -> tuple[Any, ...]:
        rebuild, args = super().__reduce__()[:2]
        return (rebuild, args, {"request_sent": self.request_sent})


class RPCTimeout(RPCError, TimeoutError):
    """The call ran out of time; ``code`` is None. A reply arriving later is dropped."""

    def __init__(self, message: str = "call timed out") -> None:
        RPCError.__init__(self, None, message)


# Tracebacks, reprs and pickles name a class by its __module__: the package users import
# it from, not this private module (``jsonrpc_mini.ConnectionLost``). Pickling looks the
# class up there, where ``jsonrpc_mini/__init__`` exports every one of them.
for _public in (
    RPCError,
    ParseError,
    InvalidRequest,
    MethodNotFound,
    InvalidParams,
    InternalError,
    ServerError,
    RemoteError,
    ConnectionLost,
    RPCTimeout,
):
    _public.__module__ = "jsonrpc_mini"
del _public

_FIXED: dict[int, type[_FixedCodeError]] = {
    cls.CODE: cls for cls in (ParseError, InvalidRequest, MethodNotFound, InvalidParams, InternalError)
}


def error_class_for(code: int) -> type[RPCError]:
    """Return the exception class that an error response with ``code`` raises."""
    fixed = _FIXED.get(code)
    if fixed is not None:
        return fixed
    if -32099 <= code <= -32000:
        return ServerError
    return RemoteError


def error_from_response(code: int, message: str, data: Any, method: str | None) -> RPCError:
    """Build the exception for an error response received for ``method``."""
    cls = error_class_for(code)
    exc: RPCError
    exc = cls(message, data) if issubclass(cls, _FixedCodeError) else cls(code, message, data)
    exc.method = method
    return exc


def unreadable_reply(message: str, method: str | None) -> RPCError:
    """The error of the one call in flight when a reply arrived that cannot be decoded (``message``: why).

    A plain :class:`RPCError` with code None, as :func:`unusable_reply`'s.
    """
    exc = RPCError(None, f"the server's reply could not be read: {message}")
    exc.method = method
    return exc


def lost_link_error(
    reason: str, cause: BaseException | None, method: str | None, *, sent: bool = True
) -> ConnectionLost:
    """The ConnectionLost of a call of ``method`` on a lost link (both clients).

    ``reason`` says why the link was lost; ``cause`` (its ``__cause__``) is the
    exception that broke it, None for a close. ``sent`` False: the call was refused
    before any byte of it was written (its ``request_sent``).
    """
    exc = ConnectionLost(reason, request_sent=sent)
    exc.__cause__ = cause
    exc.method = method
    return exc


def detached(exc: BaseException) -> BaseException:
    """``exc`` to keep as a lost connection's cause: a copy without the traceback (``exc`` if it cannot be copied).

    A traceback holds the frames the exception passed through and, by their
    ``f_back``, the whole stack of the call that met it, every local of it: kept by
    a connection, that stack would outlive the call for as long as the client
    lives. The copy has the same type, arguments and attributes (errno, an SSL
    error's reason); ``exc`` itself is left as it is for whoever handles it.
    """
    try:
        bare = copy.copy(exc)
        # (a class whose __init__ formats its message from other arguments rebuilds
        # them differently: "bad 5" became "bad bad 5")
        alike = type(bare) is type(exc) and bare.args == exc.args
    except Exception:  # an exception class that cannot be rebuilt from its arguments
        return exc
    return bare if alike else exc


def unread_mark(pending: Iterable[object], message: str) -> tuple[int, str]:
    """What a link keeps of an unreadable reply no call took, for ``unread_since``.

    (the highest integer id among ``pending``, the calls waiting when it came;
    ``message``, its parse error): the calls sent before it are those up to that id.
    """
    return max((id_ for id_ in pending if type(id_) is int), default=0), message


def unread_since(unread: tuple[int, str] | None, id_: object) -> str:
    """What an RPCTimeout of call ``id_`` adds when an unreadable reply came since that call was sent.

    ``unread``: the link's last unreadable reply no call took, as (the highest id
    pending when it came, its parse error); ids grow, so call ``id_`` was sent
    before it came when ``id_`` is at most that id. Else (or None): nothing.
    """
    if unread is None or type(id_) is not int or id_ > unread[0]:
        return ""
    return f" (meanwhile the server sent a reply that could not be read: {unread[1]})"


def unusable_reply(reason: str, method: str | None) -> RPCError:
    """The error of a call whose reply arrived but cannot be used (not valid JSON-RPC 2.0, nested too deep).

    A plain :class:`RPCError` with code None: the server's answer is lost, the connection is not.
    """
    exc = RPCError(None, f"the server's reply cannot be used: {reason}")
    exc.method = method
    return exc
