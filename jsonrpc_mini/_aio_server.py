"""The asyncio server: ``aio.RPCServer``, the sans-IO ServerConnection under asyncio.

One ``ServerProtocol`` per connection feeds received bytes to the core and runs
each call as a task (plain handlers go to a thread pool). Back-pressure is done by
not pulling further events from the core and pausing the transport's reading while
a connection (``max_concurrent_calls``) or the whole server (``max_total_calls``)
is at its limit, so the number of tasks and buffered bytes stays bounded. Running
a handler and building its reply is the base class, ``CallExecutor`` (``_aio_execute``);
the turns of connections held back at ``max_total_calls`` are ``TurnTaking`` (``_aio_turns``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import ssl as _ssl
from collections.abc import AsyncGenerator, Callable
from types import TracebackType
from typing import Any, overload

from ._aio_conn import ServerProtocol
from ._aio_execute import CallExecutor, Outcome
from ._aio_linger import LINGER
from ._aio_runner import CallRunner, PoolCalls, serving
from ._aio_tls import TlsGate, TlsListener, listen_tls
from ._aio_turns import TurnTaking
from ._codec import ErrorObject, ErrorResponse, Notification, Request
from ._dispatch import Prepared, outcome_response
from ._errors import RPCError
from ._framing import FramingName
from ._json import DEFAULT_MAX_INT_DIGITS, JsonCodec
from ._listen_checks import check_listen
from ._protocol import DEFAULT_MAX_DEPTH, DEFAULT_MAX_MESSAGE_SIZE
from ._refusal_log import RefusalLog
from ._refuse import TOO_MANY_CONNECTIONS, refusal_line
from ._remote import check_count, check_flag
from ._server import ServerOptions
from ._tcp_bind import create_tcp_server, server_repr
from ._unix import UnixPath, listen_unix, socket_file, unix_path, unlink_socket_file

__all__ = ["RPCServer"]

log = logging.getLogger("jsonrpc_mini")

Address = tuple[str, int] | str

SHUTTING_DOWN = ErrorObject(-32000, "Server error: the server is shutting down")

# Seconds shutdown() lets replies already written go out at least, the grace over
# (the sync server's least wait for a connection's threads).
FLUSH = 0.1
_LOOK = 0.002  # shutdown(): how often it looks again while bytes wait unread


class RPCServer(CallExecutor, TurnTaking):
    """An asyncio JSON-RPC 2.0 server: register handlers, then ``await start()``.

    Registration is the sync server's (``register_function``, ``register``,
    ``register_instance``). Handlers may be ``async def`` (run as tasks on the loop)
    or plain functions (run in a thread pool so they cannot block the loop).

    Keyword options are those of :class:`jsonrpc_mini.RPCServer`, with the same
    names and defaults (``debug``, ``framing``, ``max_message_size``, ``max_depth``,
    ``max_int_digits``, ``max_connections``, ``max_concurrent_calls``,
    ``idle_timeout``, ``read_timeout``, ``handshake_timeout``, ``shutdown_grace``,
    ``backlog``, ``unix_mode``), plus:

    - ``max_total_calls`` (1024): calls running at once over all connections;
      beyond that every connection stops reading until a call ends.
    - ``run_sync_in_thread`` (True): run plain handlers in a thread pool; False
      runs them inline on the loop (fast for trivial handlers, blocks for slow ones).
    - ``executor``: the ``concurrent.futures.Executor`` for plain handlers (default:
      a private thread pool of up to ``max_total_calls`` threads, started as
      needed and shut down by ``shutdown()``). A given executor keeps its own size:
      with fewer workers than slow calls in flight, a fast call waits for one.

    A batch's members run concurrently, at most ``max_concurrent_calls`` at a time,
    and are answered in one array; the batch counts towards the limits as the
    members it runs at once.
    """

    def __init__(
        self,
        *,
        debug: bool = False,
        framing: FramingName = "auto",
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_depth: int = DEFAULT_MAX_DEPTH,
        max_int_digits: int = DEFAULT_MAX_INT_DIGITS,
        max_connections: int = 1024,
        max_concurrent_calls: int = 32,
        max_total_calls: int = 1024,
        idle_timeout: float | None = 300.0,
        read_timeout: float | None = 30.0,
        handshake_timeout: float = 10.0,
        shutdown_grace: float = 10.0,
        backlog: int = 128,
        unix_mode: int | None = None,
        run_sync_in_thread: bool = True,
        executor: concurrent.futures.Executor | None = None,
    ) -> None:
        super().__init__()
        self.options = ServerOptions(
            debug=debug,
            framing=framing,
            max_message_size=max_message_size,
            max_depth=max_depth,
            max_int_digits=max_int_digits,
            max_connections=max_connections,
            max_concurrent_calls=max_concurrent_calls,
            idle_timeout=idle_timeout,
            read_timeout=read_timeout,
            handshake_timeout=handshake_timeout,
            shutdown_grace=shutdown_grace,
            backlog=backlog,
            unix_mode=unix_mode,
        )
        check_count("max_total_calls", max_total_calls)
        check_flag("run_sync_in_thread", run_sync_in_thread)
        if executor is not None and not callable(getattr(executor, "submit", None)):
            raise TypeError(f"executor must be a concurrent.futures.Executor (it has no submit()), not {executor!r}")
        self._init_turns(max_total_calls)
        self.run_sync_in_thread = run_sync_in_thread
        self.codec = JsonCodec(max_int_digits=max_int_digits)
        self._user_executor = executor
        self._executor: concurrent.futures.Executor | None = executor
        self._is_async: dict[Callable[..., Any], bool] = {}
        self._conns: set[ServerProtocol] = set()
        self._orphans: set[ServerProtocol] = set()  # connections lost while calls of theirs still run
        # A batch's worker tasks -> the batch's own task (the call a member's handler runs for).
        self._batch_tasks: dict[asyncio.Task[Any], asyncio.Task[Any]] = {}
        self._gates: set[TlsGate] = set()  # connections on a TLS port not yet TLS (or being refused)
        self._runner: CallRunner | None = None
        self._pool: PoolCalls | None = None
        self._listener: TlsListener | asyncio.AbstractServer | None = None
        self._address: Address | None = None
        self._path: str | None = None
        self._file: tuple[int, int] | None = None  # (st_dev, st_ino) of the Unix socket file bound
        self._stopped: asyncio.Event | None = None
        self._guard: AsyncGenerator[None, None] | None = None
        self._refusal = refusal_line(TOO_MANY_CONNECTIONS)
        self._refusal_log = RefusalLog()  # one warning per run of refusals, not one each

    # -- serving ---------------------------------------------------------------

    # Typed per case, so that a user's `host, port = await srv.start(...)` type-checks.
    @overload
    async def start(
        self, host: str = ..., port: int = ..., *, path: None = None, ssl: _ssl.SSLContext | None = None
    ) -> tuple[str, int]: ...
    @overload
    async def start(
        self, host: str = ..., port: int = ..., *, path: UnixPath, ssl: _ssl.SSLContext | None = None
    ) -> str: ...
    async def start(
        self,
        host: str = "127.0.0.1",
        port: int = 5000,
        *,
        path: UnixPath | None = None,
        ssl: _ssl.SSLContext | None = None,
    ) -> Address:
        """Start listening; return the bound ``(host, port)`` (or the Unix socket path).

        Port 0 picks a free port. ``path=`` serves a Unix socket instead of TCP;
        ``ssl=`` (an ``ssl.SSLContext`` with a certificate loaded) serves TLS. A
        client that speaks plain text to a TLS port gets one -32000 error saying so
        (as from the sync server), not just a closed connection.
        """
        if self._listener is not None:
            raise RuntimeError("this server is already listening; call shutdown() first")
        path = unix_path(path)
        check_listen(host, port, path, ssl)
        loop = asyncio.get_running_loop()
        opts = self.options
        listener: TlsListener | asyncio.Server
        if ssl is not None:  # accepted in plain TCP: the gate starts TLS (or refuses a plain client)
            listener = await listen_tls(self, ssl, host, port, path)
        elif path is not None:
            listener = await listen_unix(loop, self.protocol, path, opts.unix_mode, opts.backlog)
        else:
            listener = await create_tcp_server(self.protocol, host, port, opts.backlog)  # one socket, as sync
        if path is not None:
            address: Address = path
        else:
            bound = listener.sockets[0].getsockname()
            address = (bound[0], bound[1])
        self._listener, self._address, self._path = listener, address, path
        self._file = None if path is None else socket_file(path)  # shutdown() removes this file only
        self._stopped = asyncio.Event()
        self._guard = guard = self._until_loop_ends()
        await anext(guard)
        return address

    async def _until_loop_ends(self) -> AsyncGenerator[None, None]:
        # A server left running when its loop ends (asyncio.run returning without
        # shutdown()) is shut down when the loop closes its async generators, which
        # asyncio.run does after cancelling every task. Cancelling a call lets the
        # connection take calls queued behind it, as tasks nobody cancels any more:
        # left pending, they would be destroyed with the loop ("Task was destroyed but
        # it is pending"). shutdown() (grace 0: the program is ending) cancels them.
        try:
            yield
        finally:
            if self._guard is not None:  # not closed by shutdown(): the loop is ending
                self._guard = None
                await self._shutdown(0.0)

    async def serve_forever(
        self,
        host: str = "127.0.0.1",
        port: int = 5000,
        *,
        path: UnixPath | None = None,
        ssl: _ssl.SSLContext | None = None,
    ) -> None:
        """Serve until ``shutdown()`` (or until this task is cancelled, which shuts down).

        Starts listening first unless ``start()`` was already called (then the
        arguments are ignored).
        """
        if self._listener is None:
            await self.start(host, port, path=path, ssl=ssl)
        stopped = self._stopped
        assert stopped is not None
        try:
            await stopped.wait()
        except asyncio.CancelledError:
            await self.shutdown()
            raise

    @property
    def address(self) -> Address | None:
        """The address being served, or None when not listening."""
        return self._address if self._listener is not None else None

    @property
    def connection_count(self) -> int:
        """How many connections are being served now."""
        return len(self._conns)

    def __repr__(self) -> str:
        return server_repr("aio.RPCServer", self.address, len(self._methods), self.connection_count)

    def protocol(self) -> asyncio.Protocol:
        """A fresh protocol serving one connection: plug it into any asyncio transport.

        ``start()`` uses this as its protocol factory; the test kit's asyncio
        loopback uses it with an in-memory transport.
        """
        return ServerProtocol(self)

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
        """Forget ``conn`` if its event loop has closed; whether it had.

        The test kit's ``aio_loopback()`` serves on the loop it runs in: an
        ``asyncio.run()`` that ends while a call of it still runs (a notification's
        handler, say) closes that loop with the connection in it. Nothing of it can run
        again, and closing it or waiting for it would touch that closed loop (a
        RuntimeError from a later ``shutdown()`` in another loop). Any other connection,
        a lost one whose calls still run included (``_orphans``), is waited for.
        """
        if not conn.closed.get_loop().is_closed():
            return False
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

    async def __aenter__(self) -> RPCServer:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.shutdown()

    # -- running calls (the handlers themselves: _aio_execute.CallExecutor) ------

    def runner(self, loop: asyncio.AbstractEventLoop) -> CallRunner:
        """The runner of this server's calls on ``loop`` (one per loop)."""
        runner = self._runner
        if runner is None or runner.loop is not loop:
            runner = self._runner = CallRunner(
                loop, keep=lambda: self._listener is not None and bool(self._conns), owner=self
            )
        return runner

    def pool(self, loop: asyncio.AbstractEventLoop) -> PoolCalls:
        """The thread-pool calls of this server on ``loop`` (one per loop)."""
        pool = self._pool
        if pool is None or pool.loop is not loop:
            pool = self._pool = PoolCalls(loop)
        return pool

    def runs_call(self, task: asyncio.Task[Any] | None) -> bool:
        """Whether ``task`` runs a call of this server (one that waited: it has a task of its own).

        Only the call's own task: see :meth:`in_call` for the code a call runs in other tasks.
        """
        return task is not None and any(task in conn.tasks for conn in (*self._conns, *self._orphans))

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
        # A runner or pool of a loop that has closed (see _forget_if_dead): nothing to wait
        # for. Its pool's calls that ended stay in flight for ever (the loop could not hear
        # of it): wrapped anew on each look, shutdown() spun on them for its whole grace.
        # (Calls of a live loop's pool stay until it has heard: what they held back runs first.)
        if self._runner is not None and not self._runner.loop.is_closed():
            tasks += self._runner.running()
        if self._pool is not None and not self._pool.loop.is_closed():
            tasks += [asyncio.wrap_future(future) for future in self._pool.inflight]
        return [task for task in tasks if task is not me and not task.done()]

    @staticmethod
    def refusal(message: Request) -> ErrorResponse:
        """The reply to a request that arrives while the server is shutting down."""
        return ErrorResponse(message.id, SHUTTING_DOWN)

    def prepare_or_reply(self, message: Request | Notification, draining: bool) -> Prepared | Outcome:
        """Find the handler and bind the arguments, or build the reply that refuses the call."""
        if draining and isinstance(message, Request):
            return self.refusal(message)
        try:
            return self.prepare(message)
        except RPCError as exc:
            return outcome_response(message, exc=exc, debug=self.options.debug)
