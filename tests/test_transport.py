"""SocketTransport and open_connection: the seam every driver moves bytes through."""

from __future__ import annotations

import os
import socket
import ssl
import struct
import sys
import tempfile
import threading
from typing import Any

import pytest
from _driver_helpers import WAIT, LeakCheck, free_port, start_thread, tls_contexts

from jsonrpc_mini import ConnectionLost, RPCTimeout, SocketTransport, Transport
from jsonrpc_mini._connect import open_connection
from jsonrpc_mini._ready import feed_ready

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def _no_leaks() -> Any:
    with LeakCheck():
        yield


@pytest.fixture
def pair() -> Any:
    a, b = socket.socketpair()
    ta, tb = SocketTransport(a), SocketTransport(b)
    yield ta, tb
    ta.close()
    tb.close()


def test_socket_transport_fits_the_seam(pair: Any) -> None:
    ta, _ = pair
    assert isinstance(ta, Transport)


def test_send_and_recv_move_all_bytes(pair: Any) -> None:
    ta, tb = pair
    payload = os.urandom(3 * 2**20)  # larger than any socket buffer: send must loop
    sender = start_thread(ta.send, payload)
    got = bytearray()
    while len(got) < len(payload):
        chunk = tb.recv(65536, WAIT)
        assert chunk
        got += chunk
    sender.join(WAIT)
    assert bytes(got) == payload


def test_recv_timeout_raises_timeout_error_and_the_transport_stays_usable(pair: Any) -> None:
    ta, tb = pair
    with pytest.raises(TimeoutError):
        tb.recv(100, 0.05)
    with pytest.raises(TimeoutError):
        tb.recv(100, 0)  # zero: just a poll
    ta.send(b"later")
    assert tb.recv(100, WAIT) == b"later"
    ta.send(b"blocking")
    assert tb.recv(100, None) == b"blocking"


def test_recv_returns_empty_bytes_at_eof(pair: Any) -> None:
    ta, tb = pair
    ta.send(b"last words")
    ta.sock.shutdown(socket.SHUT_WR)
    assert tb.recv(100, WAIT) == b"last words"
    assert tb.recv(100, WAIT) == b""
    assert tb.recv(100, None) == b""


@pytest.mark.parametrize("timeout", [None, WAIT])
def test_close_wakes_a_reader_blocked_in_another_thread(timeout: float | None) -> None:
    a, b = socket.socketpair()
    ta, tb = SocketTransport(a), SocketTransport(b)
    outcome: list[Any] = []
    started = threading.Event()

    def reader() -> None:
        started.set()
        try:
            outcome.append(tb.recv(100, timeout))
        except OSError as exc:
            outcome.append(exc)

    thread = start_thread(reader)
    assert started.wait(WAIT)
    # give the reader a moment to block inside recv (it is also correct if it has not yet)
    thread.join(0.1)
    tb.close()
    thread.join(WAIT)
    assert not thread.is_alive(), "close() did not wake the blocked reader"
    assert outcome and (outcome[0] == b"" or isinstance(outcome[0], OSError))
    tb.close()  # idempotent
    tb.close()
    ta.close()


def test_close_is_idempotent_and_send_after_close_fails(pair: Any) -> None:
    ta, tb = pair
    ta.close()
    ta.close()
    with pytest.raises(OSError):
        ta.send(b"x")
    assert tb.recv(10, WAIT) == b""


class _SocketLike:
    """Not a real socket: no file descriptor, so the transport must use settimeout."""

    def __init__(self, inbound: list[bytes]) -> None:
        self.inbound = inbound
        self.timeouts: list[float | None] = []
        self.sent = bytearray()
        self.closed = False

    def settimeout(self, timeout: float | None) -> None:
        self.timeouts.append(timeout)

    def recv(self, max_bytes: int) -> bytes:
        if not self.inbound:
            raise TimeoutError("fake socket has nothing")
        return self.inbound.pop(0)[:max_bytes]

    def sendall(self, data: bytes) -> None:
        self.sent += data

    def shutdown(self, how: int) -> None:
        raise OSError("not connected")

    def close(self) -> None:
        self.closed = True


def test_socket_like_objects_get_settimeout() -> None:
    fake = _SocketLike([b"one", b"two"])
    t = SocketTransport(fake)  # type: ignore[arg-type]
    assert t.recv(100, 1.5) == b"one"
    assert t.recv(100, None) == b"two"
    with pytest.raises(TimeoutError, match="timed out"):
        t.recv(100, -1.0)
    assert fake.timeouts == [1.5, 0.0]
    t.send(b"abc")
    assert fake.sent == b"abc"
    t.close()  # shutdown fails (not connected) but close still happens
    t.close()
    assert fake.closed


