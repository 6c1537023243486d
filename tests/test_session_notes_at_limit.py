"""The sync server at max_concurrent_calls runs the notifications of a client that closed.

API.md: "A notification is executed even when its sender closes the connection right
after." At the limit no thread reads: notifications a client pipelined behind its
calls wait in the kernel's buffer. When the client closes (FIN) or resets (RST) and a
reply then fails to go out, the session reads nothing more; its last thread takes
what the transport still holds (``SessionReader._read_left``) and runs the
notifications in it. The old session closed the transport as the reply failed:
with a reset every one of them was lost, with a close 15 to 33 of 60 at limits 2-3.
"""

from __future__ import annotations

import socket
import ssl
import struct
import threading
from typing import Any

import pytest
from _driver_helpers import WAIT, LeakCheck, serving

from jsonrpc_mini import RPCServer
from jsonrpc_mini._watch import ReadWatcher

pytestmark = pytest.mark.timeout(60)

CLIENTS = 5  # per case
NOTES = 3  # notifications per client, behind its held calls
_RST = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() resets the connection


@pytest.fixture(autouse=True)
def _no_leaks() -> Any:
    with LeakCheck():
        yield


def _line(method: str, params: list[Any], id_: int | None = None) -> bytes:
    body = b'{"jsonrpc":"2.0","method":"%s","params":[%d]' % (method.encode(), params[0])
    return body + (b',"id":%d}\n' % id_ if id_ is not None else b"}\n")


class _Held:
    """A server whose ``hold`` calls run until released, and whose ``note`` notifications are counted."""

    def __init__(self, limit: int, **options: Any) -> None:
        self.server = RPCServer(max_concurrent_calls=limit, **options)
        self.started = threading.Semaphore(0)
        self.release = threading.Event()
        self.noted: list[int] = []
        self.ran = threading.Semaphore(0)
        self.server.register_function(self._hold, name="hold")
        self.server.register_function(self._note, name="note")

    def _hold(self, i: int) -> int:
        self.started.release()
        assert self.release.wait(WAIT), "the test never released the call"
        return i

    def _note(self, i: int) -> None:
        self.noted.append(i)
        self.ran.release()


def _client(address: Any, tls: ssl.SSLContext | None) -> socket.socket:
    sock = socket.create_connection(address[:2], timeout=WAIT)
    if tls is None:
        return sock
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return tls.wrap_socket(sock, server_hostname="127.0.0.1")


def _run(held: _Held, address: Any, limit: int, how: str, tls: ssl.SSLContext | None = None) -> None:
    """Each client: ``limit`` held calls, then notifications, then a close; then the calls end."""
    for client in range(CLIENTS):
        held.release.clear()
        with _client(address, tls) as sock:
            sock.sendall(b"".join(_line("hold", [i], i) for i in range(limit)))
            for _ in range(limit):
                assert held.started.acquire(timeout=WAIT), "a held call did not start"
            # The server is at its limit: nobody reads these until a call ends.
            sock.sendall(b"".join(_line("note", [client * NOTES + k]) for k in range(NOTES)))
            if how == "RST":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RST)
        held.release.set()  # the replies now meet a closed (or reset) connection
        for n in range(NOTES):
            assert held.ran.acquire(timeout=WAIT), f"client {client}: {n} of {NOTES} notifications ran"
    assert sorted(held.noted) == list(range(CLIENTS * NOTES)), "a notification ran twice, or another's"


