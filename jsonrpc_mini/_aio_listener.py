"""The asyncio server's own accept loop (``Listener``), for plain, Unix and TLS ports alike.

Why not asyncio's listener (``loop.create_server``): out of file descriptors
(EMFILE), its accept loop (CPython 3.11 to 3.13, ``_accept_connection``) does not
stop after the failure: it logs an ERROR with a traceback to the ``asyncio`` logger
and schedules a retry once per backlog slot (128 by default) at every wake-up, and
every retry wakes it again: hundreds of records a second for as long as the process
is short of descriptors, which the default ``max_connections`` (1024) above the
usual limit (1024) lets any crowd of clients cause. Here a failure stops the
watching of the listening socket (it stays readable: the loop would spin), accepting
resumes after ``RETRY`` seconds, and failures are logged as the sync server logs
them (``AcceptFailures``: the first at once, then one WARNING per 10 s at most).

An accepted socket goes to the port's ``accepted`` callable: ``PlainAccept`` makes a
transport for it (``loop.connect_accepted_socket``, what asyncio's listener does
too), a TLS port puts a ``TlsGate`` in front (see ``_aio_tls``). An event loop that
cannot watch descriptors (Windows' proactor) gets asyncio's own listener instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import ssl as _ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._aio_runner import log_destroy
from ._aio_tls import TlsGate
from ._refusal_log import AcceptFailures
from ._tcp_bind import bind_tcp_async, create_tcp_server
from ._unix import bind_unix

if TYPE_CHECKING:
    from ._aio_server import RPCServer

__all__ = ["RETRY", "Listener", "PlainAccept", "bind_sockets", "listen"]

log = logging.getLogger("jsonrpc_mini")

# A failed accept() (but one connection's own error, below): stop watching the
# listening socket and try again after this long (s), as asyncio's own listener does
# when out of descriptors.
RETRY = 1.0
# accept() can fail with the waiting connection's own network error (Linux's
# accept(2) lists these for TCP): the next one may succeed at once, so accepting goes
# on. Any other failure (out of descriptors; EINVAL for ever from a listening socket
# someone shut down) would come back at every wake-up of a socket that stays
# readable, a busy loop: accepting pauses for RETRY seconds.
_ONE_CONNECTIONS = frozenset(
    getattr(errno, name)
    for name in (
        "ENETDOWN", "EPROTO", "ENOPROTOOPT", "EHOSTDOWN", "ENONET", "EHOSTUNREACH", "EOPNOTSUPP", "ENETUNREACH", "EPERM"
    )
    if hasattr(errno, name)
)  # fmt: skip
# Connections accepted per wake-up at most. Each waits for the loop's next steps to get
# its transport (a task each), so a burst of a whole backlog (4,096, say) held that many
# half-made connections at once: 10,000 idle connections opened in a row left the
# server ~0.6 KiB a connection larger (4.4 KiB against 3.8, the memory of the peak).
_BURST = 128


async def bind_sockets(
    host: str, port: int, path: str | None, *, mode: int | None, backlog: int
) -> list[socket.socket]:
    """Listening, non-blocking sockets for ``path`` (with ``mode``) or ``host``/``port``."""
    socks: list[socket.socket] = []
    try:
        if path is not None:
            socks.append(bind_unix(path, mode, backlog))
        else:
            socks.append(await bind_tcp_async(host, port, backlog))  # one socket, as the sync server's
        for sock in socks:
            sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


class Listener:
    """A port's listening sockets: every connection accepted goes to ``accepted``."""

    def __init__(
        self,
        sockets: list[socket.socket],
        accepted: Callable[[socket.socket], None],
        label: str = "",
        closing: Callable[[], None] | None = None,
    ) -> None:
        self.sockets = sockets
        self._accepted = accepted
        self._closing = closing  # called by close(): drop what was accepted and is not connected yet
        self._failures = AcceptFailures(label)
        self._loop = asyncio.get_running_loop()
        self._retry: asyncio.TimerHandle | None = None
        self._closed = False

    def serve(self) -> None:
        """Start accepting (NotImplementedError: this event loop cannot watch descriptors)."""
        for sock in self.sockets:
            self._loop.add_reader(sock.fileno(), self._accept, sock)

    def close(self) -> None:
        """Stop accepting and close the listening sockets (connections accepted stay); idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        self._unwatch()
        for sock in self.sockets:
            sock.close()
        if self._closing is not None:
            self._closing()
        self._failures.flush()

    async def wait_closed(self) -> None:
        """Return at once: ``close()`` has already closed everything this listener owns."""

    def _unwatch(self) -> None:
        for sock in self.sockets:
            with contextlib.suppress(Exception):  # (not watched; a closed loop)
                self._loop.remove_reader(sock.fileno())

    def _accept(self, listening: socket.socket) -> None:
        # Several connections may be waiting: take up to _BURST per wake-up (the loop's
        # next step starts their transports; see _BURST).
        for _ in range(_BURST):
            try:
                conn, _ = listening.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return  # none left
            except OSError as exc:
                self._failures.failed(exc)
                if exc.errno not in _ONE_CONNECTIONS and self._retry is None:
                    self._unwatch()
                    self._retry = self._loop.call_later(RETRY, self._resume)
                return
            self._accepted(conn)

    def _resume(self) -> None:
        self._retry = None
        if not self._closed:
            self.serve()


class PlainAccept:
    """A plain (or Unix) port's accepted sockets: each gets a transport and the server's protocol."""

    def __init__(self, server: RPCServer) -> None:
        self._srv = server
        self._loop = asyncio.get_running_loop()
        self._tasks: set[asyncio.Task[None]] = set()  # (held: the loop keeps only weak references)
        self._unstarted: dict[asyncio.Task[None], socket.socket] = {}  # tasks not begun, their sockets
        self._made: dict[asyncio.Task[None], asyncio.BaseProtocol] = {}  # tasks begun, their protocols

    def __call__(self, conn: socket.socket) -> None:
        task = self._loop.create_task(self._connect(conn))
        # A loop closed without running it: nothing of the user's runs in it, so, as a
        # TLS gate's connecting task, it is not reported when destroyed pending.
        log_destroy(task, False)
        self._tasks.add(task)
        self._unstarted[task] = conn
        task.add_done_callback(self._done)

    def close(self) -> None:
        """The listener closes (``shutdown()``): close the connections not connected yet.

        Their protocol would join the server after ``shutdown()`` has taken its list of
        connections to close, and serve on after it returned. A task that has not begun
        never runs its ``except`` (cancelling it throws into a coroutine not started),
        so its socket is closed here; a begun one's is its transport's to close. One
        whose connection has joined the server already is left to ``shutdown()``,
        which reads what its client sent first (and answers "shutting down").
        """
        for conn in self._unstarted.values():
            conn.close()
        self._unstarted.clear()
        joined = self._srv._conns
        for task in list(self._tasks):
            if self._made.get(task) not in joined:
                task.cancel()

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._unstarted.pop(task, None)
        self._made.pop(task, None)

    async def _connect(self, conn: socket.socket) -> None:
        me = asyncio.current_task()
        assert me is not None  # (a task of __call__'s)
        self._unstarted.pop(me, None)

        def protocol() -> asyncio.BaseProtocol:
            made = self._made[me] = self._srv.protocol()
            return made

        try:
            await self._loop.connect_accepted_socket(protocol, conn)
        except BaseException as exc:
            conn.close()
            if not isinstance(exc, Exception):
                raise
            # (A loop closed by hand with this task pending: its transport cannot close,
            # "Event loop is closed"; not the connection's failure, so not reported.)
            if not self._loop.is_closed():
                log.warning("accepting a connection failed: %s", exc)


async def listen(
    server: RPCServer, host: str, port: int, path: str | None, context: _ssl.SSLContext | None
) -> Listener | asyncio.Server:
    """Listen on ``path`` or ``host``/``port`` (TLS with ``context``): this module's accept loop where it can run."""
    opts = server.options
    backlog, mode, timeout = opts.backlog, opts.unix_mode, opts.handshake_timeout
    sockets = await bind_sockets(host, port, path, mode=mode, backlog=backlog)
    if context is None:
        plain = PlainAccept(server)
        listener = Listener(sockets, plain, closing=plain.close)
    else:
        # (A TLS port: the gate peeks at the first byte, then upgrades or refuses; see _aio_tls.)
        listener = Listener(sockets, lambda conn: TlsGate(server, conn, context, timeout).start(), label="TLS port: ")
    try:
        listener.serve()
    except NotImplementedError:
        listener.close()  # (then asyncio's listener below)
        kwargs: dict[str, Any] = {} if context is None else {"ssl": context, "ssl_handshake_timeout": timeout}
        loop = asyncio.get_running_loop()
        if path is not None:
            return await loop.create_unix_server(
                server.protocol, sock=bind_unix(path, mode, backlog), backlog=backlog, **kwargs
            )
        return await create_tcp_server(server.protocol, host, port, backlog, **kwargs)
    except BaseException:
        listener.close()
        if path is not None:
            with contextlib.suppress(OSError):
                os.unlink(path)
        raise
    return listener
