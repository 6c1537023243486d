"""shutdown() serves what clients had delivered when it began, not what they send afterwards.

A client that kept sending notifications held the sync server's shutdown() for its
whole ``shutdown_grace``: every read found more to run, and the socket always held
unread bytes (probe, grace 3 s, a flooding client: 3.3-3.8 s in 5/5 runs). Now a
connection reads, once shutdown() began, the bytes its socket held then (their
notifications run, their requests get -32000, as before); what arrives later is
still read while the connection stays open, but its requests get -32000 and its
notifications are dropped, and that reading holds nothing up.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from _driver_helpers import WAIT, request, start_thread, tls_contexts, wait_for

from jsonrpc_mini import RPCServer

pytestmark = pytest.mark.timeout(180)

GRACE = 120.0  # far longer than any wait below: a shutdown() held for it fails the test
HELD = 40.0  # how long the flood's shutdown() may take (running what was delivered before it)


def _note(value: Any) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "method": "note", "params": [value]}).encode() + b"\n"


class _Noted:
    """A server whose ``note`` records its argument, and ``slow`` that waits for ``release``."""

    def __init__(self) -> None:
        self.values: list[Any] = []
        self.entered, self.release = threading.Event(), threading.Event()
        self.server = RPCServer(shutdown_grace=GRACE)
        self.server.register_function(self.values.append, name="note")
        self.server.register_function(lambda a, b: a + b, name="add")

        @self.server.register
        def slow() -> str:
            self.entered.set()
            self.release.wait(WAIT)
            return "done"


@contextmanager
def _connected(server: RPCServer, kind: str) -> Iterator[socket.socket]:
    """A blocking client socket to ``server``, started on ``kind`` (tcp, unix, tls); the server stopped at the end."""
    server_ctx = client_ctx = None
    if kind == "tls":
        server_ctx, client_ctx = tls_contexts()
    with tempfile.TemporaryDirectory() as folder:
        if kind == "unix":
            path = os.path.join(folder, "s.sock")
            server.start(path=path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(path)
        else:
            address = server.start("127.0.0.1", 0, ssl=server_ctx)
            assert isinstance(address, tuple)
            sock = socket.create_connection(address, timeout=WAIT)
            if client_ctx is not None:
                sock = client_ctx.wrap_socket(sock, server_hostname="127.0.0.1")
        sock.settimeout(WAIT)
        try:
            yield sock
        finally:
            sock.close()
            stopper = start_thread(server.shutdown)
            stopper.join(GRACE + WAIT)  # (a failed test's shutdown: the flood stopped, it ends)


@pytest.mark.parametrize("kind", ["tcp", "unix", "tls"])
def test_a_client_that_keeps_sending_notifications_does_not_hold_shutdown(kind: str) -> None:
    noted = _Noted()
    stop = threading.Event()
    with _connected(noted.server, kind) as sock:

        def flood() -> None:
            notes = _note("flood") * 50
            sock.settimeout(None)  # (blocking: it keeps the server's socket full; ends when the server closes)
            try:
                while not stop.is_set():
                    sock.sendall(notes)  # (as fast as the server takes them: its socket stays full)
            except (OSError, ssl.SSLError):
                pass  # (the server closed the connection)

        flooder = start_thread(flood)
        try:
            wait_for(lambda: len(noted.values) >= 20_000, "the flood's notifications running")
            stopper = start_thread(noted.server.shutdown)
            # Held for GRACE before: the flood never stopped on its own. Now for the
            # notifications its socket held as shutdown() began (megabytes over TCP: ~1 s).
            stopper.join(HELD)
            assert not stopper.is_alive(), "shutdown() held by a client that keeps sending notifications"
        finally:
            stop.set()
            flooder.join(WAIT)
    assert not flooder.is_alive()


def test_messages_that_arrive_after_shutdown_began_on_a_busy_connection() -> None:
    # A call runs, so the connection stays open while shutdown() waits for it: what the
    # client sends meanwhile is read, its requests refused, its notifications not run.
    noted = _Noted()
    with _connected(noted.server, "tcp") as sock:
        sock.sendall(request("slow", id_=1))
        assert noted.entered.wait(WAIT)
        stopper = start_thread(noted.server.shutdown)
        wait_for(lambda: noted.server.address is None, "shutdown() to begin")
        reader = _Lines(sock)
        sock.sendall(_note("late") + request("add", [1, 2], id_=2))
        reply = reader.json_line()
        assert reply["id"] == 2 and reply["error"]["code"] == -32000
        batch = [json.loads(_note("late in a batch")), json.loads(request("add", [2, 2], id_=3)), 7]
        sock.sendall(json.dumps(batch).encode() + b"\n")
        replies = reader.json_line()
        assert [r["id"] for r in replies] == [3, None]
        assert replies[0]["error"]["code"] == -32000 and replies[1]["error"]["code"] == -32600
        noted.release.set()
        assert reader.json_line() == {"jsonrpc": "2.0", "id": 1, "result": "done"}
        stopper.join(WAIT)
        assert not stopper.is_alive()
    assert noted.values == []


def test_notifications_delivered_before_shutdown_still_run_behind_a_call() -> None:
    # Sent before shutdown() began, behind a running call: in the socket, unread, when it
    # began. They run (the -32000 goes to the request among them), whatever came after.
    noted = _Noted()
    with _connected(noted.server, "tcp") as sock:
        sock.sendall(request("slow", id_=1))
        assert noted.entered.wait(WAIT)
        sock.sendall(_note(1) + request("add", [1, 2], id_=2) + _note(2))
        wait_for(lambda: _unread(noted.server) > 0, "the notes waiting in the server's socket")
        stopper = start_thread(noted.server.shutdown)
        wait_for(lambda: noted.server.address is None, "shutdown() to begin")
        sock.sendall(_note("late"))
        reader = _Lines(sock)
        noted.release.set()
        replies = {r["id"]: r for r in (reader.json_line(), reader.json_line())}
        assert replies[1]["result"] == "done" and replies[2]["error"]["code"] == -32000
        stopper.join(WAIT)
        assert not stopper.is_alive()
    assert noted.values == [1, 2]


def _unread(server: RPCServer) -> int:
    return sum(session._transport.unread() for session in list(server._sessions))  # type: ignore[attr-defined]


class _Lines:
    """Reads newline-ended JSON values from a socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buf = sock, b""

    def json_line(self) -> Any:
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            assert chunk, f"closed; got {self.buf!r}"
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return json.loads(line)
