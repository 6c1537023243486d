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

__all__ = ["FLUSH_LIMIT", "LINGER", "close_under", "drop"]

LINGER = 1.0  # seconds a closed TLS connection waits, at most, for the peer's close_notify
# A TLS layer still holding bytes to write when the plain transport is to close: look
# again this often (s), for this long at most (asyncio's own ssl_shutdown_timeout).
_FLUSH_STEP = 0.01
FLUSH_LIMIT = 30.0


def close_under(under: asyncio.BaseTransport, tls: asyncio.BaseTransport, linger: float = LINGER) -> None:
    """Close ``under`` (the plain transport under ``tls``, just closed) within ``linger`` seconds.

    Not while ``tls`` still holds bytes it has not handed to ``under`` (its writing
    paused while ``under``'s buffer is full): a plain transport's close sends what
    was written to it, not what is written after, and once its buffer ran empty
    the TLS layer's last replies and its close_notify were dropped without a word
    (Python 3.12 and 3.13 every run of the 3 MiB-replies test, 3.11 by its timing).
    It waits for them, as the peer reads, ``FLUSH_LIMIT`` seconds at most.
    """
    loop = asyncio.get_running_loop()
    give_up = loop.time() + linger + FLUSH_LIMIT

    def close() -> None:
        if not under.is_closing() and _held_above(tls) and loop.time() < give_up:
            loop.call_later(_FLUSH_STEP, close)
            return
        under.close()

    if linger > 0:
        loop.call_later(linger, close)
    else:
        close()


def _held_above(tls: asyncio.BaseTransport) -> bool:
    """Whether the TLS layer still holds bytes to write (records, the close_notify) it has not handed down."""
    size = getattr(tls, "get_write_buffer_size", None)  # (a WriteTransport's; asyncio's TLS transport has it)
    try:
        return size is not None and size() > 0
    except AttributeError:  # (asyncio's, once its TLS layer is detached: then it holds nothing)
        return False


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
