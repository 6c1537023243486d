"""The method registry: what may be called, how arguments bind, what a call returns.

Arguments are checked with ``inspect.signature(fn).bind`` before the call, so a
mismatch is -32602 while a TypeError raised inside a handler stays -32603.

A ``functools.wraps`` wrapper is checked against the signature it reports (the
inner function's); arguments that do not bind to it but do bind to the
wrapper's own (such as ``*args, **kwargs``: a decorator that supplies an
argument) reach the wrapper, as a local call would. If that call then raises a
TypeError before the inner function starts, the arguments did not fit: -32602.
"""

from __future__ import annotations

import inspect
import logging
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, overload

from ._codec import ErrorObject, ErrorResponse, Notification, Params, Request, Response, split_params
from ._errors import InternalError, InvalidParams, MethodNotFound, RPCError
from ._refusal_log import DROPPED

__all__ = [
    "PLAIN_RESULTS",
    "Peer",
    "Prepared",
    "Registry",
    "await_result",
    "error_response",
    "internal_error",
    "outcome_response",
    "peer_prefix",
]

log = logging.getLogger("jsonrpc_mini")

F = TypeVar("F", bound=Callable[..., Any])


# Results that cannot be awaitable (inspect.isawaitable costs an ABC check per call);
# both servers' drivers test a handler's result against these first.
PLAIN_RESULTS = frozenset({int, float, str, bool, list, dict, tuple, type(None)})


class Peer(Protocol):
    """A served connection, as a failing call's log line names it (``peer_label()`` runs only then)."""

    def peer_label(self) -> str:
        """The connection's name in the server's log lines, e.g. ``connection from 127.0.0.1:5555``."""
        ...


def peer_prefix(peer: Peer | None) -> str:
    """``peer``'s label and a colon, to begin a log line ('' if there is none)."""
    if peer is None:
        return ""
    try:
        return f"{peer.peer_label()}: "
    except Exception:  # (a label is no reason to lose the line)
        return ""


async def await_result(awaitable: Any) -> Any:
    """What an ``async def`` handler's awaitable gives (the sync server runs it with asyncio.run)."""
    return await awaitable


@dataclass(frozen=True, slots=True)
class Prepared:
    """A call whose method exists and whose arguments bind: ready to run."""

    message: Request | Notification
    function: Callable[..., Any]
    args: list[Any]
    kwargs: dict[str, Any]

    def run(self) -> Any:
        """Call the handler (its result may be a coroutine for async handlers)."""
        return self.function(*self.args, **self.kwargs)


