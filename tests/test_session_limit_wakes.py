"""A sync server's counted call ending at max_concurrent_calls wakes no waiting thread for nothing.

On a connection the read watcher cannot watch, every call is counted at once and
the turn passed on; at the limit the next thread waits (``Session._serve``). When
a counted call ends, its thread reads next itself, under the same lock
(``SessionTurns._call_ended``): a waiter woken then finds it reading and waits
again, a thread switch per call for nothing. Counted here with a condition that
records who notifies.
"""

from __future__ import annotations

import socket
import sys
import threading
from typing import Any

import pytest
from _driver_helpers import WAIT, LeakCheck, Peer, request, wait_for

from jsonrpc_mini import RPCServer, SocketTransport
from jsonrpc_mini._session import Session

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def _no_leaks() -> Any:
    with LeakCheck():
        yield


class _Unwatched:
    """A transport the read watcher cannot watch (not a SocketTransport): every call is counted at once."""

    def __init__(self, inner: SocketTransport) -> None:
        self.inner = inner

    def send(self, data: bytes) -> None:
        self.inner.send(data)

    def recv(self, max_bytes: int, timeout: float | None) -> bytes:
        return self.inner.recv(max_bytes, timeout)

    def close(self) -> None:
        self.inner.close()


class _NotifyLog:
    """A session's condition that records the name of the function calling each ``notify``."""

    def __init__(self, session: Session) -> None:
        self._inner = session._cond
        self.callers: list[str] = []

    def __enter__(self) -> bool:
        return self._inner.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._inner.__exit__(*exc)

    def wait(self, timeout: float | None = None) -> bool:
        return self._inner.wait(timeout)

    def notify(self, n: int = 1) -> None:
        self.callers.append(sys._getframe(1).f_code.co_name)
        self._inner.notify(n)

    def notify_all(self) -> None:
        self._inner.notify_all()


def test_a_counted_call_ending_at_the_limit_wakes_no_waiter(monkeypatch: pytest.MonkeyPatch) -> None:
    # Limit 2: calls a and b run, a third thread waits at the limit. a ends: its thread
    # reads next (c), b ends: its thread reads next. Neither end has a waiter to wake.
    limit = 2
    logs: list[_NotifyLog] = []
    init = Session.__init__

    def logged_init(session: Session, *args: Any, **kwargs: Any) -> None:
        init(session, *args, **kwargs)
        log = _NotifyLog(session)
        logs.append(log)
        session._cond = log  # type: ignore[assignment]

    monkeypatch.setattr(Session, "__init__", logged_init)
    names = "abc"
    started = {name: threading.Event() for name in names}
    release = {name: threading.Event() for name in names}
    s = RPCServer(max_concurrent_calls=limit)

    @s.register
    def slow(name: str) -> str:
        started[name].set()
        release[name].wait(WAIT)
        return name

    ours, theirs = socket.socketpair()
    ours.settimeout(WAIT)
    session, peer = s.serve_connection(_Unwatched(SocketTransport(theirs))), Peer(ours)
    (log,) = logs

    def reads_with(busy: int) -> bool:
        with session._lock:
            return session._reading and session._busy == busy

    try:
        peer.sendall(request("slow", ["a"], id_="a"))
        assert started["a"].wait(WAIT)
        wait_for(lambda: reads_with(1), "a second thread to read")
        peer.sendall(request("slow", ["b"], id_="b"))
        assert started["b"].wait(WAIT)
        wait_for(lambda: session._idle == 1, "a third thread to wait at the limit")
        release["a"].set()
        assert peer.json_line()["id"] == "a"
        wait_for(lambda: reads_with(1), "a's thread to read next")
        peer.sendall(request("slow", ["c"], id_="c"))
        assert started["c"].wait(WAIT)
        release["b"].set()
        assert peer.json_line()["id"] == "b"
        wait_for(lambda: reads_with(1), "b's thread to read next")
        assert session._idle == 1  # the third thread waited all along
        with session._lock:
            assert "_call_ended" not in log.callers, log.callers
    finally:
        for event in release.values():
            event.set()
    assert peer.json_line()["id"] == "c"
    peer.close()
    assert session.join(WAIT)
    s.shutdown()
