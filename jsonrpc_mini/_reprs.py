"""What the servers' and clients' ``repr()`` say: where they listen, or whom they talk to.

A server or client printed in a log or a debugger should tell which one it is:
the port ``start(host, 0)`` picked, the server a client reached. Both servers and
both clients build their text here, so the four read alike.
"""

from __future__ import annotations

from ._tcp_bind import host_port

__all__ = ["client_repr", "path_text", "server_repr"]


def path_text(path: str) -> str:
    """A Unix socket path as a repr, a log line or a message shows it: as it is, or quoted and escaped.

    A path holding a newline or another character ``str.isprintable()`` refuses (a
    control character, an escape sequence) is shown as ``repr()`` shows it: printed
    raw, a newline made one log line read as two, and an escape sequence reached the
    terminal. Quoted, it cannot be read as a path with a backslash in it.
    """
    return path if path.isprintable() else repr(path)


def server_repr(kind: str, address: tuple[str, int] | str | None, methods: int, connections: int) -> str:
    """Both servers' ``repr()``: ``<RPCServer listening on 127.0.0.1:5000 methods=2 connections=1>``."""
    if address is None:
        state = "not listening"
    else:
        state = f"listening on {path_text(address) if isinstance(address, str) else host_port(*address)}"
    return f"<{kind} {state} methods={methods} connections={connections}>"


def client_repr(kind: str, connected: bool, peer: str | None, timeout: float | None) -> str:
    """Both clients' ``repr()``: ``<RPCClient connected to 127.0.0.1:5000 timeout=None>``.

    ``peer`` is what ``connect()`` reached, as its errors name it (``host:port``
    as given, or the Unix socket's path); None for a client made on a transport
    (the test kit's, ``FakeSocket``): then just ``connected``.
    """
    if not connected:
        state = "not connected"
    elif peer is None:
        state = "connected"
    else:
        state = f"connected to {path_text(peer)}"  # (host:port is always printable)
    return f"<{kind} {state} timeout={timeout}>"
