"""A TCP server on 127.0.0.1 that answers every request line with one fixed reply.

For the tests of ``check HOST:PORT`` against servers whose replies are wrong.
"""

from __future__ import annotations

import contextlib
import socketserver
import threading
from collections.abc import Iterator


class _FixedReply(socketserver.BaseRequestHandler):
    """Answers every newline-terminated request with ``reply`` (set per server)."""

    reply = b""

    def handle(self) -> None:
        self.request.settimeout(5)
        with contextlib.suppress(OSError):
            while data := self.request.recv(65536):
                self.request.sendall(self.reply * data.count(b"\n"))


@contextlib.contextmanager
def answering(reply: bytes) -> Iterator[tuple[str, int]]:
    """The server answering each newline-ended request with ``reply``, running while in the block."""
    handler = type("Handler", (_FixedReply,), {"reply": reply})
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
