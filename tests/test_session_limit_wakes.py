"""A sync server at max_concurrent_calls wakes no thread for nothing, nor starts one.

On a connection the read watcher cannot watch, every call is counted at once and
another thread promoted to read (``Session._serve``); at the limit nobody may read.
When a counted call ends, its thread reads next itself, under the same lock
(``SessionTurns._call_ended``). A thread woken, or started, as a call is counted
at the limit or as one ends there would find the limit, or that reader, and wait
again: a thread switch per call for nothing. Counted here with a condition that
records who notifies.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from _driver_helpers import WAIT, LeakCheck, wait_for
from _unwatched_session import NamedSlowCalls, at_the_limit, log_notifies, reads_with, serve_unwatched

from jsonrpc_mini import RPCServer
from jsonrpc_mini._session import Session

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def _no_leaks() -> Any:
    with LeakCheck():
        yield


def test_calls_at_the_limit_wake_and_start_no_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    # Limit 2: a runs, b is counted at the limit (nobody reads then); a ends and its
    # thread reads c, counted at the limit; b ends and its thread reads. A thread woken
    # or started at any of these steps could only wait: the limit, or a reader.
    limit = 2
    logs = log_notifies(monkeypatch)
    calls = NamedSlowCalls("abc")
    s = RPCServer(max_concurrent_calls=limit)
    s.register_function(calls.slow, name="slow")
    session, peer = serve_unwatched(s)
    (log,) = logs

    try:
        calls.start(peer, "a")
        wait_for(lambda: reads_with(session, 1), "a second thread to read")
        calls.start(peer, "b")
        wait_for(lambda: at_the_limit(session), "b to be counted at the limit")
        calls.finish(peer, "a")
        wait_for(lambda: reads_with(session, 1), "a's thread to read next")
        calls.start(peer, "c")
        wait_for(lambda: at_the_limit(session), "c to be counted at the limit")
        calls.finish(peer, "b")
        wait_for(lambda: reads_with(session, 1), "b's thread to read next")
        with session._lock:
            # (The one thread started: the reader promoted as a was counted, below the limit.)
            assert log.callers == [], "a thread was woken at the limit"
            assert session._threads == limit, "a thread was started at the limit"
    finally:
        calls.release_all()
    assert peer.json_line()["id"] == "c"
    peer.close()
    assert session.join(WAIT)
    s.shutdown()


def test_a_thread_whose_call_ended_while_another_read_waits_at_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    # Nobody is promoted at the limit, so a thread that finds the limit reached as it
    # looks for the turn is one whose call ended while another thread read: held
    # there (b's), it goes on once c and d are counted at the limit, and must wait,
    # not read a third call (the serve loop's own look at the limit).
    limit = 2
    calls = NamedSlowCalls("abcd")
    ran = calls.ran
    held, hold = threading.Event(), threading.Event()
    s = RPCServer(max_concurrent_calls=limit)
    s.register_function(calls.slow, name="slow")

    call_ended = Session._call_ended

    def holding_call_ended(session: Session, mine: list[int], *, counted: bool) -> bool:
        reader = call_ended(session, mine, counted=counted)
        if ran.get("b") is threading.current_thread() and not held.is_set():
            held.set()
            hold.wait(WAIT)
        return reader

    monkeypatch.setattr(Session, "_call_ended", holding_call_ended)
    session, peer = serve_unwatched(s)

    try:
        calls.start(peer, "a")
        wait_for(lambda: reads_with(session, 1), "a second thread to read")
        calls.start(peer, "b")
        wait_for(lambda: at_the_limit(session), "b to be counted at the limit")
        calls.finish(peer, "a")
        wait_for(lambda: reads_with(session, 1), "a's thread to read next")
        calls.finish(peer, "b")
        assert held.wait(WAIT)  # b's thread: its call ended while a's thread reads
        for name in "cd":
            calls.start(peer, name)
            wait_for(lambda: reads_with(session, 1) or at_the_limit(session), f"{name} to be counted")
        wait_for(lambda: at_the_limit(session), "d to be counted at the limit")
        hold.set()
        wait_for(lambda: session._idle == 1, "b's thread to wait at the limit")
        assert at_the_limit(session)
    finally:
        hold.set()
        calls.release_all()
    assert sorted(peer.json_line()["id"] for _ in "cd") == ["c", "d"]
    peer.close()
    assert session.join(WAIT)
    s.shutdown()
