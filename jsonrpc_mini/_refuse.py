"""Turning a connection away with one JSON-RPC error: too many connections, plain text on a TLS port."""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl as _ssl
import threading
import time
from collections.abc import Callable

from ._codec import ErrorObject, ErrorResponse, encode_message
from ._framing import encode_frame
from ._json import JsonCodec
from ._peer_names import client_text
from ._tls_transport import TlsTransport, tls_handshake
from ._transport import Setup, Transport

log = logging.getLogger("jsonrpc_mini")

# The first byte of every TLS connection: a handshake record (content type 22).
_TLS_HANDSHAKE = 0x16
# Reading what a turned-away client sent is bounded in bytes (one request of the
# default max_message_size) and time.
DRAIN_BYTES = 16 * 1024 * 1024
DRAIN_SECONDS = 1.0

TOO_MANY_CONNECTIONS = "Server error: too many connections, try again later"
TLS_REQUIRED = "Server error: this server speaks TLS; connect with an ssl.SSLContext (ssl=...)"


def is_tls_start(first: bytes) -> bool:
    """Whether a connection's first byte(s) can begin a TLS handshake (b"" is not known yet: False)."""
    return bool(first) and first[0] == _TLS_HANDSHAKE


def refusal_line(message: str) -> bytes:
    """The one line a turned-away client reads: a -32000 error (id null) carrying ``message``.

    Both servers (sync and asyncio) send exactly these bytes.
    """
    body = encode_message(ErrorResponse(None, ErrorObject(-32000, message)), JsonCodec().dumps)
    return encode_frame(body, "newline")


def refuse(conn: socket.socket, message: str, *, drain: bool = False) -> None:
    """Send one -32000 error (id null) on ``conn`` in plain newline framing, then close it.

    ``drain``: first read (bounded) what the client sent. Closing a socket with
    unread input resets the connection, and the reset can destroy the answer
    before the client reads it.
    """
    try:
        conn.settimeout(DRAIN_SECONDS)
        conn.sendall(refusal_line(message))
        conn.shutdown(socket.SHUT_WR if drain else socket.SHUT_RDWR)
        if drain:
            _drain(_recv_plain(conn))
    except OSError:
        pass
    conn.close()


def _drain(recv: Callable[[int, float], bytes]) -> None:
    """Read and drop what the client sends, up to DRAIN_BYTES within DRAIN_SECONDS.

    ``recv(max_bytes, timeout)`` reads (b"" at the end; TimeoutError, an OSError, when none came).
    """
    deadline = time.monotonic() + DRAIN_SECONDS
    left = DRAIN_BYTES
    while left > 0:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        data = recv(min(left, 65536), remaining)
        if not data:
            return
        left -= len(data)


def _recv_plain(conn: socket.socket) -> Callable[[int, float], bytes]:
    def recv(max_bytes: int, timeout: float) -> bytes:
        conn.settimeout(timeout)
        return conn.recv(max_bytes)

    return recv


def _handshake(
    conn: socket.socket, context: _ssl.SSLContext, timeout: float, plain: str, send_timeout: float | None = None
) -> TlsTransport | None:
    """``conn``'s TLS transport once the handshake is done; None if it is closed instead.

    The first byte is peeked first: a client that starts in plain text (not a TLS
    handshake record, e.g. a JSON request from a client without ``ssl=``) gets the
    error ``plain`` in plain text, after a bounded drain. ``timeout`` bounds the
    peek, and the handshake as a whole.
    """
    client = client_text(conn)  # (a client that resets is no longer known by the socket)
    try:
        conn.settimeout(timeout)
        first = conn.recv(1, socket.MSG_PEEK)
        if first and not is_tls_start(first):
            log.info("%s spoke plain text on a TLS port; answered and closed", client)
            refuse(conn, plain, drain=True)
            return None
        return tls_handshake(conn, context, timeout, server_side=True, send_timeout=send_timeout)
    except OSError as exc:  # (ssl.SSLError is an OSError)
        log.info("TLS handshake with %s failed: %s", client, exc)
        conn.close()
        return None


def tls_setup(conn: socket.socket, context: _ssl.SSLContext, timeout: float, send_timeout: float | None) -> Setup:
    """The TLS handshake of one accepted connection, run in its session's thread.

    A client that starts in plain text gets one plain JSON-RPC error saying that
    this server speaks TLS, instead of a bare reset (see _handshake).
    """

    def handshake() -> Transport | None:
        return _handshake(conn, context, timeout, TLS_REQUIRED, send_timeout)

    return handshake


def refuse_over_tls(conn: socket.socket, context: _ssl.SSLContext, message: str) -> None:
    """Turn ``conn`` (on a TLS port) away over TLS if it starts a handshake, else in plain text.

    Every step is bounded by DRAIN_SECONDS: the first byte, the handshake, the
    answer, the drain.
    """
    tls = _handshake(conn, context, DRAIN_SECONDS, message)
    if tls is None:
        return
    try:
        tls.send_within(refusal_line(message), DRAIN_SECONDS)
        _drain(tls.recv)  # as refuse(): unread input would reset the connection, answer and all
    except OSError:
        pass
    finally:
        tls.close()


class TlsRefusals:
    """Connections a full TLS server turns away over TLS, each in a short-lived thread.

    A TLS client cannot read a plain-text answer (it sees a failed handshake), so
    the sync server at ``max_connections`` does the handshake before refusing. At
    most ``limit`` such threads run at once; beyond that a connection is refused
    in plain text at once (the client's hint names that case).
    """

    def __init__(self, limit: int = 4) -> None:
        self._lock = threading.Lock()
        self._limit = limit
        self._live: dict[threading.Thread, socket.socket] = {}  # each refusal's thread and socket

    def refuse(self, conn: socket.socket, context: _ssl.SSLContext, message: str) -> None:
        """Answer ``conn`` with ``message`` and close it, over TLS when it speaks TLS."""
        with self._lock:
            self._live = {thread: sock for thread, sock in self._live.items() if thread.is_alive()}
            started = False
            if len(self._live) < self._limit:
                args = (conn, context, message)
                thread = threading.Thread(target=refuse_over_tls, args=args, name="jsonrpc_mini-refuse", daemon=True)
                try:
                    thread.start()
                    started = True
                except RuntimeError:  # "can't start new thread"
                    pass
                else:
                    self._live[thread] = conn
        if not started:
            refuse(conn, message)

    def close(self, timeout: float) -> None:
        """End every refusal under way (their sockets are shut down) and wait up to ``timeout`` for their threads."""
        with self._lock:
            live, self._live = self._live, {}
        for sock in live.values():
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for thread in live:
            thread.join(max(0.0, deadline - time.monotonic()))
