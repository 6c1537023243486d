"""A call at a sync server's max_concurrent_calls ends, or the connection does: nothing is lost.

At the limit no thread reads: on a connection the read watcher cannot watch the
call that reached the limit left the turn to nobody, on a watched one it runs with
the reading turn, not counted, and the watcher declines to pass the turn on. The
next request is read by the thread whose call ends first (``SessionTurns._call_ended``,
or the turn's holder reading on), whatever the way it ends: a reply, the handler
raising, a notification (no reply), a batch, a result that cannot be encoded, a
reply too large for one send. Or the connection ends: the client half-closes, the
server closes once idle (``close_when_idle``), or the client is gone. Followers
re-check every ``_POLL`` seconds in case a wake-up is lost; made longer than the
test may run, so that a lost one is a hang (pytest-timeout) and not a stall.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable
from typing import Any

import pytest
from _driver_helpers import WAIT, LeakCheck, LimitWatch, Peer, request
from _unwatched_session import log_notifies, serve_unwatched

import jsonrpc_mini._session as session_module
from jsonrpc_mini import RPCServer, SocketTransport
from jsonrpc_mini._session import Session

pytestmark = pytest.mark.timeout(60)

_LARGE = 1 << 20  # a reply no socket buffer holds: sent while the peer reads


@pytest.fixture(autouse=True)
def _no_leaks() -> Any:
    with LeakCheck():
        yield


class _HeldCalls:
    """``hold(name, way)`` calls, each running until released; the most that ran at once."""

    def __init__(self) -> None:
        self.started: dict[str, threading.Event] = {}
        self.release: dict[str, threading.Event] = {}
        self.noted: list[str] = []
        self._lock = threading.Lock()
        self._running = 0
        self.most = 0

    def add(self, name: str) -> None:
        self.started[name], self.release[name] = threading.Event(), threading.Event()

    def hold(self, name: str, way: str) -> Any:
        with self._lock:
            self._running += 1
            self.most = max(self.most, self._running)
        try:
            self.started[name].set()
            self.release[name].wait(WAIT)
        finally:
            with self._lock:
                self._running -= 1
        if way == "raise":
            raise ValueError(name)
        if way == "unserialisable":
            return object()
        if way == "large":
            return "x" * _LARGE
        return name

    def note(self, name: str) -> None:
        self.noted.append(name)

    def release_all(self) -> None:
        for event in self.release.values():
            event.set()


def _server(limit: int, calls: _HeldCalls) -> RPCServer:
    s = RPCServer(max_concurrent_calls=limit)
    s.register_function(calls.hold, name="hold")
    s.register_function(calls.note, name="note")
    s.register_function(lambda i: i, name="quick")
    return s


def _serve(s: RPCServer, watched: bool) -> tuple[Session, Peer]:
    if not watched:
        return serve_unwatched(s)
    ours, theirs = socket.socketpair()
    ours.settimeout(WAIT)
    return s.serve_connection(SocketTransport(theirs)), Peer(ours)


def _line(message: Any) -> bytes:
    return json.dumps(message).encode() + b"\n"


def _held(name: str, way: str) -> bytes:
    """The message that runs ``hold(name, way)``: a request, a notification or a batch's last member."""
    if way == "notification":
        return _line({"jsonrpc": "2.0", "method": "hold", "params": [name, "reply"]})
    if way == "batch":
        first = {"jsonrpc": "2.0", "method": "quick", "params": [0], "id": f"{name}-first"}
        note = {"jsonrpc": "2.0", "method": "note", "params": [name]}
        return _line([first, note, {"jsonrpc": "2.0", "method": "hold", "params": [name, "reply"], "id": name}])
    return request("hold", [name, way], id_=name)


def _ids(peer: Peer, count: int) -> list[Any]:
    """The ids of the next ``count`` replies (a batch's reply as the tuple of its ids)."""
    ids = []
    for _ in range(count):
        reply = peer.json_line()
        ids.append(tuple(member["id"] for member in reply) if isinstance(reply, list) else reply["id"])
    return ids


WAYS = ["reply", "raise", "notification", "batch", "unserialisable", "large"]
REPLIES: dict[str, Callable[[str], list[Any]]] = {
    "reply": lambda name: [name],
    "raise": lambda name: [name],
    "notification": lambda name: [],
    "batch": lambda name: [(f"{name}-first", name)],
    "unserialisable": lambda name: [name],
    "large": lambda name: [name],
}


