"""The late-traffic shutdown tests' server (sync or aio, recording its notifications) and probes of its connections."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from _driver_helpers import WAIT, start_thread, tls_contexts

from jsonrpc_mini import RPCServer, aio
from jsonrpc_mini._aio_ending import EndingProtocol, _tls_held
from jsonrpc_mini._session import Session
from jsonrpc_mini._session_drain import Drain
from jsonrpc_mini._socket_waits import unread_count
from jsonrpc_mini._transport import Transport

NOTES = list(range(1, 21))
GRACE = 120.0  # far longer than any wait below: a shutdown() held for it fails the test
HELD = 40.0  # how long the flood's shutdown() may take (running what was delivered before it)
# A notification of the flood over TCP and TLS: 1 KB. What the socket holds as
# shutdown() begins runs first, and TCP's buffer grows to megabytes (the sync server's
# reads before then take up to 16 MiB more): with 50-byte notifications, up to 380 000
# of them ran first, 11-29 s with coverage beside two busy loops, past HELD under more
# load. The same bytes now hold 20 times fewer. (Sent 1 MB at a time, so that the server
# never finds its socket empty: with 50 KB sends the sync server before 95317e9, which
# shutdown() waited for while its socket held bytes, was not held in 1 run of 3.)
FLOOD = "f" * 1000


def note(value: Any) -> bytes:
    """A notification calling ``note(value)``, newline-framed."""
    return json.dumps({"jsonrpc": "2.0", "method": "note", "params": [value]}).encode() + b"\n"


class Noted:
    """A server (sync or aio): ``note`` records its argument, ``slow`` and ``slow2`` wait for ``release``(``2``)."""

    def __init__(self, driver: str, **options: Any) -> None:
        self.values: list[Any] = []
        self.entered, self.release = threading.Event(), threading.Event()
        self.entered2, self.release2 = threading.Event(), threading.Event()
        kind = RPCServer if driver == "sync" else aio.RPCServer
        self.server: Any = kind(shutdown_grace=GRACE, **options)
        self.server.register_function(self.values.append, name="note")  # (aio: in its thread pool)
        self.server.register_function(lambda a, b: a + b, name="add")

        def slow() -> str:
            self.entered.set()
            self.release.wait(WAIT)
            return "done"

        self.server.register_function(slow)

        def slow2() -> str:
            self.entered2.set()
            self.release2.wait(WAIT)
            return "done 2"

        self.server.register_function(slow2)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None

    def start(self, *args: Any, **kwargs: Any) -> Any:
        """``server.start(...)``; the aio server on an event loop of its own, in a thread."""
        if isinstance(self.server, RPCServer):
            return self.server.start(*args, **kwargs)
        self.loop = loop = asyncio.new_event_loop()
        self.thread = start_thread(loop.run_forever)
        return asyncio.run_coroutine_threadsafe(self.server.start(*args, **kwargs), loop).result(WAIT)

    def shutdown(self) -> threading.Thread:
        """``server.shutdown()`` running in a thread (joined by the caller, bounded)."""
        if self.loop is None:
            return start_thread(self.server.shutdown)
        future = asyncio.run_coroutine_threadsafe(self.server.shutdown(), self.loop)
        return start_thread(future.result, GRACE + WAIT)

    def began(self) -> bool:
        """Whether shutdown() has begun on every connection (each counted the bytes it had then).

        The aio connection's count, not its ``_draining``: drain() sets that one step
        before it counts, and bytes sent on seeing it could be counted as delivered in
        time (the late notifications of the cut-message test ran, ~1 run in 150 under load).
        """
        if self.server.address is not None:
            return False
        if isinstance(self.server, RPCServer):
            return all(session.draining is not None for session in list(self.server._sessions))
        return all(conn._drain_left is not None for conn in list(self.server._conns))

    def stop(self) -> None:
        """Shut down (waits for a held shutdown: a failed test stopped its client first), end the loop."""
        self.shutdown().join(GRACE + WAIT)
        if self.loop is not None and self.thread is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(WAIT)
            self.loop.close()


WIDE = 0.2  # (s) how long widen holds a step back: a test's thread acts meanwhile


def widen(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hold back three steps a test's premise must not race, so that such a premise fails every run.

    The aio connection's count as shutdown() begins, and the sync reader's end of the
    count over TLS (``Drain.none_waiting``): bytes a test sends before either are counted
    as delivered in time. And the sync server's late reader's replies, which shutdown()
    does not wait for: a test that reads one once its connection's calls have ended may
    find the connection closed first.
    """
    count = EndingProtocol._held

    def count_later(self: EndingProtocol) -> int | None:
        if self._draining and self._drain_left is None:  # (drain()'s count)
            time.sleep(WIDE)
        return count(self)

    end = Drain.none_waiting

    def end_later(self: Drain, transport: Transport) -> None:
        time.sleep(WIDE)
        end(self, transport)

    send = Session._send_reading

    def reply_later(self: Session, data: bytes) -> bool:
        if self.draining is not None and self.draining.late:
            time.sleep(WIDE)
        return send(self, data)

    monkeypatch.setattr(EndingProtocol, "_held", count_later)
    monkeypatch.setattr(Drain, "none_waiting", end_later)
    monkeypatch.setattr(Session, "_send_reading", reply_later)


