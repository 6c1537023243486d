"""A fault plan's delays over loopback()'s pipe are per chunk in flight (review11 L3).

Each chunk arrives its latency after it was sent, in order; the latencies of chunks
in flight at the same time do not add up (their time at the plan's bandwidth does).
FaultyTransport chained the due times of everything it sent (``due = max(due,
now) + delay``) and counted a read piece's delay from when it was read, so five
calls made at once under latency=0.3 took 0.6, 0.9, 1.2, ... s and the later ones
ran into their timeout, though each round trip was 0.6 s (aio_loopback and
LoopbackServer served them all).
"""

from __future__ import annotations

import threading
import time

import pytest

from jsonrpc_mini import RPCError, RPCServer
from jsonrpc_mini.testing import DirectionFaults, FaultPlan, FaultyTransport, loopback, pipe_pair

pytestmark = pytest.mark.timeout(60)

HOUR = 3600.0


def test_calls_made_at_once_are_in_flight_together(echo_server: RPCServer) -> None:
    # Round trip 1 s each; chained, the 4th call would end at 2.5 s, after its timeout.
    results: dict[int, object] = {}
    with loopback(echo_server, FaultPlan(seed=21, latency=0.5), timeout=2.4) as client:

        def call(k: int) -> None:
            try:
                results[k] = client.echo(k)
            except RPCError as exc:  # (reported by the assertion below)
                results[k] = exc

        threads = [threading.Thread(target=call, args=(k,)) for k in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert results == {k: k for k in range(6)}


def test_messages_sent_one_after_another_are_due_their_delay_after_they_were_sent() -> None:
    a, b = pipe_pair()
    faulty = FaultyTransport(a, FaultPlan(seed=22, latency=HOUR))
    start = time.monotonic()
    for message in (b"one\n", b"two\n", b"three\n"):
        faulty.send(message)
    end = time.monotonic()
    dues = [due for due, _ in a._out.segments]  # (in flight: the pipe's queue)
    assert len(dues) == 3
    assert all(start + HOUR <= due <= end + HOUR for due in dues), dues  # chained: +1 h, +2 h, +3 h
    assert dues == sorted(dues)  # the order is kept
    faulty.close()
    b.close()


def test_time_on_the_wire_at_the_plans_bandwidth_adds_up() -> None:
    a, b = pipe_pair()
    faulty = FaultyTransport(a, FaultPlan(seed=24, bandwidth=0.001))  # 1,000 s per byte
    start = time.monotonic()
    faulty.send(b"a")
    faulty.send(b"b")  # on the wire after the first byte
    end = time.monotonic()
    dues = [due for due, _ in a._out.segments]
    assert start + 1000 <= dues[0] <= end + 1000
    assert dues[1] == dues[0] + 1000
    faulty.close()
    b.close()


def test_pieces_that_waited_in_the_pipe_count_their_delay_from_their_arrival() -> None:
    a, b = pipe_pair()
    faulty = FaultyTransport(a, FaultPlan(seed=23, server_to_client=DirectionFaults(latency=0.3)))
    for k in range(5):
        b.send(b"reply %d\n" % k)  # five segments, arrived together
    assert faulty.recv(100, 5.0) == b"reply 0\n"  # 0.3 s after they arrived...
    # ...when the others are due too: no read waits another 0.3 s (each would time out).
    assert [faulty.recv(100, 0.2) for _ in range(4)] == [b"reply %d\n" % k for k in range(1, 5)]
    faulty.close()
    b.close()


def test_a_pipe_drops_what_waits_behind_a_segment_in_flight() -> None:
    a, b = pipe_pair()
    a.send_at(b"due", 0.0)
    a.send_at(b"far", time.monotonic() + HOUR)
    a.send(b"behind")  # due at once, but read only after the segment before it
    a.drop_in_flight()
    assert b.recv(100, 0.0) == b"due"
    a.close()
    assert b.recv(100, 0.0) == b""  # the EOF: nothing was left in flight before it
