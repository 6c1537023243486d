"""The first moments of a connection on the asyncio server's TLS port: peek, then upgrade or refuse.

When the asyncio server serves TLS its accept loop (``_aio_listener.Listener``)
puts a ``TlsGate`` in front of every accepted socket, before any transport
exists. The gate waits (``loop.add_reader``) for the client's first byte and looks
at it without reading it (``MSG_PEEK``). A TLS handshake record: the socket gets a
plain transport (``loop.connect_accepted_socket``) under asyncio's TLS layer
(``asyncio.sslproto.SSLProtocol``, what ``start_tls`` and asyncio's TLS listeners
use; here a subclass that keeps what a gone client sent: ``_aio_tls_layer``),
which does the handshake and then hands the connection to the server's protocol.
Anything else (a client without ``ssl=``) gets the sync server's answer, one plain
-32000 error "this server speaks TLS ...", after a bounded drain of what it sent.
With asyncio's own TLS listener such a client only saw the connection close.

Why no transport while peeking: the event loop refuses to watch a descriptor a
transport owns, and watching a duplicate of it cost a second descriptor for every
waiting connection, so silent peers exhausted RLIMIT_NOFILE at half the count.
Here a connection at the gate holds its own descriptor and nothing else.

An event loop that cannot watch descriptors (Windows' proactor) gets asyncio's
own TLS listener instead: TLS as before, without the plain-text answer.

Peek and handshake together are bounded by ``handshake_timeout``; the server
tracks its gates so that ``shutdown()`` closes connections still in them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl as _ssl
from typing import TYPE_CHECKING, Literal

from ._aio_conn import ServerProtocol
from ._aio_runner import log_destroy
from ._aio_tls_layer import ServerTls
from ._peer_names import client_text
from ._refuse import DRAIN_BYTES, DRAIN_SECONDS, TLS_REQUIRED, is_tls_start, refusal_line

if TYPE_CHECKING:
    from ._aio_server import RPCServer

__all__ = ["TlsGate"]

log = logging.getLogger("jsonrpc_mini")

Stage = Literal["peek", "connect", "handshake", "refuse", "done"]


class TlsGate:
    """One accepted connection on a TLS port until it is TLS (then served) or turned away."""

    def __init__(self, server: RPCServer, sock: socket.socket, context: _ssl.SSLContext, timeout: float) -> None:
        self._srv = server
        self._sock = sock
        self._client = client_text(sock)  # (for its log lines: a client that resets is no longer known)
        self._fd = sock.fileno()
        self._context = context
        self._loop = loop = asyncio.get_running_loop()
        self._deadline = loop.time() + timeout
        self._timer: asyncio.TimerHandle | None = None
        self._stage: Stage = "peek"
        self._watching = False
        self._handed = False  # an asyncio transport owns the socket now (and closes it)
        self._transport: asyncio.Transport | None = None  # once connected (the TLS layer runs on it)
        self._waiter: asyncio.Future[None] | None = None  # the handshake's end
        self._left = DRAIN_BYTES
        self.task: asyncio.Task[None] | None = None
        self.done: asyncio.Future[None] = loop.create_future()

    def start(self) -> None:
        """Wait for the client's first byte (for at most handshake_timeout)."""
        self._srv._gates.add(self)
        self._timer = self._loop.call_at(self._deadline, self._expire)
        try:
            self._sock.setblocking(False)
            self._loop.add_reader(self._fd, self._readable)
        except Exception as exc:  # (e.g. out of memory in the selector)
            log.info("TLS port: cannot watch a connection: %s", exc)
            self._close()
            return
        self._watching = True

    def close(self) -> None:
        """Close the connection (server shutdown); a handshake in progress is aborted."""
        if self._stage == "handshake" and self._transport is not None:
            self._transport.abort()  # the TLS layer sees the connection lost and ends the handshake
        elif self._stage == "connect":
            if self.task is not None:
                self.task.cancel()
        elif self._stage != "done":
            self._close()

    # -- the stages ----------------------------------------------------------------

    def _readable(self) -> None:
        if self._stage == "refuse":
            self._drain()
            return
        if self._stage != "peek":  # pragma: no cover - not watched in other stages
            return
        try:
            first = self._sock.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return  # woken for nothing: still watching
        except OSError as exc:
            log.info("TLS port: a connection failed before its first byte: %s", exc)
            self._close()
            return
        if not first:
            self._close()  # closed before saying anything
        elif is_tls_start(first):
            self._upgrade()
        else:
            self._refuse()

    def _upgrade(self) -> None:
        self._stage = "connect"
        self._unwatch()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        # asyncio's TLS layer (what start_tls and TLS listeners put on a transport) on a
        # plain transport of the socket. Nothing awaits the handshake: ``waiter`` reports
        # its end. A coroutine suspended inside asyncio for the whole handshake (as in
        # start_tls or connect_accepted_socket(ssl=)) would, on a loop closed by hand,
        # fail "Event loop is closed" when the garbage collector closes it, if it goes
        # before this module's coroutine (an accident of object generations).
        waiter: asyncio.Future[None] = self._loop.create_future()
        timeout = max(self._deadline - self._loop.time(), 0.001)
        app = self._srv.protocol()
        try:
            tls = ServerTls(  # (asyncio's TLS layer, keeping what a gone client sent: see _aio_tls_layer)
                self._loop,
                app,
                self._context,
                waiter,
                server_side=True,
                ssl_handshake_timeout=timeout,  # type: ignore[arg-type] # (typeshed says int; seconds)
            )
        except Exception as exc:  # pragma: no cover - e.g. an SSLContext that cannot make a server object
            log.error("TLS port: cannot start a handshake: %s", exc)
            self._close()
            return
        self._waiter = waiter
        waiter.add_done_callback(self._handshake_done)
        self.task = task = self._loop.create_task(self._connect(tls, app))
        # A loop closed without cancelling (or shutdown()) destroys it pending: no user
        # code runs in it, so, like the idle call runner, it is not reported.
        log_destroy(task, False)
        task.add_done_callback(self._connected)

    async def _connect(self, tls: asyncio.BaseProtocol, app: asyncio.BaseProtocol) -> None:
        self._handed = True  # from here on asyncio owns the socket (and closes it)
        transport, _ = await self._loop.connect_accepted_socket(lambda: tls, self._sock)
        self._transport = transport
        if isinstance(app, ServerProtocol):  # (its close closes this one too: see _aio_linger)
            app.under = transport
        if self._stage == "connect":
            self._stage = "handshake"

    def _connected(self, task: asyncio.Task[None]) -> None:
        # Failed or cancelled (shutdown): the handshake never starts, so end it here.
        exc = None if task.cancelled() else task.exception()
        waiter = self._waiter
        if (task.cancelled() or exc is not None) and waiter is not None and not waiter.done():
            if exc is not None:
                waiter.set_exception(exc)  # (logged by _handshake_done)
            else:
                waiter.cancel()

    def _handshake_done(self, waiter: asyncio.Future[None]) -> None:
        if not waiter.cancelled() and (exc := waiter.exception()) is not None:
            log.info("TLS handshake with %s failed: %s", self._client, exc)
        if not self._handed:  # pragma: no cover - the connecting task was cancelled before it began
            self._sock.close()
        self._finish()

    def _refuse(self) -> None:
        self._stage = "refuse"
        log.info("%s spoke plain text on a TLS port; answered and closed", self._client)
        line = refusal_line(TLS_REQUIRED)
        try:
            # A fresh connection's send buffer takes the one line at once.
            if self._sock.send(line) != len(line):
                raise BlockingIOError("the answer did not fit the send buffer")
            self._sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            log.info("TLS port: answering a plain-text client failed: %s", exc)
            self._close()
            return
        # Reading what the client sent (bounded) before closing: closing with unread
        # input resets the connection, and the reset can destroy the answer.
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_later(DRAIN_SECONDS, self._close)

    def _drain(self) -> None:
        try:
            data = self._sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close()
            return
        self._left -= len(data)
        if not data or self._left <= 0:
            self._close()  # the client stopped sending (or sent too much): its answer is written

    def _expire(self) -> None:
        self._timer = None
        if self._stage == "peek":
            log.info("TLS port: no handshake from %s within handshake_timeout; closed", self._client)
            self._close()

    def _unwatch(self) -> None:
        if self._watching:
            self._watching = False
            with contextlib.suppress(Exception):  # (a closed loop)
                self._loop.remove_reader(self._fd)

    def _close(self) -> None:
        self._unwatch()
        self._sock.close()
        self._finish()

    def _finish(self) -> None:
        if self._stage == "done":
            return
        self._stage = "done"
        self._unwatch()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._srv._gates.discard(self)
        if not self.done.done():
            self.done.set_result(None)
