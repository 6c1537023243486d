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


class _BatchQueue:
    """What the sync and asyncio batch builders share: queueing calls, handing out results."""

    def __init__(self) -> None:
        self._calls: list[tuple[str, Params, bool]] = []
        self._results: list[BatchResult] = []
        self._sent = False

    def call(self, method: str, /, *args: Any, **kwargs: Any) -> BatchResult:
        """Queue a call of ``method``; returns its :class:`~jsonrpc_mini.BatchResult`."""
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

    def __getattr__(self, name: str) -> RemoteMethod[BatchResult]:
        return remote_attribute(self, name)

    def __len__(self) -> int:
        return len(self._calls)

    def _take(self) -> list[tuple[str, Params, bool]]:
        """Mark the batch sent; return the queued calls (empty: nothing to send)."""
        self._check_open()
        self._sent = True
        return self._calls

    def _settle(self, outcomes: list[Callable[[], Any]]) -> list[BatchResult]:
        for result, outcome in zip(self._results, outcomes, strict=True):
            result._outcome = outcome
        return list(self._results)


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
