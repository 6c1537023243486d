"""Client-side batches: ``with client.batch() as b: r = b.add(1, 2)``."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any

from ._codec import Params, build_params
from ._errors import RPCError

__all__ = ["BatchBuilder", "BatchResult"]

_Sender = Callable[[list[tuple[str, Params, bool]]], list[Callable[[], Any]]]


class BatchResult:
    """The future outcome of one call in a batch; ``result()`` once the batch is sent."""

    __slots__ = ("_method", "_outcome")

    def __init__(self, method: str) -> None:
        self._method = method
        self._outcome: Callable[[], Any] | None = None

    @property
    def method(self) -> str:
        """The remote method this result belongs to."""
        return self._method

    def result(self) -> Any:
        """The call's return value; raises that call's error (RPCError subclass)."""
        if self._outcome is None:
            raise RPCError(None, f"{self._method}: the batch has not been sent yet (leave the with block first)")
        return self._outcome()

    def __repr__(self) -> str:
        state = "pending" if self._outcome is None else "ready"
        return f"<BatchResult {self._method!r} {state}>"


class _BatchMethod:
    __slots__ = ("_builder", "_name")

    def __init__(self, builder: BatchBuilder, name: str) -> None:
        self._builder = builder
        self._name = name

    def __getattr__(self, name: str) -> _BatchMethod:
        if name.startswith("_"):
            raise AttributeError(name)
        return _BatchMethod(self._builder, f"{self._name}.{name}")

    def __call__(self, /, *args: Any, **kwargs: Any) -> BatchResult:
        return self._builder.call(self._name, *args, **kwargs)


class BatchBuilder:
    """Collects calls; on leaving the ``with`` block sends them as one JSON array and waits.

    ``b.add(1, 2)`` / ``b.call("add", 1, 2)`` queue a request and return a
    :class:`BatchResult`; ``b.notify("log", "x")`` queues a notification. If the
    block raises, nothing is sent.
    """

    def __init__(self, send: _Sender) -> None:
        self._send = send
        self._calls: list[tuple[str, Params, bool]] = []
        self._results: list[BatchResult] = []
        self._sent = False

    def call(self, method: str, /, *args: Any, **kwargs: Any) -> BatchResult:
        """Queue a call of ``method``; returns its :class:`BatchResult`."""
        self._check_open()
        self._calls.append((method, build_params(args, kwargs), False))
        result = BatchResult(method)
        self._results.append(result)
        return result

    def notify(self, method: str, /, *args: Any, **kwargs: Any) -> None:
        """Queue a notification of ``method``."""
        self._check_open()
        self._calls.append((method, build_params(args, kwargs), True))

    def _check_open(self) -> None:
        if self._sent:
            raise RPCError(None, "this batch was already sent; start a new one with client.batch()")

    def __getattr__(self, name: str) -> _BatchMethod:
        if name.startswith("_"):
            raise AttributeError(name)
        return _BatchMethod(self, name)

    def __len__(self) -> int:
        return len(self._calls)

    def send(self) -> list[BatchResult]:
        """Send the queued calls now and wait for their replies (done by the ``with`` exit)."""
        self._check_open()
        self._sent = True
        if self._calls:
            outcomes = self._send(self._calls)
            for result, outcome in zip(self._results, outcomes, strict=True):
                result._outcome = outcome
        return list(self._results)

    def __enter__(self) -> BatchBuilder:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.send()
