"""The sync server runs what a peer sent before resetting the connection (API.md: "A
notification is executed even when its sender closes the connection right after").

A read brings a message, and the read made at once after it for the rest (the session's
read-ahead, ``feed_ready``) fails with ECONNRESET: what the first read brought is served
as if the peer had closed after it. Over TLS 1.3 the server's session tickets, sent as
its handshake ends, meet the reset too: the handshake still counts as done.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import struct
import threading
from collections import deque
from collections.abc import Iterable
from typing import Any

import pytest
from _driver_helpers import WAIT, LeakCheck, request, serving, start_thread, tls_contexts

from jsonrpc_mini import RPCServer
from jsonrpc_mini._tls_transport import tls_handshake

pytestmark = pytest.mark.timeout(60)

N = 20  # clients per case
_RST = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() resets the connection


@pytest.fixture(autouse=True)
def _no_leaks() -> Any:
    with LeakCheck():
        yield


def _note(i: int) -> bytes:
    return b'{"jsonrpc":"2.0","method":"note","params":[%d]}\n' % i


# What each client sends before its reset, and how many notifications that is.
SHAPES: dict[str, tuple[Any, int]] = {
    "one": (_note, 1),
    "batch": (lambda i: b"[" + b",".join(_note(i).strip() for _ in range(3)) + b"]\n", 3),
    "pipelined": (lambda i: b"".join(_note(i) for _ in range(5)), 5),
    "one and part of the next": (lambda i: _note(i) + b'{"jsonrpc"', 1),
    "pipelined and part of the next": (lambda i: b"".join(_note(i) for _ in range(5)) + b'{"jsonrpc"', 5),
}


def _counting_server() -> tuple[RPCServer, threading.Semaphore]:
    ran = threading.Semaphore(0)
    server = RPCServer()
    server.register_function(lambda i: ran.release(), name="note")
    server.register_function(lambda: "pong", name="ping")
    return server, ran


def _all_ran(ran: threading.Semaphore, count: int) -> None:
    for n in range(count):
        assert ran.acquire(timeout=WAIT), f"only {n} of {count} notifications ran"


@pytest.mark.parametrize("shape", list(SHAPES))
def test_notifications_sent_right_before_a_reset_run(shape: str) -> None:
    make, per_client = SHAPES[shape]
    server, ran = _counting_server()
    with serving(server) as address:
        for i in range(N):
            with socket.create_connection(address, timeout=WAIT) as sock:
                sock.sendall(make(i))
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RST)
        _all_ran(ran, N * per_client)


@pytest.mark.parametrize("shape", ["one and part of the next", "pipelined and part of the next"])
def test_notifications_sent_right_before_a_unix_socket_reset_run(shape: str, tmp_path: Any) -> None:
    # A Unix socket's peer sees ECONNRESET when the socket closed with bytes unread:
    # each client leaves its call's reply unread, then sends and closes.
    make, per_client = SHAPES[shape]
    server, ran = _counting_server()
    with serving(server, path=str(tmp_path / "s")) as address:
        for i in range(N):
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(WAIT)
                sock.connect(address)
                sock.sendall(request("ping"))
                assert select.select([sock], [], [], WAIT)[0], "no reply to the call"
                sock.sendall(make(i))
        _all_ran(ran, N * per_client)


@pytest.mark.parametrize("shape", ["one", "pipelined and part of the next"])
def test_notifications_sent_over_tls_right_before_a_reset_run(shape: str) -> None:
    # TLS 1.3: the client sends at once after its handshake; the server's session
    # tickets, sent as its handshake ends, meet the reset.
    make, per_client = SHAPES[shape]
    server_ctx, client_ctx = tls_contexts()
    client_ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    server, ran = _counting_server()
    with serving(server, ssl=server_ctx) as address:
        for i in range(N):
            sock = socket.create_connection(address, timeout=WAIT)
            # (else the client's kernel may hold the data back for the ack of its
            # Finished, and the reset throws it away unsent)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with client_ctx.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
                tls.sendall(make(i))
                tls.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RST)
        _all_ran(ran, N * per_client)


# -- the same, deterministic: scripted transports and sockets ---------------------


class _ResetAfter:
    """A transport whose reads give ``script``'s items, then fail with ECONNRESET.

    Each ``recv`` gives the next item; the read-ahead (``recv_ready``) gives the next
    one too, as bytes that had arrived already, but None for a None item (nothing
    more had arrived: the next ``recv`` skips it). Once the script is used up both
    fail, as a socket's reads do after the peer's reset, and so do sends.
    """

    def __init__(self, script: Iterable[bytes | None]) -> None:
        self.script = deque(script)
        self.closed = threading.Event()

    def send(self, data: bytes) -> None:
        if not self.script:
            raise ConnectionResetError("reset by a test")

    def recv(self, max_bytes: int, timeout: float | None) -> bytes:
        while self.script:
            item = self.script.popleft()
            if item is not None:
                return item
        raise ConnectionResetError("reset by a test")

    def recv_ready(self, max_bytes: int) -> bytes | None:
        if not self.script:
            raise ConnectionResetError("reset by a test")
        return self.script.popleft()

    def close(self) -> None:
        self.closed.set()


@pytest.mark.parametrize(
    ("script", "count"),
    [
        ([_note(1)], 1),  # the first message: the framing is not yet known, so it is read ahead
        ([SHAPES["batch"][0](1)], 3),
        ([SHAPES["pipelined"][0](1)], 5),
        ([SHAPES["pipelined and part of the next"][0](1)], 5),
        ([request("ping"), None, SHAPES["one and part of the next"][0](1)], 1),  # a later read
        ([_note(1)[:20], _note(1)[20:]], 1),  # read ahead, then the reset
    ],
    ids=["one", "batch", "pipelined", "pipelined and part", "after a call", "in two reads"],
)
def test_a_reset_met_reading_ahead_ends_the_connection_after_what_was_read(
    script: list[bytes | None], count: int
) -> None:
    server, ran = _counting_server()
    transport = _ResetAfter(script)
    session = server.serve_connection(transport)
    _all_ran(ran, count)
    assert session.join(WAIT)
    assert transport.closed.is_set()
    assert not ran.acquire(blocking=False), "more notifications ran than were sent"


def test_a_request_read_before_a_reset_runs_and_its_reply_fails_quietly() -> None:
    entered = threading.Event()
    server = RPCServer()
    server.register_function(lambda: entered.set() or "late", name="work")
    transport = _ResetAfter([request("work")])
    session = server.serve_connection(transport)
    assert entered.wait(WAIT), "the request did not run"
    assert session.join(WAIT)
    assert server.connection_count == 0


class _ResetOnSecondSend(socket.socket):
    """A socket whose sends fail with ECONNRESET after its first (the server's first handshake flight)."""

    sends = 0

    def send(self, data: Any, flags: int = 0) -> int:
        self.sends += 1
        if self.sends > 1:
            raise ConnectionResetError("reset by a test")
        return super().send(data, flags)

    def sendall(self, data: Any, flags: int = 0) -> None:
        view = memoryview(data)
        while view:
            view = view[self.send(view, flags) :]


def test_a_tls_server_handshake_whose_session_tickets_meet_a_reset_still_reads_the_request() -> None:
    server_ctx, client_ctx = tls_contexts()
    client_ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ours, theirs = socket.socketpair()
    served = _ResetOnSecondSend(fileno=theirs.detach())
    client_done: list[BaseException | None] = []

    def client() -> None:
        try:
            with client_ctx.wrap_socket(ours, server_hostname="127.0.0.1") as tls:
                tls.sendall(_note(1))  # right after its handshake, as TLS 1.3 lets it
        except BaseException as exc:  # reported by the test below
            client_done.append(exc)
        else:
            client_done.append(None)

    thread = start_thread(client)
    try:
        transport = tls_handshake(served, server_ctx, WAIT, server_side=True)
        try:
            assert served.sends == 2, "the session tickets were not sent after the first flight"
            got = b""
            while not got.endswith(b"\n"):
                piece = transport.recv(1024, WAIT)
                assert piece, f"the stream ended after {got!r}"
                got += piece
            assert got == _note(1)
        finally:
            transport.close()
    finally:
        thread.join(WAIT)
        served.close()
        with contextlib.suppress(OSError):
            ours.close()
    assert client_done == [None]


def test_a_tls_client_handshake_whose_last_message_meets_a_reset_fails() -> None:
    # Only the server goes on: a client whose Finished was refused has no connection.
    server_ctx, client_ctx = tls_contexts()
    ours, theirs = socket.socketpair()
    ours.settimeout(WAIT)
    client_sock = _ResetOnSecondSend(fileno=theirs.detach())

    def server() -> None:
        with contextlib.suppress(OSError), server_ctx.wrap_socket(ours, server_side=True):
            pass  # its handshake fails once the client's end closes

    thread = start_thread(server)
    try:
        with pytest.raises(ConnectionResetError):
            tls_handshake(client_sock, client_ctx, WAIT, server_hostname="127.0.0.1")
    finally:
        client_sock.close()
        thread.join(WAIT)
        with contextlib.suppress(OSError):
            ours.close()


# -- notifications after requests whose replies fail (review15 N15) ------------------------

REQUESTS = 40


def _ping(i: int) -> bytes:
    return b'{"jsonrpc":"2.0","method":"ping","params":[],"id":%d}\n' % i


@pytest.mark.parametrize("requests", [2, REQUESTS])
@pytest.mark.parametrize("how", ["FIN", "RST"])
def test_notifications_after_requests_run_when_the_client_closes_right_after(how: str, requests: int) -> None:
    # Requests, then 5 notifications and a batch of 5 more, in one write, then close: a
    # reply fails (the peer is gone) and the session takes nothing more. The requests
    # not started are skipped; the notifications already read still run (API.md).
    server, ran = _counting_server()
    pings = [0]
    lock = threading.Lock()

    def ping() -> str:
        with lock:
            pings[0] += 1
        return "pong"

    server.register_function(ping)
    notes = b"".join(_note(i) for i in range(5)) + b"[" + b",".join(_note(i).strip() for i in range(5)) + b"]\n"
    with serving(server) as address:
        for _ in range(N):
            with socket.create_connection(address, timeout=WAIT) as sock:
                sock.sendall(b"".join(_ping(i) for i in range(requests)) + notes)
                if how == "RST":
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RST)
        _all_ran(ran, N * 10)
        assert not ran.acquire(blocking=False), "more notifications ran than were sent"
        if requests == REQUESTS:  # (each notification ran after every request that started)
            with lock:
                assert pings[0] <= N * REQUESTS // 4, f"{pings[0]} of {N * REQUESTS} requests ran"
