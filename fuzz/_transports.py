"""The three transports the socket fuzz targets run over: 127.0.0.1 TCP, Unix socket, TLS.

TLS sends each ``sendall`` as its own record; with TCP_NODELAY each record leaves at
once, so the split points a test draws still reach the peer's reader as separate reads
(the TLS layer only ever joins pieces, as TCP may; it never splits one mid-record for
the reader: a record is decrypted whole).

A client half-closes a TLS connection as it does a TCP one, with a TCP FIN and no
close_notify: ``SSLSocket.shutdown`` would drop the TLS layer (later reads would see
raw records) and ``unwrap`` discards application data still arriving, so the fuzz
calls ``socket.socket.shutdown`` on the SSL socket. The servers must treat that EOF as
a half-close and still answer what they owe (README, Half-close; both servers lost
those replies until session 33).
"""

from __future__ import annotations

import functools
import os
import socket
import ssl
import tempfile
from dataclasses import dataclass, field
from typing import Any

import _driver_helpers  # (tests/, on pythonpath)
from hypothesis import settings

from ._budget import scaled

TRANSPORTS = ["tcp", "unix", "tls"]


@functools.cache
def tls_contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """The tests' (server, client) contexts, made once per session (key generation is slow)."""
    return _driver_helpers.tls_contexts()


def budget(transport: str, fraction: float) -> settings:
    """The test's examples over TCP; a third of them over the other transports (CI time)."""
    return scaled(fraction if transport == "tcp" else fraction / 3)


@dataclass
class Endpoint:
    """Where a server listens (or is to listen) over one transport, and how to reach it."""

    transport: str
    tls: tuple[ssl.SSLContext, ssl.SSLContext] | None = None
    path: str | None = None
    address: Any = None  # what start() returned
    scratch: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    @classmethod
    def new(cls, transport: str) -> Endpoint:
        if transport == "unix":
            scratch = tempfile.TemporaryDirectory(prefix="fz")
            return cls(transport, path=os.path.join(scratch.name, "s"), scratch=scratch)
        return cls(transport, tls=tls_contexts() if transport == "tls" else None)

    def listen_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of a server's start()."""
        if self.path is not None:
            return {"path": self.path}
        return {"host": "127.0.0.1", "port": 0, "ssl": self.tls[0] if self.tls else None}

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of RPCClient() / aio.connect() for this server."""
        if self.path is not None:
            return {"host": None, "port": None, "path": self.path}
        host, port = self.address
        return {"host": host, "port": port, "ssl": self.tls[1] if self.tls else None}

    def raw(self, timeout: float) -> socket.socket:
        """A connected client socket (TLS handshake done; small writes leave at once)."""
        if self.path is not None:
            sock = socket.socket(socket.AF_UNIX)
            sock.settimeout(timeout)
            sock.connect(self.path)
            return sock
        sock = socket.create_connection(self.address, timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is None:
            return sock
        return self.tls[1].wrap_socket(sock, server_hostname="127.0.0.1")

    def listener(self, timeout: float) -> socket.socket:
        """A listening socket of a scripted server (TLS: accepted sockets are wrapped by accept())."""
        if self.path is not None:
            sock = socket.socket(socket.AF_UNIX)
            sock.bind(self.path)
            sock.listen()
        else:
            sock = socket.create_server(("127.0.0.1", 0))
            self.address = sock.getsockname()[:2]
            if self.tls is not None:
                sock = self.tls[0].wrap_socket(sock, server_side=True)
        sock.settimeout(timeout)
        return sock

    def close(self) -> None:
        if self.scratch is not None:
            self.scratch.cleanup()
