"""Issue 9, item 7: shutdown under load is clean and bounded.

Calls in flight either finish (if they can within ``shutdown_grace``) or fail with
``ConnectionLost``; requests arriving while draining get a -32000 error; nothing
waits past the grace period (plus a bounded allowance for a loaded machine); no
thread or socket is left behind, and the server can be started again.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _hardening import WAIT, Raw, Running, open_fds, running, settle, start

from jsonrpc_mini import ConnectionLost, RPCClient, ServerError

pytestmark = pytest.mark.timeout(120)


def stop_in_background(srv: Running) -> tuple[threading.Thread, list[float]]:
    took: list[float] = []

    def stop() -> None:
        started = time.monotonic()
        srv.stop()
        took.append(time.monotonic() - started)

    thread = threading.Thread(target=stop, name="hardening-stopper")
    thread.start()
    return thread, took


def run_calls(clients: list[RPCClient], method: str, *args: Any) -> tuple[list[threading.Thread], list[Any]]:
    outcomes: list[Any] = []

    def call(client: RPCClient) -> None:
        try:
            outcomes.append(client.call(method, *args))
        except BaseException as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=call, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    return threads, outcomes


def test_calls_in_flight_finish_within_the_grace_period(kind: str) -> None:
    srv = start(kind, {"shutdown_grace": 10.0})
    started: list[int] = []

    def nap(seconds: float) -> float:
        started.append(1)
        time.sleep(seconds)
        return seconds

    srv.server.register_function(nap)
    clients = [srv.client() for _ in range(20)]
    try:
        threads, outcomes = run_calls(clients, "nap", 0.5)
        # Every call has started (a fixed 0.1 s was not always enough on a loaded machine:
        # a request the server had not read yet met the drain and got -32000).
        assert settle(lambda: len(started) == 20), f"{len(started)} of 20 calls started"
        stopper, _ = stop_in_background(srv)
        for t in threads:
            t.join(WAIT)
        stopper.join(WAIT * 2)
        assert not stopper.is_alive(), "shutdown() hung"
        assert outcomes == [0.5] * 20, [repr(o) for o in outcomes if o != 0.5][:3]
    finally:
        srv.stop()
        for c in clients:
            c.close()


def test_calls_longer_than_the_grace_period_get_connection_lost(kind: str) -> None:
    grace = 0.5
    srv = start(kind, {"shutdown_grace": grace})
    release = threading.Event()
    started: list[int] = []
    finished: list[int] = []

    def hold() -> None:
        # Runs until the test lets it go (bounded): shutdown() must not wait for it.
        started.append(1)
        release.wait(WAIT * 4)
        finished.append(1)

    srv.server.register_function(hold)
    clients = [srv.client(timeout=WAIT * 2) for _ in range(10)]
    try:
        threads, outcomes = run_calls(clients, "hold")
        assert settle(lambda: len(started) == 10), f"{len(started)} of 10 calls started"
        stopper, _ = stop_in_background(srv)
        stopper.join(WAIT * 2)
        assert not stopper.is_alive(), "shutdown() hung past shutdown_grace"
        # Ordering, not timing: shutdown() returned while every handler was still running.
        assert finished == [], "shutdown() waited for handlers running past shutdown_grace"
        for t in threads:
            t.join(WAIT)
        assert not any(t.is_alive() for t in threads), "a caller is still waiting after shutdown"
        assert len(outcomes) == 10
        assert all(isinstance(o, ConnectionLost) for o in outcomes), [repr(o) for o in outcomes][:3]
    finally:
        release.set()
        srv.stop()
        for c in clients:
            c.close()


def test_shutdown_under_load_loses_nothing_silently(kind: str) -> None:
    threads_before, fds_before = threading.active_count(), open_fds()
    srv = start(kind, {"shutdown_grace": 2.0})
    stop = threading.Event()
    counts = {"ok": 0, "lost": 0, "draining": 0}
    bad: list[BaseException] = []
    lock = threading.Lock()

    def hammer(n: int) -> None:
        try:
            client = srv.client()
        except ConnectionLost:
            return
        with client:
            i = 0
            while not stop.is_set():
                try:
                    result = client.add(n, i)
                except ConnectionLost:
                    with lock:
                        counts["lost"] += 1
                    return
                except ServerError as exc:
                    if exc.code != -32000:
                        bad.append(exc)
                        return
                    with lock:
                        counts["draining"] += 1
                    continue
                except BaseException as exc:
                    bad.append(exc)
                    return
                if result != n + i:
                    bad.append(AssertionError(f"{n}+{i} gave {result}"))
                    return
                with lock:
                    counts["ok"] += 1
                i += 1

    workers = [threading.Thread(target=hammer, args=(n,), name=f"hardening-hammer-{n}") for n in range(16)]
    for w in workers:
        w.start()
    try:
        assert settle(lambda: counts["ok"] > 500, WAIT * 3), counts
        stopper, _ = stop_in_background(srv)
        stopper.join(WAIT * 2)
        assert not stopper.is_alive(), "shutdown() hung under load"
        # Every client meets the shutdown by itself: its next call fails (ConnectionLost)
        # and its thread ends. (Stopping them here instead could stop all 16 before any
        # had made a call since, on a loaded machine: the check below then saw nothing.)
        for w in workers:
            w.join(WAIT)
        assert not any(w.is_alive() for w in workers), "a client went on calling after shutdown()"
    finally:
        stop.set()
        for w in workers:
            w.join(WAIT)
        srv.stop()
    assert not bad, bad[:3]
    assert counts["lost"] + counts["draining"] > 0, counts  # the shutdown did reach the clients
    assert settle(lambda: threading.active_count() <= threads_before), [t.name for t in threading.enumerate()]
    assert settle(lambda: open_fds() <= fds_before), f"{open_fds() - fds_before} descriptors left open"


def test_server_starts_again_after_shutdown_under_load(kind: str) -> None:
    srv = start(kind)
    clients = [srv.client() for _ in range(10)]
    threads, _ = run_calls(clients, "sleep", 0.2)
    srv.stop()
    for t in threads:
        t.join(WAIT)
    for c in clients:
        c.close()
    with pytest.raises(ConnectionLost):
        RPCClient(*srv.address, timeout=WAIT)  # nobody listens any more
    if kind == "sync":  # the same object serves again (the aio server's loop is gone with it)
        address = srv.server.start("127.0.0.1", 0)
        try:
            with RPCClient(*address, timeout=WAIT) as client:
                assert client.add(1, 1) == 2
        finally:
            srv.server.shutdown()
    else:
        again = start(kind)
        try:
            with again.client() as client:
                assert client.add(1, 1) == 2
        finally:
            again.stop()


@pytest.fixture(params=["tcp", "unix"])
def listen(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    if request.param == "tcp":
        yield {}
        return
    path = Path("/tmp") / f"jm-sd-{os.getpid()}-{tmp_path.name[-12:]}.sock"  # (AF_UNIX: short paths)
    yield {"path": str(path)}
    path.unlink(missing_ok=True)


def test_shutdown_drops_a_reply_the_peer_never_reads(kind: str, listen: dict[str, Any]) -> None:
    # review14 F8: a peer asks for a 20 MB reply and reads none of it. Once the grace
    # is over the server drops what the peer did not take, as it does at
    # idle_timeout: shutdown() returns with the connection closed. (The aio server
    # closed it gracefully, which waits for the reply to go out: shutdown() gave up
    # after a fixed 5 s, whatever the grace, and the socket stayed open, the reply
    # buffered, for as long as the event loop ran.)
    size = 20_000_000
    called = threading.Event()

    def big() -> str:
        called.set()
        return "b" * size

    with running(kind, {"shutdown_grace": 0.5}, **listen) as srv:
        srv.server.register_function(big)
        peer = Raw(srv.address, rcvbuf=4096)
        try:
            peer.send(b'{"jsonrpc": "2.0", "method": "big", "id": 1}\n')
            assert called.wait(WAIT)  # read before the shutdown: the reply is due
            srv.stop()  # (the old aio code returned after a fixed 5 s with the connection still open)
            assert srv.server.connection_count == 0, "shutdown() returned with the connection still open"
            assert peer.closed_within(WAIT), "the peer saw no end of the connection"
            assert len(peer.buf) < size  # what it did not take was dropped
            if kind == "aio":  # by a reset: what the kernel held for it too (the sync server leaves that)
                assert len(peer.buf) < 1 << 20
        finally:
            peer.close()
