"""What a fault does to one end of a transport: half-close either way, or reset (RST).

Used by ``FaultyTransport`` (``_faults``), which applies a plan's close, reset or
half-close to the transport it wraps, and by ``LoopbackServer``'s proxy and its
``EagerReader``, which pass them on to their sockets. Each uses the transport's own
method where it has one (the in-memory pipe), the socket's shutdown or SO_LINGER 0
where it is a ``SocketTransport``, and a plain close otherwise. ``was_reset`` tells an
EOF that hides a reset from a peer's close.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import sys

from .._transport import SocketTransport, Transport

__all__ = ["abort_transport", "shutdown_read", "shutdown_write", "was_reset"]

_TCP_CLOSE = 7  # tcp_info.tcpi_state of a connection that ended (Linux: after a reset, or closed here)


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


def was_reset(sock: socket.socket) -> bool:
    """Whether the TCP connection of ``sock``, which just read EOF, was reset (Linux).

    The kernel reports a reset once, to the first call that meets it: a read after a
    write took it gets EOF, as after the peer's close. The connection's state tells
    them apart: CLOSE after a reset, CLOSE_WAIT after the peer's FIN, unless this end
    had sent its FIN first (both FINs also end in CLOSE: the caller rules that out).
    False where it cannot be asked (a closed socket, a system other than Linux: the
    BSDs have ``TCP_INFO`` with other state numbers, macOS none), so there such a
    reset may be passed on as an EOF.
    """
    option = getattr(socket, "TCP_INFO", None)
    if option is None or not sys.platform.startswith("linux"):
        return False
    try:
        state = sock.getsockopt(socket.IPPROTO_TCP, option, 1)
    except (OSError, ValueError):
        return False
    return state[:1] == bytes([_TCP_CLOSE])