@contextmanager
def connected(noted: Noted, kind: str) -> Iterator[socket.socket]:
    """A blocking client socket to the server, started on ``kind`` (tcp, unix, tls); the server stopped at the end."""
    server_ctx = client_ctx = None
    if kind == "tls":
        server_ctx, client_ctx = tls_contexts()
    with tempfile.TemporaryDirectory() as folder:
        if kind == "unix":
            path = os.path.join(folder, "s.sock")
            noted.start(path=path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(path)
        else:
            address = noted.start("127.0.0.1", 0, ssl=server_ctx)
            assert isinstance(address, tuple)
            sock = socket.create_connection(address, timeout=WAIT)
            if client_ctx is not None:
                sock = client_ctx.wrap_socket(sock, server_hostname="127.0.0.1")
        sock.settimeout(WAIT)
        try:
            yield sock
        finally:
            sock.close()
            noted.stop()


def server_sockets(noted: Noted) -> list[Any]:
    """The sockets of the server's connections (the aio server's: asyncio's wrappers)."""
    if isinstance(noted.server, RPCServer):
        return [session._transport.sock for session in list(noted.server._sessions)]
    socks = [conn._transport.get_extra_info("socket") for conn in list(noted.server._conns)]
    return [sock for sock in socks if sock is not None]


def busy(noted: Noted) -> list[int]:
    """The calls running on each of the server's connections."""
    if isinstance(noted.server, RPCServer):
        return [session.busy_now() for session in list(noted.server._sessions)]
    return [conn.busy for conn in list(noted.server._conns)]


def count_ended(noted: Noted) -> bool:
    """Whether every connection has read the bytes there as shutdown() began: what comes now is late.

    Not the sync reader's ``_check_events``: it turns False a step before the reader
    ends the count over TLS (``Drain.none_waiting``), and a late message sent on seeing
    it could be read within the records' overhead left of the count, in time (it ran,
    ~1 run in 300 under load; every run widened).
    """
    if isinstance(noted.server, RPCServer):
        return all(s.draining is not None and s.draining.spent for s in list(noted.server._sessions))
    return all(conn._drain_left == 0 for conn in list(noted.server._conns))


def unread(noted: Noted) -> int:
    """Bytes unread in the sockets of the server's connections (the sync server's, or the aio one's)."""
    if isinstance(noted.server, RPCServer):
        return sum(session._transport.unread() for session in list(noted.server._sessions))
    return sum(unread_count(sock.fileno()) for sock in server_sockets(noted))


class Lines:
    """Reads newline-ended JSON values from a socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buf = sock, b""
        self.lines: list[bytes] = []  # (named when the server closes: "got b''" alone read as "got nothing")

    def json_line(self) -> Any:
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            assert chunk, f"closed after {self.lines!r}; then got {self.buf!r}"
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        self.lines.append(line)
        return json.loads(line)


def tls_unread(noted: Noted) -> int:
    """Encrypted bytes the server's connections hold unread: in the socket, and in asyncio's TLS layer (aio)."""
    if isinstance(noted.server, RPCServer):
        return unread(noted)
    total = 0
    for conn in list(noted.server._conns):
        sock = conn._transport.get_extra_info("socket")
        total += (unread_count(sock.fileno()) if sock is not None else 0) + _tls_held(conn._transport)
    return total
