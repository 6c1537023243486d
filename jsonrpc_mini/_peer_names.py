"""How the servers' log lines name a connection's peer (looked up when a line is logged, never per call)."""

from __future__ import annotations

import socket
import struct
from typing import Any

from ._reprs import path_text

__all__ = ["address_text", "aio_label", "client_text", "peer_text", "session_label", "socket_peer"]

_UNNAMED = "a Unix socket"  # (a client's own path is usually unbound)
_PEERCRED = getattr(socket, "SO_PEERCRED", None)  # (Linux)
_CRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def address_text(address: Any) -> str:
    """``address`` (a socket's peer name) as text: ``127.0.0.1:5555``, ``[::1]:5555``, ``unix:/path``.

    An abstract Unix socket name (Linux) shows as ``unix:@name``, as ``ss`` shows it:
    no NUL byte goes into a log line; a path with a control character in it is quoted
    and escaped (``path_text``).
    """
    if isinstance(address, tuple) and len(address) >= 2 and isinstance(address[0], str):
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if isinstance(address, bytes):  # an abstract name (Linux)
        address = address.decode("utf-8", "backslashreplace")
        if address.startswith("\0"):
            address = "@" + address[1:].replace("\0", "\\x00")
    if isinstance(address, str):
        return f"unix:{path_text(address)}" if address else _UNNAMED
    return "an unknown peer"


def peer_text(sock: Any) -> str:
    """``sock``'s peer as :func:`address_text`; an unnamed Unix client with its process, if known.

    A Unix socket's client seldom binds a path, so its address tells nothing; the
    kernel knows which process connected (SO_PEERCRED, Linux): ``a Unix socket, pid
    4242, uid 1000``. Raises OSError if the socket is closed or the peer gone.
    """
    text = address_text(sock.getpeername())
    if text == _UNNAMED and _PEERCRED is not None:
        try:
            pid, uid, _ = _CRED.unpack(sock.getsockopt(socket.SOL_SOCKET, _PEERCRED, _CRED.size))
        except (OSError, struct.error):
            return text
        if pid > 0:  # (0: not known, e.g. a socketpair's peer in another pid namespace)
            return f"{text}, pid {pid}, uid {uid}"
    return text


def socket_peer(transport: object) -> str | None:
    """The peer of ``transport``'s socket (a SocketTransport's), as :func:`peer_text`; None if it has none."""
    sock = getattr(transport, "sock", None)
    if not isinstance(sock, socket.socket):
        return None
    try:
        return peer_text(sock)
    except OSError:  # closed, or the peer is gone
        return None


def session_label(name: str, transport: object) -> str:
    """A sync server connection's name in its log lines: ``jsonrpc_mini-conn-3 (127.0.0.1:5555)``.

    Only the name once the socket is closed or reset: the lines that may come then
    (a failed read or write) are debug lines.
    """
    peer = socket_peer(transport)
    return name if peer is None else f"{name} ({peer})"


def client_text(sock: socket.socket) -> str:
    """A client socket's peer for a log line: ``client 127.0.0.1:5555`` (``a client`` if it is gone).

    Taken before a TLS handshake starts: once the client has reset the connection,
    the socket no longer knows its peer.
    """
    try:
        return f"client {address_text(sock.getpeername())}"
    except OSError:
        return "a client"


def aio_label(transport: Any) -> str:
    """An aio server connection's name in its log lines: ``connection from 127.0.0.1:5555``."""
    try:
        peer = transport.get_extra_info("peername") if transport is not None else None
    except Exception:  # (a transport of the user's own)
        return "connection"
    if peer is None:
        return "connection"
    text = address_text(peer)
    if text == _UNNAMED:
        try:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                text = peer_text(sock)
        except Exception:  # (closed meanwhile; a transport of the user's own)
            pass
    return f"connection from {text}"
