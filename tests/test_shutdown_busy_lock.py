"""shutdown() reads a session's busy count under its lock (``Session.busy_now``).

A counted call's end and its thread's turn to read are one step under the session's
lock (``_call_ended``): ``_busy`` drops, then the thread takes the turn, counted (while
draining) until it has taken what the transport holds. ``busy`` read between the two
stores is 0: a shutdown() polling then would close the connection under the requests
held behind the call at ``max_concurrent_calls`` (they get -32000, not a reset; see
tests/test_shutdown_held_at_limit.py). The hook below stops the ending call's thread
between the two stores, inside the lock, until shutdown() has begun a look at busy.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

import pytest
from _driver_helpers import WAIT, LeakCheck, request, start_thread, wait_for
from _held_server import NOTE, SHUTTING_DOWN, held_server
from _unwatched_session import serve_unwatched

from jsonrpc_mini._server import ServerOptions
from jsonrpc_mini._session import Session

pytestmark = pytest.mark.timeout(60)

# How long the stopped thread lets a look that began finish. A look that takes the lock
# cannot finish then; one that does not reads busy at once. (A bound, not a measure: a
# correct busy_now passes however slow the machine is.)
_LOOK = 0.5


class _StopInCallEnded:
    """Options whose ``max_concurrent_calls``, read by ``_call_ended`` once draining, waits for a look at busy.

    ``_call_ended`` reads it right after ``_busy -= 1`` (locked), before the thread takes
    the turn. ``looks``: what each look of shutdown() at busy returned; ``at_stop``: how
    many looks had ended when the thread stopped; ``ended_in_stop``: whether one ended
    while it was stopped (it read busy between the two stores).
    """

    def __init__(self, session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
        self._session = session
        self._opts: ServerOptions = session._opts
        self._cond = threading.Condition()
        self.began = 0
        self.looks: list[int] = []
        self.at_stop: int | None = None
        self.ended_in_stop = False
        busy_now = Session.busy_now

        def watched(session: Session) -> int:
            with self._cond:
                self.began += 1
                self._cond.notify_all()
            count = busy_now(session)
            with self._cond:
                self.looks.append(count)
                self._cond.notify_all()
            return count

        monkeypatch.setattr(Session, "busy_now", watched)
        session._opts = self  # type: ignore[assignment]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._opts, name)

    @property
    def max_concurrent_calls(self) -> int:
        if self.at_stop is None and self._session.draining and sys._getframe(1).f_code.co_name == "_call_ended":
            with self._cond:
                self.at_stop = len(self.looks)
                # A look under way (blocked on the lock maybe), or the next one.
                assert self._cond.wait_for(lambda: self.began > self.at_stop, WAIT), "shutdown() did not look"  # type: ignore[operator]
                self.ended_in_stop = self._cond.wait_for(lambda: len(self.looks) > self.at_stop, _LOOK)  # type: ignore[operator]
        return self._opts.max_concurrent_calls


def test_a_look_at_busy_waits_for_the_end_of_a_call_and_the_turn_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    s, entered, release, noted = held_server()

    with LeakCheck():
        session, peer = serve_unwatched(s)  # every call counted: it ends in _call_ended
        stop = _StopInCallEnded(session, monkeypatch)
        with peer:
            peer.sendall(request("quick", id_=0))  # the framing known: the usual paths
            assert peer.json_line() == {"jsonrpc": "2.0", "id": 0, "result": "ran"}
            peer.sendall(request("slow", id_=1))
            assert entered.wait(WAIT)
            peer.sendall(request("quick", id_=2) + NOTE)  # held behind the call at the limit
            stopper = start_thread(s.shutdown)
            wait_for(lambda: session.draining, "the shutdown to begin")
            release.set()
            assert peer.json_line() == {"jsonrpc": "2.0", "id": 1, "result": "slow"}
            try:
                rest = [json.loads(line) for line in peer.to_eof().splitlines()]
            except ConnectionResetError:
                rest = ["reset"]
            stopper.join(WAIT)
            assert not stopper.is_alive()
    assert stop.at_stop is not None
    assert rest == [{"jsonrpc": "2.0", "id": 2, "error": SHUTTING_DOWN}]
    assert noted == ["note"]
    assert not stop.ended_in_stop  # the call's end and the turn taken are one step for a look
