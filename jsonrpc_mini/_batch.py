"""Client-side batches: ``with client.batch() as b: r = b.add(1, 2)``."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any

from ._codec import Params, build_params
from ._errors import RPCError
from ._remote import RemoteMethod, remote_attribute

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


class _Queued:
    """A batch's queued calls and results, and whether it was sent.

    Held by the builder and by the methods it hands out (``b.add``), never the
    other way round: a method kept on the builder refers to this, not to the
    builder, so no reference cycle keeps a builder (and its client) alive.
    """

    __slots__ = ("calls", "results", "sent")

    def __init__(self) -> None:
        self.calls: list[tuple[str, Params, bool]] = []
        self.results: list[BatchResult] = []
        self.sent = False

    def check_open(self) -> None:
        if self.sent:
            raise RPCError(None, "this batch was already sent; start a new one with client.batch()")

    def call(self, method: str, /, *args: Any, **kwargs: Any) -> BatchResult:
        self.check_open()
        self.calls.append((method, build_params(args, kwargs), False))
        result = BatchResult(method)
        self.results.append(result)
        return result


class _QueuedMethod(RemoteMethod[BatchResult]):
    """``b.add``: queues a call of ``add`` (``b.add.x`` gives a plain RemoteMethod of ``add.x``)."""

    __slots__ = ()

    def __call__(self, /, *args: Any, **kwargs: Any) -> BatchResult:
        # Speed: the queueing done here, not through the builder's call(): a batch of
        # 1,000 calls spends most of its client-side time making them.
        queued: _Queued = self._target  # type: ignore[assignment]
        if queued.sent:
            queued.check_open()
        method = self._name
        queued.calls.append((method, build_params(args, kwargs) if kwargs else list(args) if args else None, False))
        result = BatchResult(method)
        queued.results.append(result)
        return result


class _BatchQueue:
    """What the sync and asyncio batch builders share: queueing calls, handing out results."""

    def __init__(self) -> None:
        self._queued = _Queued()

    def call(self, method: str, /, *args: Any, **kwargs: Any) -> BatchResult:
        """Queue a call of ``method``; returns its :class:`~jsonrpc_mini.BatchResult`."""
        return self._queued.call(method, *args, **kwargs)

    def notify(self, method: str, /, *args: Any, **kwargs: Any) -> None:
        """Queue a notification of ``method``."""
        queued = self._queued
        queued.check_open()
        queued.calls.append((method, build_params(args, kwargs), True))

    def __getattr__(self, name: str) -> RemoteMethod[BatchResult]:
        if name.startswith("_"):
            return remote_attribute(self, name)  # raises AttributeError: Python's names
        method = _QueuedMethod(self._queued, name)
        # Speed: kept on the builder, so the next ``b.name`` is found without calling
        # __getattr__ (a batch calls the same few methods many times). It refers to
        # the queue, not the builder: no reference cycle (see _Queued).
        self.__dict__[name] = method
        return method

    def __len__(self) -> int:
        return len(self._queued.calls)

    def _take(self) -> list[tuple[str, Params, bool]]:
        """Mark the batch sent; return the queued calls (empty: nothing to send)."""
        queued = self._queued
        queued.check_open()
        queued.sent = True
        return queued.calls

    def _settle(self, outcomes: list[Callable[[], Any]]) -> list[BatchResult]:
        for result, outcome in zip(self._queued.results, outcomes, strict=True):
            result._outcome = outcome
        return list(self._queued.results)


class BatchBuilder(_BatchQueue):
    """Collects calls; on leaving the ``with`` block sends them as one JSON array and waits.

    ``b.add(1, 2)`` / ``b.call("add", 1, 2)`` queue a request and return a
    :class:`BatchResult`; ``b.notify("log", "x")`` queues a notification. If the
    block raises, nothing is sent.
    """

    def __init__(self, send: _Sender) -> None:
        super().__init__()
        self._send = send

    def send(self) -> list[BatchResult]:
        """Send the queued calls now and wait for their replies (done by the ``with`` exit)."""
        calls = self._take()
        return self._settle(self._send(calls) if calls else [])

    def __enter__(self) -> BatchBuilder:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.send()