# -- open_connection -----------------------------------------------------------


def test_open_connection_tcp_round_trip() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        t = open_connection(*listener.getsockname()[:2], timeout=WAIT)
        conn, _ = listener.accept()
        with conn:
            try:
                assert t.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)  # small replies go out at once
                assert t.sock.gettimeout() is None  # blocking: timeouts are applied per recv
                t.send(b"ping")
                assert conn.recv(4) == b"ping"
                conn.sendall(b"pong")
                assert t.recv(4, WAIT) == b"pong"
            finally:
                t.close()


def test_open_connection_refused_is_connection_lost() -> None:
    port = free_port()
    with pytest.raises(ConnectionLost, match=f"cannot connect to 127.0.0.1:{port}"):
        open_connection("127.0.0.1", port, timeout=WAIT)


def test_open_connection_needs_an_address() -> None:
    with pytest.raises(ValueError, match="host and port"):
        open_connection(None, None)


def test_open_connection_times_out_with_rpc_timeout() -> None:
    # A listener that never accepts, with a full backlog: further SYNs go unanswered.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    held = []
    try:
        with pytest.raises(RPCTimeout, match="timed out") as info:
            for _ in range(16):
                held.append(open_connection(*listener.getsockname(), timeout=0.2))
        assert isinstance(info.value, TimeoutError)
    finally:
        for t in held:
            t.close()
        listener.close()


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets")
def test_open_connection_unix() -> None:
    directory = tempfile.mkdtemp(prefix="jrpc", dir="/tmp")
    path = os.path.join(directory, "t.sock")
    try:
        with pytest.raises(ConnectionLost, match=path):
            open_connection(None, None, path=path, timeout=WAIT)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind(path)
            listener.listen(1)
            t = open_connection(None, None, path=path, timeout=WAIT)
            conn, _ = listener.accept()
            with conn:
                t.send(b"unix")
                assert conn.recv(4) == b"unix"
            t.close()
    finally:
        if os.path.exists(path):
            os.unlink(path)
        os.rmdir(directory)


@pytest.fixture(scope="module")
def tls() -> Any:
    return tls_contexts()


def _tls_server(server_ctx: ssl.SSLContext, payload: bytes) -> tuple[Any, threading.Thread, list[Any]]:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(WAIT)
    problems: list[Any] = []

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            with server_ctx.wrap_socket(conn, server_side=True) as tls_conn:
                tls_conn.settimeout(WAIT)
                tls_conn.sendall(payload)
                tls_conn.recv(1)  # wait for the client to finish
        except Exception as exc:
            problems.append(exc)

    return listener, start_thread(serve), problems


def test_tls_recv_uses_data_already_decrypted(tls: Any) -> None:
    # One TLS record holds more than one recv asks for: the rest is buffered inside
    # the SSL object, invisible to select(). A recv with a timeout must still see it.
    server_ctx, client_ctx = tls
    payload = b"r" * 10_000
    listener, thread, problems = _tls_server(server_ctx, payload)
    with listener:
        t = open_connection("127.0.0.1", listener.getsockname()[1], timeout=WAIT, ssl=client_ctx)
        got = bytearray(t.recv(100, WAIT))
        while len(got) < len(payload):
            got += t.recv(100, 0.5)
        assert bytes(got) == payload
        t.send(b"x")
        thread.join(WAIT)
        t.close()
    assert not problems


def test_tls_handshake_failure_is_connection_lost(tls: Any) -> None:
    server_ctx, _ = tls
    untrusting = ssl.create_default_context()  # does not know our CA
    listener, thread, _problems = _tls_server(server_ctx, b"")
    with listener:
        with pytest.raises(ConnectionLost, match="TLS handshake"):
            open_connection("127.0.0.1", listener.getsockname()[1], timeout=WAIT, ssl=untrusting)
        thread.join(WAIT)


