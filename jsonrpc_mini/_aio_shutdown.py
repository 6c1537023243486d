"""Shutting the asyncio server down: ``ShuttingDown``, a base class of ``aio.RPCServer``.

``shutdown()`` stops accepting, reads what clients already sent, lets the calls
in flight finish within ``shutdown_grace``, then closes every connection, letting
replies already written go out. A connection whose event loop has closed (the test
kit's ``aio_loopback()`` ending inside ``asyncio.run()``) is forgotten, not waited
for. Moved out of ``_aio_server``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import AsyncGenerator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from ._aio_linger import LINGER
from ._aio_runner import CallRunner, PoolCalls, serving
from ._codec import ErrorObject, ErrorResponse, Request
from ._refusal_log import RefusalLog
from ._unix import unlink_socket_file

if TYPE_CHECKING:
    from ._aio_conn import ServerProtocol
    from ._aio_listener import Listener
    from ._aio_tls import TlsGate
    from ._server import ServerOptions

__all__ = ["FLUSH", "SHUTTING_DOWN", "ShuttingDown", "stopped"]

SHUTTING_DOWN = ErrorObject(-32000, "Server error: the server is shutting down")

# Seconds shutdown() lets replies already written go out at least, the grace over
# (the sync server's least wait for a connection's threads).
FLUSH = 0.1
_LOOK = 0.002  # shutdown(): how often it looks again while bytes wait unread


def stopped(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether ``loop`` is closed or not running: nothing of it moves while a shutdown runs.

    ``shutdown()`` runs in a running loop; a connection, runner or pool of a loop that
    does not run (closed, or one run by hand with ``run_until_complete`` and left
    open) cannot finish anything meanwhile, so it is not waited for.
    """
    return loop.is_closed() or not loop.is_running()


