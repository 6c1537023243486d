"""The sync server's listening socket and its accept loop: ``Listener``.

``RPCServer.start`` and ``loop`` make one per run; it binds (TCP or a Unix
socket), accepts connections until stopped (woken through a socketpair), refuses
those beyond ``max_connections`` and hands the others to the server.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import ssl as _ssl
import threading
import time
from typing import TYPE_CHECKING

from ._large_reads import gather_limit
from ._refusal_log import AcceptFailures
from ._refuse import TOO_MANY_CONNECTIONS, refuse, tls_setup
from ._tcp_bind import bind_tcp, listen_address
from ._transport import SocketTransport
from ._unix import bind_unix, socket_file, unlink_socket_file

if TYPE_CHECKING:
    from ._server import Address, RPCServer

__all__ = ["Listener"]


_POLL = 0.5


class Listener:
    """A listening socket and its accept loop, woken for shutdown through a socketpair."""

    def __init__(self, server: RPCServer, host: str, port: int, path: str | None, ssl: _ssl.SSLContext | None) -> None:
        self._server = server
        self._ssl = ssl
        self._path = path
        self._file: tuple[int, int] | None = None  # (st_dev, st_ino) of the Unix socket file bound
        self._stopped = False
        self._failures = AcceptFailures()  # (out of descriptors, every retry fails: not a line each)
        self.closed = threading.Event()
        self.thread: threading.Thread | None = None  # the accept thread start() made, if any
        self.runner: threading.Thread | None = None  # the thread in run() (loop()'s caller's, or thread)
        # shutdown() was called on the runner, by a signal handler: run() ends, then the shutdown
        self.shutdown_asked = False
        self._wake_r, self._wake_w = socket.socketpair()
        opts = server.options
        try:
            if path is not None:
                self.sock = bind_unix(path, opts.unix_mode, opts.backlog)  # listening
                self._file = socket_file(path)  # close() removes this file, not one put there since
                self.address: Address = path
            else:
                self.sock = bind_tcp(*listen_address(host, port), opts.backlog)  # one socket (see _tcp_bind)
                bound = self.sock.getsockname()
                self.address = (bound[0], bound[1])
            self._selector = selectors.DefaultSelector()
            self._selector.register(self.sock, selectors.EVENT_READ)
            self._selector.register(self._wake_r, selectors.EVENT_READ)
        except BaseException:
            self._wake_r.close()
            self._wake_w.close()
            if hasattr(self, "sock"):
                self.sock.close()
            raise

    def run(self) -> None:
        """Accept connections until stopped."""
        self.runner = threading.current_thread()
        server = self._server
        while not self._stopped:
            try:
                # A selector, not select.select(): that refuses descriptors above 1023.
                events = self._selector.select(_POLL)
            except (OSError, ValueError):
                return
            if self._stopped:
                return
            if not any(key.fileobj is self.sock for key, _ in events):
                continue
            try:
                conn, _ = self.sock.accept()
            except OSError as exc:
                self._failures.failed(exc)
                time.sleep(0.01)  # e.g. out of file descriptors: do not spin
                continue
            if server.connection_count >= server.options.max_connections:
                server._refusal_log.refused()
                if self._ssl is not None:
                    server._refusals.refuse(conn, self._ssl, TOO_MANY_CONNECTIONS)
                else:
                    refuse(conn, TOO_MANY_CONNECTIONS)
                continue
            if conn.family != socket.AF_UNIX:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            opts = server.options
            setup = None
            if self._ssl is not None:
                setup = tls_setup(conn, self._ssl, opts.handshake_timeout, opts.read_timeout)
            gather = gather_limit(opts.max_message_size)
            transport = SocketTransport(conn, send_timeout=opts.read_timeout, gather=gather)
            server._add_session(transport, setup)

    def stop(self) -> None:
        """Make ``run`` return soon; idempotent."""
        self._stopped = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def close(self) -> None:
        """Release the listening socket (and the Unix socket file)."""
        self._stopped = True
        self._selector.close()
        for sock in (self.sock, self._wake_r, self._wake_w):
            sock.close()
        if self._path is not None:
            unlink_socket_file(self._path, self._file)
        self._failures.flush()
        self.closed.set()
