"""The first moments of a connection on the asyncio server's TLS port: peek, then upgrade or refuse.

The asyncio server listens in plain TCP when it serves TLS and puts a ``TlsGate``
in front of every accepted connection. The gate looks at the client's first byte
without reading it (``MSG_PEEK``): a TLS handshake record starts the handshake
(``loop.start_tls``) and hands the connection to the server's protocol; anything
else (a client without ``ssl=``) gets the sync server's answer, one plain -32000
error "this server speaks TLS ...", after a bounded drain of what it sent. With
asyncio's own TLS listener such a client only saw the connection close.

Peeking needs the socket's readiness without the transport reading. The
transport's reading is paused and a duplicate of its descriptor is watched
instead (the event loop refuses to watch a descriptor a transport owns); the
duplicate is closed before the transport reads again. An event loop that cannot
watch descriptors (Windows' proactor) skips the peek: TLS as before.

Peek and handshake together are bounded by ``handshake_timeout``; the server
tracks its gates so that ``shutdown()`` closes connections still in them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl as _ssl
from typing import TYPE_CHECKING, Any, Literal, cast

from ._aio_runner import log_destroy
from ._refuse import DRAIN_BYTES, DRAIN_SECONDS, TLS_REQUIRED, is_tls_start, refusal_line

if TYPE_CHECKING:
    from ._aio_server import RPCServer

__all__ = ["TlsGate"]

log = logging.getLogger("jsonrpc_mini")

Stage = Literal["peek", "handshake", "refuse", "done"]


class TlsGate(asyncio.Protocol):
    """One connection on a TLS port until it is TLS (then served) or turned away."""

    def __init__(self, server: RPCServer, context: _ssl.SSLContext, timeout: float) -> None:
        self._srv = server
        self._context = context
        self._loop = loop = asyncio.get_running_loop()
        self._deadline = loop.time() + timeout
        self._transport: asyncio.Transport | None = None
        self._peek: socket.socket | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._stage: Stage = "peek"
        self._left = DRAIN_BYTES
        # What the TLS layer delivers between the handshake's end and the hand-over
        # (start_tls wakes its caller only after passing on data that came with it).
        self._held: list[tuple[str, Any]] = []
        self.task: asyncio.Task[None] | None = None
        self.done: asyncio.Future[None] = loop.create_future()

    # -- asyncio callbacks (the plain transport's, then the TLS layer's) --------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Pause reading and watch for the first byte."""
        self._transport = transport = cast(asyncio.Transport, transport)
        self._srv._gates.add(self)
        self._timer = self._loop.call_at(self._deadline, self._expire)
        transport.pause_reading()
        raw = transport.get_extra_info("socket")
        try:
            self._peek = socket.fromfd(raw.fileno(), raw.family, raw.type)
            self._peek.setblocking(False)  # (the descriptor is non-blocking already; the object must know)
            self._loop.add_reader(self._peek.fileno(), self._readable)
        except (AttributeError, NotImplementedError, OSError, RuntimeError):
            self._stop_peeking()
            self._upgrade()  # no peeking here: TLS right away, as asyncio's TLS listener does

    def data_received(self, data: bytes) -> None:
        """Refusing: count and drop what the client sent; after the handshake: hold it."""
        if self._stage == "refuse":
            self._left -= len(data)
            if self._left <= 0 and self._transport is not None:
                self._transport.close()
        elif self._stage == "handshake":
            self._held.append(("data", data))

    def eof_received(self) -> bool:
        """The client stopped sending: a refused connection closes (its answer is written)."""
        if self._stage == "handshake":
            self._held.append(("eof", None))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        """The connection closed before it was handed over."""
        if self._stage == "handshake" and self.task is not None and not self.task.done():
            self._held.append(("lost", exc))  # the handshake task sees the failure and finishes
            return
        self._finish()

    # -- control from the server -----------------------------------------------

    def close(self) -> None:
        """Close the connection (server shutdown); a handshake in progress is cancelled."""
        if self._stage == "handshake" and self.task is not None:
            self.task.cancel()
        elif self._stage != "done" and self._transport is not None:
            self._stop_peeking()
            self._transport.close()

    # -- the stages ----------------------------------------------------------------

    def _readable(self) -> None:
        peek = self._peek
        if peek is None or self._stage != "peek":
            return
        try:
            first = peek.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            return  # woken for nothing: still watching
        except OSError as exc:
            log.info("TLS port: a connection failed before its first byte: %s", exc)
            self.close()
            return
        self._stop_peeking()
        if not first:
            self.close()  # closed before saying anything
        elif is_tls_start(first):
            self._upgrade()
        else:
            self._refuse()

    def _upgrade(self) -> None:
        self._stage = "handshake"
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.task = task = self._loop.create_task(self._handshake())
        # A loop closed without cancelling (or shutdown()) destroys it pending: no user
        # code runs in it, so, like the idle call runner, it is not reported.
        log_destroy(task, False)

    async def _handshake(self) -> None:
        transport = self._transport
        assert transport is not None
        timeout = max(self._deadline - self._loop.time(), 0.001)
        try:
            tls = await self._loop.start_tls(
                transport, self, self._context, server_side=True, ssl_handshake_timeout=timeout
            )
        except Exception as exc:  # start_tls closed the connection
            log.info("TLS handshake failed: %s", exc)
            self._finish()
            return
        except BaseException:  # cancelled (shutdown): start_tls closed the connection
            self._finish()
            raise
        held, self._held = self._held, []
        if tls is None:  # pragma: no cover - only when the handshake produced no transport
            transport.close()
            self._finish()
            return
        protocol = self._srv.protocol()
        tls.set_protocol(protocol)
        self._finish()
        protocol.connection_made(tls)
        for kind, value in held:
            if kind == "data":
                protocol.data_received(value)
            elif kind == "eof":
                protocol.eof_received()
            else:
                protocol.connection_lost(value)

    def _refuse(self) -> None:
        transport = self._transport
        assert transport is not None
        self._stage = "refuse"
        log.info("a client spoke plain text on a TLS port; answered and closed")
        transport.write(refusal_line(TLS_REQUIRED))
        if transport.can_write_eof():
            transport.write_eof()
        # Reading what the client sent (bounded) before closing: closing with unread
        # input resets the connection, and the reset can destroy the answer.
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_later(DRAIN_SECONDS, transport.close)
        transport.resume_reading()

    def _expire(self) -> None:
        self._timer = None
        if self._stage == "peek":
            log.info("TLS port: no handshake within handshake_timeout; closed")
            self.close()

    def _stop_peeking(self) -> None:
        peek, self._peek = self._peek, None
        if peek is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(peek.fileno())
            peek.close()

    def _finish(self) -> None:
        if self._stage == "done":
            return
        self._stage = "done"
        self._stop_peeking()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._srv._gates.discard(self)
        if not self.done.done():
            self.done.set_result(None)
