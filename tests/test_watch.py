"""ReadWatcher: the server's one thread that promotes a reader when bytes arrive mid-call."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest
from _driver_helpers import WAIT, LeakCheck, Peer, raw_connect, request, serving, wait_for

import jsonrpc_mini._watch as watch_module
from jsonrpc_mini import RPCServer
from jsonrpc_mini._session import Session
from jsonrpc_mini._watch import ReadWatcher

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(not ReadWatcher.available(), reason="no epoll/kqueue: the server promotes eagerly"),
]


def _watcher_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "jsonrpc_mini-watch"]


def _looked_again(watcher: ReadWatcher) -> None:
    """Return once ``watcher`` has run every callback due for a socket readable (or past its grace) before this call.

    Another socket is watched eagerly twice, the second time once the first
    callback ran. The watcher runs the callbacks of its stamps, then selects and
    runs those of the readable sockets, then looks at the stamps again: the
    second callback comes after a select made after the first one ran. So a
    check that a callback did not run needs no sleep.
    """
    c, d = socket.socketpair()
    try:
        for _ in range(2):
            ran = threading.Event()
            callback = ran.set
            assert watcher.watch(c.fileno(), callback, eager=True)
            assert ran.wait(WAIT)
            watcher.unwatch(c.fileno(), callback)
    finally:
        c.close()
        d.close()


def test_callback_fires_once_when_the_socket_becomes_readable() -> None:
    with LeakCheck():
        watcher = ReadWatcher()
        a, b = socket.socketpair()
        fired = threading.Event()
        count: list[int] = []

        def callback() -> None:
            count.append(1)
            fired.set()

        assert watcher.watch(a.fileno(), callback)
        _looked_again(watcher)
        assert not fired.is_set(), "fired before any byte arrived"
        b.sendall(b"x")
        assert fired.wait(WAIT)
        b.sendall(b"y")  # one shot: no second call without a new watch
        _looked_again(watcher)
        assert count == [1]
        watcher.stop(join=WAIT)
        a.close()
        b.close()


def test_unwatch_only_removes_its_own_registration() -> None:
    with LeakCheck():
        watcher = ReadWatcher()
        a, b = socket.socketpair()
        fired = threading.Event()

        def first() -> None:
            raise AssertionError("unwatched callback ran")

        assert watcher.watch(a.fileno(), fired.set)
        watcher.unwatch(a.fileno(), first)  # someone else's stale unwatch: ignored
        assert not watcher.watch(a.fileno(), first), "a second registration of one fd must be refused"
        b.sendall(b"x")
        assert fired.wait(WAIT)
        watcher.stop(join=WAIT)
        a.close()
        b.close()


def test_stop_if_unused_keeps_a_busy_watcher_and_restarts_on_demand() -> None:
    with LeakCheck():
        watcher = ReadWatcher()
        a, b = socket.socketpair()
        assert watcher.watch(a.fileno(), lambda: None)
        watcher.stop(only_if_unused=True)
        assert len(_watcher_threads()) == 1, "stopped although a socket was watched"
        watcher.unwatch(a.fileno(), lambda: None)  # not the registered object: stays
        watcher.stop(join=WAIT)
        assert not _watcher_threads()
        fired = threading.Event()
        assert watcher.watch(a.fileno(), fired.set)  # starts again
        b.sendall(b"x")
        assert fired.wait(WAIT)
        watcher.stop(join=WAIT)
        a.close()
        b.close()


def _slow_and_add(release: threading.Event, add: Any = None, started: threading.Event | None = None) -> RPCServer:
    """A server with ``add`` (a + b unless given) and ``slow`` (which returns "done" once ``release`` is set).

    ``slow`` sets ``started`` (if given) as it begins.
    """
    s = RPCServer()
    s.register_function(add or (lambda a, b: a + b), name="add")

    @s.register
    def slow() -> str:
        if started is not None:
            started.set()
        assert release.wait(WAIT)
        return "done"

    return s


def _fast_call_passes_a_slow_one(
    sock: Any,
    release: threading.Event,
    started: threading.Event,
    *,
    fast: tuple[int, int] = (2, 2),
    slow_id: str = "s",
) -> None:
    """``slow``, then (once it runs, in its own packet) ``add``: the add is answered first, then the slow call.

    ``started``: set by ``slow`` (see _slow_and_add). Sent once the slow call runs
    (not after a sleep, which a loaded machine can outrun), the add arrives while
    it runs, as a read of its own: the watcher must hand reading on.
    """
    started.clear()
    sock.sendall(request("slow", id_=slow_id))
    assert started.wait(WAIT)
    sock.sendall(request("add", list(fast), id_="f"))
    assert sock.json_line() == {"jsonrpc": "2.0", "id": "f", "result": sum(fast)}
    release.set()
    assert sock.json_line() == {"jsonrpc": "2.0", "id": slow_id, "result": "done"}


def test_a_sequential_client_costs_no_extra_thread_and_a_slow_call_still_yields() -> None:
    release = threading.Event()
    started = threading.Event()
    s = _slow_and_add(release, started=started)
    with LeakCheck(), serving(s) as address:
        sock = raw_connect(address)
        for i in range(50):
            sock.sendall(request("add", [i, 1], id_=i))
            assert sock.json_line() == {"jsonrpc": "2.0", "id": i, "result": i + 1}
        conn_threads = [t for t in threading.enumerate() if t.name.startswith("jsonrpc_mini-conn")]
        assert len(conn_threads) == 1, f"sequential calls woke extra threads: {conn_threads}"
        # A request sent in its own packet while the only thread runs a slow call:
        # the watcher must hand reading to another thread.
        _fast_call_passes_a_slow_one(sock, release, started)
        sock.close()
    assert not _watcher_threads(), "shutdown() left the watcher thread running"


def test_an_eager_watch_fires_after_the_grace_period_without_any_byte() -> None:
    with LeakCheck():
        watcher = ReadWatcher()
        a, b = socket.socketpair()
        plain, eager = threading.Event(), threading.Event()
        c, d = socket.socketpair()
        assert watcher.watch(a.fileno(), plain.set)
        assert watcher.watch(c.fileno(), eager.set, eager=True)
        assert eager.wait(WAIT), "an eager watch must fire once the call has run the grace period"
        assert not plain.wait(0.1), "a plain watch fired with no byte to read"
        watcher.unwatch(a.fileno(), plain.set)
        watcher.stop(join=WAIT)
        for s in (a, b, c, d):
            s.close()


def test_pipelined_quick_calls_run_on_one_thread_and_a_slow_one_still_yields(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    ran_on: list[int] = []

    def add(a: int, b: int) -> int:
        ran_on.append(threading.get_ident())
        return a + b

    s = _slow_and_add(release, add)
    with LeakCheck(), serving(s) as address:
        sock = raw_connect(address)
        # A long grace period: no promotion can come from the timer, whatever the machine's load.
        monkeypatch.setattr(watch_module, "_GRACE", 30.0)
        sock.sendall(b"".join(request("add", [i, 1], id_=i) for i in range(20)))
        replies = [sock.json_line() for _ in range(20)]
        assert replies == [{"jsonrpc": "2.0", "id": i, "result": i + 1} for i in range(20)]
        assert len(set(ran_on)) == 1, "requests buffered together were handed to other threads"
        monkeypatch.undo()
        # A slow call with quick ones behind it in the same packet: they must not wait for it.
        sock.sendall(request("slow", id_="s") + request("add", [2, 2], id_="f") + request("add", [3, 3], id_="g"))
        assert sock.json_line() == {"jsonrpc": "2.0", "id": "f", "result": 4}
        assert sock.json_line() == {"jsonrpc": "2.0", "id": "g", "result": 6}
        release.set()
        assert sock.json_line() == {"jsonrpc": "2.0", "id": "s", "result": "done"}
        sock.close()


# -- probes: a call is stamped, the watcher polls (no registration per call) ----------


def _probe_and_loop() -> tuple[watch_module.Probe, watch_module._Loop, socket.socket, socket.socket]:
    """A probe on one end of a socketpair, active in a loop whose thread is not started (polled by hand)."""
    lock = threading.Lock()
    loop = watch_module._Loop(lock)
    a, b = socket.socketpair()
    probe = watch_module.Probe(a.fileno(), lambda: None)
    probe.active = True
    loop.probes.add(probe)
    return probe, loop, a, b


def _close_loop(loop: watch_module._Loop, *socks: socket.socket) -> None:
    loop.selector.close()
    for sock in (loop.wake_r, loop.wake_w, *socks):
        sock.close()


def test_a_stamp_is_acted_on_once_after_the_grace_period() -> None:
    probe, loop, a, b = _probe_and_loop()
    grace = watch_module._GRACE
    callbacks: list[Any] = []
    now = time.monotonic()
    probe.since = now
    assert loop._poll(now, callbacks) <= grace  # polled again once the call could be slow
    assert not probe._registered and not callbacks and not loop.settled
    # Acted on: nothing to look at until a new stamp, whose owner wakes the watcher
    # (nudge), so it stops polling every grace period.
    assert loop._poll(now + 2 * grace, callbacks) == watch_module._POLL
    assert probe._registered and not callbacks, "a plain stamp is watched, not promoted"
    assert loop.settled and probe.nudge
    assert loop._poll(now + 3 * grace, callbacks) == watch_module._POLL
    assert probe._registered and not callbacks
    probe.since = other = now + 3.5 * grace  # another call stamped: watched only once it runs long
    loop._poll(now + 4 * grace, callbacks)
    assert not probe._registered and not callbacks
    loop._poll(other + grace, callbacks)
    assert probe._registered and not callbacks
    probe.since = None  # a thread reads again: no longer watched
    loop._poll(now + 6 * grace, callbacks)
    assert not probe._registered and probe in loop.probes
    probe.eager = True  # the next call, with requests waiting behind it
    probe.since = later = now + 7 * grace
    loop._poll(later + grace / 2, callbacks)
    assert not callbacks
    loop._poll(later + grace, callbacks)
    assert callbacks == [probe.callback] and not probe._registered
    loop._poll(later + 3 * grace, callbacks)
    assert callbacks == [probe.callback], "acted twice on one stamp"
    _close_loop(loop, a, b)


def test_a_quiet_probe_is_dropped_and_the_watcher_may_sleep() -> None:
    probe, loop, a, b = _probe_and_loop()
    now = time.monotonic()
    probe._quiet_since = now
    # No stamp, not yet quiet for _LINGER: polled every grace period (its owner's
    # next stamps need not wake the watcher, as they would if it slept: not settled).
    assert loop._poll(now + watch_module._LINGER / 2, []) <= watch_module._GRACE
    assert probe.active and probe in loop.probes and not loop.settled and not probe.nudge
    assert loop._poll(now + 2 * watch_module._LINGER, []) == watch_module._POLL
    assert not probe.active and probe not in loop.probes
    _close_loop(loop, a, b)


class _StampsAsItIsDropped(watch_module.Probe):
    """A probe whose owner stamps a new call just as the watcher marks it inactive.

    That owner read ``active`` before it was cleared (owners stamp without a lock), so
    it will not attach the probe again: the watcher must see the stamp when it looks
    at ``since`` after clearing ``active``, and keep the probe.
    """

    __slots__ = ("_active", "armed")

    @property
    def active(self) -> bool:
        return self._active

    @active.setter
    def active(self, value: bool) -> None:
        if not value and getattr(self, "armed", False):
            self.armed = False
            self.since = time.monotonic()  # the owner's stamp, made just now
        self._active = value


def test_a_probe_stamped_while_the_watcher_drops_it_stays_polled() -> None:
    lock = threading.Lock()
    loop = watch_module._Loop(lock)
    a, b = socket.socketpair()
    probe = _StampsAsItIsDropped(a.fileno(), lambda: None)
    probe.active = True
    loop.probes.add(probe)
    probe._quiet_since = time.monotonic() - 2 * watch_module._LINGER
    probe.armed = True
    loop._poll(time.monotonic(), [])  # a sweep: the probe looks quiet, so it is dropped
    assert not probe.armed, "the test's stamp was not made"
    assert probe.active and probe in loop.probes, "a probe stamped as it was dropped is no longer polled"
    _close_loop(loop, a, b)


class _StampsAsItIsNudged(watch_module.Probe):
    """A probe whose owner stamps a new call just as the watcher sets its nudge.

    That owner read ``nudge`` before it was set, so it will not wake the watcher:
    the watcher must see the stamp when it looks at ``since`` again after nudging.
    """

    __slots__ = ("_nudge",)

    @property
    def nudge(self) -> bool:
        return self._nudge

    @nudge.setter
    def nudge(self, value: bool) -> None:
        if value and self.since is not None:
            self.since = time.monotonic()  # a new call: a new float
        self._nudge = value


def test_a_stamp_made_while_the_watcher_nudges_keeps_it_polling() -> None:
    lock = threading.Lock()
    loop = watch_module._Loop(lock)
    a, b = socket.socketpair()
    probe = _StampsAsItIsNudged(a.fileno(), lambda: None)
    probe.active = True
    loop.probes.add(probe)
    now = time.monotonic()
    probe.since = now
    # The stamp is acted on (watched); as the watcher nudges, the owner stamps again.
    assert loop._poll(now + 2 * watch_module._GRACE, []) <= watch_module._GRACE
    assert probe._registered and probe.since is not now
    assert not loop.settled, "a stamp made while nudging was missed: the watcher would sleep"
    _close_loop(loop, a, b)


def _framed_connect(address: Any) -> Peer:
    """A raw connection whose first call (``add`` 1 + 1, id 1) is answered: its framing is known from here on."""
    sock = raw_connect(address)
    sock.sendall(request("add", [1, 1], id_=1))
    assert sock.json_line() == {"jsonrpc": "2.0", "id": 1, "result": 2}
    return sock


def _session_of(s: RPCServer) -> Any:
    (session,) = list(s._sessions)
    return session


def test_a_slow_call_after_a_quiet_spell_still_yields() -> None:
    # Once no call was seen for _LINGER the connection's probe is dropped and the
    # watcher sleeps; the next call attaches it again, so a request sent behind a
    # slow call is still served while that call runs.
    release = threading.Event()
    started = threading.Event()
    s = _slow_and_add(release, started=started)
    with LeakCheck(), serving(s) as address:
        sock = _framed_connect(address)
        sock.sendall(request("add", [1, 2], id_=2))  # the first call with a known framing
        assert sock.json_line() == {"jsonrpc": "2.0", "id": 2, "result": 3}
        probe = _session_of(s)._probe
        wait_for(lambda: not probe.active, "the quiet connection's probe to be dropped")
        for round_ in range(2):
            _fast_call_passes_a_slow_one(sock, release, started, fast=(2, round_))
            release.clear()
            s._watcher.stop(join=WAIT)  # round 2: the watcher was stopped, not just idle
            assert not probe.active
        sock.close()
    assert not _watcher_threads()


def test_a_watcher_that_stopped_polling_is_woken_by_the_next_slow_call(monkeypatch: pytest.MonkeyPatch) -> None:
    # While the only calls running are long ones already acted on, the watcher stops
    # polling (no 500 wake-ups a second for a server whose handlers wait long). A call
    # stamped then must wake it. Here two slow calls come in one write: the first is
    # stamped "eager" (a request waits behind it), so a reader is promoted at once
    # and its socket is not watched; that reader runs the second and stamps it while
    # the watcher sleeps (_POLL patched to a minute). Unless the stamp wakes it, the
    # second call's socket is never watched and a request behind it is not served.
    monkeypatch.setattr(watch_module, "_POLL", 60.0)
    release = threading.Event()
    s = _slow_and_add(release)
    with LeakCheck(), serving(s) as address:
        sock = _framed_connect(address)
        sock.sendall(request("slow", id_="a") + request("slow", id_="b"))
        probe = _session_of(s)._probe
        loop = s._watcher._loop
        assert probe is not None and loop is not None
        wait_for(lambda: loop.settled and probe._registered, "the second slow call to be watched")
        sock.sendall(request("add", [2, 2], id_="f"))
        assert sock.json_line() == {"jsonrpc": "2.0", "id": "f", "result": 4}
        release.set()
        assert sorted(sock.json_line()["id"] for _ in range(2)) == ["a", "b"]
        sock.close()
    assert not _watcher_threads()


def test_a_failed_wake_up_leaves_other_connections_watched(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A callback that raises in the watcher's thread (a reader could not be started:
    # "can't start new thread") must not leave the connections it polled unwatched
    # for good: here connection B, polled since its first call, then runs a slow
    # call with a request behind it, after A's wake-up failed.
    monkeypatch.setattr(watch_module, "_LINGER", 60.0)  # B's probe stays active throughout
    original = Session._wake_reader
    failures: list[str] = []

    def fails_once(self: Session) -> None:
        if not failures:
            failures.append("raised")
            raise RuntimeError("can't start new thread")
        original(self)

    monkeypatch.setattr(Session, "_wake_reader", fails_once)
    release = threading.Event()
    started = threading.Event()
    s = _slow_and_add(release, started=started)
    with LeakCheck(), serving(s) as address:
        a, b = _framed_connect(address), _framed_connect(address)
        a.sendall(request("slow", id_="a1"))
        assert started.wait(WAIT)  # the slow call runs: the add comes in a read of its own
        started.clear()
        a.sendall(request("add", [1, 2], id_="f1"))  # its wake-up fails
        wait_for(lambda: failures, "the failing wake-up")
        b.sendall(request("slow", id_="b1"))
        assert started.wait(WAIT)
        b.sendall(request("add", [2, 2], id_="g"))
        assert b.json_line() == {"jsonrpc": "2.0", "id": "g", "result": 4}
        release.set()
        assert sorted(str(a.json_line()["id"]) for _ in range(2)) == ["a1", "f1"]
        assert b.json_line() == {"jsonrpc": "2.0", "id": "b1", "result": "done"}
        a.close()
        b.close()
    assert "could not wake a reader" in caplog.text
    assert not _watcher_threads()


# -- a closed connection's probe: forgotten before its socket closes ------------------


def test_a_detached_probe_is_not_polled_again_even_if_stamped() -> None:
    # Once its socket is closed, a probe's descriptor number may belong to a new
    # connection: a late stamp by the dead connection's thread must not have it
    # watched (it would take over, or be mistaken for, the new one's registration).
    a, b = socket.socketpair()
    watcher = ReadWatcher()
    try:
        probe = watch_module.Probe(a.fileno(), lambda: None)
        probe.since = time.monotonic()
        watcher.attach(probe)
        loop = watcher._loop
        assert loop is not None and probe in loop.probes and probe.active
        watcher.detach(probe)
        assert probe not in loop.probes and not probe.active
        probe.since = time.monotonic()  # the late stamp
        watcher.attach(probe)
        assert probe not in loop.probes and not probe.active, "a detached probe was polled again"
    finally:
        watcher.stop(join=WAIT)
        a.close()
        b.close()
    assert not _watcher_threads()


def test_a_connection_closed_during_a_call_is_no_longer_watched() -> None:
    # The server closes a connection (shutdown, an error) while one of its calls
    # still runs: its socket's number is free from that moment, so the watcher must
    # forget it then, not when the call ends. A new connection (which may get the
    # same number) is then watched for its own slow call.
    release = threading.Event()
    started = threading.Event()
    s = _slow_and_add(release, started=started)
    with LeakCheck(), serving(s) as address:
        a = _framed_connect(address)
        a.sendall(request("slow", id_="s"))
        session = _session_of(s)
        probe = session._probe
        loop = s._watcher._loop
        assert probe is not None and loop is not None
        wait_for(lambda: probe._registered, "the slow call's socket to be watched")
        session.close()
        assert not probe.active and probe not in loop.probes
        assert loop.registered.get(probe.fd) is not probe, "a closed socket's number is still watched"
        b = _framed_connect(address)
        _fast_call_passes_a_slow_one(b, release, started, slow_id="t")
        a.close()
        b.close()
    assert not _watcher_threads()


def test_a_slow_call_with_a_request_partly_read_behind_it_gets_a_reader_not_a_watch() -> None:
    # The slow call comes in one read with the start of the next request: the core
    # holds part of a request as the call starts, so the stamp is "eager" and the
    # watcher promotes a reader once the grace period ends instead of watching the
    # socket (the rest of that request is on its way: a reader would be woken for
    # it anyway). The reader then waits in its read and takes the rest as it comes.
    release = threading.Event()
    s = _slow_and_add(release)
    with LeakCheck(), serving(s) as address:
        sock = _framed_connect(address)
        behind = request("add", [2, 3], id_="f")
        sock.sendall(request("slow", id_="s") + behind[:20])
        session = _session_of(s)
        probe = session._probe
        assert probe is not None

        def promoted_or_watched() -> bool:
            # Under the session's lock: the callback that promotes a reader counts the
            # call and frees the turn in one hold of it (the call ran with the turn).
            with session._lock:
                return bool(session._busy and (session._reading or probe._registered))

        wait_for(promoted_or_watched, "a reader to be promoted (or the socket watched) while the slow call runs")
        if not session._reading:
            release.set()  # (the server's shutdown would wait for the slow call)
        assert session._reading and not probe._registered, "the partly read request's socket was watched"
        sock.sendall(behind[20:])
        assert sock.json_line() == {"jsonrpc": "2.0", "id": "f", "result": 5}
        release.set()
        assert sock.json_line() == {"jsonrpc": "2.0", "id": "s", "result": "done"}
        sock.close()
    assert not _watcher_threads()
