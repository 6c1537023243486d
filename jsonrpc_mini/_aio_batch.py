"""asyncio client batches: ``async with client.batch() as b: r = b.add(1, 2)``.

The same semantics as the sync :class:`~jsonrpc_mini.BatchBuilder`, with
``async with`` and ``await b.send()`` in place of ``with`` and ``b.send()``:
calls queue up and return a :class:`~jsonrpc_mini.BatchResult`; leaving the block
sends one JSON array and waits for the replies; ``r.result()`` then returns the
value or raises that call's error. If the block raises, nothing is sent. The
client's timeout bounds the whole batch: members still unanswered get RPCTimeout.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

from ._batch import BatchResult
from ._codec import Params, build_params
from ._errors import RPCError

__all__ = ["AsyncBatchBuilder"]

_Sender = Callable[[list[tuple[str, Params, bool]]], Awaitable[list[Callable[[], Any]]]]


class _BatchMethod:
    __slots__ = ("_builder", "_name")

    def __init__(self, builder: AsyncBatchBuilder, name: str) -> None:
        self._builder = builder
        self._name = name

    def __getattr__(self, name: str) -> _BatchMethod:
        if name.startswith("_"):
            raise AttributeError(name)
        return _BatchMethod(self._builder, f"{self._name}.{name}")

    def __call__(self, /, *args: Any, **kwargs: Any) -> BatchResult:
        return self._builder.call(self._name, *args, **kwargs)


class AsyncBatchBuilder:
    """Collects calls; on leaving ``async with`` sends them as one JSON array and waits.

    ``b.add(1, 2)`` / ``b.call("add", 1, 2)`` queue a request (no ``await``) and
    return a :class:`~jsonrpc_mini.BatchResult`; ``b.notify("log", "x")`` queues
    a notification. ``await b.send()`` sends explicitly and returns the results.
    """

    def __init__(self, send: _Sender) -> None:
        self._send = send
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

    def __getattr__(self, name: str) -> _BatchMethod:
        if name.startswith("_"):
            raise AttributeError(name)
        return _BatchMethod(self, name)

    def __len__(self) -> int:
        return len(self._calls)

    async def send(self) -> list[BatchResult]:
        """Send the queued calls now and wait for their replies (done by the ``async with`` exit)."""
        self._check_open()
        self._sent = True
        if self._calls:
            outcomes = await self._send(self._calls)
            for result, outcome in zip(self._results, outcomes, strict=True):
                result._outcome = outcome
        return list(self._results)

    def __enter__(self) -> AsyncBatchBuilder:
        raise TypeError("an asyncio client's batch needs 'async with client.batch() as b:'")

    def __exit__(self, *exc_info: object) -> None:  # pragma: no cover - __enter__ always raises
        return None

    async def __aenter__(self) -> AsyncBatchBuilder:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            await self.send()
