"""A pipe end closed with the peer's bytes unread resets the connection, as TCP does.

Over TCP a close() with received bytes not read sends a reset, not a FIN: the peer
reads what had reached it, then gets ECONNRESET, and its sends fail. The pipe gave
the peer EOF and let its next send through (Review27, session 29: README said the
pipe's peer "sees what a TCP socket sees"). Over TCP the error is reported once and
a later send says EPIPE; the pipe says ConnectionResetError each time, as its
``abort()`` does (README).
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from typing import Any

import pytest
from _driver_helpers import wait_for

from jsonrpc_mini import ConnectionLost, RPCServer, RPCTimeout
from jsonrpc_mini.testing import FaultPlan, FaultyTransport, loopback, pipe_pair

pytestmark = pytest.mark.timeout(30)


def _tcp(first_from_closer: bytes) -> list[object]:
    """What ``a`` sees after ``b`` closed with ``a``'s bytes unread: two reads, then a send."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        a = socket.create_connection(listener.getsockname())
        b, _ = listener.accept()
    with a:
        if first_from_closer:
            b.sendall(first_from_closer)
        a.sendall(b"unread")
        wait_for(lambda: bool(select.select([b], [], [], 0)[0]), "the bytes to reach b")
        b.close()  # with b"unread" unread: a reset
        poller = select.poll()
        poller.register(a, select.POLLERR)
        wait_for(lambda: bool(poller.poll(0)), "the reset")
        a.settimeout(5)
        return [_op(lambda: a.recv(10)), _op(lambda: a.recv(10)), _op(lambda: a.send(b"x"))]


def _pipe(first_from_closer: bytes) -> list[object]:
    a, b = pipe_pair()
    if first_from_closer:
        b.send(first_from_closer)
    a.send(b"unread")
    b.close()
    try:
        return [_op(lambda: a.recv(10, 5.0)), _op(lambda: a.recv(10, 5.0)), _op(lambda: a.send(b"x"))]
    finally:
        a.close()


def _op(action: Any) -> object:
    try:
        result = action()
    except OSError as exc:
        return type(exc).__name__
    return "sent" if isinstance(result, int) or result is None else result


@pytest.mark.parametrize("first_from_closer", [b"", b"last"])
def test_a_close_with_bytes_unread_resets_the_peer_as_tcp(first_from_closer: bytes) -> None:
    tcp, pipe = _tcp(first_from_closer), _pipe(first_from_closer)
    # What had reached the peer first (nothing, or b"last"), then the reset.
    expected = [first_from_closer, "ConnectionResetError"] if first_from_closer else ["ConnectionResetError"]
    assert tcp[: len(expected)] == expected
    assert pipe[: len(expected)] == expected
    failed = ("ConnectionResetError", "BrokenPipeError")  # (a send after the reset)
    assert pipe[-1] in failed and tcp[-1] in failed


def test_a_close_with_nothing_unread_still_gives_eof() -> None:
    a, b = pipe_pair()
    b.send(b"bye")
    b.close()
    assert a.recv(10, 5.0) == b"bye"
    assert a.recv(10, 5.0) == b""
    a.send(b"x")  # (the first send after the peer's close goes out, as over TCP)
    a.close()


def test_the_reset_of_a_close_comes_behind_the_bytes_still_in_flight() -> None:
    # A socket's RST goes out behind the bytes already sent: under a plan's latency the
    # peer reads those still in flight first (session 30: the pipe dropped them).
    a, b = pipe_pair()
    b.send(b"unread")
    a.send_at(b"in flight", time.monotonic() + 0.2)
    a.close()
    a.close()  # (idempotent: the reset still comes behind the bytes)
    b.send(b"lost")  # (the reset has not reached b yet: its send goes out, as over TCP)
    assert b.recv(20, 5.0) == b"in flight"
    with pytest.raises(ConnectionResetError):
        b.recv(20, 5.0)


def test_a_close_s_reset_still_comes_when_the_exit_drops_the_bytes_in_flight() -> None:
    a, b = pipe_pair()
    b.send(b"unread")
    a.send_at(b"held", time.monotonic() + 60.0)
    a.close()
    a.drop_in_flight()  # (the kit's exit: what is in flight never arrives; the reset does, now)
    with pytest.raises(ConnectionResetError):
        b.recv(20, 5.0)


def test_a_notification_sent_just_before_close_runs_under_latency() -> None:
    # API.md: a notification runs even when its sender closes right after. A client
    # closing with a late reply unread resets the connection; over TCP its notification,
    # sent before, still arrives first.
    server = RPCServer()
    late_reply_sent, ran = threading.Event(), threading.Event()

    def slow() -> int:
        time.sleep(0.2)
        late_reply_sent.set()
        return 1

    server.register_function(slow, name="slow")
    server.register_function(ran.set, name="note")
    with loopback(server, faults=FaultPlan(seed=1, latency=0.05), timeout=0.1) as client:
        with pytest.raises(RPCTimeout):
            client.slow()
        assert late_reply_sent.wait(5.0)
        time.sleep(0.2)  # (the late reply arrives: unread at the close)
        client.notify("note")
        client.close()
        assert ran.wait(5.0)


def test_under_latency_a_send_learns_of_the_reset_only_behind_the_bytes_before_it() -> None:
    # The plan delays what the client reads; the peer's reset reached its send at once,
    # while the reply sent before the close was still held by that delay (Review29's
    # F2). Over a network the reset travels behind the reply: the send goes out (lost),
    # the reply is read, then the reset, and only then do sends fail.
    a, b = pipe_pair()
    client = FaultyTransport(a, FaultPlan(seed=1, latency=0.2))
    client.send(b"unread")
    wait_for(lambda: b.unread() > 0, "the client's bytes at the server's end")
    b.send(b"reply")
    b.close()  # (with b"unread" unread: a reset)
    client.send(b"lost")  # (the reset is behind the reply, still on its way)
    assert client.recv(20, 5.0) == b"reply"
    with pytest.raises(ConnectionResetError):
        client.recv(20, 5.0)
    with pytest.raises(ConnectionResetError):
        client.send(b"x")
    client.close()


def test_a_reply_sent_before_the_server_closes_arrives_under_latency() -> None:
    # shutdown() closes the connection with the client's notifications unread: a
    # reset. The client's next notification met it at once and failed every pending
    # call, the slow call's reply still held by the plan's latency (Review29's F2 probe:
    # ConnectionLost 3 runs of 3; over TCP "done").
    server = RPCServer(shutdown_grace=10)
    entered, stop = threading.Event(), threading.Event()

    def slow() -> str:
        entered.set()
        time.sleep(0.3)
        return "done"

    server.register_function(slow, name="slow")
    server.register_function(lambda i: None, name="note")
    with loopback(server, faults=FaultPlan(seed=1, latency=0.05), timeout=5) as client:
        outcome: list[object] = []

        def call() -> None:
            try:
                outcome.append(client.slow())
            except ConnectionLost as exc:
                outcome.append(exc)

        def flood() -> None:
            sent = 0
            with contextlib.suppress(ConnectionLost):
                while not stop.wait(0.001):
                    client.notify("note", sent)
                    sent += 1

        caller = threading.Thread(target=call)
        caller.start()
        assert entered.wait(5.0)
        flooder = threading.Thread(target=flood)
        flooder.start()
        try:
            server.shutdown()
            caller.join(5.0)
        finally:
            stop.set()
            flooder.join(5.0)
        assert not caller.is_alive() and not flooder.is_alive()
    assert outcome == ["done"]
