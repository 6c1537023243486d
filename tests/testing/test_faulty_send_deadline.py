"""A call's timeout bounds sending through a slow fault plan (FaultyTransport.send_within).

The client bounds a send by its call's deadline with the transport's
``send_within`` (a real socket's contract: TimeoutError once the time is up, then
the connection is closed). FaultyTransport sent through every delay of its plan,
so a call with timeout=0.2 over ``FaultPlan(latency=...)`` took as long as the
plan's delays added up (hours here: the old code hangs these tests).
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest
from _driver_helpers import drain

from jsonrpc_mini import ConnectionLost, RPCClient, RPCServer, RPCTimeout, SocketTransport
from jsonrpc_mini.testing import DirectionFaults, FaultPlan, FaultyTransport, loopback, pipe_pair

pytestmark = pytest.mark.timeout(30)

HOUR = 3600.0


@pytest.fixture
def server():
    srv = RPCServer()
    srv.ran = []

    @srv.register
    def echo(value):
        srv.ran.append(value)
        return value

    yield srv
    srv.shutdown()


class Sleeping:
    """A pipe end without ``send_at``, as a socket is: the writer sleeps through the plan's delays."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def send(self, data: bytes) -> None:
        self._inner.send(data)

    def recv(self, max_bytes: int, timeout: float | None) -> bytes:
        return self._inner.recv(max_bytes, timeout)

    def close(self) -> None:
        self._inner.close()


# -- the transport ----------------------------------------------------------------


def test_send_within_raises_timeout_when_a_delay_ends_after_the_deadline():
    a, b = pipe_pair()
    faulty = FaultyTransport(Sleeping(a), FaultPlan(seed=9, latency=HOUR))
    with pytest.raises(TimeoutError, match="seed=9"):
        faulty.send_within(b"abc", 0.05)
    assert drain(b, 0.05) == []  # the chunk that could not cross in time was not sent...
    assert faulty.link.client_to_server.position == 0  # ...nor counted by the plan
    faulty.close()


def test_send_within_waits_for_a_connect_delay_only_until_the_deadline():
    a, b = pipe_pair()
    faulty = FaultyTransport(Sleeping(a), FaultPlan(seed=4, connect_delay=HOUR))
    with pytest.raises(TimeoutError, match="not established"):
        faulty.send_within(b"abc", 0.05)
    assert drain(b, 0.05) == []
    faulty.close()


def test_over_the_pipe_bytes_wait_in_flight_for_the_connection():
    # review11 L1: the writer waited for the connect delay within its deadline, so a
    # call whose timeout ended first closed loopback()'s connection.
    a, b = pipe_pair()
    start = time.monotonic()
    faulty = FaultyTransport(a, FaultPlan(seed=4, connect_delay=HOUR))
    faulty.send_within(b"abc", 0.05)  # returns: the bytes are in flight
    assert [due >= start + HOUR for due, _ in a._out.segments] == [True]
    assert drain(b, 0.05) == []  # not before the connection is up
    faulty.close()


def test_send_within_sends_what_fits_in_the_same_chunks_as_send():
    plan = FaultPlan(seed=3, max_chunk=5, latency=0.0005, jitter=0.0005)
    sizes = []
    for within in (False, True):
        a, b = pipe_pair()
        faulty = FaultyTransport(a, plan)
        if within:
            faulty.send_within(b"x" * 60, 20.0)
        else:
            faulty.send(b"x" * 60)
        pieces = drain(b, 0.05)
        assert b"".join(pieces) == b"x" * 60
        sizes.append([len(piece) for piece in pieces])
        faulty.close()
    assert sizes[0] == sizes[1]
    assert max(sizes[0]) <= 5


def test_send_within_bounds_the_wrapped_transports_own_send():
    # Over a socket whose peer never reads, the inner send blocks once the buffers
    # are full: the deadline must reach it (SocketTransport.send_within), else it
    # waits for ever.
    mine, peer = socket.socketpair()
    faulty = FaultyTransport(SocketTransport(mine), FaultPlan(seed=2, server_to_client=DirectionFaults(max_chunk=1)))
    try:
        with pytest.raises(TimeoutError):
            faulty.send_within(b"y" * (32 << 20), 0.1)
    finally:
        faulty.close()
        peer.close()


# -- the client through loopback() -------------------------------------------------


def test_call_timeout_bounds_a_request_in_flight_for_an_hour(server):
    # Over loopback()'s pipe the request is in flight (review10 r11): the call waits
    # for its reply within its timeout, and the connection goes on.
    with loopback(server, FaultPlan(seed=11, latency=HOUR), timeout=0.2) as client:
        with pytest.raises(RPCTimeout, match="no reply"):
            client.echo("hello")
        with pytest.raises(RPCTimeout, match="no reply"):
            client.echo("again")
    assert server.ran == []