class Registry:
    """Named handlers, shared by the sync and asyncio servers."""

    def __init__(self) -> None:
        self._methods: dict[str, Callable[..., Any]] = {}
        self._signatures: dict[str, inspect.Signature | None] = {}
        # name -> (fewest, most) positional arguments that bind when no keyword is
        # passed (most None: any number); absent when a keyword-only one is required.
        self._arity: dict[str, tuple[int, int | None]] = {}
        # Speed: name -> (handler, fewest, most) for the methods in _arity (most
        # sys.maxsize for any number): resolve's usual case, a list of arguments that
        # binds, in one lookup (~0.65k of ~2.9k instructions less per call). Changed in
        # place only: the sync server's sessions hold it (plain_handlers).
        self._positional: dict[str, tuple[Callable[..., Any], int, int]] = {}
        # name -> (wrapper's own signature, what to call) for functools.wraps wrappers
        # whose own signature differs from the one they report: resolve's fallback.
        self._wrappers: dict[str, tuple[inspect.Signature, Callable[..., Any]]] = {}

    @property
    def methods(self) -> dict[str, Callable[..., Any]]:
        """A copy of the registered name -> handler map."""
        return dict(self._methods)

    @property
    def plain_handlers(self) -> Mapping[str, tuple[Callable[..., Any], int, int]]:
        """Live and read-only: name -> (handler, fewest, most), for the methods a list of
        ``fewest`` to ``most`` arguments binds to for sure (``resolve``'s usual case)."""
        return self._positional

    @property
    def handlers(self) -> Mapping[str, Callable[..., Any]]:
        """The registered name -> handler map itself, live and read-only: for lookups on hot paths."""
        return self._methods

    def register_function(self, function: Callable[..., Any], name: str | None = None) -> Callable[..., Any]:
        """Make ``function`` callable remotely as ``name`` (default: its ``__name__``)."""
        if not callable(function):
            raise TypeError(f"register_function needs a callable, got {type(function).__name__}")
        if name is None:
            name = getattr(function, "__name__", None)
            if not isinstance(name, str) or name == "<lambda>":
                raise ValueError("this callable has no usable __name__: pass name=")
        if not isinstance(name, str) or not name:
            raise ValueError("a method name must be a non-empty string")
        self._methods[name] = function
        self._arity.pop(name, None)
        self._positional.pop(name, None)
        self._wrappers.pop(name, None)
        try:
            signature = inspect.signature(function)
        except (TypeError, ValueError):  # some builtins have no signature: let the call decide
            self._signatures[name] = None
            return function
        self._signatures[name] = signature
        fallback = _wrapper_fallback(function, signature, name)
        if fallback is not None:
            self._wrappers[name] = fallback
        arity = _positional_arity(signature)
        if arity is not None:
            self._arity[name] = arity
            self._positional[name] = (function, arity[0], sys.maxsize if arity[1] is None else arity[1])
        return function

    @overload
    def register(self, function: F, /) -> F: ...

    @overload
    def register(self, function: None = None, /, *, name: str | None = None) -> Callable[[F], F]: ...

    def register(self, function: F | None = None, /, *, name: str | None = None) -> Any:
        """Decorator form: ``@server.register`` or ``@server.register(name="x")``."""
        if isinstance(function, str):  # @server.register("x"): the name is keyword-only
            raise TypeError(
                f"register() takes the function; give a name by keyword: @server.register(name={function!r})"
            )
        if function is not None:
            self.register_function(function, name)
            return function

        def decorate(fn: F) -> F:
            self.register_function(fn, name)
            return fn

        return decorate

    def register_instance(self, instance: object, prefix: str = "") -> list[str]:
        """Register the public methods of ``instance`` as ``prefix + name``.

        Only names without a leading underscore that are callable and not inherited
        from ``object`` are exposed; there is no dotted traversal into attributes.
        Returns the names registered.
        """
        if not isinstance(prefix, str):  # (None, say, failed at the first method with a bare TypeError)
            raise TypeError(f"prefix must be a str such as 'calc.' ('' for none), not {prefix!r}")
        if inspect.isclass(instance):
            _refuse_a_class_with_methods(instance)
        names = []
        for attr in dir(instance):
            if attr.startswith("_") or hasattr(object, attr):
                continue
            if isinstance(inspect.getattr_static(instance, attr, None), property):
                continue  # a property is not a method, and reading it could run code
            try:
                member = getattr(instance, attr)
            except AttributeError:  # e.g. a descriptor that refuses instance access
                continue
            if callable(member) and not inspect.isclass(member):
                self.register_function(member, prefix + attr)
                names.append(prefix + attr)
        return names

    def prepare(self, message: Request | Notification) -> Prepared:
        """Find the handler and bind the arguments; raise MethodNotFound/InvalidParams."""
        function, args, kwargs = self.resolve(message.method, message.params)
        return Prepared(message, function, args, kwargs)

    def resolve(self, method: str, params: Params) -> tuple[Callable[..., Any], list[Any], dict[str, Any]]:
        """The handler and the arguments to call it with; raise MethodNotFound/InvalidParams."""
        known = self._positional.get(method)
        if known is not None and type(params) is list and known[1] <= len(params) <= known[2]:
            return known[0], params, {}  # these arguments bind for sure (see below)
        function = self._methods.get(method)
        if function is None:
            raise MethodNotFound(f"Method not found: {_quote(method)}")
        if type(params) is list:
            args: list[Any] = params
            kwargs: dict[str, Any] = {}
        else:
            try:
                args, kwargs = split_params(params)
            except ValueError as exc:
                raise InvalidParams(f"Invalid params: {exc}") from None
        arity = self._arity.get(method)
        if arity is not None and not kwargs and arity[0] <= len(args) and (arity[1] is None or len(args) <= arity[1]):
            # Speed: these arguments bind for sure; Signature.bind costs ~4 us a call.
            return function, args, kwargs
        signature = self._signatures.get(method)
        if signature is not None:
            try:
                signature.bind(*args, **kwargs)
            except TypeError as exc:
                wrapper = self._wrappers.get(method)
                if wrapper is not None:  # a functools.wraps wrapper: what it accepts itself
                    try:
                        wrapper[0].bind(*args, **kwargs)
                    except TypeError:
                        pass
                    else:
                        return wrapper[1], args, kwargs
                raise InvalidParams(f"Invalid params for {_quote(method)}: {_cut(str(exc))}") from None
        return function, args, kwargs


def _refuse_a_class_with_methods(cls: type) -> None:
    """Refuse ``register_instance(Store)`` where ``Store()`` was meant.

    Its plain methods, registered unbound, would take each caller's first argument as
    ``self``: every call a -32602 naming the wrong argument. A class of static and class
    methods only (a namespace) is fine.
    """
    for attr in dir(cls):
        if attr.startswith("_") or hasattr(object, attr):
            continue
        if inspect.isfunction(inspect.getattr_static(cls, attr, None)):
            raise TypeError(
                f"register_instance() got the class {cls.__name__}, whose method {attr!r} needs an"
                f" instance (its first argument would be self): pass an instance, {cls.__name__}()"
            )


