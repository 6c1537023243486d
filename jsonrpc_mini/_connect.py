"""Opening a connection: the client's socket (TCP, Unix, TLS) as a ``SocketTransport``.

``open_connection`` connects and wraps the socket; ``connect_errors`` turns what
connecting raises into the library's errors, for the sync and the asyncio client.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import ssl as _ssl
from collections.abc import Iterator

from ._errors import ConnectionLost, RPCTimeout
from ._remote import is_count
from ._reprs import path_text
from ._tcp_bind import host_port
from ._tls_transport import tls_handshake
from ._transport import SocketTransport

__all__ = ["check_port", "check_server_hostname", "connect_errors", "connect_target", "open_connection", "plain_socket"]


def check_port(port: object) -> int:
    """``port`` if it is a TCP port number, else ValueError naming it.

    getaddrinfo wraps a larger number (70000 is port 4464) and asyncio raises
    OverflowError: both clients and both servers check first.
    """
    if not (is_count(port, 0) and port <= 65535):
        raise ValueError(f"port must be an int from 0 to 65535, not {port!r}")
    return port


def check_server_hostname(ssl: object, server_hostname: object) -> None:
    """ValueError for a ``server_hostname`` given without ``ssl`` (it would be ignored), as asyncio says."""
    if server_hostname is not None and ssl is None:
        raise ValueError("server_hostname is only meaningful with ssl")


def connect_target(host: object, port: object, path: str | None) -> str:
    """What a failed connect names: the Unix socket path, or ``host:port`` (IPv6 in brackets)."""
    if path is not None:
        return path_text(path)
    return host_port(host, port) if isinstance(host, str) else f"{host}:{port}"


def _tune(sock: socket.socket) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def plain_socket(host: str | None, port: int | None, path: str | None, timeout: float | None) -> socket.socket:
    """A socket connected to ``path`` (Unix) or ``host``/``port`` (TCP) within ``timeout``; OSError if not."""
    if path is not None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(path)
        except BaseException:
            sock.close()
            raise
        return sock
    if host is None or port is None:
        raise ValueError("connect needs host and port (or path= for a Unix socket)")
    return socket.create_connection((host, check_port(port)), timeout=timeout)


def open_connection(
    host: str | None,
    port: int | None,
    *,
    path: str | None = None,
    timeout: float | None = None,
    ssl: _ssl.SSLContext | None = None,
    server_hostname: str | None = None,
) -> SocketTransport:
    """Connect over TCP (optionally TLS) or a Unix socket and return the transport.

    Raises :class:`ConnectionLost` if the peer cannot be reached and
    :class:`RPCTimeout` if connecting takes longer than ``timeout``.
    ``server_hostname`` without ``ssl``: ValueError, as asyncio (the aio client) says.
    """
    check_server_hostname(ssl, server_hostname)
    with connect_errors(connect_target(host, port, path), timeout):
        sock = plain_socket(host, port, path, timeout)
        _tune(sock)
        if ssl is not None:
            try:
                return tls_handshake(
                    sock, ssl, timeout, server_hostname=server_hostname or (host if path is None else None)
                )
            except BaseException:
                sock.close()
                raise
    return SocketTransport(sock)


# What OpenSSL reports when the peer's first bytes are not a TLS record, e.g. the
# plain JSON-RPC error a server without TLS answers a handshake with.
_NOT_TLS = frozenset({"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "UNKNOWN_PROTOCOL"})
# A TLS server also answers in plain text when it turns a connection away before the
# handshake (the sync server past max_connections, once its few TLS refusals are
# busy: _refuse.TlsRefusals), so the hint names both.
_NOT_TLS_HINT = (
    " (the server did not answer in TLS: is it a server without ssl=? A sync jsonrpc_mini"
    " TLS server flooded past max_connections also refuses in plain text)"
)


@contextlib.contextmanager
def connect_errors(where: str, timeout: float | None) -> Iterator[None]:
    """Turn a failed connect to ``where`` into RPCTimeout or ConnectionLost (sync and asyncio)."""
    try:
        yield
    except TimeoutError as exc:
        raise RPCTimeout(f"connecting to {where} timed out after {timeout} s") from exc
    except _ssl.SSLError as exc:
        hint = _NOT_TLS_HINT if exc.reason in _NOT_TLS else ""
        raise ConnectionLost(f"TLS handshake with {where} failed: {exc}{hint}", request_sent=False) from exc
    except OSError as exc:
        raise ConnectionLost(f"cannot connect to {where}: {_os_reason(exc)}", request_sent=False) from exc


# asyncio words a failed connect as "Connect call failed ('127.0.0.1', 5000)" where the
# socket module says "Connection refused"; with several addresses tried and their
# words differing (as the addresses in them do), it joins them after "Multiple
# exceptions: ". Both clients say what the OS says: `[Errno 111] Connection refused`.
_ASYNCIO_CONNECT = re.compile(r"\[Errno (\d+)\] Connect call failed \([^)]*\)")
_MULTIPLE = "Multiple exceptions: "


def _os_reason(exc: OSError) -> str:
    """What the OS said of a failed connect, in the same words for the sync and the aio client."""
    text = str(exc)
    if not text:  # (an OSError made without arguments says nothing: its type at least)
        return type(exc).__name__
    text = _ASYNCIO_CONNECT.sub(lambda found: f"[Errno {found[1]}] {os.strerror(int(found[1]))}", text)
    if text.startswith(_MULTIPLE):
        reasons = set(text[len(_MULTIPLE) :].split(", "))
        if len(reasons) == 1:  # every address refused alike: the one reason, as the sync client says
            return reasons.pop()
    return text
