"""What a fault does to one end of a transport: half-close either way, or reset (RST).

Used by ``FaultyTransport`` (``_faults``), which applies a plan's close, reset or
half-close to the transport it wraps, and by ``LoopbackServer``'s proxy and its
``EagerReader``, which pass them on to their sockets. Each uses the transport's own
method where it has one (the in-memory pipe), the socket's shutdown or SO_LINGER 0
where it is a ``SocketTransport``, and a plain close otherwise.
"""

from __future__ import annotations

import contextlib
import socket
import struct

from .._transport import SocketTransport, Transport

__all__ = ["abort_transport", "shutdown_read", "shutdown_write"]


def shutdown_write(transport: Transport) -> None:
    """Half-close ``transport``: the peer reads EOF, the other direction stays open."""
    method = getattr(transport, "shutdown_write", None)
    if callable(method):
        method()
    elif isinstance(transport, SocketTransport):
        with contextlib.suppress(OSError):
            transport.sock.shutdown(socket.SHUT_WR)
    else:
        transport.close()


def shutdown_read(transport: Transport) -> None:
    """Stop reading from ``transport`` (our reads get EOF); a no-op where unsupported."""
    method = getattr(transport, "shutdown_read", None)
    if callable(method):
        method()
    elif isinstance(transport, SocketTransport):
        with contextlib.suppress(OSError):
            transport.sock.shutdown(socket.SHUT_RD)


def abort_transport(transport: Transport) -> None:
    """Reset ``transport``: a TCP socket sends RST (SO_LINGER 0); a pipe resets both ends."""
    method = getattr(transport, "abort", None)
    if callable(method):
        method()
    elif isinstance(transport, SocketTransport):
        sock = transport.sock
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.shutdown(socket.SHUT_RD)  # wakes a blocked reader without sending FIN
        sock.close()
    else:
        transport.close()