@pytest.mark.parametrize("how", ["FIN", "RST"])
@pytest.mark.parametrize("limit", [1, 2, 3])
@pytest.mark.parametrize("watched", [True, False], ids=["watched", "unwatched"])
def test_notifications_behind_calls_at_the_limit_run_when_the_client_closes(
    watched: bool, limit: int, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not watched:  # every call counted at once, as on a transport of the user's own
        monkeypatch.setattr(ReadWatcher, "available", staticmethod(lambda: False))
    held = _Held(limit)
    with serving(held.server) as address:
        _run(held, address, limit, how)


@pytest.mark.parametrize("how", ["FIN", "RST"])
@pytest.mark.parametrize("limit", [1, 2])
def test_notifications_behind_calls_at_the_limit_run_when_a_tls_client_closes(
    limit: int, how: str, contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    server_ctx, client_ctx = contexts
    held = _Held(limit)
    with serving(held.server, ssl=server_ctx) as address:
        _run(held, address, limit, how, client_ctx)


# -- the same on transports of the user's own, scripted ---------------------------


class _GonePeer:
    """A transport whose first read gives ``first``; its sends fail: the peer is gone.

    Later reads (``recv`` with a zero timeout) give ``later``'s items, then time out
    (nothing more has arrived).
    """

    def __init__(self, first: bytes, later: list[bytes]) -> None:
        self.first: bytes | None = first
        self.later = later
        self.closed = threading.Event()

    def send(self, data: bytes) -> None:
        raise ConnectionResetError("reset by a test")

    def recv(self, max_bytes: int, timeout: float | None) -> bytes:
        if self.first is not None:
            data, self.first = self.first, None
            return data
        assert timeout == 0.0, "the session waited to read from a gone peer"
        if not self.later:
            raise TimeoutError("nothing more")
        return self.later.pop(0)

    def close(self) -> None:
        self.closed.set()


class _GoneTlsPeer(_GonePeer):
    """As :class:`_GonePeer`, with a ``recv_ready`` whose first look may take part of a TLS record, decrypt none."""

    def __init__(self, first: bytes, ready: list[bytes | None]) -> None:
        super().__init__(first, [])
        self.ready = ready

    def recv(self, max_bytes: int, timeout: float | None) -> bytes:
        if self.first is None:
            raise TimeoutError("TlsTransport's read: a zero timeout takes nothing off the socket")
        return super().recv(max_bytes, timeout)

    def recv_ready(self, max_bytes: int) -> bytes | None:
        return self.ready.pop(0) if self.ready else None


def _both_ran_and_ended(held: _Held, session: Any, transport: _GonePeer) -> None:
    """Notifications 0 and 1 ran, once each, and the session ended with its transport closed."""
    for n in range(2):
        assert held.ran.acquire(timeout=WAIT), f"{n} of 2 notifications ran"
    assert session.join(WAIT)
    assert transport.closed.is_set()
    assert held.noted == [0, 1]


@pytest.mark.parametrize("kind", ["recv only", "recv_ready, in two looks"])
def test_a_transport_of_the_users_own_gives_the_notifications_left(kind: str) -> None:
    held = _Held(1)
    held.release.set()
    notes = [_line("note", [0]) + _line("note", [1])[:10], _line("note", [1])[10:]]
    transport: _GonePeer = (
        _GonePeer(_line("hold", [0], 0), notes)
        if kind == "recv only"
        else _GoneTlsPeer(_line("hold", [0], 0), [None, notes[0], None, notes[1]])
    )
    session = held.server.serve_connection(transport)
    _both_ran_and_ended(held, session, transport)


# -- a peer that stopped reading but may still send: the reader must wake ------------


def _unix_client(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(WAIT)
    sock.connect(path)
    return sock


@pytest.mark.parametrize("watched", [True, False], ids=["watched", "unwatched"])
def test_a_reply_failing_on_a_unix_peer_shut_for_reading_ends_the_session(
    watched: bool, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Unix peer's shutdown(SHUT_RD) fails our sends (EPIPE), and it may still send: the reader waits in recv.

    The failed reply must close the transport (the reader wakes, the session ends),
    not leave it open for ``_read_left`` as after a reset: else the session waits for
    ``idle_timeout`` (for ever here), and runs a request sent after the failure.
    """
    if not watched:
        monkeypatch.setattr(ReadWatcher, "available", staticmethod(lambda: False))
    held = _Held(4, idle_timeout=None)
    held.server.register_function(lambda i: i, name="echo")
    path = str(tmp_path / "s")
    with serving(held.server, path=path), _unix_client(path) as sock:
        sock.sendall(_line("hold", [0], 0))
        assert held.started.acquire(timeout=WAIT), "the held call did not start"
        # Another thread serves this one, and then holds the reading turn: it waits in recv.
        sock.sendall(_line("echo", [1], 1))
        assert sock.recv(4096).startswith(b'{"jsonrpc":"2.0","id":1,'), "no reply from a second thread"
        sock.shutdown(socket.SHUT_RD)
        held.release.set()  # its reply fails: EPIPE
        for _ in range(int(WAIT / 0.01)):  # (bounded; over at once when all is well)
            if not held.server.connection_count:
                break
            threading.Event().wait(0.01)
        assert held.server.connection_count == 0, "a reader still waits on a peer that cannot take replies"


class _ClosingGonePeer(_GonePeer):
    """As :class:`_GonePeer`, whose reads fail once it is closed (as a socket's do)."""

    def recv(self, max_bytes: int, timeout: float | None) -> bytes:
        if self.closed.is_set():
            raise OSError("read on a closed transport")
        return super().recv(max_bytes, timeout)


def test_the_readers_own_failed_error_reply_leaves_the_notifications_behind_it() -> None:
    """The turn's holder failing to send an invalid message's error closes nothing: nobody else waits in recv."""
    held = _Held(2)
    transport = _ClosingGonePeer(b"not json\n", [_line("note", [0]) + _line("note", [1])])
    session = held.server.serve_connection(transport)
    _both_ran_and_ended(held, session, transport)
