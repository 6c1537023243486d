"""The sync server's late reader (what arrives after shutdown() began) cut short.

Review28 (session 29). A late reader blocked sending a late request's -32000 to a
client that reads nothing, with late notifications of the same read behind it: the
grace ends, shutdown() closes the connection, the send fails, and the session's last
thread ran those late notifications (8,000-15,000 a run, after shutdown() returned;
ffac634 to 71ba1f7). And a late message never ended: read_timeout ends the read once
(e5c7f73, which had no test), and the call still running is answered.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from typing import Any

import pytest
from _driver_helpers import WAIT, request, start_thread, wait_for

from jsonrpc_mini import RPCServer, SocketTransport

pytestmark = pytest.mark.timeout(60)


def _note(value: Any) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "method": "note", "params": [value]}).encode() + b"\n"


class _Served:
    """A sync server with ``note`` (records its argument) and ``slow`` (waits for ``release``)."""

    def __init__(self, grace: float) -> None:
        self.values: list[Any] = []
        self.entered, self.release = threading.Event(), threading.Event()
        self.server = RPCServer(shutdown_grace=grace)
        self.server.register_function(self.values.append, name="note")

        def slow() -> str:
            self.entered.set()
            self.release.wait(WAIT)
            return "done"

        self.server.register_function(slow)
        address = self.server.start("127.0.0.1", 0)
        assert isinstance(address, tuple)
        self.address = address

    def began(self) -> bool:
        return all(session.draining is not None for session in list(self.server._sessions))

    def ended(self) -> bool:
        return not self.server._sessions


def test_late_notifications_are_not_run_when_the_close_cuts_the_late_reader_short() -> None:
    # The client reads nothing: the late reader blocks sending a late request's -32000
    # with late notifications of the same read behind it. The grace ends, shutdown()
    # closes the connection, and that send fails.
    served = _Served(grace=1.0)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(served.address)
    sock.settimeout(WAIT)
    stopper = sender = None
    try:
        wait_for(lambda: len(served.server._sessions) == 1, "the connection served")
        (session,) = served.server._sessions
        transport = session._transport
        assert isinstance(transport, SocketTransport)
        transport.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # (blocks the -32000s soon)
        sock.sendall(request("slow", id_=1))
        assert served.entered.wait(WAIT)
        stopper = start_thread(served.server.shutdown)
        wait_for(served.began, "shutdown() to begin")
        late = b"".join(request("slow", id_=10 + k) + _note(f"late {k}") for k in range(2000))

        def send() -> None:
            with contextlib.suppress(OSError):  # (the server closed the connection)
                sock.sendall(late)

        sender = start_thread(send)
        stopper.join(WAIT)
        assert not stopper.is_alive()
    finally:
        served.release.set()  # (the slow call's thread ends last: it runs what is left)
        if stopper is None:
            served.server.shutdown()
        wait_for(served.ended, "the connection's threads ending")
        sock.close()
        if sender is not None:
            sender.join(WAIT)
    assert served.values == []


def test_a_late_message_cut_short_times_out_once_and_the_call_is_answered(caplog: pytest.LogCaptureFixture) -> None:
    entered, release = threading.Event(), threading.Event()
    server = RPCServer(read_timeout=0.3, shutdown_grace=WAIT)

    def slow() -> str:
        entered.set()
        release.wait(WAIT)
        return "done"

    server.register_function(slow)
    address = server.start("127.0.0.1", 0)
    assert isinstance(address, tuple)
    sock = socket.create_connection(address, timeout=WAIT)
    stopper = None
    try:
        with caplog.at_level(logging.DEBUG, logger="jsonrpc_mini"):
            sock.sendall(request("slow", id_=1))
            assert entered.wait(WAIT)
            (session,) = server._sessions
            stopper = start_thread(server.shutdown)
            wait_for(lambda: session.draining is not None, "shutdown() to begin")
            sock.sendall(b'{"jsonrpc": "2.0", "method": "sl')  # late, and never ended
            wait_for(lambda: "message not completed within read_timeout" in caplog.text, "the late read timing out")
            release.set()
            reply = b""
            while not reply.endswith(b"\n"):
                chunk = sock.recv(65536)
                assert chunk, reply
                reply += chunk
            stopper.join(WAIT)
            assert not stopper.is_alive()
        assert json.loads(reply) == {"jsonrpc": "2.0", "id": 1, "result": "done"}
        assert caplog.text.count("message not completed within read_timeout") == 1
    finally:
        release.set()
        sock.close()
        if stopper is None:
            server.shutdown()
