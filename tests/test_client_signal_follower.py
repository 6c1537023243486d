"""A call made from a signal handler while its thread follows: both it and the outer call are read at once.

README: while a thread waits for another thread to read its reply (it follows), a
call made by a signal handler is sent and waited for as any other. The handler
runs inside the outer call's wait, which cannot go on until the handler returns.
Before, a reader that left (its own reply in) handed the reading turn to that
outer wait: nobody read, and the handler's call slept until its next look
(``_POLL``, 0.5 s), and the outer call with it. Now a thread's wait made inside
its own sleeping wait is the one picked, and the outer wait looks again as soon
as the handler's call is over.

The signals are real (SIGUSR1 to the main thread, where handlers run); ``_POLL``
is 60 s, so only wake-ups end the waits: a call left unread is found by a
bounded wait here, which closes the client (ending every wait) and fails.
"""

from __future__ import annotations

import functools
import gc
import os
import random
import signal
import sys
import threading
from types import FrameType
from typing import Any

import pytest
from _driver_helpers import WAIT, LeakCheck, eventfds, serving, start_thread, wait_for, wait_line

import jsonrpc_mini._client_doorbell as doorbell_module
import jsonrpc_mini._client_reader as reader_module
from jsonrpc_mini import RPCClient, RPCError, RPCServer

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def _no_leaks() -> Any:
    with LeakCheck():
        yield


def _signals_here() -> None:
    if not hasattr(signal, "pthread_kill"):
        pytest.skip("needs signal.pthread_kill (POSIX)")
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers run on the main thread only")


