"""shutdown() called from a handler at max_concurrent_calls, bytes pipelined behind its call.

55a0b30 made shutdown() wait while bytes wait unread in a served connection's socket.
On the handler's own connection at max_concurrent_calls nobody can read them: the one
call slot is the handler waiting in shutdown(). So it waited out the whole
shutdown_grace (Review27, session 29: 3.00 s with grace 3; 0.00 s on 9332c1c, the
commit before). It waits for them only below the limit now; the connection, once the
handler's call ends, reads what was delivered before shutdown() began (notifications
run, requests get -32000) and then closes: it was closed at once, the notification lost.
The bound below is a hang check, not a measure: with grace 3600 s a correct shutdown()
returns at once.
"""

from __future__ import annotations

import json
import socket
import threading

import pytest
from _driver_helpers import WAIT, LeakCheck, wait_for

from jsonrpc_mini import RPCServer
from jsonrpc_mini._socket_waits import unread_count

pytestmark = pytest.mark.timeout(60)


def test_shutdown_from_a_handler_does_not_wait_for_bytes_nobody_can_read() -> None:
    server = RPCServer(max_concurrent_calls=1, shutdown_grace=3600.0)
    sent, returned = threading.Event(), threading.Event()

    @server.register
    def stop() -> str:
        assert sent.wait(WAIT)
        server.shutdown()
        returned.set()
        return "stopped"

    noted: list[str] = []

    @server.register
    def note() -> None:
        noted.append("note")

    with LeakCheck():
        host, port = server.start("127.0.0.1", 0)
        try:
            with socket.create_connection((host, port), timeout=WAIT) as sock:
                sock.sendall(b'{"jsonrpc": "2.0", "method": "stop", "id": 1}\n')
                wait_for(lambda: server.connection_count == 1 and bool(server._sessions), "the connection")
                (session,) = list(server._sessions)
                wait_for(lambda: session.busy_now() == 1, "stop() to run")
                sock.sendall(b'{"jsonrpc": "2.0", "method": "note"}\n{"jsonrpc": "2.0", "method": "note", "id": 2}\n')
                served = session._transport.sock  # type: ignore[attr-defined]
                wait_for(lambda: unread_count(served.fileno()) > 0, "the notification to wait in the server's socket")
                sent.set()
                if not returned.wait(WAIT):
                    session.close()  # (ends the wait of a shutdown() stuck in it)
                    pytest.fail("shutdown() in the handler waits for bytes nobody can read")
                replies = b""
                while replies.count(b"\n") < 2:  # (then the server closes: EOF)
                    chunk = sock.recv(65536)
                    assert chunk, replies
                    replies += chunk
                first, second = (json.loads(line) for line in replies.splitlines())
                assert first == {"jsonrpc": "2.0", "id": 1, "result": "stopped"}
                assert second["id"] == 2 and second["error"]["code"] == -32000
                assert sock.recv(65536) == b""  # (closed once what was delivered is served)
            assert session.finished.wait(WAIT)
        finally:
            returned.wait(WAIT)
            server.shutdown()
    assert noted == ["note"]  # (delivered before shutdown() began: run)
