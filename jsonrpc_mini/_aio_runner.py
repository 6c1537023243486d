"""Runs the asyncio server's calls as tasks, without creating a task per call.

Creating, scheduling and finishing an ``asyncio.Task`` costs several times what
parsing, binding and answering a small call costs, and most handlers finish
without ever waiting. So one *runner* task takes the queued calls of every
connection and runs them one after another; a call that finishes without waiting
never needs a task of its own. The first time a call does wait, the runner it is
running in stays with that call until it ends (so ``asyncio.current_task()``,
``asyncio.timeout()`` and cancellation inside the handler see one task for the
whole call, as with a task per call) and hands the queue to a fresh runner, so a
slow call never delays the calls behind it by more than one loop iteration.

This is not ``coro.send(None)`` from the protocol callback: code running there
has no current task, and ``asyncio.timeout()`` in a handler would fail. Each call
also runs in its own copy of the context, as it would in a task of its own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import logging
import types
from collections import deque
from collections.abc import Coroutine, Generator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._aio_conn import ServerProtocol
    from ._dispatch import Prepared

__all__ = ["CallRunner", "PoolCalls"]

log = logging.getLogger("jsonrpc_mini")

Work = Coroutine[Any, Any, Any]


class CallRunner:
    """The calls of one server on one event loop: queued, then run by runner tasks."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._queue: deque[tuple[ServerProtocol, Work]] = deque()
        self.task: asyncio.Task[None] | None = None  # the runner taking queued calls

    def submit(self, conn: ServerProtocol, work: Work) -> None:
        """Run ``work`` (its result is ``conn``'s reply, or None) soon; ``conn.finish`` gets it."""
        self._queue.append((conn, work))
        if self.task is None:
            self._start()

    def _start(self) -> None:
        self.task = task = self.loop.create_task(self._run())
        task.add_done_callback(self._runner_done)

    async def _run(self) -> None:
        queue = self._queue
        task = asyncio.current_task()
        assert task is not None
        while queue:
            conn, work = queue.popleft()
            context = contextvars.copy_context()
            try:
                waiting = context.run(work.send, None)
            except StopIteration as stop:
                conn.finish(stop.value)
            except asyncio.CancelledError:  # the handler raised it itself: no reply, as for a task
                conn.finish(None)
            except Exception as exc:  # pragma: no cover - execute() turns handler errors into replies
                log.error("call failed", exc_info=exc)
                conn.finish(None)
            except BaseException:  # pragma: no cover - KeyboardInterrupt, SystemExit
                conn.finish(None)
                self._hand_over()
                raise
            else:
                # The call waits: this task stays with it; another takes the queue.
                self._hand_over()
                await self._stay_with(conn, work, waiting, context, task)
                return
            if task.cancelling():  # a handler cancelled this task: end it, as it asked
                self._hand_over()
                return
        self.task = None

    def _hand_over(self) -> None:
        self.task = None
        if self._queue:
            self._start()

    async def _stay_with(
        self, conn: ServerProtocol, work: Work, waiting: Any, context: contextvars.Context, task: asyncio.Task[None]
    ) -> None:
        conn.tasks.add(task)
        outcome = None
        try:
            outcome = await _resume(work, waiting, context)
        except Exception as exc:  # pragma: no cover - execute() turns handler errors into replies
            log.error("call failed", exc_info=exc)
        finally:
            conn.tasks.discard(task)
            conn.finish(outcome)

    def _runner_done(self, task: asyncio.Task[None]) -> None:
        # Cancelled before it started (shutdown): the calls it was to run are dropped.
        if task is not self.task:
            return
        if not task.cancelled() and task.exception() is not None:  # pragma: no cover - a driver bug
            log.error("call runner failed", exc_info=task.exception())
        self.task = None
        queue, self._queue = self._queue, deque()
        for conn, work in queue:
            work.close()
            conn.finish(None)

    def running(self) -> list[asyncio.Task[None]]:
        """The runner taking queued calls, if any (calls that wait are in their connection's tasks)."""
        return [self.task] if self.task is not None and not self.task.done() else []


@types.coroutine
def _resume(work: Work, waiting: Any, context: contextvars.Context) -> Generator[Any, Any, Any]:
    """Go on running a coroutine whose first step already ran and yielded ``waiting``.

    What the coroutine yields goes up to the task and what the task sends or
    throws goes down to it: the task runs it exactly as if it had started it.
    """
    while True:
        try:
            sent = yield waiting
        except GeneratorExit:
            work.close()
            raise
        except BaseException as exc:  # e.g. CancelledError: deliver it to the handler
            try:
                waiting = context.run(work.throw, exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                waiting = context.run(work.send, sent)
            except StopIteration as stop:
                return stop.value


class PoolCalls:
    """Calls of plain handlers, run in a thread pool; finished ones come back in batches.

    ``run_in_executor`` wakes the loop once per call (a system call) and needs a
    task to await it. Here a finished call is queued and the loop is woken only if
    no wake-up is pending, so calls finishing together cost one wake-up.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.inflight: set[concurrent.futures.Future[Any]] = set()
        self._finished: deque[tuple[ServerProtocol, Prepared, concurrent.futures.Future[Any]]] = deque()
        self._wake_pending = False

    def submit(self, conn: ServerProtocol, prepared: Prepared, executor: concurrent.futures.Executor) -> None:
        """Run ``prepared`` in ``executor``; ``conn.finish_pooled`` gets the outcome on the loop."""
        future = executor.submit(prepared.run)
        self.inflight.add(future)
        future.add_done_callback(lambda done: self._done(conn, prepared, done))

    def _done(self, conn: ServerProtocol, prepared: Prepared, future: concurrent.futures.Future[Any]) -> None:
        # In a worker thread (or the loop's, if the call finished before submit returned).
        self._finished.append((conn, prepared, future))
        if not self._wake_pending:
            self._wake_pending = True
            if self.loop.is_closed():
                return  # nobody is left to answer
            with contextlib.suppress(RuntimeError):  # closed meanwhile
                self.loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        self._wake_pending = False  # first: a call finishing from now on wakes the loop again
        finished = self._finished
        while finished:
            conn, prepared, future = finished.popleft()
            self.inflight.discard(future)
            conn.finish_pooled(prepared, future)
