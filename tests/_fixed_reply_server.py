"""A TCP server on 127.0.0.1 that answers every request line with one fixed reply.

For the tests of ``check HOST:PORT`` against servers whose replies are wrong.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import ssl as _ssl
import threading
from collections.abc import Iterator


class _FixedReply(socketserver.BaseRequestHandler):
    """Answers every newline-terminated request with ``reply`` (set per server)."""

    reply = b""
    context: _ssl.SSLContext | None = None  # (a server context: TLS first)

    def handle(self) -> None:
        self.request.settimeout(5)
        if self.context is None:
            self._answer(self.request)
            return
        try:
            tls = self.context.wrap_socket(self.request, server_side=True)
        except OSError:  # (the handshake failed: the client says so)
            return
        with tls:
            self._answer(tls)

    def _answer(self, sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := sock.recv(65536):
                sock.sendall(self.reply * data.count(b"\n"))


@contextlib.contextmanager
def answering(reply: bytes, ssl: _ssl.SSLContext | None = None) -> Iterator[tuple[str, int]]:
    """The server answering each newline-ended request with ``reply`` (over TLS with ``ssl``), while in the block."""
    with serving(type("Handler", (_FixedReply,), {"reply": reply, "context": ssl})) as address:
        yield address


@contextlib.contextmanager
def serving(handler: type[socketserver.BaseRequestHandler]) -> Iterator[tuple[str, int]]:
    """A threading TCP server on 127.0.0.1 running ``handler`` per connection, while in the block."""
    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        host, port = srv.server_address[:2]
        yield str(host), int(port)
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)
