"""Requests held in the transport behind calls at max_concurrent_calls when shutdown() begins.

At the limit nobody reads: requests pipelined behind the running calls wait unread
in the socket. README ("Shutdown"): a request received but not yet started
when the shutdown began is answered with -32000, not dropped; a notification runs.
The thread whose call ends reads next; shutdown() polls ``Session.busy_now`` and closes
the connection once it reads 0. Between that call's end and the read (its own turn
kept, or given back under the lock by ``_call_ended``) busy read 0, and a poll
falling there closed the connection under the held requests. The hook below makes
that poll happen: the reader waits for shutdown()'s next look at busy on its way to
read, and again before a read that may wait (``recv`` with a timeout): busy must
count it until it has taken what the transport holds without waiting.
"""

from __future__ import annotations

import json
import socket
import threading
from typing import Any

import pytest
from _driver_helpers import WAIT, LeakCheck, Peer, request, start_thread, wait_for
from _held_server import NOTE, SHUTTING_DOWN, held_server
from _unwatched_session import serve_unwatched

from jsonrpc_mini import SocketTransport
from jsonrpc_mini._session import Session

pytestmark = pytest.mark.timeout(60)

_LARGE = 1 << 20  # a reply too large to go out with the turn taken back first


@pytest.fixture(autouse=True)
def _no_leaks() -> Any:
    with LeakCheck():
        yield


class _LookFirst:
    """A draining session's reader waits for shutdown()'s next look at busy, at two points.

    Once on its way to read (the first ``_read_event`` once draining) and once before a
    read that may wait (its first ``recv`` with a timeout other than 0 once draining).
    ``counted_then``: busy as that read began (0: a read that waits holds up no shutdown).
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.session: Session | None = None
        self.paused: list[str] = []
        self.counted_then: list[int] = []
        self._looked = threading.Event()
        busy = Session.busy_now
        read_event = Session._read_event
        recv = SocketTransport.recv

        def watched_busy(session: Session) -> int:
            count = busy(session)
            self._looked.set()
            return count

        def read_after_a_look(session: Session, fresh: bool = False) -> Any:
            self._pause_once(session, "on its way")
            return read_event(session, fresh)

        def recv_after_a_look(transport: SocketTransport, max_bytes: int, timeout: float | None) -> bytes:
            session = self.session
            if timeout != 0.0 and session is not None and session.draining and "reading" not in self.paused:
                self.counted_then.append(busy(session))
                self._pause_once(session, "reading")
            return recv(transport, max_bytes, timeout)

        monkeypatch.setattr(Session, "busy_now", watched_busy)
        monkeypatch.setattr(Session, "_read_event", read_after_a_look)
        monkeypatch.setattr(SocketTransport, "recv", recv_after_a_look)

    def _pause_once(self, session: Session, where: str) -> None:
        if session.draining and where not in self.paused:
            self.paused.append(where)
            self._looked.clear()
            assert self._looked.wait(WAIT), "shutdown() did not look at busy"


def _rest(peer: Peer) -> list[Any]:
    """The replies until the server closes; ["reset"] if it closed with requests unread (a reset)."""
    try:
        return [json.loads(line) for line in peer.to_eof().splitlines()]
    except ConnectionResetError:
        return ["reset"]


@pytest.mark.parametrize(
    ("kind", "size"),
    [("watched", 1), ("watched", _LARGE), ("unwatched", 1)],
    ids=["watched-small-reply", "watched-large-reply", "unwatched"],
)
def test_requests_held_at_the_limit_get_shutting_down(monkeypatch: pytest.MonkeyPatch, kind: str, size: int) -> None:
    look = _LookFirst(monkeypatch)
    s, entered, release, noted = held_server("x" * size)

    if kind == "watched":
        ours, theirs = socket.socketpair()
        ours.settimeout(WAIT)
        session, peer = s.serve_connection(SocketTransport(theirs)), Peer(ours)
    else:
        session, peer = serve_unwatched(s)
    look.session = session
    with peer:
        # A first call: the connection's framing is known, requests take the usual path.
        peer.sendall(request("quick", id_=0))
        assert peer.json_line() == {"jsonrpc": "2.0", "id": 0, "result": "ran"}
        peer.sendall(request("slow", id_=1))
        assert entered.wait(WAIT)
        # Behind the call at the limit: read by nobody until it ends.
        peer.sendall(request("quick", id_=2) + request("quick", id_=3) + NOTE)
        stopper = start_thread(s.shutdown)
        wait_for(lambda: session.draining, "the shutdown to begin")
        release.set()
        assert peer.json_line() == {"jsonrpc": "2.0", "id": 1, "result": "x" * size}
        replies = _rest(peer)
        stopper.join(WAIT)
        assert not stopper.is_alive()
    assert replies == [
        {"jsonrpc": "2.0", "id": 2, "error": SHUTTING_DOWN},
        {"jsonrpc": "2.0", "id": 3, "error": SHUTTING_DOWN},
    ]
    assert noted == ["note"]
    assert look.paused == ["on its way", "reading"]
    assert look.counted_then == [0]


def test_a_call_ending_as_shutdown_begins(monkeypatch: pytest.MonkeyPatch) -> None:
    """The held call ends before shutdown() drains: its thread goes to read as usual.

    Not draining yet, it takes the turn without being counted in busy (no look without
    waiting first). Stopped on its way to read until shutdown() has looked at busy (0),
    it must still get to the requests held behind the call: shutdown() waits while
    bytes wait unread in the socket (``SessionReader.unread``). Before, the connection
    was closed under them (a reset, the notification not run).
    """
    s, entered, release, noted = held_server()
    stopped, looked = threading.Event(), threading.Event()
    read_event, busy_now = Session._read_event, Session.busy_now

    def read_after_a_look(session: Session, fresh: bool = False) -> Any:
        if release.is_set() and not stopped.is_set():
            stopped.set()
            assert looked.wait(WAIT), "shutdown() did not look at busy"
        return read_event(session, fresh)

    def watched_busy(session: Session) -> int:
        count = busy_now(session)
        looked.set()
        return count

    monkeypatch.setattr(Session, "_read_event", read_after_a_look)
    monkeypatch.setattr(Session, "busy_now", watched_busy)

    ours, theirs = socket.socketpair()
    ours.settimeout(WAIT)
    session, peer = s.serve_connection(SocketTransport(theirs)), Peer(ours)
    with peer:
        peer.sendall(request("quick", id_=0))  # the framing known: the usual paths
        assert peer.json_line() == {"jsonrpc": "2.0", "id": 0, "result": "ran"}
        peer.sendall(request("slow", id_=1))
        assert entered.wait(WAIT)
        peer.sendall(request("quick", id_=2) + NOTE)  # held behind the call at the limit
        release.set()
        assert stopped.wait(WAIT), "the call's thread did not go to read"
        assert not session.draining  # (it ended before shutdown() began)
        stopper = start_thread(s.shutdown)
        assert peer.json_line() == {"jsonrpc": "2.0", "id": 1, "result": "slow"}
        replies = _rest(peer)
        stopper.join(WAIT)
        assert not stopper.is_alive()
    assert replies == [{"jsonrpc": "2.0", "id": 2, "error": SHUTTING_DOWN}]
    assert noted == ["note"]
