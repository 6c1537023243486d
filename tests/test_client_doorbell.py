"""Threads sharing a client: followers sleep on their thread's doorbell.

A caller waiting for another thread to read sleeps on its thread's doorbell
(``_client_doorbell``), rung by the reader without the GIL; a doorbell is the
thread's, for its waits on every connection, and goes with the thread.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

import pytest
from _driver_helpers import WAIT, FakeServer, LeakCheck, Peer, eventfds, serving, start_thread, wait_for, wait_line

import jsonrpc_mini._client_doorbell as doorbell_module
import jsonrpc_mini._client_reader as reader_module
from jsonrpc_mini import RPCClient, RPCServer, RPCTimeout
from jsonrpc_mini._client_waiter import _Waiter

pytestmark = pytest.mark.timeout(60)

needs_eventfd = pytest.mark.skipif(not doorbell_module._DOORBELLS, reason="doorbells need os.eventfd (Linux)")


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


# -- the doorbell itself -------------------------------------------------------------


def _in_a_thread(fn: Any) -> Any:
    """``fn()`` run in a new thread (whose doorbell, if it makes one, goes with it); its result, or raised."""
    out: list[Any] = []
    thread = start_thread(lambda: out.append(_outcome(fn)))
    thread.join(WAIT)
    assert out, "the thread hung"
    if isinstance(out[0], BaseException):
        raise out[0]
    return out[0]


_let_go = doorbell_module.end_wait  # (what the end of a wait does: _ReplyReader._wait's finally)


@needs_eventfd
def test_a_ring_before_the_wait_ends_it_and_rings_add_up_to_one_wake_up() -> None:
    bell = doorbell_module.Doorbell()
    assert bell.acquire(timeout=0) is False  # nothing rung yet
    bell.release()
    bell.release()
    assert bell.acquire(timeout=WAIT) is True  # rung before the wait: no sleep
    assert bell.acquire(timeout=0.01) is False  # both rings taken by the one wait


@needs_eventfd
def test_a_non_blocking_acquire_only_looks_for_a_ring_as_a_locks_does() -> None:
    bell = doorbell_module.Doorbell()
    ringer = threading.Timer(WAIT, bell.release)  # (a ring that would end a wait, long after)
    ringer.start()
    try:
        assert bell.acquire(blocking=False) is False  # at once, not at the ring
        assert ringer.is_alive()
        bell.release()
        assert bell.acquire(False) is True
    finally:
        ringer.cancel()
        ringer.join(WAIT)


@needs_eventfd
def test_a_ring_from_another_thread_ends_a_wait_without_limit() -> None:
    bell = doorbell_module.Doorbell()
    ringer = threading.Timer(0.05, bell.release)
    ringer.start()
    assert bell.acquire() is True
    ringer.join(WAIT)


@needs_eventfd
def test_a_thread_has_one_doorbell_for_all_its_waits_and_is_handed_it_taken() -> None:
    def waits() -> tuple[Any, ...]:
        first, second, third = _Waiter("a"), _Waiter("b"), _Waiter("c")
        bell = doorbell_module.signal_for_wait(first)
        assert isinstance(bell, doorbell_module.Doorbell) and first.signal is bell
        assert bell.holder is first, "handed out, not taken: a signal handler's call could be given it"
        nested = doorbell_module.signal_for_wait(second)  # (a signal handler's call, say)
        assert nested is not bell and second.signal is nested
        assert nested.acquire(blocking=False) is False, "a nested wait's lock must start held"
        _let_go(second)
        assert bell.holder is first, "a nested wait let the outer one's doorbell go"
        _let_go(first)
        assert bell.holder is None and first.signal is None
        again = doorbell_module.signal_for_wait(third)  # the next wait, on any connection
        _let_go(third)
        return bell, again

    bell, again = _in_a_thread(waits)
    assert again is bell
    other, _ = _in_a_thread(waits)
    assert other is not bell


@needs_eventfd
def test_a_wait_made_inside_another_takes_it_off_the_followers_and_wakes_it_as_it_ends() -> None:
    # A signal handler's call, made while its thread sleeps as a follower (and a
    # handler's inside that one's handler): the outer wait cannot go on meanwhile.
    def waits() -> None:
        outer, inner, innermost = _Waiter("outer"), _Waiter("inner"), _Waiter("innermost")
        bell = doorbell_module.signal_for_wait(outer)
        outer.waiting = True  # (a follower: set in the same lock round)
        lock = doorbell_module.signal_for_wait(inner)
        assert outer.waiting is False, "the outer wait, which cannot go on, could be handed the reading turn"
        assert doorbell_module._mine.locks == [inner]
        inner.waiting = True
        deeper = doorbell_module.signal_for_wait(innermost)
        assert inner.waiting is False and doorbell_module._mine.locks == [inner, innermost]
        _let_go(innermost)
        assert lock.acquire(blocking=False) is True, "the wait it was made inside was not woken to look again"
        assert bell.acquire(timeout=0) is False, "(only the wait it was made inside)"
        assert deeper.acquire(blocking=False) is False
        _let_go(inner)
        assert doorbell_module._mine.locks == []
        assert bell.acquire(timeout=0) is True, "the outer wait was not woken to look again"
        _let_go(outer)

    _in_a_thread(waits)


@needs_eventfd
def test_a_waits_end_ends_the_waits_made_inside_it_whose_own_end_was_cut_short() -> None:
    # (A second interruption inside the handling of the first can skip an inner
    # wait's end: the end of the wait it was made inside clears it.)
    def waits() -> None:
        outer, inner, innermost = _Waiter("outer"), _Waiter("inner"), _Waiter("innermost")
        bell = doorbell_module.signal_for_wait(outer)
        doorbell_module.signal_for_wait(inner)
        doorbell_module.signal_for_wait(innermost)
        _let_go(inner)
        assert doorbell_module._mine.locks == [] and inner.signal is None
        assert bell.acquire(timeout=0) is True, "the outer wait was not woken to look again"
        _let_go(outer)

    _in_a_thread(waits)


@needs_eventfd
def test_a_wait_nested_in_a_wait_of_the_same_thread_gets_a_lock_of_its_own() -> None:
    # (A signal handler's call, made while its thread sleeps on the doorbell: the
    # inner wait must not take the outer one's ring.)
    def nest() -> Any:
        outer = _Waiter("outer")
        bell = doorbell_module.signal_for_wait(outer)
        inner: list[Any] = []
        original = bell._poll

        class Nesting:
            def poll(self, timeout: Any) -> Any:
                inner.append(doorbell_module.signal_for_wait(_Waiter("inner")))
                return original.poll(timeout)

        bell._poll = Nesting()
        bell.release()
        assert bell.acquire(timeout=WAIT)
        bell._poll = original
        _let_go(outer)
        assert len(inner) == 1 and inner[0] is not bell
        assert inner[0].acquire(blocking=False) is False, "a nested wait's lock must start held"
        return True

    assert _in_a_thread(nest)


def _a_held_lock_is_handed_out(waiter: _Waiter) -> Any:
    """``signal_for_wait(waiter)`` is a lock held until released (checked, then let go)."""
    signal = doorbell_module.signal_for_wait(waiter)
    assert waiter.signal is signal
    assert signal.acquire(blocking=False) is False
    signal.release()
    assert signal.acquire(timeout=0) is True
    _let_go(waiter)
    return signal


def test_without_eventfd_each_wait_gets_a_held_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doorbell_module, "_DOORBELLS", False)

    def waits() -> tuple[Any, ...]:
        signal = _a_held_lock_is_handed_out(_Waiter("a"))
        return signal, doorbell_module.signal_for_wait(_Waiter("b")), doorbell_module._mine.bell

    first, second, bell = _in_a_thread(waits)
    assert second is not first
    assert bell is None


@needs_eventfd
def test_a_doorbell_that_cannot_be_made_leaves_a_lock_and_is_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_descriptors(*args: Any) -> int:
        raise OSError(24, "Too many open files")

    def waits() -> Any:
        with monkeypatch.context() as patched:
            patched.setattr(os, "eventfd", no_descriptors)
            _a_held_lock_is_handed_out(_Waiter("a"))
        waiter = _Waiter("b")
        bell = doorbell_module.signal_for_wait(waiter)  # descriptors to be had again
        _let_go(waiter)
        return bell

    assert isinstance(_in_a_thread(waits), doorbell_module.Doorbell)


@needs_eventfd
def test_a_forked_child_does_not_ring_its_parents_doorbell() -> None:
    # The thread that forks goes on in the child: an inherited doorbell would be
    # the same eventfd as the parent's thread's, its rings and its waits shared.
    def fork() -> tuple[int, bool]:
        waiter = _Waiter("a")
        bell = doorbell_module.signal_for_wait(waiter)
        _let_go(waiter)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                child = _Waiter("b")
                doorbell_module.signal_for_wait(child).release()
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        return status, bell.acquire(timeout=0)

    status, rung = _in_a_thread(fork)
    assert status == 0
    assert rung is False, "the child rang the parent's thread's doorbell"


# -- a doorbell per thread, across connections --------------------------------------------


@needs_eventfd
def test_doorbells_are_one_per_live_thread_whatever_the_clients_and_go_with_it(
    server: RPCServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reader_module, "_POLL", 60.0)  # only wake-ups end the waits
    clients_n, threads_n = 20, 8
    gates = [threading.Event() for _ in range(clients_n)]
    server.register_function(lambda n: gates[n].wait(WAIT) and n, name="gated")
    rounds = threading.Barrier(threads_n + 1, timeout=WAIT)
    counted = threading.Event()
    got: list[Any] = []
    before = eventfds()
    with serving(server) as address:
        clients = [RPCClient(*address, timeout=WAIT) for _ in range(clients_n)]

        def work() -> None:
            for n, c in enumerate(clients):
                rounds.wait()
                got.append(_outcome(c.gated, n))
            counted.wait(WAIT)  # (alive until counted)

        threads = [start_thread(work) for _ in range(threads_n)]
        for n, c in enumerate(clients):
            rounds.wait()

            def following(c: RPCClient = c) -> bool:
                link = c._link
                return link is not None and sum(w.waiting for w in list(link.pending.values())) == threads_n - 1

            wait_for(following, f"client {n}'s callers but the reader to wait")  # all but one follow
            gates[n].set()
        wait_for(lambda: len(got) == clients_n * threads_n, "the last calls")
        held = eventfds() - before
        counted.set()
        for t in threads:
            t.join(WAIT)
        gc.collect()
        ended = eventfds() - before
        for c in clients:
            c.close()
    assert sorted(got) == sorted(n for n in range(clients_n) for _ in range(threads_n))
    assert 0 < held <= threads_n, f"{held} doorbells for {threads_n} threads and {clients_n} clients"
    assert ended == 0, "an ended thread's doorbell was kept"


@contextlib.contextmanager
def _a_caller_reading(server: RPCServer) -> Iterator[tuple[RPCClient, threading.Event]]:
    """A client whose one caller (a thread) reads for ``slow``, answered once the event yielded is set.

    On leaving: the event is set, that caller joined and the client closed.
    """
    release = threading.Event()
    server.register_function(lambda: release.wait(WAIT) and "slow", name="slow")
    with serving(server) as address:
        c = RPCClient(*address, timeout=WAIT)
        reader = start_thread(c.slow)
        try:
            wait_for(lambda: c._link is not None and c._link.reading, "a caller to read")
            yield c, release
        finally:
            release.set()
            reader.join(WAIT)
            c.close()


def _frames(exc: BaseException) -> list[FrameType]:
    """The frames of ``exc``'s traceback, outermost first."""
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    return frames