def test_a_call_timing_out_during_the_connect_delay_fails_only_itself(server):
    # review11 L1: RPCTimeout 'could not send within the timeout; the connection is
    # closed', then ConnectionLost for every call. Now the request waits in flight for
    # the connection, as it does through a latency, and the connection goes on.
    with loopback(server, FaultPlan(seed=17, connect_delay=0.5), timeout=10.0) as client:
        with pytest.raises(RPCTimeout, match="no reply"):
            client.with_timeout(0.1).echo("early")
        assert client.echo("later") == "later"
    assert server.ran == ["early", "later"]  # the first request arrived late, and ran


def test_a_short_timeout_under_latency_fails_only_its_own_call(server):
    # review10 r11: the writer slept through the latency, so a call whose timeout was
    # shorter than the latency closed the connection under every call in flight.
    plan = FaultPlan(seed=16, latency=0.3)
    with loopback(server, plan, timeout=10.0) as client:
        results: list[Any] = []
        slow = threading.Thread(target=lambda: results.append(client.echo("long")))
        slow.start()
        with pytest.raises(RPCTimeout, match="no reply"):
            client.with_timeout(0.2).echo("short")
        slow.join(10.0)
        assert results == ["long"]
        assert client.echo("after") == "after"


def test_a_sleeping_writers_call_timeout_bounds_sending():
    # Over a transport that cannot carry bytes in flight, the writer sleeps through
    # the delays within the call's deadline: then the connection is closed, as over
    # a socket whose peer stopped reading (part of a request may be out).
    a, b = pipe_pair()
    client = RPCClient(transport=FaultyTransport(Sleeping(a), FaultPlan(seed=11, latency=HOUR)), timeout=0.2)
    try:
        with pytest.raises(RPCTimeout, match="could not send"):
            client.echo("hello")
        with pytest.raises(ConnectionLost):
            client.echo("again")
    finally:
        client.close()
        b.close()


def test_the_calls_after_a_send_out_of_time_are_told_what_happened():
    # The connection's end was reported as "the server took no data for too long"
    # even when the fault plan held the bytes back: it names the plan now (and, over
    # a socket, the peer that took no data: tests/test_timeout_messages.py).
    a, b = pipe_pair()
    client = RPCClient(transport=FaultyTransport(Sleeping(a), FaultPlan(seed=11, latency=HOUR)), timeout=0.2)
    try:
        with pytest.raises(RPCTimeout, match="could not send"):
            client.echo("hello")
        with pytest.raises(ConnectionLost) as lost:
            client.echo("again")
    finally:
        client.close()
        b.close()
    message = str(lost.value)
    assert "could not send in time: the send did not finish within its time under the fault plan" in message
    assert "FaultPlan(seed=11" in message and "server" not in message


def test_call_timeout_bounds_sending_one_byte_at_a_time(server):
    # 2,000 bytes, 1 byte per chunk at 20 bytes/s: 100 s of sending for a 0.3 s call.
    # (The time on the wire adds up across chunks; a latency does not: review11 L3.)
    plan = FaultPlan(seed=12, max_chunk=1, bandwidth=20)
    with loopback(server, plan, timeout=0.3) as client, pytest.raises(RPCTimeout):
        client.echo("z" * 2000)
    assert server.ran == []


def test_notify_goes_out_at_once_and_a_batch_waits_within_its_timeout(server):
    plan = FaultPlan(seed=13, client_to_server=DirectionFaults(latency=HOUR))
    with loopback(server, plan, timeout=0.2) as client:
        client.notify("echo", "n")  # in flight for an hour: nothing to wait for
        with client.batch() as batch:
            member = batch.echo("b")
        with pytest.raises(RPCTimeout, match="no reply"):
            member.result()
    assert server.ran == []


def test_a_send_that_fits_in_the_timeout_still_gets_its_reply(server):
    plan = FaultPlan(seed=14, max_chunk=64, latency=0.001, jitter=0.001)
    with loopback(server, plan, timeout=20.0) as client:
        assert client.echo("w" * 500) == "w" * 500
    assert server.ran == ["w" * 500]


@pytest.mark.parametrize("timeout", [0.5 * HOUR, 2 * HOUR])  # a delay past the deadline, or within it
def test_close_during_a_bounded_send_ends_it(timeout):
    a, _ = pipe_pair()
    faulty = FaultyTransport(Sleeping(a), FaultPlan(seed=15, latency=HOUR))
    closer = threading.Timer(0.05, faulty.close)
    closer.start()
    with pytest.raises(OSError) as info:  # woken by close long before the deadline
        faulty.send_within(b"abc", timeout)
    closer.join()
    assert not isinstance(info.value, TimeoutError)
