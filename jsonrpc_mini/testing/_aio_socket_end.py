"""One end of ``AioLoopbackServer``'s fault proxy: a real socket as an end of a faulty link.

The proxy accepts a client's connection (one ``_SocketEnd``) and opens one to the
server (another); the :class:`~jsonrpc_mini.testing._aio_links.Link` between them
applies the fault plan. Moved out of ``_aio_loopback``, which keeps the kit itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import cast

from ._aio_links import Link

__all__ = ["_SocketEnd"]


class _SocketEnd(asyncio.Protocol):
    """A real connection as one end of a faulty link (the proxy has two per client)."""

    HIGH = 256 * 1024

    def __init__(self, name: str) -> None:
        self.name = name
        self.transport: asyncio.Transport | None = None
        self.out: Link | None = None
        self.outbound_is_c2s = True
        self.connected = asyncio.get_running_loop().create_future()
        self.gone = False
        self._writable = asyncio.Event()
        self._writable.set()
        self._got_eof = False
        self._sent_eof = False

    # -- asyncio.Protocol -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Remember the socket."""
        self.transport = cast(asyncio.Transport, transport)
        if not self.connected.done():
            self.connected.set_result(None)

    def data_received(self, data: bytes) -> None:
        """Bytes from this socket go into the link (reading pauses when it queues too much)."""
        assert self.out is not None and self.transport is not None
        direction = self.out.c2s if self.outbound_is_c2s else self.out.s2c
        direction.push(data)
        if direction.queued > self.HIGH:
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        """This side finished sending: EOF travels on after its bytes."""
        assert self.out is not None
        (self.out.c2s if self.outbound_is_c2s else self.out.s2c).finish()
        self._got_eof = True
        if self._sent_eof:  # both directions are over: nothing more to do on this socket
            self.lose(None)
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        """The socket is gone: a reset breaks the link, a close ends this side's sending."""
        self.gone = True
        self._writable.set()
        if self.out is not None:
            if exc is not None:
                self.out.break_link(ConnectionResetError(str(exc)))
            else:
                (self.out.c2s if self.outbound_is_c2s else self.out.s2c).finish()

    def pause_writing(self) -> None:
        """The reader of this socket is slow: hold bytes back."""
        self._writable.clear()

    def resume_writing(self) -> None:
        """It caught up."""
        self._writable.set()

    # -- End ----------------------------------------------------------------------

    def deliver(self, data: bytes) -> None:
        """Write bytes to this socket."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def deliver_eof(self) -> None:
        """Half-close this socket (its reader gets EOF)."""
        transport = self.transport
        if transport is not None and not transport.is_closing():
            self._sent_eof = True
            if self._got_eof or not transport.can_write_eof():
                transport.close()  # both directions are over
            else:
                transport.write_eof()

    def lose(self, exc: Exception | None) -> None:
        """Close this socket; for a reset, send RST (SO_LINGER 0)."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if exc is None:
            transport.close()
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()

    async def readable(self) -> bool:
        """Wait until this socket is connected and its write buffer has room."""
        await self.connected
        await self._writable.wait()
        return not self.gone

    def drained(self, size: int) -> None:
        """The other side took bytes: read from this socket again."""
        if size <= self.HIGH // 4 and self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()
