"""Running a call's handler and building its reply: the base of the asyncio ``RPCServer``.

Where a handler runs (on the loop, in the thread pool, inline) and how what it
returns or raises becomes the reply; ``RPCServer`` (``_aio_server``) keeps
serving, shutting down and the call limits. Moved out of ``_aio_server``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from ._aio_calls import NOT_AWAITABLE
from ._codec import ErrorResponse, Notification, Request, Response
from ._dispatch import Prepared, Registry, outcome_response

if TYPE_CHECKING:
    from ._server import ServerOptions

__all__ = ["CallExecutor", "Outcome"]

Outcome = Response | ErrorResponse | None


class CallExecutor(Registry):
    """Runs prepared calls and builds their replies; ``RPCServer`` sets the attributes below."""

    options: ServerOptions
    max_total_calls: int
    run_sync_in_thread: bool
    _executor: concurrent.futures.Executor | None
    _is_async: dict[Callable[..., Any], bool]

    def executor(self) -> concurrent.futures.Executor:
        """The executor for plain handlers (a private thread pool unless one was given).

        The private pool has a thread for each call the server lets run at once
        (``max_total_calls``), so a slow call never waits for a thread that slow
        calls before it hold; its threads start only as calls need them.
        """
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=self.max_total_calls, thread_name_prefix="jsonrpc_mini-aio"
            )
        return self._executor

    def _handler_is_async(self, function: Callable[..., Any]) -> bool:
        known = self._is_async.get(function)
        if known is None:
            known = self._is_async[function] = inspect.iscoroutinefunction(function)
        return known

    def execute_now(
        self, message: Request | Notification, function: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]
    ) -> Outcome | Coroutine[Any, Any, Outcome]:
        """Run a plain handler inline (``run_sync_in_thread=False``) and build the reply.

        If the handler turns out to return an awaitable (an object with an async
        ``__call__``), this returns a coroutine that awaits it and builds the reply.
        """
        try:
            result = function(*args, **kwargs)
        except BaseException as exc:  # SystemExit and the like too: the handler's own, answered -32603
            return outcome_response(message, exc=exc, debug=self.options.debug)
        if type(result) not in NOT_AWAITABLE and inspect.isawaitable(result):
            return self.await_result(message, result)
        return outcome_response(message, result, debug=self.options.debug)

    async def await_result(self, message: Request | Notification, awaitable: Awaitable[Any]) -> Outcome:
        """Await what a handler returned and build the reply."""
        try:
            result = await awaitable
        except Exception as exc:
            return outcome_response(message, exc=exc, debug=self.options.debug)
        return outcome_response(message, result, debug=self.options.debug)

    async def execute(self, prepared: Prepared) -> Outcome:
        """Run one prepared call wherever it belongs and build its reply (batch members)."""
        if self._handler_is_async(prepared.function):
            return await self.execute_async(prepared)
        message = prepared.message
        try:
            if self.run_sync_in_thread:
                result = await asyncio.get_running_loop().run_in_executor(self.executor(), prepared.run)
            else:
                result = prepared.run()
            if type(result) not in NOT_AWAITABLE and inspect.isawaitable(result):  # e.g. an async __call__
                result = await result
        except Exception as exc:
            return outcome_response(message, exc=exc, debug=self.options.debug)
        return outcome_response(message, result, debug=self.options.debug)

    async def execute_async(self, prepared: Prepared) -> Outcome:
        """Run a prepared call of an ``async def`` handler and build its reply."""
        try:
            result = await prepared.function(*prepared.args, **prepared.kwargs)
            if type(result) not in NOT_AWAITABLE and inspect.isawaitable(result):
                result = await result
        except Exception as exc:
            return outcome_response(prepared.message, exc=exc, debug=self.options.debug)
        return outcome_response(prepared.message, result, debug=self.options.debug)

    def pooled_outcome(
        self, message: Request | Notification, future: concurrent.futures.Future[Any]
    ) -> Outcome | Coroutine[Any, Any, Outcome]:
        """The reply for a call that ran in the thread pool (a coroutine if its result must be awaited)."""
        if future.cancelled():  # the pool was shut down before it ran
            return None
        exc = future.exception()
        if exc is not None:  # (SystemExit too: raised by the handler in a pool thread, answered -32603)
            return outcome_response(message, exc=exc, debug=self.options.debug)
        result = future.result()
        if type(result) not in NOT_AWAITABLE and inspect.isawaitable(result):  # e.g. an async __call__
            return self.await_result(message, result)
        return outcome_response(message, result, debug=self.options.debug)
