"""Shared helpers for the driver tests: leak checks, servers on port 0, raw sockets."""

from __future__ import annotations

import contextlib
import gc
import inspect
import json
import os
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

import jsonrpc_mini._client_doorbell as doorbell_module
import jsonrpc_mini._client_reader as reader_module
from jsonrpc_mini import ConnectionLost, RPCServer, SocketTransport
from jsonrpc_mini._connect import plain_socket
from jsonrpc_mini._json import HAVE_ORJSON
from jsonrpc_mini._session import Session

WAIT = 10.0  # upper bound for anything a test waits for; never reached when all is well
# The JSON codecs a test runs with (``JsonCodec(use_orjson=...)``), and their test ids.
CODECS = [False, True] if HAVE_ORJSON else [False]
CODEC_IDS = ["stdlib", "orjson"][: len(CODECS)]


def eventfds() -> int:
    """How many eventfds this process has open (the sync client's doorbells: see _client_doorbell)."""
    count = 0
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # closed meanwhile (the listing's own descriptor)
            count += os.readlink(f"/proc/self/fd/{name}") == "anon_inode:[eventfd]"
    return count


def wait_line(marker: str, function: Any = reader_module._ReplyReader._wait) -> int:
    """The line of ``function`` (the sync client's ``_ReplyReader._wait``) holding ``marker`` (exactly one does)."""
    lines, first = inspect.getsourcelines(function)
    found = [first + i for i, line in enumerate(lines) if marker in line]
    assert len(found) == 1, f"{len(found)} lines of {function.__qualname__} hold {marker!r}"
    return found[0]


_open_peers: list[Peer] = []


def _open_fds() -> int:
    """Open descriptors, but the calling thread's doorbell: kept for the thread's life (see _client_doorbell)."""
    try:
        return len(os.listdir("/proc/self/fd")) - (doorbell_module._mine.bell is not None)
    except OSError:  # pragma: no cover - not Linux
        return 0


class LeakCheck:
    """Fails the test if threads or file descriptors outlive it (after a bounded wait)."""

    def __enter__(self) -> LeakCheck:
        self.threads = threading.active_count()
        self.names = {t.name for t in threading.enumerate()}
        self.fds = _open_fds()
        return self

    def __exit__(self, *exc: object) -> None:
        # Raw sockets are the test's own tools: close any a failed test left open,
        # so that only what the library leaks is reported.
        while _open_peers:
            _open_peers.pop().close()
        deadline = time.monotonic() + WAIT
        while True:
            gc.collect()
            threads, fds = threading.active_count(), _open_fds()
            if (threads <= self.threads and fds <= self.fds) or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        extra = sorted(t.name for t in threading.enumerate() if t.name not in self.names)
        assert threads <= self.threads, f"threads left running after the test: {extra}"
        assert fds <= self.fds, f"{fds - self.fds} file descriptors left open after the test"


@contextlib.contextmanager
def serving(server: RPCServer, host: str = "127.0.0.1", **kwargs: Any) -> Iterator[Any]:
    """Start ``server`` on a free port (or ``path=``), yield the address, shut it down."""
    address = server.start(host, 0, **kwargs)
    try:
        yield address
    finally:
        server.shutdown()


def free_port() -> int:
    """A port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def listening(port: int) -> bool:
    """Whether a server takes connections on 127.0.0.1 ``port`` now (e.g. ``serve`` started)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
    except OSError:
        return False
    return True


def raw_connect(address: Any) -> Peer:
    """A plain blocking socket to ``address`` (bounded timeout), wrapped for reading."""
    if isinstance(address, str):
        return Peer(plain_socket(None, None, address, WAIT))
    host, port = address[:2]
    return Peer(plain_socket(host, port, None, WAIT))


