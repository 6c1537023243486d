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

Session 33: messages the reader had taken with the handler's request (one read), held in
the session while the handler ran, were not "what the client had delivered" for it: the
request among them got no answer.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading

import pytest
from _aio_support import run
from _driver_helpers import WAIT, LeakCheck, wait_for

from jsonrpc_mini import RPCServer, aio
from jsonrpc_mini._socket_waits import unread_count

pytestmark = pytest.mark.timeout(60)


def test_shutdown_from_a_handler_does_not_wait_for_bytes_nobody_can_read() -> None:
    server = RPCServer(max_concurrent_calls=1, shutdown_grace=3600.0)
    running, sent, returned = threading.Event(), threading.Event(), threading.Event()

    @server.register
    def stop() -> str:
        running.set()
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
                # (not busy_now() == 1: it reads 1 while the reader is still taking stop, and
                # the notes sent then were read with it, not left in the socket: ~1 run in 1000)
                assert running.wait(WAIT)
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


def test_shutdown_from_a_handler_serves_what_was_read_with_its_request() -> None:
    # The handler's request, a notification and a request in one write: the reader takes
    # the three in one read, and the two wait in the session (nothing in the socket) while
    # the handler runs. shutdown() from the handler served what the socket held only: the
    # connection closed once stop's reply was out, the request unanswered (3 runs of 3).
    server = RPCServer(max_concurrent_calls=1, shutdown_grace=3600.0)
    running, go = threading.Event(), threading.Event()

    @server.register
    def stop() -> str:
        running.set()
        assert go.wait(WAIT)
        server.shutdown()
        return "stopped"

    noted: list[str] = []

    @server.register
    def note() -> None:
        noted.append("note")

    with LeakCheck():
        host, port = server.start("127.0.0.1", 0)
        try:
            with socket.create_connection((host, port), timeout=WAIT) as sock:
                sock.sendall(
                    b'{"jsonrpc": "2.0", "method": "stop", "id": 1}\n'
                    b'{"jsonrpc": "2.0", "method": "note"}\n{"jsonrpc": "2.0", "method": "note", "id": 2}\n'
                )
                assert running.wait(WAIT)
                (session,) = list(server._sessions)
                served = session._transport.sock  # type: ignore[attr-defined]
                assert unread_count(served.fileno()) == 0  # (the premise: all three read at once)
                go.set()
                replies = b""
                while chunk := sock.recv(65536):  # (until the server closes)
                    replies += chunk
                answers = [json.loads(line) for line in replies.splitlines()]
                assert answers[0] == {"jsonrpc": "2.0", "id": 1, "result": "stopped"}
                assert [a["id"] for a in answers] == [1, 2] and answers[1]["error"]["code"] == -32000
            assert session.finished.wait(WAIT)
        finally:
            go.set()
            server.shutdown()
    assert noted == ["note"]  # (read before shutdown() began: run; id 2 refused, not run)


@pytest.mark.parametrize("one_write", [True, False], ids=["read-with-it", "unread"])
def test_aio_shutdown_from_a_handler_serves_what_was_delivered(one_write: bool) -> None:
    # The aio server's connection of a handler awaiting shutdown() took nothing more:
    # what the client had delivered behind the call (read with it, or still unread in
    # the socket at the limit) was dropped, the notification not run, the request
    # unanswered, and bytes left unread reset the connection (3 runs of 3 each). It is
    # taken first now, as on the other connections, then the connection closes.
    async def main() -> None:
        srv = aio.RPCServer(max_concurrent_calls=1, shutdown_grace=WAIT)
        running, go = asyncio.Event(), asyncio.Event()
        noted: list[str] = []

        async def stop() -> str:
            running.set()
            await go.wait()
            await srv.shutdown()
            return "stopped"

        srv.register_function(stop, name="stop")
        srv.register_function(lambda: noted.append("note"), name="note")
        address = await srv.start("127.0.0.1", 0)
        assert isinstance(address, tuple)
        reader, writer = await asyncio.open_connection(*address)
        try:
            stop_line = b'{"jsonrpc": "2.0", "method": "stop", "id": 1}\n'
            rest = b'{"jsonrpc": "2.0", "method": "note"}\n{"jsonrpc": "2.0", "method": "note", "id": 2}\n'
            writer.write(stop_line + rest if one_write else stop_line)
            await asyncio.wait_for(running.wait(), WAIT)
            if not one_write:
                writer.write(rest)
                (conn,) = srv._conns
                sock = conn._transport.get_extra_info("socket")  # type: ignore[union-attr]
                while unread_count(sock.fileno()) != len(rest):  # (delivered: unread, reading paused; run() bounds it)
                    await asyncio.sleep(0.005)
            go.set()
            replies = await asyncio.wait_for(reader.read(), WAIT)  # (until the server closes: no reset)
            answers = [json.loads(line) for line in replies.splitlines()]
            assert answers[0] == {"jsonrpc": "2.0", "id": 1, "result": "stopped"}
            assert [a["id"] for a in answers] == [1, 2] and answers[1]["error"]["code"] == -32000
            assert noted == ["note"]
        finally:
            go.set()
            writer.close()
            await srv.shutdown()

    run(main)