@pytest.mark.parametrize("limit", [1, 2, 3])
@pytest.mark.parametrize("watched", [True, False], ids=["watched", "unwatched"])
@pytest.mark.parametrize("way", WAYS)
def test_the_call_reaching_the_limit_lets_the_next_requests_in_however_it_ends(
    monkeypatch: pytest.MonkeyPatch, way: str, watched: bool, limit: int
) -> None:
    # limit - 1 held calls, then the call under test reaches the limit; three requests
    # wait behind it. It ends first: its thread must read them (nobody else may), and
    # no thread may be woken, or started, for nothing (unwatched: the followers wait
    # at the limit, and each of the three is counted there again).
    monkeypatch.setattr(session_module, "_POLL", 60.0)  # only wake-ups end the waits
    watch = LimitWatch(monkeypatch)
    logs = log_notifies(monkeypatch)
    calls = _HeldCalls()
    names = [f"h{i}" for i in range(limit)]
    for name in names:
        calls.add(name)
    s = _server(limit, calls)
    session, peer = _serve(s, watched)
    (log,) = logs
    last = names[-1]
    try:
        for name in names:
            peer.sendall(_held(name, "reply") if name != last else _held(name, way))
            assert calls.started[name].wait(WAIT), f"{name} did not start"
        peer.sendall(b"".join(request("quick", [i], id_=f"q{i}") for i in range(3)))
        watch.stopped(limit)  # nobody reads: the three wait behind the limit
        with session._lock:
            threads, notified = session._threads, len(log.callers)
        calls.release[last].set()
        expected = [*REPLIES[way](last), "q0", "q1", "q2"]
        assert sorted(_ids(peer, len(expected)), key=str) == sorted(expected, key=str)
        if way in ("notification", "batch"):
            assert calls.noted == ([last] if way == "batch" else [])
        if not watched:
            with session._lock:
                assert log.callers[notified:] == [], "a thread was woken at the limit"
                assert session._threads == threads, "a thread was started at the limit"
    finally:
        calls.release_all()
    assert sorted(_ids(peer, limit - 1)) == names[:-1]
    assert calls.most == limit
    peer.close()
    assert session.join(WAIT)
    s.shutdown()


@pytest.mark.parametrize("limit", [1, 2, 3])
@pytest.mark.parametrize("watched", [True, False], ids=["watched", "unwatched"])
@pytest.mark.parametrize("end", ["half-close", "close_when_idle", "client gone"])
def test_a_connection_ending_at_the_limit_lets_every_thread_end(
    monkeypatch: pytest.MonkeyPatch, end: str, watched: bool, limit: int
) -> None:
    # The connection ends while limit calls run and requests wait behind them: the
    # client half-closes (every request is still answered, then the server closes),
    # the server closes once idle (the calls' replies still go out, nothing more is
    # read), or the client is gone (the replies fail). Either way each thread must
    # end as the calls end: none may wait on for a wake-up.
    monkeypatch.setattr(session_module, "_POLL", 60.0)  # only wake-ups end the waits
    watch = LimitWatch(monkeypatch)
    calls = _HeldCalls()
    names = [f"h{i}" for i in range(limit)]
    for name in [*names, "n"]:
        calls.add(name)
    calls.release["n"].set()  # (the notification's call: runs through)
    s = _server(limit, calls)
    session, peer = _serve(s, watched)
    try:
        for name in names:
            peer.sendall(_held(name, "reply"))
            assert calls.started[name].wait(WAIT), f"{name} did not start"
        peer.sendall(request("quick", [0], id_="q0") + _held("n", "notification") + request("quick", [1], id_="q1"))
        watch.stopped(limit)
        if end == "half-close":
            peer.shutdown(socket.SHUT_WR)
        elif end == "close_when_idle":
            session.close_when_idle()
        else:
            peer.close()
        # The calls end one by one, the first first: each thread then finds the
        # connection ending (or reads the requests behind, half-closed). Watched, the
        # last runs with the reading turn, not counted: the counted calls' ends must not
        # close the connection under it (close_when_idle: its reply still goes out).
        for name in names:
            calls.release[name].set()
            if end == "close_when_idle":
                assert peer.json_line()["id"] == name
    finally:
        calls.release_all()
    if end == "half-close":
        assert sorted(_ids(peer, limit + 2)) == sorted([*names, "q0", "q1"])
        assert peer.to_eof() == b""
        assert calls.started["n"].is_set()
    elif end == "close_when_idle":
        # The requests behind are not read: closed with them unread, the socket may reset.
        with contextlib.suppress(ConnectionResetError):
            assert peer.to_eof() == b""
    assert session.join(WAIT)
    peer.close()
    s.shutdown()
