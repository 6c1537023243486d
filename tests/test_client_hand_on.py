"""Threads sharing a client: the reading turn handed to the follower that has waited longest.

A reader done with its own reply hands the turn to the follower that has waited
longest, which then owns it (``ReadingTurn._hand_on``), until it reads or leaves.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from _driver_helpers import WAIT, LeakCheck, serving, start_thread, wait_for

import jsonrpc_mini._client_link as link_module
import jsonrpc_mini._client_reader as reader_module
import jsonrpc_mini._client_waiter as waiter_module
from jsonrpc_mini import ConnectionLost, RPCClient, RPCServer, RPCTimeout

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def _no_leaks() -> Any:
    with LeakCheck():
        yield


@pytest.fixture
def server() -> Any:
    s = RPCServer()
    s.register_function(lambda a, b: a + b, name="add")
    return s


def _outcome(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except BaseException as exc:  # the error is the outcome looked at
        return exc


# -- the reading turn handed to a follower -------------------------------------------


class _Gated:
    """A follower's signal that, once rung, holds its thread at ``gate`` (and then may raise ``then``)."""

    def __init__(self, inner: Any, test: _GateState) -> None:
        self.inner = inner
        self.test = test

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        rung = self.inner.acquire(timeout=timeout)
        if rung:
            self.test.rung.set()
            assert self.test.gate.wait(WAIT)
            if self.test.then is not None:
                raise self.test.then
        return rung

    def release(self) -> None:
        self.inner.release()


class _GateState:
    def __init__(self) -> None:
        self.rung, self.gate = threading.Event(), threading.Event()
        self.then: BaseException | None = None


_gate = _GateState()


class _GatedWaiter(waiter_module._Waiter):
    """The waiter of a call of "gated": its caller is held once woken (see _Gated)."""

    __slots__ = ()

    def wait_signal(self, *args: Any) -> Any:
        signal = super().wait_signal(*args)
        return _Gated(signal, _gate) if self.method == "gated" else signal


@pytest.fixture
def gated(server: RPCServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    global _gate
    _gate = _GateState()
    monkeypatch.setattr(link_module, "_Waiter", _GatedWaiter)
    monkeypatch.setattr(reader_module, "_POLL", 60.0)  # only wake-ups end the waits
    first, late = threading.Event(), threading.Event()
    server.register_function(lambda: first.wait(WAIT) and "first", name="first")
    server.register_function(lambda: late.wait(WAIT) and "gated", name="gated")
    server.register_function(lambda: late.wait(WAIT) and "third", name="third")
    yield first, late
    _gate.gate.set()
    late.set()
    _gate.then = None  # (raised, it holds the frames that refer to a doorbell)


def _waiting(link: Any, method: str) -> bool:
    return any(w.method == method and w.waiting for w in list(link.pending.values()))


def test_the_turn_goes_to_the_longest_waiting_follower_not_to_the_last_readers_next_call(
    server: RPCServer, gated: Any
) -> None:
    first, late = gated
    outcomes: dict[str, Any] = {}
    with serving(server) as address, RPCClient(*address, timeout=WAIT) as c:
        reader = start_thread(lambda: outcomes.update(first=c.first()))
        wait_for(lambda: c._link is not None and c._link.reading, "the first caller to read")
        link = c._link
        assert link is not None
        follower = start_thread(lambda: outcomes.update(gated=c.gated()))
        wait_for(lambda: _waiting(link, "gated"), "the gated call to wait")
        first.set()  # the reader's own reply: it hands the turn on
        reader.join(WAIT)
        assert _gate.rung.wait(WAIT), "the follower was not woken to read"
        assert outcomes == {"first": "first"}
        assert link.reading == follower.ident, "the turn was not handed to the follower"
        # A call made now (the last reader's next, say) waits: the turn is the follower's.
        quick = start_thread(lambda: outcomes.update(quick=c.add(1, 2)))
        wait_for(lambda: _waiting(link, "add"), "the quick call to wait")
        assert link.reading == follower.ident
        _gate.gate.set()  # the follower reads: the quick call's reply, then its own
        quick.join(WAIT)
        assert outcomes.get("quick") == 3
        late.set()
        follower.join(WAIT)
    assert outcomes == {"first": "first", "gated": "gated", "quick": 3}


@pytest.mark.parametrize("how", ["interrupted", "timed out"])
def test_a_follower_handed_the_turn_that_leaves_hands_it_on(server: RPCServer, gated: Any, how: str) -> None:
    first, late = gated
    outcomes: dict[str, Any] = {}
    with serving(server) as address, RPCClient(*address, timeout=WAIT) as c:
        reader = start_thread(lambda: outcomes.update(first=c.first()))
        wait_for(lambda: c._link is not None and c._link.reading, "the first caller to read")
        link = c._link
        assert link is not None
        if how == "interrupted":
            _gate.then = KeyboardInterrupt()
            leaving = start_thread(lambda: outcomes.update(gated=_outcome(c.gated)))
        else:
            leaving = start_thread(lambda: outcomes.update(gated=_outcome(c.with_timeout(0.3).gated)))
        wait_for(lambda: _waiting(link, "gated"), "the gated call to wait")
        other = start_thread(lambda: outcomes.update(third=c.third()))
        wait_for(lambda: _waiting(link, "third"), "the third call to wait")
        first.set()  # handed to the gated caller (it waited longest), which leaves
        assert _gate.rung.wait(WAIT)
        if how == "timed out":
            time.sleep(0.4)  # past the gated call's deadline (0.3 s)
        _gate.gate.set()
        leaving.join(WAIT)
        late.set()  # the third call's reply: only a reader handed the turn can take it
        other.join(WAIT)
        assert not other.is_alive(), "the turn was not handed on: the other follower waits for ever"
        reader.join(WAIT)
    expected = KeyboardInterrupt if how == "interrupted" else RPCTimeout
    assert isinstance(outcomes.pop("gated"), expected)
    assert outcomes == {"first": "first", "third": "third"}


def test_a_follower_handed_the_turn_whose_call_fails_gives_the_turn_back(server: RPCServer, gated: Any) -> None:
    first, _ = gated
    outcomes: dict[str, Any] = {}
    with serving(server) as address:
        c = RPCClient(*address, timeout=WAIT)
        reader = start_thread(lambda: outcomes.update(first=c.first()))
        wait_for(lambda: c._link is not None and c._link.reading, "the first caller to read")
        link = c._link
        assert link is not None
        follower = start_thread(lambda: outcomes.update(gated=_outcome(c.gated)))
        wait_for(lambda: _waiting(link, "gated"), "the gated call to wait")
        first.set()
        reader.join(WAIT)
        assert _gate.rung.wait(WAIT)
        assert link.reading == follower.ident
        c.close()  # its call fails before it takes the turn up
        _gate.gate.set()
        follower.join(WAIT)
        assert isinstance(outcomes["gated"], ConnectionLost)
        assert link.reading == 0, "a follower that left kept the reading turn"