def test_watchable_fd_only_for_plain_open_sockets(tls: Any) -> None:
    a, b = socket.socketpair()
    ta = SocketTransport(a)
    assert ta.watchable_fd() == a.fileno()
    ta.close()
    assert ta.watchable_fd() is None  # closed
    b.close()
    assert SocketTransport(_SocketLike([])).watchable_fd() is None  # type: ignore[arg-type]
    # TLS: decrypted bytes can wait inside the TLS layer where the OS cannot see them
    server_ctx, client_ctx = tls
    listener, thread, problems = _tls_server(server_ctx, b"hi")
    with listener:
        t = open_connection("127.0.0.1", listener.getsockname()[1], timeout=WAIT, ssl=client_ctx)
        try:
            assert t.watchable_fd() is None
            assert t.recv(2, WAIT) == b"hi"
            t.send(b"x")
        finally:
            t.close()
        thread.join(WAIT)
    assert not problems


def test_send_within_bounds_a_send_the_peer_never_takes(pair: Any) -> None:
    ta, tb = pair
    ta.send_within(b"small", 5.0)
    assert tb.recv(100, WAIT) == b"small"
    done: list[Any] = []

    def stuck() -> None:
        try:
            ta.send_within(b"x" * 20_000_000, 0.2)  # tb never reads this
            done.append("sent")
        except TimeoutError as exc:
            done.append(exc)

    thread = start_thread(stuck)
    thread.join(WAIT)
    assert not thread.is_alive(), "send_within did not respect its timeout"
    assert len(done) == 1 and isinstance(done[0], TimeoutError)


def _delivered_to_a_slow_reader(send: Any, receiver: Any) -> bool:
    """Whether 4 MiB sent with ``send`` (many partial sends, each followed by a wait for room) arrive intact."""
    payload = os.urandom(4 * 2**20)
    got = bytearray()

    def read_all() -> None:
        while len(got) < len(payload):
            chunk = receiver.recv(65536, WAIT)
            if not chunk:
                return
            got.extend(chunk)

    reader = start_thread(read_all)
    send(payload)
    reader.join(WAIT)
    return bytes(got) == payload


def test_send_within_delivers_everything_to_a_slow_reader(pair: Any) -> None:
    ta, tb = pair
    assert _delivered_to_a_slow_reader(lambda data: ta.send_within(data, WAIT), tb)


@pytest.fixture
def timed_pair() -> Any:
    """A socket pair whose first end sends with a send_timeout (as the server's transports do)."""
    a, b = socket.socketpair()
    ta, tb = SocketTransport(a, send_timeout=0.2), SocketTransport(b)
    yield ta, tb
    ta.close()
    tb.close()


def test_send_with_a_send_timeout_delivers_everything_to_a_slow_reader() -> None:
    # (Not timed_pair's 0.2 s: a reader thread descheduled that long lets the send
    # time out rightly. A send_timeout of WAIT takes the same path.)
    a, b = socket.socketpair()
    ta, tb = SocketTransport(a, send_timeout=WAIT), SocketTransport(b)
    try:
        ta.send(b"small")  # taken whole by the first send
        assert tb.recv(100, WAIT) == b"small"
        assert _delivered_to_a_slow_reader(ta.send, tb)
    finally:
        ta.close()
        tb.close()


def test_send_timeout_bounds_a_send_the_peer_never_takes(timed_pair: Any) -> None:
    ta, _ = timed_pair
    with pytest.raises(TimeoutError, match="accepted no data"):
        ta.send(b"x" * 20_000_000)  # the peer never reads


def test_a_send_timeout_below_the_kernels_least_still_bounds_a_send(timed_pair: Any) -> None:
    ta, tb = timed_pair
    ta._send_timeout = 0.0  # (0 as SO_SNDTIMEO would mean "no timeout": poll() bounds it)
    # The peer goes away late (so that a send left unbounded fails otherwise, not hangs).
    late = threading.Timer(3.0, tb.close)
    late.start()
    try:
        with pytest.raises(TimeoutError, match="accepted no data"):
            ta.send(b"x" * 20_000_000)  # the peer never reads
    finally:
        late.cancel()
        late.join()


def _sndtimeo(sock: socket.socket) -> float:
    seconds, micros = struct.unpack("@ll", sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, 16))
    return float(seconds + micros / 1e6)


class _SubSocket(socket.socket):
    """A socket subclass (its sends might be its own): not bounded by SO_SNDTIMEO."""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_SNDTIMEO's layout is Linux's")
