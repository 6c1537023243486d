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


def test_a_leaked_socket_says_which_it_is() -> None:
    # A leaked client used to read "fd 20 -> socket:[6323301]": nothing to find it by.
    before = Resources()
    if before.fds is None:
        pytest.skip("no /proc/self/fd on this platform")
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client, socket.socket() as unbound:
            leaks = before.leaks()
            client_port = client.getsockname()[1]
            assert f"fd {listener.fileno()} -> socket:" in " ".join(leaks)
            by_fd = {leak.split(" -> ", 1)[0]: leak for leak in leaks}
            assert by_fd[f"fd {listener.fileno()}"].endswith(f"(TCP listening on 127.0.0.1:{port})")
            assert by_fd[f"fd {client.fileno()}"].endswith(f"(TCP 127.0.0.1:{client_port} -> 127.0.0.1:{port})")
            assert by_fd[f"fd {unbound.fileno()}"].endswith("(TCP 0.0.0.0:0, not connected)")
            listener.accept()[0].close()
    assert before.leaks() == []
