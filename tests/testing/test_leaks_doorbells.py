"""Resources / jsonrpc_no_leaks: a running thread's doorbell is its own, not a test's leak.

A thread that first waits for another thread to read its reply (two threads
sharing an ``RPCClient``) gets an eventfd, its doorbell, kept for the thread's
life (see ``jsonrpc_mini._client_doorbell``). When that thread was running before
the snapshot (the test's own thread, above all), the descriptor is no leak of the
test: ``jsonrpc_no_leaks`` used to fail such a test with ``fd N ->
anon_inode:[eventfd]``. A thread started by the test is still reported, and its
doorbell closes with it.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable

import pytest

from jsonrpc_mini import RPCClient, RPCServer
from jsonrpc_mini.testing import Resources

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(not hasattr(os, "eventfd") or not os.path.isdir("/proc/self/fd"), reason="Linux only"),
]

WAIT = 10.0


def _eventfds() -> set[int]:
    return {int(name) for name in os.listdir("/proc/self/fd") if _target(name) == "anon_inode:[eventfd]"}


def _target(name: str) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{name}")
    except OSError:
        return ""


def _wait_as_a_follower(client: RPCClient, started: threading.Event, release: threading.Event) -> None:
    """Call ``add`` on this thread while another thread holds the client's reading turn."""
    holder = threading.Thread(target=client.hold, name="turn-holder")  # waits inside the server's hold()
    holder.start()
    assert started.wait(WAIT)  # its request is in: it reads, waiting for its reply
    try:
        assert client.add(1, 2) == 3  # a follower: the holder reads this reply and rings us
    finally:
        release.set()
        holder.join(WAIT)
    assert not holder.is_alive()


def _server() -> tuple[RPCServer, threading.Event, threading.Event]:
    started, release = threading.Event(), threading.Event()
    server = RPCServer()
    server.register_function(lambda a, b: a + b, name="add")

    @server.register
    def hold() -> bool:
        started.set()
        return release.wait(WAIT)

    return server, started, release


def _in_a_thread_running_before(check: Callable[[Resources], None]) -> None:
    """Snapshot, then run ``_wait_as_a_follower`` and ``check`` on a thread that was running before it."""
    go, errors = threading.Event(), []
    server, started, release = _server()

    def body() -> None:
        try:
            assert go.wait(WAIT)
            host, port = server.start("127.0.0.1", 0)
            before_bells = _eventfds()
            with RPCClient(host, port, timeout=WAIT) as client:
                _wait_as_a_follower(client, started, release)
            assert _eventfds() - before_bells, "the probe made no doorbell: it did not wait as a follower"
            server.shutdown()
            check(snapshot)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
            server.shutdown()

    thread = threading.Thread(target=body, name="running-before")
    thread.start()
    snapshot = Resources()
    go.set()
    thread.join(WAIT * 3)
    assert not thread.is_alive()
    if errors:
        raise errors[0]


def test_a_doorbell_of_a_thread_running_before_the_snapshot_is_no_leak() -> None:
    _in_a_thread_running_before(lambda snapshot: snapshot.assert_no_leaks(timeout=5))


def test_a_socket_left_open_there_is_still_reported() -> None:
    def check(snapshot: Resources) -> None:
        with RPCClient(*("127.0.0.1", listener.getsockname()[1]), timeout=WAIT):
            assert [leak for leak in snapshot.leaks() if "eventfd" in leak] == []
            assert any("socket:" in leak for leak in snapshot.leaks())

    with socket.create_server(("127.0.0.1", 0)) as listener:
        _in_a_thread_running_before(check)


def test_a_thread_started_after_the_snapshot_is_reported_and_its_doorbell_closes_with_it() -> None:
    snapshot = Resources()
    server, started, release = _server()
    host, port = server.start("127.0.0.1", 0)
    stop = threading.Event()
    try:
        with RPCClient(host, port, timeout=WAIT) as client:

            def body() -> None:
                _wait_as_a_follower(client, started, release)
                stop.wait(WAIT)

            before_bells = _eventfds()
            thread = threading.Thread(target=body, name="started-after")
            thread.start()
            try:
                assert started.wait(WAIT) and release.wait(WAIT)
                leaks = snapshot.leaks()
                assert "thread started-after" in leaks
            finally:
                stop.set()
                thread.join(WAIT)
            assert _eventfds() <= before_bells  # its doorbell went with the thread
    finally:
        server.shutdown()
    snapshot.assert_no_leaks(timeout=5)
