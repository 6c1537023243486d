"""A request read after a reply failed to go out is skipped, as every request then is.

Once a reply cannot be sent (the client reset the connection) the sync server reads
nothing more; the session's last thread takes what is left and runs its notifications,
skipping the requests (``SessionReader._run_notifications_left``; API.md: "A
notification is executed even when its sender closes the connection right after").
Over TCP the transport stays open for that, so a thread that already held the reading
turn when the reply failed could still get, from its read, bytes the client sent before
the reset, and ran the first request in them (review R2, session 26). The hook below
holds such a read's bytes until the reply has failed: that request must not run; a
notification sent with it still must.
"""

from __future__ import annotations

import socket
import struct
import threading
from typing import Any

import pytest
from _driver_helpers import WAIT, LeakCheck, Peer, request, wait_for
from _unwatched_session import Unwatched

from jsonrpc_mini import RPCServer, SocketTransport
from jsonrpc_mini._session import Session

pytestmark = pytest.mark.timeout(60)

_RST = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() resets the connection
_TCP_CLOSE = 7  # tcpi_state of a connection that was reset (linux/tcp_states.h)
_MARK = request("mark", [3], id_=3)
_NOTE = b'{"jsonrpc": "2.0", "method": "note", "params": [4]}\n'
_BATCH = b"[" + _MARK.strip() + b"," + _NOTE.strip() + b"]\n"


@pytest.fixture(autouse=True)
def _no_leaks() -> Any:
    with LeakCheck():
        yield


class _HeldRead:
    """Once armed, the first read that brings bytes gives them only after a reply has failed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.armed = threading.Event()
        self.holding = threading.Event()
        self.failed = threading.Event()
        recv = SocketTransport.recv
        send_failed = Session._send_failed

        def held_recv(transport: SocketTransport, max_bytes: int, timeout: float | None) -> bytes:
            data = recv(transport, max_bytes, timeout)
            if data and self.armed.is_set() and not self.holding.is_set():
                self.holding.set()
                assert self.failed.wait(WAIT), "no reply failed"
            return data

        def noted_failure(session: Session, exc: OSError, reading: bool = False) -> None:
            send_failed(session, exc, reading)
            self.failed.set()

        monkeypatch.setattr(SocketTransport, "recv", held_recv)
        monkeypatch.setattr(Session, "_send_failed", noted_failure)


def _tcp_pair() -> tuple[socket.socket, socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname()[:2], timeout=WAIT)
        served, _ = listener.accept()
    return client, served


def _reset(sock: socket.socket) -> bool:
    """Whether the connection of ``sock`` has been reset (TCP_INFO's state; reading it changes nothing)."""
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] == _TCP_CLOSE


@pytest.mark.parametrize("watched", [True, False], ids=["watched", "unwatched"])
@pytest.mark.parametrize(
    ("sent", "notes"),
    [(_MARK, []), (_MARK + _NOTE, [4]), (_NOTE + _MARK, [4]), (_BATCH, [4])],
    ids=["request-alone", "request-then-note", "note-then-request", "batch"],
)
def test_request_read_once_a_reply_failed_is_not_run(
    monkeypatch: pytest.MonkeyPatch, watched: bool, sent: bytes, notes: list[int]
) -> None:
    held = _HeldRead(monkeypatch)
    started, release = threading.Event(), threading.Event()
    marked: list[int] = []
    noted: list[int] = []
    s = RPCServer()

    @s.register
    def hold() -> str:
        started.set()
        release.wait(WAIT)
        return "held"

    @s.register
    def quick() -> str:
        return "ran"

    @s.register
    def mark(i: int) -> int:
        marked.append(i)
        return i

    @s.register
    def note(i: int) -> None:
        noted.append(i)

    client, served = _tcp_pair()
    transport = SocketTransport(served)
    session = s.serve_connection(transport if watched else Unwatched(transport))  # type: ignore[arg-type]
    try:
        with Peer(client) as peer:
            peer.sendall(request("hold", id_=1))
            assert started.wait(WAIT)
            # While hold runs another thread takes the reading turn (at once when unwatched,
            # once these bytes arrive when watched): it answers, then reads again.
            peer.sendall(request("quick", id_=2))
            assert peer.json_line() == {"jsonrpc": "2.0", "id": 2, "result": "ran"}
            held.armed.set()
            peer.sendall(sent)
            assert held.holding.wait(WAIT), "the reader got no bytes"
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RST)
            client.close()
            wait_for(lambda: _reset(served), "the reset to arrive")
            release.set()  # hold's reply fails to go out; then the reader gets its bytes
            assert session.finished.wait(WAIT)
    finally:
        release.set()
        s.shutdown()
    assert held.failed.is_set()
    assert marked == []
    assert noted == notes
