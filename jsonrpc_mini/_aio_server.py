"""The asyncio server: ``aio.RPCServer``, the sans-IO ServerConnection under asyncio.

One ``ServerProtocol`` per connection feeds received bytes to the core and runs
each call as a task (plain handlers go to a thread pool). Back-pressure is done by
not pulling further events from the core and pausing the transport's reading while
a connection (``max_concurrent_calls``) or the whole server (``max_total_calls``)
is at its limit, so the number of tasks and buffered bytes stays bounded. Running
a handler and building its reply is the base class, ``CallExecutor`` (``_aio_execute``);
the turns of connections held back at ``max_total_calls`` are ``TurnTaking`` (``_aio_turns``);
shutting down is ``ShuttingDown`` (``_aio_shutdown``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import ssl as _ssl
from collections.abc import AsyncGenerator, Callable
from typing import Any, overload

from ._aio_conn import ServerProtocol
from ._aio_execute import CallExecutor, Outcome
from ._aio_listener import Listener, listen
from ._aio_runner import CallRunner, PoolCalls
from ._aio_shutdown import ShuttingDown
from ._aio_tls import TlsGate
from ._aio_turns import TurnTaking
from ._codec import Notification, Request
from ._dispatch import Peer, Prepared, outcome_response
from ._errors import RPCError
from ._framing import FramingName
from ._json import DEFAULT_MAX_INT_DIGITS
from ._json_hook import Default, make_codec
from ._listen_checks import check_listen
from ._protocol import DEFAULT_MAX_DEPTH, DEFAULT_MAX_MESSAGE_SIZE
from ._refusal_log import RefusalLog
from ._refuse import TOO_MANY_CONNECTIONS, refusal_line
from ._remote import check_count, check_flag
from ._reprs import server_repr
from ._server import ServerOptions
from ._unix import UnixPath, socket_file, unix_path

__all__ = ["RPCServer"]

log = logging.getLogger("jsonrpc_mini")

Address = tuple[str, int] | str


class RPCServer(CallExecutor, TurnTaking, ShuttingDown):
    """An asyncio JSON-RPC 2.0 server: register handlers, then ``await start()``.

    Registration is the sync server's (``register_function``, ``register``,
    ``register_instance``). Handlers may be ``async def`` (run as tasks on the loop)
    or plain functions (run in a thread pool so they cannot block the loop).

    Keyword options are those of :class:`jsonrpc_mini.RPCServer`, with the same
    names and defaults (``debug``, ``framing``, ``max_message_size``, ``max_depth``,
    ``max_int_digits``, ``max_connections``, ``max_concurrent_calls``,
    ``idle_timeout``, ``read_timeout``, ``handshake_timeout``, ``shutdown_grace``,
    ``backlog``, ``unix_mode``, ``default``), plus:

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
        default: Default | None = None,
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
        self.codec = make_codec(max_int_digits=max_int_digits, default=default)
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
        self._listener: Listener | asyncio.AbstractServer | None = None
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
        # (Our accept loop, not asyncio's: see _aio_listener. TLS: accepted in plain TCP,
        # a gate starts TLS or refuses a plain client.)
        listener = await listen(self, host, port, path, ssl)
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

    def prepare_or_reply(
        self, message: Request | Notification, draining: bool, peer: Peer | None = None
    ) -> Prepared | Outcome:
        """Find the handler and bind the arguments, or build the reply that refuses the call.

        ``peer``: the caller's connection, as the log line of a notification dropped names it.
        """
        if draining and isinstance(message, Request):
            return self.refusal(message)
        try:
            return self.prepare(message)
        except RPCError as exc:
            return outcome_response(message, exc=exc, debug=self.options.debug, peer=peer)
