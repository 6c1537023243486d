"""Running a call's handler and building its reply: the base of the asyncio ``RPCServer``.

Where a handler runs (on the loop, in the thread pool, inline) and how what it
returns or raises becomes the reply; ``RPCServer`` (``_aio_server``) keeps
serving and the call limits. Moved out of ``_aio_server``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from ._aio_members import Handback, Members, run_plain
from ._codec import ErrorResponse, Notification, Request, Response
from ._dispatch import PLAIN_RESULTS, Peer, Prepared, Registry, internal_error, outcome_response, peer_prefix

if TYPE_CHECKING:
    from ._server import ServerOptions

__all__ = ["CallExecutor", "Outcome", "being_cancelled", "closing", "run_caught"]

log = logging.getLogger("jsonrpc_mini")

Outcome = Response | ErrorResponse | None


class CallExecutor(Registry):
    """Runs prepared calls and builds their replies; ``RPCServer`` sets the attributes below."""

    options: ServerOptions
    max_total_calls: int
    run_sync_in_thread: bool
    _executor: concurrent.futures.Executor | None
    _user_executor: concurrent.futures.Executor | None
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
        self,
        message: Request | Notification,
        function: Callable[..., Any],
        args: list[Any],
        kwargs: dict[str, Any],
        peer: Peer | None = None,
    ) -> Outcome | Coroutine[Any, Any, Outcome]:
        """Run a plain handler inline (``run_sync_in_thread=False``) and build the reply.

        If the handler turns out to return an awaitable (an object with an async
        ``__call__``), this returns a coroutine that awaits it and builds the reply.
        ``peer`` (here and below): the caller's connection, as a failure's log line names it.
        """
        try:
            result = function(*args, **kwargs)
        except BaseException as exc:  # SystemExit and the like too: the handler's own, answered -32603
            return outcome_response(message, exc=exc, debug=self.options.debug, peer=peer)
        if type(result) not in PLAIN_RESULTS and inspect.isawaitable(result):
            return self.await_result(message, result, peer=peer)
        return outcome_response(message, result, debug=self.options.debug)

    async def await_result(
        self, message: Request | Notification, awaitable: Awaitable[Any], again: bool = False, peer: Peer | None = None
    ) -> Outcome:
        """Await what a handler returned and build the reply (``again``: an awaitable result too).

        A ``GeneratorExit`` or ``CancelledError`` the awaitable raises itself (not
        this task being cancelled, nor this coroutine closed) is answered -32603,
        as any exception.
        """
        try:
            result = await (settled(awaitable) if isinstance(awaitable, asyncio.Future) else awaitable)
            if again and type(result) not in PLAIN_RESULTS and inspect.isawaitable(result):
                result = await (settled(result) if isinstance(result, asyncio.Future) else result)
        except asyncio.CancelledError as exc:
            if being_cancelled():
                raise
            return outcome_response(message, exc=exc, debug=self.options.debug, peer=peer)
        except GeneratorExit as exc:
            if closing(exc):
                raise
            return outcome_response(message, exc=exc, debug=self.options.debug, peer=peer)
        except Exception as exc:
            return outcome_response(message, exc=exc, debug=self.options.debug, peer=peer)
        return outcome_response(message, result, debug=self.options.debug)

    async def execute(self, prepared: Prepared, peer: Peer | None = None) -> Outcome:
        """Run a batch member on the loop and build its reply: an ``async def`` handler, or a plain one inline.

        (A plain handler's member with ``run_sync_in_thread`` goes to the pool
        through ``run_members``.) Whatever a plain handler raises is its call's
        reply (-32603 for ``SystemExit``, ``KeyboardInterrupt``, ``GeneratorExit``
        or ``CancelledError``, as for a call alone): it never leaves the batch's
        task, which would stop the loop or leave the batch unanswered.
        """
        function, message = prepared.function, prepared.message
        if self._handler_is_async(function):
            try:
                work = prepared.run()
            except Exception as exc:  # e.g. a wrapper that checks its arguments first
                return outcome_response(message, exc=exc, debug=self.options.debug, peer=peer)
            # (An awaitable result: as for a call alone.)
            return await self.await_result(message, work, again=True, peer=peer)
        ok, result = run_caught(prepared)
        if not ok:
            return outcome_response(message, exc=result, debug=self.options.debug, peer=peer)
        if type(result) not in PLAIN_RESULTS and inspect.isawaitable(result):  # e.g. an async __call__
            return await self.await_result(message, result, peer=peer)
        return outcome_response(message, result, debug=self.options.debug)

    async def run_members(
        self, loop: asyncio.AbstractEventLoop, members: Members, index: int, prepared: Prepared
    ) -> Handback | None:
        """``run_plain`` in the pool: member ``index`` and the plain ones after it (see ``_aio_members``).

        A job the executor refuses (its ``submit()`` raises) or cancels before it
        runs answers member ``index`` -32603 (logged); the others were not taken yet.
        """
        try:
            job = loop.run_in_executor(self.executor(), run_plain, members, index, prepared)
        except Exception as exc:  # the executor refused it (shut down, full)
            members.replies[index] = self.refused(prepared.message, exc, members.peer)
            return None
        try:
            return await job
        except asyncio.CancelledError as exc:  # (run_plain answers whatever a handler raises)
            if being_cancelled():
                raise
            members.replies[index] = self.refused(prepared.message, exc, members.peer)  # the executor cancelled it
            return None

    def refused(self, message: Request | Notification, exc: BaseException, peer: Peer | None = None) -> Outcome:
        """The reply for a call of a plain handler that the executor refused to run (-32603), logged."""
        log.error(
            "%sthe executor refused to run %r: %s: %s",
            peer_prefix(peer),
            message.method,
            type(exc).__name__,
            exc,
            exc_info=exc,
        )
        if type(message) is not Request:
            return None
        return internal_error(message.id, message.method)

    def pooled_outcome(
        self, message: Request | Notification, future: concurrent.futures.Future[Any], peer: Peer | None = None
    ) -> Outcome | Coroutine[Any, Any, Outcome]:
        """The reply for a call that ran in the thread pool (a coroutine if its result must be awaited)."""
        if future.cancelled():  # the pool was shut down before it ran
            if self._user_executor is None:
                return None  # (by shutdown(), once its connections closed)
            return self.refused(message, concurrent.futures.CancelledError(), peer)  # a given executor's: answered
        exc = future.exception()
        if exc is not None:  # (SystemExit too: raised by the handler in a pool thread, answered -32603)
            return outcome_response(message, exc=exc, debug=self.options.debug, peer=peer)
        result = future.result()
        if type(result) not in PLAIN_RESULTS and inspect.isawaitable(result):  # e.g. an async __call__
            return self.await_result(message, result, peer=peer)
        return outcome_response(message, result, debug=self.options.debug)


def run_caught(prepared: Prepared) -> tuple[bool, Any]:
    """Run a plain handler: ``(True, result)``, or ``(False, exc)`` for whatever it raised.

    What a plain handler raises, ``SystemExit`` or ``CancelledError`` too, is its
    own (nothing else can raise into a plain call; in the pool, ``run_plain`` does
    the same), so it is the call's reply and never stops the loop or a task.
    """
    try:
        return True, prepared.run()
    except BaseException as exc:
        return False, exc


def being_cancelled() -> bool:
    """Whether the running task is being cancelled (a ``CancelledError`` seen now is not a handler's own)."""
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


def closing(exc: GeneratorExit) -> bool:
    """Whether ``exc``, caught around an ``await``, is the catching coroutine being closed.

    ``close()`` (a task destroyed with its loop) first closes what the coroutine
    awaits, then raises a new GeneratorExit at the ``await``, in the catching frame:
    its traceback holds that one frame. One the awaited code raised itself came up
    through the awaited frames, which its traceback lists after the catching one.
    (Checked on CPython 3.11 to 3.13. Told wrong, a closing is answered: a reply
    nobody reads and an error logged for a handler that raised nothing; the caller
    is closed all the same. Speed: a plain ``await``; a wrapper that steps the
    awaitable, as the call runner's ``_resume`` does, cost ~0.3 us a call.)
    """
    tb = exc.__traceback__
    return tb is None or tb.tb_next is None


async def settled(future: asyncio.Future[Any]) -> Any:
    """``future``'s result, as ``await future`` gives it, but its exception raised here.

    Awaited directly, a future's exception is thrown by the task into its outermost
    coroutine, and a GeneratorExit thrown so closes every coroutine on the way
    (PEP 380): the call would go unanswered. Here the task waits for a future that
    only ever gets None. Cancelled, this cancels ``future``, as awaiting it would.
    """
    if not future.done() and future.get_loop() is asyncio.get_running_loop():
        waiter: asyncio.Future[None] = future.get_loop().create_future()

        def wake(_: object) -> None:
            if not waiter.done():  # (not if this waiter was cancelled)
                waiter.set_result(None)

        future.add_done_callback(wake)
        try:
            await waiter
        except asyncio.CancelledError:
            future.cancel()
            raise
    return await future  # (done: no wait; another loop's: the error awaiting it gives)
