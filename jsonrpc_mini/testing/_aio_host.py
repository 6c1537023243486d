"""An event loop on a thread of its own: how ``LoopbackServer`` serves an ``aio.RPCServer``.

A sync test (threads, a sync client) of an asyncio server needs the server's loop
running beside it. ``LoopbackServer`` makes one here when given an
``aio.RPCServer``: the kit's count of the server's users and the server's start
and shutdown run on it, and it ends with the ``LoopbackServer``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["RUN", "LoopThread"]

_T = TypeVar("_T")
_JOIN = 10.0  # s: how long closing waits for the loop's thread to end
# s: how long a step run on the loop (the server's start, the kit's count) may take
# beyond what the caller allows for it (a shutdown: its shutdown_grace).
RUN = 60.0


class LoopThread:
    """A new event loop run for ever on a thread named ``name``, until :meth:`close`."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, work: Coroutine[Any, Any, _T], what: str, timeout: float = RUN) -> _T:
        """Run ``work`` on the loop; return its result or raise its exception, in this thread.

        Bounded: after ``timeout`` seconds ``work`` is cancelled and TimeoutError
        names ``what`` (the aio server's start or shutdown that did not end).
        """
        future = asyncio.run_coroutine_threadsafe(work, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"LoopbackServer: {what} did not finish within {timeout:g} s") from None

    def close(self) -> None:
        """Close the loop's async generators, stop it, join its thread and close it. Idempotent."""
        if self.loop.is_closed():
            return
        with contextlib.suppress(RuntimeError, TimeoutError):  # (stopped already; stuck: stopped below)
            self.run(self.loop.shutdown_asyncgens(), "closing the event loop's async generators")
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(_JOIN)
        if not self._thread.is_alive():
            self.loop.close()
