"""Resources: the leak check the fault suite and the jsonrpc_no_leaks fixture rely on."""

from __future__ import annotations

import socket
import threading

import pytest

from jsonrpc_mini.testing import Resources

pytestmark = pytest.mark.timeout(30)


def test_a_new_thread_is_reported_until_it_ends():
    before = Resources()
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, args=(10,), name="leaky-worker")
    thread.start()
    try:
        with pytest.raises(AssertionError, match="thread leaky-worker"):
            before.assert_no_leaks(timeout=0.05)
    finally:
        stop.set()
        thread.join(5)
    before.assert_no_leaks(timeout=1)


def test_a_new_socket_is_reported_until_closed():
    before = Resources()
    if before.fds is None:
        pytest.skip("no /proc/self/fd on this platform")  # threads are still checked elsewhere
    sock = socket.socket()
    fd = sock.fileno()
    try:
        assert any(leak.startswith(f"fd {fd} -> socket:") for leak in before.leaks())
    finally:
        sock.close()
    assert not any(leak.startswith(f"fd {fd} -> socket:") for leak in before.leaks())