def _outcome(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception as exc:  # the error is the outcome looked at
        return exc


def _sleeping_waits(thread: int) -> int:
    """How many follower waits ``thread`` is inside, if it sleeps in the innermost one now (else 0)."""
    frame: FrameType | None = sys._current_frames().get(thread)
    code, line = reader_module._ReplyReader._wait.__code__, wait_line("signal.acquire(")
    if frame is not None and frame.f_code is doorbell_module.Doorbell.acquire.__code__:
        frame = frame.f_back  # (asleep in the doorbell's poll)
    if frame is None or frame.f_code is not code or frame.f_lineno != line:
        return 0
    count = 0
    while frame is not None:
        count += frame.f_code is code and frame.f_lineno == line
        frame = frame.f_back
    return count


@pytest.mark.parametrize("sleeps_on", ["doorbell", "lock"])
def test_a_handlers_call_made_while_its_thread_follows_is_read_and_so_is_the_outer_one(
    sleeps_on: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # B reads (its call held by the server); the main thread's call follows; a
    # signal's handler makes a call, which follows too; B's reply comes and B
    # leaves; then the handler's reply; then the outer call's.
    _signals_here()
    monkeypatch.setattr(reader_module, "_POLL", 60.0)  # only wake-ups end the waits
    if sleeps_on == "lock":
        monkeypatch.setattr(doorbell_module, "_DOORBELLS", False)
    gates = {name: threading.Event() for name in ("b", "inner", "outer")}
    server = RPCServer()
    server.register_function(lambda name: gates[name].wait(WAIT) and name, name="hold")
    main = threading.get_ident()
    got: dict[str, Any] = {}
    stalled: list[str] = []
    handled, outer_done = threading.Event(), threading.Event()

    with serving(server) as address:
        c = RPCClient(*address, timeout=None)  # (close() ends every wait)
        link = c._link
        assert link is not None

        def on_signal(signum: int, frame: FrameType | None) -> None:
            got["inner"] = _outcome(c.hold, "inner")
            handled.set()

        def drive() -> None:
            try:
                wait_for(lambda: _sleeping_waits(main) == 1, "the outer call to sleep as a follower")
                signal.pthread_kill(main, signal.SIGUSR1)
                wait_for(lambda: _sleeping_waits(main) == 2, "the handler's call to sleep as a follower")
                gates["b"].set()
                reader.join(WAIT)  # B has its reply and has left: nobody reads
                assert not reader.is_alive()
                gates["inner"].set()
                if not handled.wait(WAIT):
                    stalled.append("the handler's call")
                gates["outer"].set()
                if not outer_done.wait(WAIT):
                    stalled.append("the outer call")
            except BaseException as exc:  # reported by the test
                stalled.append(repr(exc))
            finally:
                if stalled:
                    c.close()  # ends the waits: the test fails, without a hang

        previous = signal.signal(signal.SIGUSR1, on_signal)
        try:
            reader = start_thread(lambda: got.update(b=_outcome(c.hold, "b")))
            wait_for(lambda: link.reading, "B to read")
            driver = start_thread(drive)
            got["outer"] = _outcome(c.hold, "outer")
            outer_done.set()
            driver.join(WAIT)
        finally:
            signal.signal(signal.SIGUSR1, previous)
            for gate in gates.values():
                gate.set()
            c.close()
            reader.join(WAIT)
    assert not stalled, f"left unread: {stalled}"
    assert got == {"b": "b", "inner": "inner", "outer": "outer"}


def _in_a_wait() -> bool:
    """Whether the calling thread is inside a wait as a follower (on its doorbell or a lock)."""
    bell = doorbell_module._mine.bell
    return bool(doorbell_module._mine.locks) or (bell is not None and bell.holder is not None)


def _add_in_a_batch(c: RPCClient, a: int, b: int) -> Any:
    with c.batch() as batch:
        result = batch.add(a, b)
        batch.add(0, 0)
    return result.result()


@pytest.mark.parametrize("nested", [1, 3], ids=["one-handler", "nested-handlers"])
def test_calls_from_random_signals_while_eight_threads_call(nested: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # The main thread and seven others call; SIGUSR1 comes at random moments and
    # its handler (up to ``nested`` deep: one may land inside another) calls too, a
    # single call or a batch, unless its thread is sending (README: that call
    # would close the connection). Every result is the caller's own; a handler's
    # call is answered, or refused while its thread reads or is inside a round of
    # the lock; nothing waits for a look (_POLL). JSONRPC_MINI_STRESS_CALLS runs longer.
    _signals_here()
    monkeypatch.setattr(reader_module, "_POLL", 60.0)  # only wake-ups end the waits
    threads_n, calls = 8, int(os.environ.get("JSONRPC_MINI_STRESS_CALLS", "300"))
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    server = RPCServer()
    server.register_function(lambda a, b: a + b, name="add")
    wrong: list[Any] = []
    counts = {"answered": 0, "answered following": 0, "refused": 0, "skipped": 0, "nested": 0}
    depth = [0]
    stop = threading.Event()
    before = eventfds()

    with serving(server) as address:
        c = RPCClient(*address, timeout=None)  # (close() ends every wait)
        link = c._link
        assert link is not None
        main = threading.get_ident()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            if depth[0] >= nested or link.send_lock._is_owned() or link.sending == main:
                counts["skipped"] += 1
                return
            # (Inside a wait, and neither reading nor inside a round of the lock: a nested
            # handler may run while an outer one's call reads, and be refused.)
            following = _in_a_wait() and link.reading != main and not link.lock._is_owned()
            counts["nested"] += depth[0] > 0
            depth[0] += 1
            try:
                n = rng.randrange(1000)
                got = _outcome(c.add if rng.random() < 0.8 else functools.partial(_add_in_a_batch, c), -n, 1)
            finally:
                depth[0] -= 1
            if got == 1 - n:
                counts["answered following" if following else "answered"] += 1
            elif isinstance(got, RPCError) and got.code is None and "refused" in str(got) and not following:
                counts["refused"] += 1
            else:
                wrong.append(("handler", following, got))

        def work(n: int) -> None:
            # ``calls`` calls, and more (5x at most) until a handler's call has been made
            # while its thread followed: on a loaded machine that moment comes later.
            i = 0
            while i < calls or (not counts["answered following"] and i < calls * 5):
                got = _outcome(c.add, n * 100_000, i)
                if got != n * 100_000 + i:
                    wrong.append((n, i, got))
                    return
                i += 1

        def ring() -> None:
            signals = random.Random(seed + 1)
            while not stop.wait(signals.uniform(0.0, 0.002)):
                signal.pthread_kill(main, signal.SIGUSR1)

        hung: list[str] = []

        def watch() -> None:
            if not stop.wait(WAIT * 3):
                hung.append("the calls did not end")
                c.close()  # ends every wait: the test fails, without a hang

        previous = signal.signal(signal.SIGUSR1, on_signal)
        try:
            watcher = start_thread(watch)
            others = [start_thread(work, n) for n in range(1, threads_n)]
            ringer = start_thread(ring)
            work(0)
            for thread in others:
                thread.join(WAIT * 3)
            stop.set()
            ringer.join(WAIT)
            watcher.join(WAIT)
        finally:
            stop.set()
            signal.signal(signal.SIGUSR1, previous)
            c.close()
        assert not any(t.is_alive() for t in [*others, ringer, watcher])
    gc.collect()
    assert not hung, f"seed {seed}: {hung} {counts}"
    assert not wrong, f"seed {seed}: {wrong[:5]} {counts}"
    assert counts["answered following"] > 0, f"seed {seed}: no handler's call was made while following {counts}"
    assert not link.pending and not link.reading and not _in_a_wait()
    assert eventfds() <= before + 1, "doorbells were kept (the main thread's may be new)"


@pytest.mark.parametrize("sleeps_on", ["doorbell", "lock"])
@pytest.mark.parametrize("picked", ["after", "before"])
def test_a_handlers_call_on_another_client_and_a_reader_of_the_outer_ones_picking_followers(
    picked: str, sleeps_on: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The main thread follows on client X (B reads X, U follows after it); a signal's
    # handler calls on client Y, where V reads, so the handler's call follows too and
    # takes the outer wait off X's followers with a store made without X's lock
    # (_client_doorbell: "a single store"). B's reply comes and B hands X's turn on:
    # - after the store: B must skip the outer wait and pick U, which reads its own
    #   reply while the handler's call still waits;
    # - before it (the handler held until B has handed the turn to the outer wait, as
    #   if the signal came just after that pick): the turn is not lost; the outer wait
    #   takes it once the handler returns, and reads U's reply and its own.
    _signals_here()
    monkeypatch.setattr(reader_module, "_POLL", 60.0)  # only wake-ups end the waits
    if sleeps_on == "lock":
        monkeypatch.setattr(doorbell_module, "_DOORBELLS", False)
    gates = {name: threading.Event() for name in ("b", "u", "v", "inner", "outer")}
    server = RPCServer()
    server.register_function(lambda name: gates[name].wait(WAIT) and name, name="hold")
    main = threading.get_ident()
    got: dict[str, Any] = {}
    stalled: list[str] = []
    entered, go, handled, outer_done = (threading.Event() for _ in range(4))

    with serving(server) as address:
        x = RPCClient(*address, timeout=None)  # (close() ends every wait)
        y = RPCClient(*address, timeout=None)
        x_link, y_link = x._link, y._link
        assert x_link is not None and y_link is not None

        def on_signal(signum: int, frame: FrameType | None) -> None:
            entered.set()
            if picked == "before":
                go.wait(WAIT)
            got["inner"] = _outcome(y.hold, "inner")
            handled.set()

        def u_follows() -> bool:
            # (X's pending calls in order: B's, the outer one, U's: a reader picks the first
            # follower, so the outer wait if it is still marked.)
            with x_link.lock:
                waiters = list(x_link.pending.values())
                return len(waiters) == 3 and waiters[2].waiting

        def drive() -> None:
            try:
                wait_for(lambda: _sleeping_waits(main) == 1, "the outer call to sleep as a follower")
                u_thread = start_thread(lambda: got.update(u=_outcome(x.hold, "u")))
                wait_for(u_follows, "U to follow on X after the outer call")
                signal.pthread_kill(main, signal.SIGUSR1)
                assert entered.wait(WAIT)
                if picked == "before":
                    gates["b"].set()
                    b_thread.join(WAIT)  # B has its reply and has handed the turn on
                    assert not b_thread.is_alive()
                    with x_link.lock:  # to the outer wait: still marked, and first
                        outer_waiter, u_waiter = x_link.pending.values()
                        assert not x_link.reading and outer_waiter.waiting and u_waiter.waiting
                    go.set()
                wait_for(lambda: _sleeping_waits(main) == 2, "the handler's call to sleep as a follower on Y")
                if picked == "after":
                    gates["b"].set()
                    b_thread.join(WAIT)
                    assert not b_thread.is_alive()
                    gates["u"].set()
                    u_thread.join(WAIT)  # U was picked and read its own reply
                    if u_thread.is_alive():
                        stalled.append("U's call, while the handler's call waits")
                        return
                gates["u"].set()
                gates["inner"].set()
                if not handled.wait(WAIT):
                    stalled.append("the handler's call")
                    return
                gates["outer"].set()
                if not outer_done.wait(WAIT):
                    stalled.append("the outer call")
                u_thread.join(WAIT)
                if u_thread.is_alive():
                    stalled.append("U's call")
            except BaseException as exc:  # reported by the test
                stalled.append(repr(exc))
            finally:
                if stalled:
                    x.close()  # ends the waits: the test fails, without a hang
                    y.close()

        previous = signal.signal(signal.SIGUSR1, on_signal)
        try:
            b_thread = start_thread(lambda: got.update(b=_outcome(x.hold, "b")))
            v_thread = start_thread(lambda: got.update(v=_outcome(y.hold, "v")))
            wait_for(lambda: x_link.reading and y_link.reading, "B to read X and V to read Y")
            driver = start_thread(drive)
            got["outer"] = _outcome(x.hold, "outer")
            outer_done.set()
            driver.join(WAIT)
        finally:
            signal.signal(signal.SIGUSR1, previous)
            for gate in gates.values():
                gate.set()
            go.set()
            for thread in (b_thread, v_thread):
                thread.join(WAIT)
            x.close()
            y.close()
    assert not stalled, f"left unread: {stalled}"
    assert got == {name: name for name in ("b", "u", "v", "inner", "outer")}