class Peer:
    """A raw socket with a read buffer: read lines, JSON values, exact sizes, EOF."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        _open_peers.append(self)

    def sendall(self, data: bytes) -> None:
        """Send all of ``data``."""
        self.sock.sendall(data)

    def _fill(self, what: str) -> None:
        chunk = self.sock.recv(65536)
        assert chunk, f"connection closed before {what}; got {bytes(self.buf)!r}"
        self.buf += chunk

    def until(self, marker: bytes = b"\n") -> bytes:
        """Read up to and including ``marker``."""
        while marker not in self.buf:
            self._fill(repr(marker))
        end = self.buf.index(marker) + len(marker)
        out = bytes(self.buf[:end])
        del self.buf[:end]
        return out

    def exactly(self, size: int) -> bytes:
        """Read exactly ``size`` bytes."""
        while len(self.buf) < size:
            self._fill(f"{size} bytes")
        out = bytes(self.buf[:size])
        del self.buf[:size]
        return out

    def json_line(self) -> Any:
        """Read one newline-terminated JSON value."""
        return json.loads(self.until(b"\n"))

    def to_eof(self) -> bytes:
        """Everything until the peer closes (bounded by the socket timeout)."""
        while chunk := self.sock.recv(65536):
            self.buf += chunk
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def shutdown(self, how: int) -> None:
        """Half-close the socket."""
        self.sock.shutdown(how)

    def close(self) -> None:
        """Close the socket (shutting it down first wakes a reader in another thread)."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    def __enter__(self) -> Peer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def request(method: str, params: Any = None, id_: Any = 1) -> bytes:
    """A compact JSON-RPC request line."""
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": id_}
    if params is not None:
        message["params"] = params
    return json.dumps(message).encode() + b"\n"


def drain(transport: Any, timeout: float = 1.0) -> list[bytes]:
    """Every piece a transport gives until EOF or ``timeout`` seconds without one."""
    pieces = []
    while True:
        try:
            piece = transport.recv(1 << 16, timeout)
        except TimeoutError:
            return pieces
        if not piece:
            return pieces
        pieces.append(piece)


