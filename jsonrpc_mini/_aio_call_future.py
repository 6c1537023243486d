"""The future an ``aio.RPCClient`` call returns: awaitable, and usable as a coroutine.

``Link.expect`` (``_aio_link``) makes one per call and resolves it when the reply
with its id arrives, or fails it (timeout, lost connection).
"""

from __future__ import annotations

import asyncio
import collections.abc
from collections.abc import Generator
from typing import Any

__all__ = ["Call"]


class Call(asyncio.Future[Any]):
    """A call in flight: ``await`` it for the result. Also usable as a coroutine.

    A future (so ``asyncio.gather`` of many calls creates no task per call) that
    also speaks the coroutine protocol, so ``asyncio.create_task(c.add(1, 2))``
    works as it does for ``async def`` methods.
    """

    # Speed: slots, all set by Link.expect (an instance dict cost ~0.1 us per call).
    __slots__ = ("_steps", "method", "timeout")
    _steps: Generator[Any, None, Any] | None
    method: str  # the remote method (for error messages)
    timeout: float | None  # the call's timeout in seconds, None: none

    def _stepper(self) -> Generator[Any, None, Any]:
        # getattr: a Call made by the caller, not by Link.expect, has no _steps slot set.
        steps = getattr(self, "_steps", None)
        if steps is None:
            steps = self._steps = self.__await__()
        return steps

    def send(self, value: Any) -> Any:
        """Coroutine protocol: one step of awaiting this call."""
        return self._stepper().send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        """Coroutine protocol: raise into the waiting."""
        steps = self._stepper()
        if val is None and tb is None:
            return steps.throw(typ)
        return steps.throw(typ, val, tb)  # pragma: no cover - the deprecated 3-argument form

    def close(self) -> None:
        """Coroutine protocol: stop waiting (the call itself is not affected)."""
        steps = getattr(self, "_steps", None)
        if steps is not None:
            steps.close()


collections.abc.Coroutine.register(Call)