def test_the_kernels_send_timeout_is_set_on_plain_sockets_only() -> None:
    a, b = socket.socketpair()
    sub = _SubSocket(b.family, b.type, fileno=b.detach())
    plain, subclassed = SocketTransport(a, send_timeout=0.25), SocketTransport(sub, send_timeout=0.25)
    try:
        plain.send(b"[]\n")
        subclassed.send(b"{}\n")
        assert 0.25 <= _sndtimeo(a) < 0.3  # (the kernel rounds it up to its clock tick)
        assert _sndtimeo(sub) == 0.0
        assert plain.recv(100, WAIT) == b"{}\n"
        assert subclassed.recv(100, WAIT) == b"[]\n"
    finally:
        plain.close()
        subclassed.close()


class _WouldBlock(_SocketLike):
    def sendall(self, data: bytes) -> None:
        raise BlockingIOError("would block")


@pytest.mark.parametrize("send_timeout", [None, 1.0])
def test_a_socket_likes_blocking_io_error_is_raised_as_it_is(send_timeout: float | None) -> None:
    transport = SocketTransport(_WouldBlock([]), send_timeout=send_timeout)  # type: ignore[arg-type]
    with pytest.raises(BlockingIOError, match="would block"):
        transport.send(b"[]\n")


def test_send_within_on_socket_likes_sends_as_send_does() -> None:
    fake = _SocketLike([])
    SocketTransport(fake).send_within(b"abc", 0.01)  # type: ignore[arg-type]
    assert fake.sent == b"abc"


# -- reading what has already arrived (feed_ready) ----------------------------------------


def test_recv_ready_never_blocks(pair: Any) -> None:
    ta, tb = pair
    assert tb.recv_ready(1024) is None  # nothing there: no wait, no bytes
    ta.send(b"abc")
    got = b""
    for _ in range(1000):  # the bytes are in flight for a moment even on a socketpair
        got += tb.recv_ready(1024) or b""
        if got == b"abc":
            break
    assert got == b"abc"
    ta.sock.shutdown(socket.SHUT_WR)
    assert tb.recv(1024, WAIT) == b""
    assert tb.recv_ready(1024) == b""  # end of stream


def test_recv_ready_is_none_for_socket_likes() -> None:
    assert SocketTransport(_SocketLike([b"waiting"])).recv_ready(1024) is None  # type: ignore[arg-type]


def test_feed_ready_feeds_what_waits_up_to_the_limit(pair: Any) -> None:
    ta, tb = pair
    payload = os.urandom(100_000)
    ta.send(payload)
    got: list[bytes] = []
    for _ in range(1000):
        assert feed_ready(tb, got.append, 10**9) is None
        if sum(map(len, got)) >= len(payload):
            break
    assert b"".join(got) == payload
    ta.send(b"x" * 5000)
    fed: list[bytes] = []
    tb.recv(1, WAIT)  # wait until bytes are there
    assert feed_ready(tb, fed.append, 1) is None
    assert len(fed) == 1  # the limit stops it after the first read


def test_feed_ready_reports_a_reset_instead_of_raising() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname()[:2])
    server, _ = listener.accept()
    listener.close()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()  # RST
    transport = SocketTransport(server)
    try:
        error = None
        for _ in range(1000):
            error = feed_ready(transport, lambda data: None, 10**6)
            if error is not None:
                break
        assert isinstance(error, ConnectionResetError)
    finally:
        transport.close()


def test_feed_ready_does_nothing_without_recv_ready() -> None:
    class NoReady:
        def recv(self, max_bytes: int, timeout: float | None) -> bytes:
            raise AssertionError("must not be called")

    assert feed_ready(NoReady(), lambda data: None, 10) is None  # type: ignore[arg-type]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_RCVTIMEO bounds reads on Linux only")
def test_a_read_without_a_timeout_after_one_with_a_timeout_waits_for_ever() -> None:
    # A read with a timeout sets the kernel's receive timeout; a read without one (the
    # client's usual read takes a short way for it) must clear it, else it would end
    # with TimeoutError after the earlier read's timeout.
    def rcvtimeo(sock: socket.socket) -> tuple[int, int]:
        return struct.unpack("@ll", sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.calcsize("@ll")))

    ours, theirs = socket.socketpair()
    with ours, theirs:
        transport = SocketTransport(ours)
        theirs.sendall(b"a")
        assert transport.recv(10, 5.0) == b"a"
        assert rcvtimeo(ours) == (5, 0)
        theirs.sendall(b"b")
        assert transport.recv(10, None) == b"b"
        assert rcvtimeo(ours) == (0, 0)
        theirs.sendall(b"c")
        assert transport.recv(10, None) == b"c"  # (the short way: nothing to clear)
        assert rcvtimeo(ours) == (0, 0)
