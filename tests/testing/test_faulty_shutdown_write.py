"""FaultyTransport.shutdown_write(): the EOF travels in flight over the pipe; our later sends fail.

Over the in-memory pipe it slept the plan's close_delay in the caller's thread (an
hour's delay held the caller an hour) where ``close()`` lets its close travel in
flight; and, as over TCP after ``shutdown(SHUT_WR)`` (probed: the next send raises
BrokenPipeError at once), a send after it must fail, not wait and go out.
"""

from __future__ import annotations

import threading

import pytest
from _driver_helpers import WAIT

from jsonrpc_mini.testing import FaultPlan, FaultyTransport, pipe_pair

pytestmark = pytest.mark.timeout(30)


def shut(faulty: FaultyTransport) -> None:
    """``faulty.shutdown_write()``, which must return without waiting out the plan's close_delay."""
    done = threading.Event()
    caller = threading.Thread(target=lambda: (faulty.shutdown_write(), done.set()), daemon=True)
    caller.start()
    if not done.wait(WAIT):
        faulty.close()  # (wakes its wait)
        pytest.fail("shutdown_write() waited out the plan's close_delay")


def test_over_the_pipe_it_returns_at_once_and_the_eof_arrives_close_delay_later() -> None:
    a, b = pipe_pair()
    faulty = FaultyTransport(a, FaultPlan(seed=1, close_delay=3600.0))
    faulty.send(b"last")
    shut(faulty)
    assert b.recv(10, WAIT) == b"last"
    with pytest.raises(TimeoutError):  # (the EOF is an hour away)
        b.recv(10, 0.05)
    b.send(b"reply")  # the other direction still carries
    assert faulty.recv(10, WAIT) == b"reply"
    faulty.close()
    b.close()


def test_the_eof_reaches_the_peer_after_the_bytes_before_it() -> None:
    a, b = pipe_pair()
    faulty = FaultyTransport(a, FaultPlan(seed=2, close_delay=0.01))
    faulty.send(b"last")
    faulty.shutdown_write()
    assert b.recv(10, WAIT) == b"last"
    assert b.recv(10, WAIT) == b""
    faulty.close()
    b.close()


@pytest.mark.parametrize("delay", [0.0, 3600.0], ids=["no delay", "close_delay"])
def test_a_send_after_it_fails_at_once(delay: float) -> None:
    a, b = pipe_pair()
    faulty = FaultyTransport(a, FaultPlan(seed=3, close_delay=delay))
    shut(faulty)
    with pytest.raises(BrokenPipeError, match="shutdown_write"):
        faulty.send(b"late")
    faulty.close()
    b.close()
