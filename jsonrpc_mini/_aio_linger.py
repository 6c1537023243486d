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

__all__ = ["LINGER", "close_under"]

LINGER = 1.0  # seconds a closed TLS connection waits, at most, for the peer's close_notify


def close_under(under: asyncio.BaseTransport, linger: float = LINGER) -> None:
    """Close ``under`` (the plain transport under a TLS one just closed) within ``linger`` seconds."""
    if linger > 0:
        asyncio.get_running_loop().call_later(linger, under.close)
    else:
        under.close()
