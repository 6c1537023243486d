"""What a batch hands out per queued call: a request's :class:`BatchResult`, a notification's ``Notice``.

A result holds its call's outcome once the batch is sent (``result()`` returns
the value or raises the error); before that, or when the batch's ``with`` block
raised and it was never sent, ``result()`` raises an RPCError saying so; when
sending it failed, the error the send raised (``send_failed``). The
queue of these and the builders that hand them out are in ``_batch``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, Protocol

from ._codec import Params
from ._errors import RPCError

__all__ = ["BatchResult", "Deferred", "Notice", "Outcome", "discarded", "not_sent", "send_failed"]


class Outcome(Protocol):
    """Anything whose ``outcome()`` returns a call's result or raises its error."""

    def outcome(self) -> Any:
        """The call's result; raises its error."""
        ...


class Deferred:
    """The outcome a callable gives."""

    __slots__ = ("_get",)

    def __init__(self, get: Callable[[], Any]) -> None:
        self._get = get

    def outcome(self) -> Any:
        return self._get()


def not_sent(method: str) -> RPCError:
    """The error of asking a batch member for its result before the batch was sent (naming ``method``)."""
    exc = RPCError(None, "the batch has not been sent yet (leave the with block first)")
    exc.method = method or None  # (str(exc) names it)
    return exc


def send_failed(method: str, exc: BaseException) -> RPCError:
    """A member's error when sending its batch raised ``exc``: the same error, naming ``method``.

    An RPCError (ConnectionLost, RPCTimeout, ...) is copied with its class, message,
    ``__cause__`` and ``request_sent``; anything else (an argument the encoder
    refused, a cancellation, Ctrl-C) becomes an RPCError naming it, which does not
    say whether the batch went out. Each member gets its own copy.
    """
    if isinstance(exc, RPCError):
        error = copy.copy(exc)  # (RPCError.__reduce__: class, code, message, data; request_sent)
        error.__cause__ = exc.__cause__
    else:
        error = RPCError(None, f"sending the batch raised {type(exc).__name__}")
        error.__cause__ = exc
    error.method = method or None  # (str(error) names it)
    return error


def discarded(method: str, exc_type: type[BaseException]) -> RPCError:
    """The error of a member of a batch whose block raised ``exc_type``: it will never be sent."""
    exc = RPCError(None, f"the batch was not sent: its with block raised {exc_type.__name__}")
    exc.method = method or None  # (str(exc) names it)
    return exc


class _Failed:
    """The outcome of a member that was never sent: raises its error."""

    __slots__ = ("_error",)

    def __init__(self, error: RPCError) -> None:
        self._error = error

    def outcome(self) -> Any:
        raise self._error


class BatchResult:
    """The future outcome of one call in a batch; ``result()`` once the batch is sent.

    A sender may make its own subclass (``BatchBuilder(send, make_result=...)``)
    that holds the outcome itself and overrides ``result()`` and ``_sent``.

    ``_params``: the call's params as queued (see QueuedCalls); set as it is queued.
    """

    __slots__ = ("_method", "_outcome", "_params")

    _params: Params | tuple[Any, ...]

    def __init__(self, method: str) -> None:
        self._method = method
        self._outcome: Outcome | None = None

    @property
    def method(self) -> str:
        """The remote method this result belongs to."""
        return self._method

    def result(self) -> Any:
        """The call's return value; raises that call's error (RPCError subclass)."""
        if self._outcome is None:
            raise not_sent(self._method)
        return self._outcome.outcome()

    @property
    def _sent(self) -> bool:
        return self._outcome is not None

    def _discard(self, error: RPCError) -> None:
        """The batch will not be sent (its block raised): ``result()`` raises ``error``."""
        self._outcome = _Failed(error)

    def __repr__(self) -> str:
        return f"<BatchResult {self.method!r} {'ready' if self._sent else 'pending'}>"


class Notice:
    """A queued notification: its method and params (as a BatchResult holds a call's; no result)."""

    __slots__ = ("_method", "_params")

    def __init__(self, method: str, params: Params) -> None:
        self._method = method
        self._params = params
