"""asyncio client batches: ``async with client.batch() as b: r = b.add(1, 2)``.

The same semantics as the sync :class:`~jsonrpc_mini.BatchBuilder`, with
``async with`` and ``await b.send()`` in place of ``with`` and ``b.send()``:
calls queue up and return a :class:`~jsonrpc_mini.BatchResult`; leaving the block
sends one JSON array and waits for the replies; ``r.result()`` then returns the
value or raises that call's error. If the block raises, nothing is sent (each
``r.result()`` raises RPCError naming the exception's type). The
client's timeout bounds the whole batch: members still unanswered get RPCTimeout.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

from ._batch import BatchResult, _BatchQueue
from ._codec import Params

__all__ = ["AsyncBatchBuilder"]

_Sender = Callable[[list[tuple[str, Params, bool]]], Awaitable[list[Callable[[], Any]]]]


class AsyncBatchBuilder(_BatchQueue):
    """Collects calls; on leaving ``async with`` sends them as one JSON array and waits.

    ``b.add(1, 2)`` / ``b.call("add", 1, 2)`` queue a request (no ``await``) and
    return a :class:`~jsonrpc_mini.BatchResult`; ``b.notify("log", "x")`` queues
    a notification. ``await b.send()`` sends explicitly and returns the results.
    """

    def __init__(self, send: _Sender) -> None:
        super().__init__()
        self._send = send

    async def send(self) -> list[BatchResult]:
        """Send the queued calls now and wait for their replies (done by the ``async with`` exit)."""
        calls = self._take()
        if not calls:
            return self._settle([])
        try:
            outcomes = await self._send(calls)
        except BaseException as exc:
            self._send_failed(exc)
            raise
        return self._settle(outcomes)

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
        else:
            self._discard(exc_type)
