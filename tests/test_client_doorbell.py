"""Threads sharing a client: followers sleep on their thread's doorbell.

A caller waiting for another thread to read sleeps on its thread's doorbell
(``_client_doorbell``), rung by the reader without the GIL; a doorbell is the
thread's for the connection, and goes with the connection.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import threading
from typing import Any

import pytest
from _driver_helpers import WAIT, FakeServer, LeakCheck, Peer, serving, start_thread, wait_for

import jsonrpc_mini._client_doorbell as doorbell_module
import jsonrpc_mini._client_reader as reader_module
from jsonrpc_mini import ConnectionLost, RPCClient, RPCServer

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


@needs_eventfd
def test_a_ring_before_the_wait_ends_it_and_rings_add_up_to_one_wake_up() -> None:
    bells: dict[int, Any] = {}
    bell = doorbell_module.signal_for_wait(bells, 1)
    assert bell.acquire(timeout=0) is False  # nothing rung yet
    bell.release()
    bell.release()
    assert bell.acquire(timeout=WAIT) is True  # rung before the wait: no sleep
    assert bell.acquire(timeout=0.01) is False  # both rings taken by the one wait


@needs_eventfd
def test_a_ring_from_another_thread_ends_a_wait_without_limit() -> None:
    bell = doorbell_module.signal_for_wait({}, 1)
    ringer = threading.Timer(0.05, bell.release)
    ringer.start()
    assert bell.acquire() is True
    ringer.join(WAIT)


@needs_eventfd
def test_each_thread_of_a_connection_has_one_doorbell() -> None:
    bells: dict[int, Any] = {}
    first = doorbell_module.signal_for_wait(bells, 1)
    assert doorbell_module.signal_for_wait(bells, 1) is first
    other = doorbell_module.signal_for_wait(bells, 2)
    assert other is not first
    assert set(bells) == {1, 2}


@needs_eventfd
def test_a_wait_nested_in_a_wait_of_the_same_thread_gets_a_lock_of_its_own() -> None:
    # (A signal handler's call, made while its thread sleeps on the doorbell: the
    # inner wait must not take the outer one's ring.)
    bells: dict[int, Any] = {}
    bell = doorbell_module.signal_for_wait(bells, 1)
    inner: list[Any] = []
    original = bell._poll

    class Nesting:
        def poll(self, timeout: Any) -> Any:
            inner.append(doorbell_module.signal_for_wait(bells, 1))
            return original.poll(timeout)

    bell._poll = Nesting()
    bell.release()
    assert bell.acquire(timeout=WAIT)
    bell._poll = original
    assert len(inner) == 1 and inner[0] is not bell
    assert inner[0].acquire(blocking=False) is False, "a nested wait's lock must start held"
    assert doorbell_module.signal_for_wait(bells, 1) is bell  # not in use any more


@needs_eventfd
def test_a_connection_keeps_few_doorbells_and_forgets_those_of_ended_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doorbell_module, "_MOST_BELLS", 2)
    hold = threading.Event()
    live = start_thread(hold.wait, WAIT)
    ended = start_thread(lambda: None)
    ended.join(WAIT)
    assert live.ident is not None and ended.ident is not None
    bells: dict[int, Any] = {}
    doorbell_module.signal_for_wait(bells, ended.ident)
    doorbell_module.signal_for_wait(bells, live.ident)
    me = threading.get_ident()
    mine = doorbell_module.signal_for_wait(bells, me)
    assert set(bells) == {live.ident, me}, "an ended thread's doorbell was kept"
    assert bells[me] is mine
    late = start_thread(hold.wait, WAIT)  # every doorbell kept belongs to a live thread
    assert late.ident is not None
    signal = doorbell_module.signal_for_wait(bells, late.ident)
    assert set(bells) == {live.ident, me}, "more doorbells than the bound"
    assert signal.acquire(blocking=False) is False  # a held lock instead
    hold.set()
    live.join(WAIT)
    late.join(WAIT)


def test_without_eventfd_each_wait_gets_a_held_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doorbell_module, "_DOORBELLS", False)
    bells: dict[int, Any] = {}
    signal = doorbell_module.signal_for_wait(bells, 1)
    assert signal.acquire(blocking=False) is False
    signal.release()
    assert signal.acquire(timeout=0) is True
    assert doorbell_module.signal_for_wait(bells, 1) is not signal
    assert not bells


@needs_eventfd
def test_a_doorbell_that_cannot_be_made_leaves_a_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_descriptors(*args: Any) -> int:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(os, "eventfd", no_descriptors)
    signal = doorbell_module.signal_for_wait({}, 1)
    assert signal.acquire(blocking=False) is False
    signal.release()
    assert signal.acquire(timeout=0) is True


def _eventfds() -> int:
    count = 0
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # closed meanwhile (the listing's own descriptor)
            count += os.readlink(f"/proc/self/fd/{name}") == "anon_inode:[eventfd]"
    return count


@needs_eventfd
def test_followers_doorbells_are_closed_with_the_connection(server: RPCServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader_module, "_POLL", 60.0)  # only wake-ups end the waits
    release = threading.Event()
    server.register_function(lambda: release.wait(WAIT) and "slow", name="slow")
    before = _eventfds()
    with serving(server) as address:
        c = RPCClient(*address, timeout=WAIT)
        reader = start_thread(c.slow)
        wait_for(lambda: c._link is not None and c._link.reading, "a caller to read")
        followers = [start_thread(c.add, 1, n) for n in range(3)]
        for t in followers:
            t.join(WAIT)
        release.set()
        reader.join(WAIT)
        assert _eventfds() > before, "no follower slept on a doorbell"
        c.close()
        gc.collect()
        assert _eventfds() == before, "a closed client kept its followers' doorbells"


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


def test_every_waiting_thread_fails_once_the_connection_is_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader_module, "_POLL", 60.0)  # only wake-ups end the waits
    callers = 8
    got = threading.Semaphore(0)

    def script(peer: Peer) -> None:
        for _ in range(callers):
            peer.until(b"\n")
            got.release()
        peer.close()

    outcomes: list[Any] = []
    with FakeServer(script) as fake:
        c = RPCClient(*fake.address)  # no timeout: only the lost connection can end the calls
        threads = [start_thread(lambda: outcomes.append(_outcome(c.slow))) for _ in range(callers)]
        for t in threads:
            t.join(WAIT)
        assert not any(t.is_alive() for t in threads), "a waiting thread was not failed"
        c.close()
    assert [type(o) for o in outcomes] == [ConnectionLost] * callers
