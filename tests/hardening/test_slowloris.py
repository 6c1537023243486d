"""Issue 9, item 3: slow and idle peers are closed, and cannot starve other clients.

``idle_timeout`` counts from the last complete message (or the end of the last
call), not from the last byte: whitespace or skipped garbage trickled in does not
keep a connection alive. ``read_timeout`` bounds the time one message may take.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest
from _driver_helpers import in_time_rounds, request, sent_within
from _hardening import HEAVY, WAIT, Raw, Running, assert_serves, running, settle

pytestmark = pytest.mark.timeout(90)


def dribble_until_closed(raw: Raw, chunks: list[bytes], interval: float, limit: float) -> bool:
    """Send ``chunks`` one by one every ``interval`` s (cycling); True once the server closed."""
    deadline = time.monotonic() + limit
    i = 0
    while time.monotonic() < deadline:
        try:
            raw.send(chunks[i % len(chunks)])
        except OSError:
            return True  # closed (reset) by the server
        i += 1
        if raw.closed_within(interval):
            return True
    return False


def test_idle_connection_is_closed(kind: str) -> None:
    with running(kind, {"idle_timeout": 0.5}) as srv, Raw(srv.address) as raw:
        assert raw.closed_within(WAIT)
        assert raw.buf == b"", "an idle close is silent"
        assert_serves(srv)


def test_idle_timeout_restarts_after_each_message(kind: str) -> None:
    idle = 0.8
    with running(kind, {"idle_timeout": idle}) as srv:
        in_time_rounds(lambda: _messages_kept_it_open(srv, idle), "idle_timeout")


def _messages_kept_it_open(srv: Running, idle: float) -> bool:
    """Four requests 0.4 s apart are answered, then the idle close comes; False: the round stalled.

    4 x 0.4 s > idle_timeout: only the messages keep it alive. The server's idle
    time starts after ``since`` (before connecting, then before the last request):
    a request sent idle_timeout or more after that may rightly find it closed (a
    fixed 0.4 s pause assumed this thread never stalled 0.4 s more).
    """
    since = time.monotonic()
    with Raw(srv.address) as raw:
        for i in range(4):
            sending = time.monotonic()
            if not sent_within(raw.send, request("echo", [i], id_=i), since, idle):
                return False
            since = sending
            assert raw.reply()["result"] == i
            time.sleep(0.4)
        assert raw.closed_within(WAIT)
    return True


@pytest.mark.parametrize(
    "chunks",
    [
        pytest.param([b" "], id="whitespace"),
        pytest.param([b"\r\n"], id="blank-lines"),
        pytest.param([b"]", b"x"], id="skipped-garbage"),
    ],
)
def test_trickle_without_messages_does_not_defeat_idle_timeout(kind: str, chunks: list[bytes]) -> None:
    with running(kind, {"idle_timeout": 0.6, "read_timeout": 60}) as srv, Raw(srv.address) as raw:
        assert dribble_until_closed(raw, chunks, 0.1, WAIT), "a byte every 0.1 s kept an idle connection open"
        assert_serves(srv)


def test_slow_message_is_closed_by_read_timeout(kind: str) -> None:
    message = request("echo", ["x" * 200])
    with running(kind, {"read_timeout": 0.6, "idle_timeout": 60}) as srv, Raw(srv.address) as raw:
        chunks = [message[i : i + 1] for i in range(len(message))]
        assert dribble_until_closed(raw, chunks, 0.05, WAIT), "a message trickled in for ever"
        assert b'"result"' not in raw.buf
        assert_serves(srv)


def test_running_call_is_not_idle(kind: str) -> None:
    with running(kind, {"idle_timeout": 0.3}) as srv:
        in_time_rounds(lambda: _call_outlasts_idle_timeout(srv, 0.3), "idle_timeout")


def _call_outlasts_idle_timeout(srv: Running, idle: float) -> bool:
    """A call of 1 s (> idle_timeout) is answered: not idle while it runs; False: the round stalled."""
    since = time.monotonic()  # the server's idle time starts after this
    with Raw(srv.address) as raw:
        if not sent_within(raw.send, request("sleep", [1.0]), since, idle):
            return False  # this thread stalled past idle_timeout before the call was sent
        assert raw.reply()["result"] == 1.0
    return True


@pytest.mark.timeout(120)
def test_many_slow_connections_do_not_starve_a_new_client(kind: str) -> None:
    # Issue 9 asks for 1,000 connections trickling 1 byte per second; CI runs 200 (the
    # heavy variant, JSONRPC_MINI_HEAVY=1, runs 1,000). Each sends part of a request.
    count = 1000 if HEAVY else 200
    message = request("echo", ["slow"])
    with running(kind) as srv:
        slow = [Raw(srv.address) for _ in range(count)]
        stop = threading.Event()
        started = threading.Event()  # every slow connection has sent its first byte

        def trickle() -> None:
            for i in range(len(message) - 1):  # never the last byte: no message completes
                for raw in slow:
                    with contextlib.suppress(OSError):
                        raw.send(message[i : i + 1])
                started.set()
                if stop.wait(1.0):
                    return

        feeder = threading.Thread(target=trickle, name="hardening-trickle")
        feeder.start()
        try:
            # Every slow connection has started a message and is served (waited for: a fixed
            # 1.5 s assumed the server had taken all of them by then, on a loaded machine too).
            assert started.wait(WAIT)
            assert settle(lambda: srv.server.connection_count >= count), srv.server.connection_count
            for _ in range(3):
                with srv.client() as client:
                    assert client.add(20, 22) == 42
                    assert client.echo("fresh") == "fresh"
        finally:
            stop.set()
            feeder.join(WAIT)
            for raw in slow:
                raw.close()


def test_peer_that_never_reads_its_replies_is_closed(kind: str) -> None:
    # Slow-read attack: requests keep coming, replies are never read, so the server's
    # writes block. The connection must still end (sync: no reply progress for
    # read_timeout; aio: writing pauses, then idle_timeout), not pin threads for ever.
    payload = "r" * 65536
    with running(kind, {"read_timeout": 1.0, "idle_timeout": 2.0}) as srv:
        hog = Raw(srv.address)
        hog.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)

        def flood() -> None:
            with contextlib.suppress(OSError):
                for i in range(5000):
                    hog.send(request("echo", [payload], id_=i))

        flooder = threading.Thread(target=flood, name="hardening-flood", daemon=True)
        flooder.start()
        try:
            assert settle(lambda: srv.server.connection_count == 1)
            assert_serves(srv)  # others are served meanwhile
            assert settle(lambda: srv.server.connection_count == 0, WAIT * 2), "a non-reading peer was kept"
        finally:
            hog.close()
            flooder.join(WAIT)


@pytest.mark.parametrize("ending", ["half-close", "protocol error"])
def test_a_closed_connection_whose_peer_never_reads_is_dropped(kind: str, ending: str) -> None:
    # The peer ends its side (a half-close, or a message over max_message_size, which
    # the server answers and closes on) while a large reply is still due, and reads
    # nothing more. Closing waits for that reply to go out; the aio server's idle
    # timer stopped at the close, so the connection, its max_connections slot and
    # the reply stayed for ever. The sync server gives up on a reply that makes no
    # progress for read_timeout; the aio server drops it at idle_timeout.
    size = 20_000_000
    rounds: list[tuple[threading.Event, threading.Event]] = []  # (called, go) of each round

    def big() -> str:
        called, go = rounds[-1]
        called.set()
        go.wait(WAIT)  # until the server has read the end of the input
        return "b" * size

    with running(kind, {"idle_timeout": 0.5, "read_timeout": 0.5, "max_message_size": 1000}) as srv:
        srv.server.register_function(big)
        in_time_rounds(lambda: _closed_while_a_reply_is_due(srv, ending, rounds, size), "idle_timeout")


def _closed_while_a_reply_is_due(
    srv: Running, ending: str, rounds: list[tuple[threading.Event, threading.Event]], size: int
) -> bool:
    """``big`` runs; the peer ends its side, reads nothing more, and is dropped; False: the round stalled."""
    called, go = threading.Event(), threading.Event()
    rounds.append((called, go))
    since = time.monotonic()  # the server's idle time starts after this
    with Raw(srv.address, rcvbuf=4096) as hog:
        if not sent_within(hog.send, request("big", [], id_=1), since, 0.5):
            go.set()  # this thread stalled past idle_timeout before the call was sent
            return False
        assert called.wait(WAIT)
        if ending == "half-close":
            hog.send(request("echo", ["seen"], id_=2))
            hog.sock.shutdown(socket.SHUT_WR)
            assert hog.reply()["result"] == "seen"  # (the end follows the echo at once)
        else:
            hog.send(request("echo", ["x" * 2000], id_=2))
            assert hog.reply()["error"]["code"] == -32600  # answered, then the server closes
        go.set()
        assert settle(lambda: srv.server.connection_count == 0), "a closed connection was kept"
        assert hog.closed_within(WAIT)
        assert len(hog.buf) < size
    return True
