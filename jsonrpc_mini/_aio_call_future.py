"""The future an ``aio.RPCClient`` call returns: awaitable, and usable as a coroutine.

``Link.expect`` (``_aio_link``) makes one per call and resolves it when the reply
with its id arrives, or fails it (timeout, lost connection).
"""

from __future__ import annotations

import asyncio
import collections.abc
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._client_protocol import ClientConnection

__all__ = ["Call"]


class Call(asyncio.Future[Any]):
    """A call in flight: ``await`` it for the result. Also usable as a coroutine.

    A future (so ``asyncio.gather`` of many calls creates no task per call) that
    also speaks the coroutine protocol, so ``asyncio.create_task(c.add(1, 2))``
    works as it does for ``async def`` methods.
    """

    # Speed: slots, all set by Link.expect (an instance dict cost ~0.1 us per call).
    __slots__ = ("_steps", "method", "proto", "timeout")
    _steps: Generator[Any, None, Any] | None
    method: str  # the remote method (for error messages)
    timeout: float | None  # the call's timeout in seconds, None: none
    proto: ClientConnection  # the connection's core (told when the call is given up on)

    def __repr__(self) -> str:
        """asyncio's repr with the remote method: ``<Call add finished exception=...>``."""
        text = super().__repr__()
        method = getattr(self, "method", None)  # (None: a Call not made by Link.expect)
        if method is None or not text.startswith("<"):
            return text
        name, _, rest = text[1:].partition(" ")
        return f"<{name} {method!r} {rest}"

    def cancel(self, msg: Any = None) -> bool:
        """Stop waiting for this call (its reply, if one comes, is dropped).

        The request may have gone out: until a later call is answered, an error
        with id null may be its (see ``ClientConnection.unread_before``).
        """
        if not super().cancel(msg):
            return False
        proto = getattr(self, "proto", None)  # (None: a Call not made by Link.expect)
        if proto is not None:
            proto.sent_unanswered()
        return True

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
