"""Closing an asyncio TLS connection without waiting long for the peer's close_notify.

asyncio's TLS layer, closed, sends what is written and its close_notify, then
waits up to 30 s (``ssl_shutdown_timeout``) for the peer's close_notify before it
closes the socket, reading meanwhile. A peer that reads nothing (this library's
own sync client between calls) never sends one, so the socket, and on a server
its ``max_connections`` slot, stayed taken that long. The drivers keep the plain
transport under TLS and close it after ``LINGER`` seconds at most: a plain
transport's close still sends everything written first (then the socket closes),
and a peer that answers in time ends the wait at once, as before. Reading on
through the short wait matters: closing a socket with unread input resets the
connection, and a reset can destroy what was sent but not yet received (the
session tickets a TLS 1.3 server sends after its handshake often arrive then).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

__all__ = ["LINGER", "close_under", "drop"]

LINGER = 1.0  # seconds a closed TLS connection waits, at most, for the peer's close_notify


def close_under(under: asyncio.BaseTransport, linger: float = LINGER) -> None:
    """Close ``under`` (the plain transport under a TLS one just closed) within ``linger`` seconds."""
    if linger > 0:
        asyncio.get_running_loop().call_later(linger, under.close)
    else:
        under.close()


def drop(transport: asyncio.Transport) -> None:
    """Abort ``transport``, and have its socket reset the connection rather than linger.

    ``abort()`` drops what asyncio still buffers, but closing a TCP socket leaves
    what the kernel holds to be sent (megabytes) to a peer that may never read it,
    and the peer sees no end until all of it is taken. A reset drops that too and
    tells the peer at once. (Unix sockets hand bytes to the peer as written.)
    """
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
