"""What ``aio.connect(...)`` returns: awaitable, and an async context manager itself.

``async with await aio.connect(h, p) as c:`` is the documented spelling, and
``async with aio.connect(h, p) as c:`` (the ``await`` left out) is the natural
one: it failed with Python's "'coroutine' object does not support the
asynchronous context manager protocol". Both work now, as ``await`` alone,
``asyncio.wait_for`` and ``asyncio.create_task`` (it speaks the coroutine
protocol, as an ``async def``'s result does) still do.
"""

from __future__ import annotations

import asyncio.coroutines
import collections.abc
import inspect
from collections.abc import Callable, Coroutine, Generator
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from ._aio_client import RPCClient

__all__ = ["Connecting", "coroutine_function"]

F = TypeVar("F", bound=Callable[..., Any])
# What asyncio (a Task's repr) and inspect read of a coroutine: the connecting coroutine's.
_SHOWN = frozenset(
    {"__name__", "__qualname__", "cr_code", "cr_frame", "cr_running", "cr_suspended", "cr_await", "cr_origin"}
)


def coroutine_function(function: F) -> F:
    """Mark ``function`` (it returns a Connecting) a coroutine function, as ``async def connect`` was.

    ``mock.patch("jsonrpc_mini.aio.connect")`` makes an AsyncMock only for what
    ``asyncio.iscoroutinefunction`` calls one: unmarked, a user's test got a MagicMock
    and its ``await aio.connect(...)`` failed ("can't be used in 'await' expression").
    """
    mark = getattr(inspect, "markcoroutinefunction", None)  # (Python 3.12 on)
    if mark is not None:
        return mark(function)  # type: ignore[no-any-return]
    # Python 3.11: asyncio.iscoroutinefunction also takes its own marker.
    setattr(function, "_is_coroutine", getattr(asyncio.coroutines, "_is_coroutine", None))  # noqa: B010
    return function


class Connecting(collections.abc.Coroutine[Any, Any, "RPCClient"]):
    """A connection being made: ``await`` it for the client, or ``async with`` it (closed on exit)."""

    __slots__ = ("_client", "_steps")

    def __init__(self, steps: Coroutine[Any, Any, RPCClient]) -> None:
        self._steps = steps
        self._client: RPCClient | None = None

    def __await__(self) -> Generator[Any, None, RPCClient]:
        """``await aio.connect(...)``: the connected client."""
        return self._steps.__await__()

    def send(self, value: Any) -> Any:
        """Coroutine protocol: one step of connecting."""
        return self._steps.send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        """Coroutine protocol: raise into the connecting."""
        if val is None and tb is None:
            return self._steps.throw(typ)
        return self._steps.throw(typ, val, tb)  # pragma: no cover - the deprecated 3-argument form

    def close(self) -> None:
        """Coroutine protocol: give up connecting (a client already made is not closed by this)."""
        self._steps.close()

    def __enter__(self) -> RPCClient:
        self._steps.close()  # (never to be awaited: no "never awaited" warning on top)
        raise TypeError("aio.connect() needs 'async with' (`async with aio.connect(host, port) as c:`), not 'with'")

    def __exit__(self, *exc_info: object) -> None:  # pragma: no cover - __enter__ always raises
        return None

    async def __aenter__(self) -> RPCClient:
        """``async with aio.connect(...) as c:``: connect, as ``await`` does."""
        self._client = await self._steps
        return self._client

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close the client (as ``async with`` of the client itself does)."""
        if self._client is not None:
            await self._client.__aexit__(exc_type, exc, tb)

    if not TYPE_CHECKING:  # (so that mypy still says a Connecting has no 'add')

        def __getattr__(self, name: str) -> Any:
            if name in _SHOWN:  # (a Task's repr: "coro=<connect() running at ...>", as for an async def)
                return getattr(self._steps, name)
            # c = aio.connect(...); c.add(1, 2): the await was left out. Say so rather than
            # "'Connecting' object has no attribute 'add'".
            if name.startswith("_"):
                raise AttributeError(name)
            raise AttributeError(
                f"{name!r}: aio.connect() returns a connection being made, not the client: "
                f"write `c = await aio.connect(...)` or `async with aio.connect(...) as c:`"
            )