def wait_for(predicate: Any, what: str, timeout: float = WAIT) -> None:
    """Poll ``predicate`` until true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


# Rounds of a test whose premise is a time budget (see ``kept``): a stalled round is run again.
ROUNDS = 3


def kept(since: float, budget: float) -> bool:
    """Whether less than ``budget`` s passed since ``since`` (``time.monotonic()``): a round's premise.

    A test of a server timeout needs this thread to act within it (a request sent
    within idle_timeout of connecting); descheduled longer, it lets the server close
    rightly, and the round proves nothing either way. Such a round is run again
    (``in_time_rounds``): not a timed assertion, the outcome is asserted only for
    rounds that kept the budget.
    """
    return time.monotonic() - since < budget


def in_time_rounds(round_: Callable[[], bool], budget: str) -> None:
    """Run ``round_`` until one keeps its time budget (see ``kept``), at most ``ROUNDS`` times.

    ``round_`` returns False when this thread stalled past ``budget`` (the round
    proves nothing either way); otherwise it has asserted its outcome and returns
    True. The test fails if no round kept the budget: its outcome was never checked.
    """
    for _ in range(ROUNDS):
        if round_():
            return
    pytest.fail(f"each of {ROUNDS} rounds stalled past {budget}: the outcome was never checked")


async def in_time_rounds_async(round_: Callable[[], Awaitable[bool]], budget: str) -> None:
    """``in_time_rounds`` for a round that is a coroutine function."""
    for _ in range(ROUNDS):
        if await round_():
            return
    pytest.fail(f"each of {ROUNDS} rounds stalled past {budget}: the outcome was never checked")


def sent_within(send: Any, data: bytes, since: float, budget: float) -> bool:
    """``send(data)``; False if it ended ``budget`` s or more after ``since`` (see ``kept``)."""
    try:
        send(data)
    except OSError:  # (the server closed: rightly so if this thread stalled)
        if kept(since, budget):
            raise
        return False
    return kept(since, budget)


def answered_within(call: Any, since: float, budget: float) -> bool:
    """``call()``; False if it raised ConnectionLost ``budget`` s or more after ``since`` (see ``kept``)."""
    try:
        call()
    except ConnectionLost:
        if kept(since, budget):
            raise
        return False
    return True


async def answered_within_async(call: Callable[[], Awaitable[Any]], since: float, budget: float) -> bool:
    """``answered_within`` for a call that is awaited."""
    try:
        await call()
    except ConnectionLost:
        if kept(since, budget):
            raise
        return False
    return True


class _HeldBackLock:
    """A session's lock that records (in ``declined``) each hold it leaves at the limit with nobody reading.

    On a connection the read watcher cannot watch, the reader counts each call at
    once; the count that reaches ``max_concurrent_calls`` leaves the turn to nobody
    (no thread may read until a call ends, and none is promoted).
    """

    def __init__(self, session: Session, declined: list[int]) -> None:
        self._inner = session._lock
        self._session = session
        self._declined = declined

    def __enter__(self) -> bool:
        return self._inner.__enter__()

    def __exit__(self, *exc: object) -> None:
        session = self._session
        if not session._reading and session._busy >= session._opts.max_concurrent_calls:
            self._declined.append(session.busy)
        self._inner.__exit__(*exc)


class LimitWatch:
    """Tells when a sync server's session has stopped at ``max_concurrent_calls`` (no sleep: see ``stopped``).

    On a watched connection a call runs on with the reading turn; when requests
    wait behind it, the read watcher calls the session's ``_wake_reader`` to pass
    the turn on. At the limit it must pass nothing on: no thread is promoted. On
    a connection the watcher cannot watch, each call is counted and the turn passed
    on at once; at the limit it is passed to nobody (see _HeldBackLock). Either
    stop is recorded here with the session's ``busy`` then; from then on no call
    starts until one ends (the turn stays with the limit's last call, or with
    nobody, and only a call's end or that callback passes it on).
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.declined: list[int] = []  # session.busy at each stop
        self._promotes = 0
        wake_reader, promote, init = Session._wake_reader, Session._promote, Session.__init__

        def counted_promote(session: Session) -> None:
            self._promotes += 1
            promote(session)

        def recorded_wake_reader(session: Session) -> None:
            before = self._promotes
            wake_reader(session)
            with session._lock:
                if self._promotes == before:
                    self.declined.append(session.busy)

        def watched_init(session: Session, *args: Any, **kwargs: Any) -> None:
            init(session, *args, **kwargs)
            session._lock = _HeldBackLock(session, self.declined)  # type: ignore[assignment]

        monkeypatch.setattr(Session, "_promote", counted_promote)
        monkeypatch.setattr(Session, "_wake_reader", recorded_wake_reader)
        monkeypatch.setattr(Session, "__init__", watched_init)

    def stopped(self, limit: int) -> None:
        """Wait until a session at ``limit`` calls held back the thread that would start one more."""
        wait_for(lambda: limit in self.declined, f"the session to stop at {limit} calls")


class ReadCount(SocketTransport):
    """A socket transport that counts what its owner (a session, a client) has read.

    ``count``: the bytes read in all (see ``wait_read``); ``ready_reads``: the reads
    of what has arrived already (``recv_ready``), whatever they found.
    """

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock)
        self.count = 0
        self.ready_reads = 0

    def recv(self, max_bytes: int, timeout: float | None) -> bytes:
        data = super().recv(max_bytes, timeout)
        self.count += len(data)
        return data

    def recv_ready(self, max_bytes: int) -> bytes | None:
        self.ready_reads += 1
        data = super().recv_ready(max_bytes)
        self.count += len(data or b"")
        return data

    def wait_read(self, size: int) -> None:
        """Wait until ``size`` bytes in all have been read: what the peer sends next comes in a later read.

        (Not a sleep, which a loaded machine can outrun: both parts would then be
        read at once, and the test would pass without trying the split.)
        """
        wait_for(lambda: self.count == size, f"{size} bytes to be read")


def start_thread(target: Any, *args: Any) -> threading.Thread:
    """Start a daemon thread (daemon so a failing test can never hang the run)."""
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


class FakeServer:
    """A scripted raw-socket server: ``script(peer)`` runs for each accepted connection.

    Use as a context manager; ``.address`` is where to connect. On exit the
    listener and every connection are closed and the threads joined.
    """

    def __init__(self, script: Any, connections: int = 1) -> None:
        self._script = script
        self._connections = connections
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(WAIT)
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        self.errors: list[BaseException] = []
        self._peers: list[Peer] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            for _ in range(self._connections):
                conn, _ = self._listener.accept()
                conn.settimeout(WAIT)
                peer = Peer(conn)
                self._peers.append(peer)
                self._script(peer)
        except BaseException as exc:  # reported by __exit__
            self.errors.append(exc)

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.join(WAIT)  # the script ends by itself when the test went well
        self._listener.close()
        for peer in self._peers:
            peer.close()
        self._thread.join(WAIT)
        assert not self._thread.is_alive(), "the fake server's script did not finish"


def tls_contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) TLS contexts from a throwaway CA, for 127.0.0.1 and localhost; skips without trustme."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    return server_ctx, client_ctx


def ipv6_loopback() -> bool:
    """Whether this machine can bind ::1 (tests of IPv6 are skipped without it)."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True
