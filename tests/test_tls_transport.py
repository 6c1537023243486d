"""The sync driver's TLS transport (OpenSSL over memory buffers, a plain socket beneath).

Invariants: a read and a send in two threads at once never corrupt the stream, nor
meet inside OpenSSL (client and server);
``recv_ready`` never blocks and reads TLS like plain bytes (None, data, ``b""`` at
the end, with or without close_notify); a read cut by an interruption after it took
plain text marks the transport; the handshake's deadline bounds it as a whole.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from _driver_helpers import WAIT, start_thread

from jsonrpc_mini import ConnectionLost, RPCClient, RPCServer, RPCTimeout
from jsonrpc_mini._connect import open_connection
from jsonrpc_mini._ready import feed_ready
from jsonrpc_mini._tls_transport import TlsTransport, tls_handshake

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    lst = socket.create_server(("127.0.0.1", 0))
    lst.settimeout(WAIT)
    yield lst
    lst.close()


@pytest.fixture
def tls_pair(contexts: Any, listener: socket.socket) -> Iterator[tuple[TlsTransport, ssl.SSLSocket]]:
    """(the client's TLS transport, the server side's SSLSocket) joined over 127.0.0.1."""
    server_ctx, client_ctx = contexts
    accepted: list[ssl.SSLSocket] = []

    def accept() -> None:
        conn, _ = listener.accept()
        conn.settimeout(WAIT)
        accepted.append(server_ctx.wrap_socket(conn, server_side=True))

    thread = start_thread(accept)
    transport = open_connection(*listener.getsockname()[:2], timeout=WAIT, ssl=client_ctx)
    thread.join(WAIT)
    assert isinstance(transport, TlsTransport)
    try:
        yield transport, accepted[0]
    finally:
        transport.close()
        accepted[0].close()


def _ready_until(transport: TlsTransport, done: Any) -> bytes:
    """recv_ready in a bounded loop until ``done(got)``: what it returned, joined."""
    got = b""
    deadline = time.monotonic() + WAIT
    while not done(got) and time.monotonic() < deadline:
        data = transport.recv_ready(1024)
        if data == b"":
            return got + b"<end>"
        got += data or b""
        time.sleep(0.001)
    return got


def test_recv_ready_reads_tls_without_blocking_and_sees_close_notify(tls_pair: Any) -> None:
    transport, peer = tls_pair
    assert transport.recv_ready(1024) is None  # nothing there: None at once (a wait would hang here)
    peer.sendall(b"last words\n")
    assert _ready_until(transport, lambda got: got.endswith(b"\n")) == b"last words\n"
    peer.setblocking(False)
    with contextlib.suppress(ssl.SSLWantReadError):
        peer.unwrap()  # close_notify
    assert _ready_until(transport, lambda got: False) == b"<end>"
    assert transport.recv(1024, WAIT) == b""  # and a read after it says the same


def test_a_read_with_no_time_to_wait_takes_the_records_that_have_arrived(tls_pair: Any) -> None:
    # As a plain socket's: recv(n, 0.0) looks once. It raised TimeoutError without looking,
    # and a sync server draining for shutdown() read nothing so: its reader then waited
    # uncounted, and shutdown() closed the connection under the requests it read (their
    # -32000 replies and the notifications after them were lost, 1 run in ~10).
    transport, peer = tls_pair
    with pytest.raises(TimeoutError):
        transport.recv(1024, 0.0)  # nothing there
    peer.sendall(b"arrived\n")
    deadline = time.monotonic() + WAIT
    while transport.unread() == 0 and time.monotonic() < deadline:  # (in the socket, not read yet)
        time.sleep(0.001)
    assert transport.recv(1024, 0.0) == b"arrived\n"


def test_a_peer_closing_without_close_notify_is_an_end_of_stream(tls_pair: Any) -> None:
    transport, peer = tls_pair
    peer.sendall(b'{"jsonrpc":"2.0","error":{"code":-32600,"message":"x"},"id":null}\n')
    peer.close()  # the TCP connection just ends
    got: list[bytes] = []
    deadline = time.monotonic() + WAIT
    while b"".join(got).count(b"\n") < 1 and time.monotonic() < deadline:
        assert feed_ready(transport, got.append, 1 << 20) is None
        time.sleep(0.001)
    assert b"".join(got).startswith(b'{"jsonrpc":"2.0","error"')
    assert transport.recv(1024, WAIT) == b""


class _Watched:
    """Forwards to ``inner``, recording calls on any of the watched objects that overlap in time."""

    def __init__(self, inner: Any, overlaps: list[str], busy: list[int], lock: threading.Lock) -> None:
        self._inner, self._overlaps, self._busy, self._lock = inner, overlaps, busy, lock

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def watched(*args: Any) -> Any:
            with self._lock:
                self._busy[0] += 1
                if self._busy[0] > 1:
                    self._overlaps.append(name)
            try:
                time.sleep(0.0002)  # widen the window in which another call could meet this one
                return attr(*args)
            finally:
                with self._lock:
                    self._busy[0] -= 1

        return watched


def test_a_read_and_a_send_in_two_threads_keep_the_stream_whole(tls_pair: Any) -> None:
    # The peer echoes; one thread sends 1 MiB while another reads the echo. Both
    # work the one SSL object and its buffers, whose calls must never overlap
    # (OpenSSL's objects are not thread-safe): watched, and the bytes compared.
    transport, peer = tls_pair
    overlaps: list[str] = []
    busy, lock = [0], threading.Lock()
    for name in ("_tls", "_incoming", "_outgoing"):
        setattr(transport, name, _Watched(getattr(transport, name), overlaps, busy, lock))
    payload = bytes(range(256)) * (1 << 12)  # 1 MiB in 4 KiB pieces
    problems: list[BaseException] = []

    def echo() -> None:
        try:
            while data := peer.recv(1 << 16):
                peer.sendall(data)
        except OSError as exc:  # pragma: no cover - reported below
            problems.append(exc)

    def send() -> None:
        try:
            for start in range(0, len(payload), 1 << 12):
                transport.send_within(payload[start : start + (1 << 12)], WAIT)
        except OSError as exc:  # pragma: no cover - reported below
            problems.append(exc)

    echoer = start_thread(echo)
    sender = start_thread(send)
    got = bytearray()
    while len(got) < len(payload):
        data = transport.recv(1 << 12, WAIT)
        assert data
        got += data
    sender.join(WAIT)
    assert bytes(got) == payload
    assert not problems
    assert not overlaps
    transport.close()
    peer.close()
    echoer.join(WAIT)


class _CutTls:
    """An SSL object whose read is cut by an interruption, after or before it wrote plain text."""

    def __init__(self, taken: bytes) -> None:
        self.taken = taken

    def read(self, max_bytes: int, buffer: memoryview) -> int:
        buffer[: len(self.taken)] = self.taken
        raise KeyboardInterrupt


def test_a_tls_read_cut_after_taking_plain_text_marks_the_transport(tls_pair: Any) -> None:
    transport, peer = tls_pair
    peer.sendall(b"{}\n")
    assert transport.recv(1024, WAIT) == b"{}\n"  # the buffer's first byte is "{" now
    real = transport._tls
    for taken, marked in ((b"", False), (b'{"jsonrpc"', True)):
        transport._tls = _CutTls(taken)  # type: ignore[assignment]
        try:
            with pytest.raises(KeyboardInterrupt):
                transport.recv(1024, WAIT)
        finally:
            transport._tls = real
        assert transport.interrupted_read is marked
    transport.interrupted_read = False
    peer.sendall(b"[]\n")
    assert transport.recv(1024, WAIT) == b"[]\n"  # (the SSL object itself lost nothing here)


class _CutSocket:
    """A socket whose read is cut by an interruption, after or before it took encrypted bytes."""

    def __init__(self, taken: bytes) -> None:
        self.taken = taken

    def recv_into(self, buffer: memoryview, nbytes: int = 0, flags: int = 0) -> int:
        buffer[: len(self.taken)] = self.taken
        raise KeyboardInterrupt


def test_a_tls_read_cut_after_taking_encrypted_bytes_marks_the_transport(tls_pair: Any) -> None:
    transport, _ = tls_pair
    real = transport.sock
    for taken, marked in ((b"", False), (b"\x17\x03\x03", True)):
        transport.sock = _CutSocket(taken)  # type: ignore[assignment]
        try:
            with pytest.raises(KeyboardInterrupt):
                transport.recv(1024, None)  # (no timeout: no poll on the stand-in socket)
        finally:
            transport.sock = real
        assert transport.interrupted_read is marked


def test_a_send_from_inside_a_read_does_not_wait_for_itself(tls_pair: Any) -> None:
    # A signal handler runs between two bytecodes, e.g. right after the SSL read
    # returned, its lock still held: a notification it sends needs that lock again.
    transport, peer = tls_pair
    real = transport._tls

    class Reentering:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def read(self, max_bytes: int, buffer: memoryview) -> int:
            count: int = real.read(max_bytes, buffer)  # type: ignore[assignment]
            transport.send(b"from a handler\n")  # as a handler would, here
            return count

    peer.sendall(b"reply\n")
    transport._tls = Reentering()  # type: ignore[assignment]
    got: list[bytes] = []
    reader = start_thread(lambda: got.append(transport.recv(1024, WAIT)))
    reader.join(WAIT)
    transport._tls = real
    assert got == [b"reply\n"], "the read waited for its own lock"
    assert peer.recv(1024) == b"from a handler\n"


def test_a_silent_tls_server_times_the_connect_out(contexts: Any, listener: socket.socket) -> None:
    _, client_ctx = contexts
    with pytest.raises(RPCTimeout, match=r"timed out after 0\.3 s"):
        RPCClient(*listener.getsockname()[:2], ssl=client_ctx, timeout=0.3)  # accepted by the backlog, never answered


def test_a_server_closing_during_the_handshake_is_connection_lost(contexts: Any, listener: socket.socket) -> None:
    _, client_ctx = contexts

    def close_at_once() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(WAIT)
            conn.recv(65536)  # the ClientHello
            conn.shutdown(socket.SHUT_WR)  # an end of stream instead of the server's answer
            conn.recv(65536)  # until the client gives up

    thread = start_thread(close_at_once)
    try:
        with pytest.raises(ConnectionLost, match=r"TLS handshake with 127\.0\.0\.1:[0-9]+ failed"):
            RPCClient(*listener.getsockname()[:2], ssl=client_ctx, timeout=WAIT)
    finally:
        thread.join(WAIT)


def test_threads_sharing_a_tls_client_with_a_timeout(contexts: Any) -> None:
    # Every call has a deadline here: the reads and sends take the timed paths.
    server_ctx, client_ctx = contexts
    server = RPCServer()
    server.register_function(lambda x: x, name="echo")
    host, port = server.start("127.0.0.1", 0, ssl=server_ctx)
    try:
        with RPCClient(host, port, ssl=client_ctx, timeout=WAIT) as client:
            results: list[Any] = []
            big = "x" * 300_000

            def worker(n: int) -> None:
                results.extend(len(client.echo(big if i % 7 == 0 else str(n * 100 + i))) for i in range(40))

            threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(WAIT)
            assert len(results) == 160
            assert results.count(len(big)) == 4 * 6
    finally:
        server.shutdown()


def test_the_sync_server_never_reads_and_writes_one_ssl_object_at_once(contexts: Any) -> None:
    # The server's reading thread takes the next request while handler threads
    # write replies: OpenSSL forbids both on one SSL object at once (an SSLSocket
    # shared so can corrupt the stream or crash). Every call on the server's SSL
    # object and buffers is watched.
    server_ctx, client_ctx = contexts
    ours, theirs = socket.socketpair()
    made: list[TlsTransport] = []
    handshake = start_thread(lambda: made.append(tls_handshake(theirs, server_ctx, WAIT, server_side=True)))
    client_side = tls_handshake(ours, client_ctx, WAIT, server_hostname="127.0.0.1")
    handshake.join(WAIT)
    server_side = made[0]
    overlaps: list[str] = []
    busy, lock = [0], threading.Lock()
    for name in ("_tls", "_incoming", "_outgoing"):
        setattr(server_side, name, _Watched(getattr(server_side, name), overlaps, busy, lock))
    server = RPCServer()
    server.register_function(lambda x: time.sleep(0.001) or x, name="echo")
    server.serve_connection(server_side)
    try:
        with RPCClient(transport=client_side, timeout=WAIT) as client:
            results: list[Any] = []

            def worker(n: int) -> None:
                results.extend(client.echo(f"{n}-{i}" * 50) for i in range(30))

            threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(WAIT)
            assert sorted(results) == sorted(f"{n}-{i}" * 50 for n in range(4) for i in range(30))
    finally:
        server.shutdown()
    assert not overlaps