@needs_eventfd
def test_a_timed_out_followers_error_kept_holds_no_doorbell(server: RPCServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # A call's error (its traceback holds the waiter and the waits' frames) may be
    # kept for long: it must not keep its ended thread's doorbell open.
    monkeypatch.setattr(reader_module, "_POLL", 60.0)  # the deadline alone ends the wait
    before = eventfds()
    kept: list[Any] = []
    with _a_caller_reading(server) as (c, _):
        follower = start_thread(lambda: kept.append(_outcome(c.with_timeout(0.05).slow)))
        follower.join(WAIT)
    gc.collect()
    assert len(kept) == 1 and isinstance(kept[0], RPCTimeout)
    waiters = [f.f_locals["waiter"] for f in _frames(kept[0]) if f.f_code is reader_module._ReplyReader._wait.__code__]
    assert len(waiters) == 1, "the follower did not time out in _ReplyReader._wait"
    assert waiters[0].signal is None
    assert eventfds() == before, "a kept error kept its ended thread's doorbell"


class _Interrupted:
    """A doorbell's poll that raises KeyboardInterrupt: what a Ctrl-C landing while a follower sleeps does."""

    def poll(self, timeout: Any) -> Any:
        raise KeyboardInterrupt


@needs_eventfd
def test_a_followers_interruption_kept_holds_no_doorbell(server: RPCServer) -> None:
    # The traceback holds every frame down to Doorbell.acquire's, where the
    # interruption landed: that frame must not hold the doorbell (its ``self``).
    before = eventfds()
    kept: list[Any] = []
    with _a_caller_reading(server) as (c, _):

        def follow() -> None:
            waiter = _Waiter("made")
            doorbell_module.signal_for_wait(waiter)  # (the thread's doorbell, made now)
            doorbell_module.end_wait(waiter)
            bell = doorbell_module._mine.bell
            assert bell is not None
            bell._poll = _Interrupted()
            del bell
            kept.append(_outcome(c.slow))

        follower = start_thread(follow)
        follower.join(WAIT)
    gc.collect()
    assert len(kept) == 1 and isinstance(kept[0], KeyboardInterrupt)
    codes = [frame.f_code for frame in _frames(kept[0])]
    assert doorbell_module.Doorbell.acquire.__code__ in codes, "not interrupted inside the doorbell's wait"
    assert eventfds() == before, "a kept interruption kept its ended thread's doorbell"


def _at_acquire(action: Any, reached: threading.Event) -> Any:
    """A trace function running ``action()`` once, as a signal handler can, just before a follower sleeps.

    ``reached`` is set when the follower gets there, before ``action()``: a call the
    server answers only then (``gated_add``) cannot be done before its wait begins,
    which would skip the wait and the moment under test.
    """
    code, line = reader_module._ReplyReader._wait.__code__, wait_line("pause = ")

    def local(frame: Any, event: str, arg: Any) -> Any:
        if event == "line" and frame.f_lineno == line and not reached.is_set():
            reached.set()
            action()
        return local

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        return local if frame.f_code is code else None

    return tracer


def _register_gated_add(server: RPCServer, reached: threading.Event) -> None:
    """``gated_add(a, b)``: ``a + b``, answered once ``reached`` is set (or after WAIT)."""
    server.register_function(lambda a, b: reached.wait(WAIT) and a + b, name="gated_add")


@needs_eventfd
def test_a_call_made_just_before_a_follower_sleeps_does_not_take_its_ring(
    server: RPCServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A signal handler's call landing between the lock round that handed the thread's
    # doorbell out and the wait on it: given the same doorbell, it would take the
    # outer call's ring too, and the outer call would sleep until the reader ends.
    monkeypatch.setattr(reader_module, "_POLL", 60.0)  # only wake-ups end the waits
    outcomes: dict[str, Any] = {}
    reached = threading.Event()
    _register_gated_add(server, reached)
    with _a_caller_reading(server) as (c, release):
        tracer = _at_acquire(lambda: outcomes.update(inner=_outcome(c.add, 2, 3)), reached)

        def outer() -> None:
            sys.settrace(tracer)
            try:
                outcomes["outer"] = _outcome(c.gated_add, 1, 2)
            finally:
                sys.settrace(None)
            bell = doorbell_module._mine.bell
            outcomes["busy"] = bell is None or bell.holder is not None

        caller = start_thread(outer)
        caller.join(WAIT)  # the reader still reads for the slow call: only its rings wake followers
        stalled = caller.is_alive()
        release.set()
        caller.join(WAIT)
    assert reached.is_set(), "the follower never reached its wait"
    assert outcomes.get("inner") == 5
    assert not stalled, "the outer call's ring was taken by the call made before it slept"
    assert outcomes.get("outer") == 3
    assert outcomes.get("busy") is False, "the doorbell stayed taken: the thread's later waits would get locks"


@needs_eventfd
def test_a_follower_interrupted_before_it_sleeps_lets_its_doorbell_go(
    server: RPCServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupt() -> None:
        raise KeyboardInterrupt

    reached = threading.Event()
    tracer = _at_acquire(interrupt, reached)
    _register_gated_add(server, reached)
    with _a_caller_reading(server) as (c, _):

        def interrupted() -> Any:
            sys.settrace(tracer)
            try:
                outcome = _outcome(c.gated_add, 1, 2)
            finally:
                sys.settrace(None)
            bell = doorbell_module._mine.bell
            return outcome, bell is not None and bell.holder is not None

        outcome, busy = _in_a_thread(interrupted)
    assert reached.is_set() and isinstance(outcome, KeyboardInterrupt)
    assert busy is False, "the doorbell stayed taken: the thread's later waits would get locks"


# -- replies to many threads ------------------------------------------------------------


def test_replies_in_reverse_order_reach_their_own_callers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader_module, "_POLL", 60.0)  # only wake-ups end the waits
    callers = 8

    def script(peer: Peer) -> None:
        requests = [peer.json_line() for _ in range(callers)]
        for req in reversed(requests):
            reply = {"jsonrpc": "2.0", "id": req["id"], "result": req["params"][0] * 10}
            peer.sendall(json.dumps(reply).encode() + b"\n")
        peer.until(b"never")  # (until the client closes)

    outcomes: dict[int, Any] = {}
    with FakeServer(script) as fake:
        c = RPCClient(*fake.address)  # no timeout: only wake-ups can end the waits
        threads = [start_thread(lambda n=n: outcomes.update({n: _outcome(c.times_ten, n)})) for n in range(callers)]
        for t in threads:
            t.join(WAIT)
        assert not any(t.is_alive() for t in threads), "a caller was never woken"
        c.close()
    assert outcomes == {n: n * 10 for n in range(callers)}


def test_many_threads_each_get_their_own_results(server: RPCServer) -> None:
    threads_n, calls = 16, 200
    wrong: list[Any] = []
    with serving(server) as address, RPCClient(*address, timeout=WAIT) as c:

        def work(n: int) -> None:
            for i in range(calls):
                got = _outcome(c.add, n * 1000, i)
                if got != n * 1000 + i:
                    wrong.append((n, i, got))

        threads = [start_thread(work, n) for n in range(threads_n)]
        for t in threads:
            t.join(WAIT * 3)
        assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not wrong, wrong[:5]