class ShuttingDown:
    """The shutdown part of ``aio.RPCServer``, which sets the attributes below."""

    options: ServerOptions
    _guard: AsyncGenerator[None, None] | None
    _listener: Listener | asyncio.AbstractServer | None
    _path: str | None
    _file: tuple[int, int] | None
    _stopped: asyncio.Event | None
    _refusal_log: RefusalLog
    _gates: set[TlsGate]
    _conns: set[ServerProtocol]
    _orphans: set[ServerProtocol]
    _batch_tasks: dict[asyncio.Task[Any], asyncio.Task[Any]]
    _runner: CallRunner | None
    _pool: PoolCalls | None
    _executor: concurrent.futures.Executor | None
    _user_executor: concurrent.futures.Executor | None

    async def shutdown(self) -> None:
        """Stop accepting, let calls in flight finish (up to ``shutdown_grace``), then close.

        Calls still running after the grace period are cancelled and their clients
        see the connection close (``ConnectionLost``). New requests arriving meanwhile
        get a -32000 "shutting down" error. Idempotent; may be awaited from a handler
        (that handler's own call is not waited for, and its reply still goes out: its
        connection closes once answered). The server may start again.
        A server still running when ``asyncio.run()`` ends is shut down at once.
        """
        guard, self._guard = self._guard, None
        if guard is not None:
            await guard.aclose()
        await self._shutdown(self.options.shutdown_grace)

    async def _shutdown(self, grace: float) -> None:
        if self.in_call():
            # Awaited by a handler: one step back to the loop, so that its call's task
            # is known to be its connection's (the runner's _stay_with) when closing below.
            await asyncio.sleep(0)
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        self._refusal_log.flush()
        gates = list(self._gates)
        for gate in gates:  # not served yet: nothing to finish
            gate.close()
        conns = [conn for conn in (*self._conns, *self._orphans) if not self._forget_if_dead(conn)]
        me = asyncio.current_task()
        if me is not None:
            me = self._batch_tasks.get(me, me)  # (a batch member's handler: the batch is its call)
        for conn in conns:
            conn.drain()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        # Calls already read may still move to tasks of their own: look again until none run.
        # Bytes a client delivered and the loop has not read yet are read first (their
        # notifications run, their requests get "shutting down").
        while ((running := self._running(conns, me)) or any(c.unread() for c in conns)) and loop.time() < deadline:
            if running:
                await asyncio.wait(running, timeout=deadline - loop.time())
            else:
                await asyncio.sleep(_LOOK)
        for task in running:
            task.cancel()
        linger = min(LINGER, max(deadline - loop.time(), 0.0))  # (TLS: the grace bounds the wait for close_notify)
        # The connection of a handler awaiting this closes once its calls are done, so
        # that handler's reply still goes out (as on the sync server); it is not waited for.
        own = {conn for conn in conns if me is not None and me in conn.tasks}
        for conn in own:
            conn.close_when_idle()
        conns = [conn for conn in conns if conn not in own]
        for conn in conns:
            conn.close(linger)
        # A closed transport stays open while its replies wait to go out: a peer that
        # reads nothing would keep it (and them) for as long as the loop runs. What is
        # left of the grace (at least FLUSH) to take them; then the rest is dropped.
        if open_ := [conn.closed for conn in conns if not conn.closed.done()]:
            await asyncio.wait(open_, timeout=max(deadline - loop.time(), FLUSH))
            for conn in conns:
                if not conn.closed.done():
                    conn.abort()
        waits: list[asyncio.Future[Any]] = [*running, *(conn.closed for conn in conns), *(g.done for g in gates)]
        waits += [gate.task for gate in gates if gate.task is not None]
        if waits:
            await asyncio.wait(waits, timeout=5.0)
        if listener is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(listener.wait_closed(), 5.0)
            if self._path is not None:
                unlink_socket_file(self._path, self._file)
        if self._executor is not None and self._user_executor is None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        if self._stopped is not None:
            self._stopped.set()

    def _forget_if_dead(self, conn: ServerProtocol) -> bool:
        """Forget ``conn`` if its event loop has closed or stopped (see :func:`stopped`); whether so.

        The test kit's ``aio_loopback()`` serves on the loop it runs in: an
        ``asyncio.run()`` that ends while a call of it still runs (a notification's
        handler, say) closes that loop with the connection in it, and a loop run by hand
        (``run_until_complete``) stops with it. Nothing of it runs while this shutdown
        does: waiting for it would wait out the whole grace and more, and closing it on
        a closed loop raises RuntimeError. On a loop that may run again it is closed
        first thing when that loop runs, so that it does not serve on after the
        shutdown. Any other connection, a lost one whose calls still run included
        (``_orphans``), is waited for.
        """
        loop = conn.closed.get_loop()
        if not stopped(loop):
            return False
        if not loop.is_closed():
            # Stopped, not closed: it may run again, and must not then serve a server
            # that has shut down. Closed first thing when it runs, in its own loop (the
            # test kit's transport would schedule the rest on the loop running now).
            # Thread-safe: a loop of another thread may start at this moment.
            with contextlib.suppress(RuntimeError):  # (closed meanwhile, by that thread)
                loop.call_soon_threadsafe(conn.close, 0.0)
        self._conns.discard(conn)
        self._orphans.discard(conn)
        return True

    def _end_idle_pool(self) -> None:
        """End the private thread pool if nothing can use it now (a later call starts another).

        For the test kit, when the last kit user of a server leaves: ``aio_loopback()``
        never starts the server, so without this its pool outlived the block and the loop.
        Not listening, no connection, no call in flight; queued jobs still run.
        """
        pool, idle = self._executor, self._listener is None and not self._conns and not self._orphans
        idle = idle and (self._pool is None or all(future.done() for future in self._pool.inflight))
        if pool is not None and self._user_executor is None and idle:
            pool.shutdown(wait=False)
            self._executor = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.shutdown()

    def in_call(self) -> bool:
        """Whether the code asking runs for a call of this server: its handler, or a task it made.

        Each call runs in its own copy of the context, and ``asyncio.create_task``,
        ``gather`` and the like copy the current context into the tasks they create,
        so a helper task a handler starts (and awaits) is counted too, even once
        the call has ended.
        """
        return serving.get() is self

    def _running(self, conns: list[ServerProtocol], me: asyncio.Task[Any] | None) -> list[asyncio.Future[Any]]:
        tasks: list[asyncio.Future[Any]] = [task for conn in conns for task in conn.tasks]
        # A runner or pool of a loop that has closed or stopped (see _forget_if_dead): nothing
        # to wait for. Its pool's calls that ended stay in flight (the loop cannot hear of it
        # now): wrapped anew on each look, shutdown() spun on them for its whole grace.
        # (Calls of a running loop's pool stay until it has heard: what they held back runs first.)
        if self._runner is not None and not stopped(self._runner.loop):
            tasks += self._runner.running()
        if self._pool is not None and not stopped(self._pool.loop):
            tasks += [asyncio.wrap_future(future) for future in self._pool.inflight]
        return [task for task in tasks if task is not me and not task.done()]

    @staticmethod
    def refusal(message: Request) -> ErrorResponse:
        """The reply to a request that arrives while the server is shutting down."""
        return ErrorResponse(message.id, SHUTTING_DOWN)
