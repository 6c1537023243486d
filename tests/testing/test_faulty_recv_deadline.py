"""A read's timeout bounds the fault plan's delays on the reading side too (review10 r1).

FaultyTransport.recv slept through a piece's delay (latency, jitter, bandwidth)
whatever the read's timeout, so a call through ``loopback()`` with timeout=0.5 and
``server_to_client`` latency of 3 s returned after 3 s, and with an hour's latency
hung for an hour. Now a read whose timeout ends first raises TimeoutError (the
client's RPCTimeout), and the piece is still delivered, once, by a later read
after the rest of its delay: nothing is lost and the plan counts it once.
"""

from __future__ import annotations

import time

import pytest

from jsonrpc_mini import RPCTimeout
from jsonrpc_mini.testing import DirectionFaults, FaultPlan, FaultyTransport, loopback, pipe_pair

pytestmark = pytest.mark.timeout(30)

HOUR = 3600.0


def test_a_read_times_out_before_a_delay_ends_and_the_piece_comes_later_once():
    a, b = pipe_pair()
    faulty = FaultyTransport(a, FaultPlan(seed=5, server_to_client=DirectionFaults(latency=0.3)))
    b.send(b"hello")
    with pytest.raises(TimeoutError, match="seed=5"):
        faulty.recv(100, 0.02)
    counted = faulty.link.server_to_client.position
    assert counted == 5  # the plan let the piece through, with its delay: counted once
    assert faulty.recv(100, 5.0) == b"hello"  # the rest of the delay, then the same piece
    b.send(b"!")
    assert faulty.recv(100, 5.0) == b"!"
    assert faulty.link.server_to_client.position == counted + 1
    faulty.close()
    b.close()


def test_a_held_piece_comes_no_larger_than_the_read_that_takes_it():
    # review11 f4: a piece held by a timed-out recv(100) came whole to a later recv(2).
    a, b = pipe_pair()
    faulty = FaultyTransport(a, FaultPlan(server_to_client=DirectionFaults(latency=0.3)))
    b.send(b"hello")
    with pytest.raises(TimeoutError):
        faulty.recv(100, 0.02)
    assert faulty.recv(2, 5.0) == b"he"
    assert faulty.recv(100, 0.01) == b"llo"  # already due: no second delay, nothing lost
    assert faulty.link.server_to_client.position == 5  # the plan counted the piece once
    b.send(b"!")
    assert faulty.recv(100, 5.0) == b"!"
    faulty.close()
    b.close()


def test_a_delayed_piece_arrives_after_its_delay_whatever_the_reads_timeouts():
    a, b = pipe_pair()
    faulty = FaultyTransport(a, FaultPlan(server_to_client=DirectionFaults(latency=0.2)))
    start = time.monotonic()  # (before the send: the delay counts from when the piece came)
    b.send(b"x")
    for _ in range(100):  # short reads do not make the piece come sooner
        try:
            piece = faulty.recv(10, 0.01)
        except TimeoutError:
            continue
        break
    else:
        raise AssertionError("the piece never came")
    assert piece == b"x"
    assert time.monotonic() - start >= 0.2
    faulty.close()
    b.close()


@pytest.mark.parametrize(
    "faults",
    [
        DirectionFaults(latency=HOUR),
        DirectionFaults(jitter=HOUR),
        DirectionFaults(bandwidth=1),
    ],
    ids=["latency", "jitter", "bandwidth"],
)
def test_a_calls_timeout_bounds_the_delays_of_its_reply(echo_server, faults):
    plan = FaultPlan(seed=2, server_to_client=faults)
    with loopback(echo_server, faults=plan, timeout=0.3) as client, pytest.raises(RPCTimeout):
        client.echo("y" * 300)


def test_the_connection_goes_on_after_a_reply_came_too_late(echo_server):
    plan = FaultPlan(server_to_client=DirectionFaults(latency=0.5))
    with loopback(echo_server, faults=plan, timeout=0.1) as client:
        with pytest.raises(RPCTimeout):
            client.echo(1)
        assert client.with_timeout(10.0).echo(2) == 2  # the late reply to echo(1) is dropped
