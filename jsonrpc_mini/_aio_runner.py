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

A queued call is the handler's own coroutine (no wrapper coroutine): the runner
turns what it returns or raises into the reply. While the server listens and has
connections, a runner with nothing to do waits for the next call rather than
ending, so a client that waits for each reply does not cost a new task per call. Connections held back by their
call limit are pumped once the queue is empty (``later``), so a pipelining
client's next calls are taken a whole limit at a time, not one per ended call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import logging
import types
from collections import deque
from collections.abc import Callable, Coroutine, Generator
from typing import TYPE_CHECKING, Any

from ._codec import Request

if TYPE_CHECKING:
    from ._aio_calls import CallingProtocol, CallMessage, Replying
    from ._codec import Notification
    from ._protocol import Batch

    Message = Request | Notification

__all__ = ["CallRunner", "PoolCalls", "log_destroy", "serving"]

log = logging.getLogger("jsonrpc_mini")

Work = Coroutine[Any, Any, Any]

serving: contextvars.ContextVar[object] = contextvars.ContextVar("jsonrpc_mini_serving", default=None)
"""The server whose call runs in this context (None elsewhere): set once in each runner
task, whose context every call copies, and copied on into the tasks a handler creates."""


class CallRunner:
    """The calls of one server on one event loop: queued, then run by runner tasks."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, keep: Callable[[], bool] = lambda: False, owner: object = None
    ) -> None:
        self.loop = loop
        self.owner = owner  # the server: what ``serving`` says in its calls' contexts
        # Speed: while ``keep()`` (the server listens and has connections) a runner with
        # nothing to do waits for the next call instead of ending: waking it costs
        # ~1.6 us less than a new task, and with one request per read most reads
        # started one (16 clients: 3.6 calls per runner).
        self._keep = keep
        self._wake: asyncio.Future[None] | None = None  # set while the runner waits for calls
        # (connection, the call's message, its coroutine); with the message wrapped in
        # Replying the coroutine's return value is the reply itself (awaiting odd
        # results); a batch's coroutine (queued with its Batch) writes its reply itself.
        self._queue: deque[tuple[CallingProtocol, CallMessage | Batch | Replying | None, Work]] = deque()
        self._later: list[CallingProtocol] = []  # connections to pump once the queue is empty
        self._looping = False  # a runner is taking queued calls right now
        self.task: asyncio.Task[None] | None = None  # the runner taking queued calls

    def submit(self, conn: CallingProtocol, message: CallMessage | Batch | Replying | None, work: Work) -> None:
        """Run ``work`` soon; ``conn.finish_call`` or ``conn.finish_error`` gets its outcome."""
        self._queue.append((conn, message, work))
        if self.task is None:
            self._start()
        elif self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def drop_requests(self, conn: CallingProtocol) -> int:
        """Drop the queued calls of ``conn`` that need a reply (its peer is gone); how many.

        They have not begun: their coroutines are closed unrun. Notifications, batches
        (which skip their requests themselves) and calls whose handler already ran
        (awaiting what it returned) stay queued.
        """
        queue = self._queue
        kept: list[tuple[CallingProtocol, CallMessage | Batch | Replying | None, Work]] = []
        dropped: list[tuple[CallingProtocol, CallMessage | Batch | Replying | None, Work]] = []
        for item in queue:
            ours = item[0] is conn and (type(item[1]) is dict or type(item[1]) is Request)
            (dropped if ours else kept).append(item)
        if dropped:
            queue.clear()  # (in place: a running _run holds this deque)
            queue.extend(kept)
            for _, _, work in dropped:
                work.close()
        return len(dropped)

    def release(self) -> None:
        """Let a runner waiting for calls end (the server has no connection left)."""
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def later(self, conn: CallingProtocol) -> bool:
        """Pump ``conn`` once the queued calls have run; False if no runner is running them now.

        Speed: a connection held back by its call limit would otherwise be pumped
        after every call that ends (one call taken per pump); pumped after the queue,
        it takes up to its limit at once.
        """
        if not self._looping:
            return False
        if not conn.repump:
            conn.repump = True
            self._later.append(conn)
        return True

    def _start(self) -> None:
        self.task = task = self.loop.create_task(self._run())
        task.add_done_callback(self._runner_done)
        # A loop closed without cancelling its tasks destroys the pending ones. A runner
        # is pending only while it waits for calls (it runs nothing: not worth "Task was
        # destroyed but it is pending") or stays with a call that waits (_stay_with
        # turns the report back on: that call is the handler's).
        log_destroy(task, False)

    async def _run(self) -> None:
        queue = self._queue
        # Speed: the task _start made, which is this one (asyncio.current_task() cost
        # ~0.5 us per runner; nothing replaces self.task before this task's first step).
        task = self.task
        assert task is not None
        copy_context = contextvars.copy_context
        serving.set(self.owner)  # (in this task's context, which each call's copies)
        self._looping = True
        try:
            while True:
                while queue:
                    conn, message, work = queue.popleft()
                    context = copy_context()  # each call in its own context, as in a task of its own
                    try:
                        waiting = context.run(work.send, None)
                    except StopIteration as stop:
                        conn.finish_call(message, stop.value)
                    except asyncio.CancelledError as exc:
                        # Not cancelled (this task is not): the handler raised it itself,
                        # and its caller still gets an answer (-32603).
                        if task.cancelling():
                            conn.finish(None)
                        else:
                            conn.finish_error(message, exc)
                    except (Exception, GeneratorExit) as exc:  # the handler raised: an error reply
                        # (GeneratorExit here is the handler's own: this task is running.)
                        conn.finish_error(message, exc)
                    except BaseException:  # pragma: no cover - KeyboardInterrupt, SystemExit
                        conn.finish(None)
                        self._hand_over()
                        raise
                    else:
                        # The call waits: this task stays with it; another takes the queue.
                        self._hand_over()
                        try:
                            await self._stay_with(conn, message, work, waiting, context)
                        except GeneratorExit:
                            if not stepping(task):
                                raise  # the task is destroyed (see _stay_with)
                            # (A future's own GeneratorExit, answered in _stay_with.)
                        return
                    if task.cancelling():  # a handler cancelled this task: end it, as it asked
                        self._hand_over()
                        return
                if self._later:
                    later, self._later = self._later, []
                    for conn in later:
                        conn.repump_now()
                    continue
                if not self._keep():
                    break
                self._looping = False
                self._wake = wake = self.loop.create_future()
                try:
                    await wake  # submit() or release() wakes this task
                finally:
                    self._wake = None
                if not (queue or self._later):
                    break  # released
                self._looping = True
        finally:
            if self.task is task:
                self._looping = False
        self.task = None

    def _hand_over(self) -> None:
        self._looping = False
        self.task = None
        if self._queue or self._later:
            self._start()

    async def _stay_with(
        self,
        conn: CallingProtocol,
        message: CallMessage | Batch | Replying | None,
        work: Work,
        waiting: Any,
        context: contextvars.Context,
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        log_destroy(task, True)  # (see _start)
        conn.tasks.add(task)
        try:
            result = await _resume(work, waiting, context)
        except asyncio.CancelledError as exc:
            conn.tasks.discard(task)
            if task.cancelling():  # cancelled (shutdown, a lost connection): no answer
                conn.finish(None)
                raise
            conn.finish_error(message, exc)  # raised by the handler itself: answered -32603
        except Exception as exc:  # the handler raised: an error reply (a GeneratorExit of its own too)
            conn.tasks.discard(task)
            conn.finish_error(message, exc.exc if type(exc) is _HandlerExit else exc)
        except GeneratorExit as exc:
            if stepping(task):
                # Thrown in by this task's own step: a future the handler awaited failed
                # with GeneratorExit. A GeneratorExit thrown into a coroutine closes what
                # it awaits (PEP 380), so the handler's coroutines were closed on the way
                # and it arrives here; its caller is answered -32603 as for any error
                # (a batch closed so is lost whole: logged).
                conn.tasks.discard(task)
                conn.finish_error(message, exc)
                raise
            # The task is destroyed while the call waits: its loop was closed without
            # cancelling it (asyncio reports that). Nothing can be answered or run on a
            # closed loop (finishing would take the next calls and start tasks there).
            if not self.loop.is_closed():  # pragma: no cover - a task lost by its loop
                conn.tasks.discard(task)
                conn.finish(None)
            raise
        except BaseException:  # pragma: no cover - KeyboardInterrupt, SystemExit
            conn.tasks.discard(task)
            conn.finish(None)
            raise
        else:
            conn.tasks.discard(task)
            conn.finish_call(message, result)

    def _runner_done(self, task: asyncio.Task[None]) -> None:
        # Cancelled before it started (shutdown): the calls it was to run are dropped.
        if task is not self.task:
            return
        if not task.cancelled() and task.exception() is not None:  # pragma: no cover - a driver bug
            log.error("call runner failed", exc_info=task.exception())
        self.task = None
        self._looping = False
        queue, self._queue = self._queue, deque()
        later, self._later = self._later, []
        for conn, message, work in queue:
            work.close()
            conn.abandon(message)
        for conn in later:
            conn.repump_now()

    def running(self) -> list[asyncio.Task[None]]:
        """The runner taking queued calls, if any (calls that wait are in their connection's tasks).

        A runner waiting for calls runs none (it ends when the last connection closes).
        """
        if self._wake is not None:
            return []
        return [self.task] if self.task is not None and not self.task.done() else []


def log_destroy(task: asyncio.Task[Any], log_it: bool) -> None:
    """Whether asyncio reports ``task`` if a loop closed by hand destroys it while pending.

    Used for tasks that run no user code (the idle call runner, the TLS gate's
    handshake, the test kit's links): their destruction is no one's bug to report.
    """
    # asyncio's own switch for its "Task was destroyed but it is pending" report (the
    # loop clears it for the task run_until_complete made); a task of a custom task
    # factory may not have it.
    # (Speed: not contextlib.suppress, which costs ~0.45 us more, once per waiting call.)
    try:  # noqa: SIM105
        task._log_destroy_pending = log_it  # type: ignore[attr-defined]
    except AttributeError:  # pragma: no cover - a task without asyncio's attribute
        pass


def stepping(task: asyncio.Task[Any] | None) -> bool:
    """Whether ``task`` is running now: a GeneratorExit it meets came from its own step.

    A destroyed task's coroutine is closed outside its steps (by the garbage
    collector or a closing loop), so there it is not the current task.
    """
    try:
        return task is not None and asyncio.current_task() is task
    except RuntimeError:  # no running loop: the loop is closing
        return False


class _HandlerExit(Exception):
    """A GeneratorExit the handler raised itself in a later step (``exc``), told apart from
    the one thrown into a task its loop destroys (see ``_stay_with``)."""

    def __init__(self, exc: GeneratorExit) -> None:
        super().__init__()
        self.exc = exc


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
            except GeneratorExit as raised:
                raise _HandlerExit(raised) from None
        else:
            try:
                waiting = context.run(work.send, sent)
            except StopIteration as stop:
                return stop.value
            except GeneratorExit as raised:
                raise _HandlerExit(raised) from None


class PoolCalls:
    """Calls of plain handlers, run in a thread pool; finished ones come back in batches.

    ``run_in_executor`` wakes the loop once per call (a system call) and needs a
    task to await it. Here a finished call is queued and the loop is woken only if
    no wake-up is pending, so calls finishing together cost one wake-up.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.inflight: set[concurrent.futures.Future[Any]] = set()
        self._finished: deque[tuple[CallingProtocol, Message, concurrent.futures.Future[Any]]] = deque()
        self._wake_pending = False

    def submit(self, conn: CallingProtocol, message: Message, future: concurrent.futures.Future[Any]) -> None:
        """Follow ``future``, a call of ``message`` running in the pool; ``conn.finish_pooled`` gets it."""
        self.inflight.add(future)
        future.add_done_callback(lambda done: self._done(conn, message, done))

    def _done(self, conn: CallingProtocol, message: Message, future: concurrent.futures.Future[Any]) -> None:
        # In a worker thread (or the loop's, if the call finished before submit returned).
        self._finished.append((conn, message, future))
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
            conn, message, future = finished.popleft()
            self.inflight.discard(future)
            try:
                conn.finish_pooled(message, future)
            except Exception:  # a bug of ours: the calls finished with it are still answered
                log.exception("answering a call run in the thread pool failed")