def _wrapper_fallback(
    function: Callable[..., Any], reported: inspect.Signature, name: str
) -> tuple[inspect.Signature, Callable[..., Any]] | None:
    """For a functools.wraps wrapper: its own signature and what to call when only that binds."""
    if getattr(function, "__wrapped__", None) is None:
        return None
    try:
        own = inspect.signature(function, follow_wrapped=False)
    except (TypeError, ValueError):
        return None
    if own == reported:
        return None
    code = getattr(inspect.unwrap(function), "__code__", None)
    if code is None or inspect.iscoroutinefunction(function):
        return own, function  # (an async wrapper's TypeError comes when awaited: -32603)

    def checked(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except TypeError as exc:
            tb = exc.__traceback__
            while tb is not None:
                if tb.tb_frame.f_code is code:
                    raise  # raised inside the inner function: the handler's own error
                tb = tb.tb_next
            raise InvalidParams(f"Invalid params for {_quote(name)}: {_cut(str(exc))}") from None

    return own, checked


def _positional_arity(signature: inspect.Signature) -> tuple[int, int | None] | None:
    """How many positional arguments bind (no keywords given), or None if a keyword is required."""
    fewest = most = 0
    unbounded = False
    for param in signature.parameters.values():
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            most += 1
            if param.default is param.empty:
                fewest = most
        elif param.kind == param.VAR_POSITIONAL:
            unbounded = True
        elif param.kind == param.KEYWORD_ONLY and param.default is param.empty:
            return None
    return fewest, None if unbounded else most


def _quote(name: str) -> str:
    # Error messages quote names the peer sent, never much of them (no echo of the request).
    return repr(name) if len(name) <= 64 else repr(name[:64]) + "..."


def _cut(text: str) -> str:
    return text if len(text) <= 200 else text[:200] + "..."


def _has_code(exc: BaseException) -> bool:
    """Whether ``exc`` is an RPCError with an integer code (a refusal its caller is told), not a failure."""
    return isinstance(exc, RPCError) and isinstance(exc.code, int) and not isinstance(exc.code, bool)


def error_response(id_: Any, exc: BaseException, method: str, debug: bool, peer: Peer | None = None) -> ErrorResponse:
    """The error reply for a call that raised ``exc`` (a failure logged names ``peer``, the caller)."""
    # The specification wants an integer code: an RPCError without one (None for a
    # local error, such as ConnectionLost from a call the handler made, or a
    # handler's mistake) is answered as an internal error, which a client can read.
    if isinstance(exc, RPCError) and isinstance(exc.code, int) and not isinstance(exc.code, bool):
        message = exc.message
        try:
            if not isinstance(message, str):
                message = str(message)
        except Exception:  # a message object whose str() fails: no reply can carry it
            name = type(exc).__name__
            log.error("%smethod %r raised %s with a message that cannot be shown", peer_prefix(peer), method, name)
        else:
            return ErrorResponse(id_, ErrorObject(int(exc.code), message, exc.data))
    log.error("%smethod %r raised %s", peer_prefix(peer), method, type(exc).__name__, exc_info=exc)
    if not debug:
        return internal_error(id_, method)
    data = {"type": type(exc).__name__, "traceback": "".join(traceback.format_exception(exc))}
    # With debug on the traceback is sent anyway: the message names the exception too,
    # so that str() of the client's error says what went wrong without reading data.
    try:
        said = _cut(str(exc))
    except Exception:  # an exception whose str() fails: its type alone
        said = ""
    return internal_error(id_, method, data, f"{type(exc).__name__}: {said}" if said else type(exc).__name__)


def internal_error(id_: Any, method: str, data: Any = None, detail: str = "") -> ErrorResponse:
    """The -32603 reply of a call of ``method`` that failed on the server (``detail`` after a colon, if any)."""
    message = f"Internal error in {method!r}: {detail}" if detail else f"Internal error in {method!r}"
    return ErrorResponse(id_, ErrorObject(InternalError.CODE, message, data))


def outcome_response(
    message: Request | Notification,
    result: Any = None,
    exc: BaseException | None = None,
    *,
    debug: bool = False,
    peer: Peer | None = None,
) -> Response | ErrorResponse | None:
    """The reply for a finished call: None for notifications, whatever happened (``peer``: see error_response)."""
    if not isinstance(message, Request):
        # (As error_response: an RPCError without an integer code, ConnectionLost from a
        # call the handler made, say, is the handler's failure, not a refusal.)
        if exc is not None and not _has_code(exc):
            name = type(exc).__name__
            log.error("%snotification %r raised %s", peer_prefix(peer), message.method, name, exc_info=exc)
        elif isinstance(exc, RPCError):  # unknown, bad arguments, the handler's refusal: no one is told but the log
            ignorable = isinstance(exc, MethodNotFound) and message.method.startswith("$/")
            DROPPED.dropped(lambda: peer_prefix(peer), message.method, exc.code, exc.message, ignorable)
        return None
    if exc is not None:
        return error_response(message.id, exc, message.method, debug, peer)
    return Response(message.id, result)
