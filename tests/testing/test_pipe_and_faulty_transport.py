"""The in-memory pipe and FaultyTransport (the blocking driver of a fault plan)."""

from __future__ import annotations

import errno
import threading
import time

import pytest
from _driver_helpers import drain, wait_for
from _kits_support import CountedWaits

from jsonrpc_mini import ConnectionLost, RPCServer, Transport
from jsonrpc_mini.testing import DirectionFaults, FaultPlan, FaultyTransport, loopback, pipe_pair

pytestmark = pytest.mark.timeout(30)


# -- the pipe ---------------------------------------------------------------------


def test_pipe_pair_is_a_transport_and_keeps_segments():
    a, b = pipe_pair()
    assert isinstance(a, Transport)
    a.send(b"one")
    a.send(b"two")
    b.send(b"back")
    assert b.recv(2, 1.0) == b"on"
    assert b.recv(100, 1.0) == b"e"
    assert b.recv(100, 1.0) == b"two"
    assert a.recv(100, 1.0) == b"back"
    with pytest.raises(TimeoutError):
        b.recv(100, 0.01)


def test_pipe_unread_counts_the_bytes_arrived_as_a_socket_s_fionread():
    a, b = pipe_pair()
    assert b.unread() == 0 and b.unread_or_none() == 0
    a.send(b"abc")
    a.send(b"de")
    a.send_at(b"in flight", time.monotonic() + 60)  # (not arrived: not counted, nor what follows it)
    a.send(b"behind")
    assert b.unread() == 5
    assert b.recv(2, 1.0) == b"ab"
    assert b.unread() == 3
    b.close()
    assert b.unread() == 0  # (closed: nothing to read, as a closed socket's)


def test_pipe_close_gives_eof_and_broken_pipe_and_wakes_reader():
    a, b = pipe_pair()
    cond = CountedWaits.on(a, b)
    got = []
    reader = threading.Thread(target=lambda: got.append(a.recv(10, 5.0)))
    reader.start()
    wait_for(lambda: cond.waits == 1, "the reader to wait")  # (then close() must wake it)
    a.close()
    reader.join(5.0)
    assert got == [b""]
    assert b.recv(10, 1.0) == b""
    b.send(b"x")  # as over TCP, the first send after the peer's close goes out (lost)
    with pytest.raises(BrokenPipeError):
        b.send(b"x")
    with pytest.raises(OSError):
        a.send(b"x")
    a.close()


def test_pipe_half_close_both_ways():
    a, b = pipe_pair()
    a.send(b"last")
    a.shutdown_write()
    assert b.recv(10, 1.0) == b"last"
    assert b.recv(10, 1.0) == b""
    b.send(b"still open")
    assert a.recv(100, 1.0) == b"still open"
    with pytest.raises(BrokenPipeError):
        a.send(b"x")
    a.shutdown_read()
    with pytest.raises(BrokenPipeError):
        b.send(b"x")
    assert a.recv(10, 1.0) == b""


def test_pipe_broken_pipe_says_which_end_ended_writing():
    # Both read "the connection is closed for writing": a loopback() client whose
    # server shut down got "connection lost while sending: loopback[a]: the
    # connection is closed for writing", as if the client had closed it.
    a, b = pipe_pair("kv")
    b.close()
    a.send(b"x")  # (the first send after the peer's close goes out, as over TCP)
    with pytest.raises(BrokenPipeError, match=r"kv\[a\]: the peer closed the connection") as peer:
        a.send(b"x")
    a.shutdown_write()  # (now both: this end's own shutdown is named first)
    with pytest.raises(BrokenPipeError, match=r"kv\[a\]: this end shut down writing") as own:
        a.send(b"x")
    assert peer.value.errno == own.value.errno == errno.EPIPE


def test_a_loopback_client_whose_server_shut_down_names_the_peer():
    # As over TCP (test_pipe_after_close_vs_tcp.py), the request goes out and the
    # client reads the server's EOF: it names the server, not its own end.
    server = RPCServer()
    server.register_function(lambda: 1, name="one")
    with loopback(server, timeout=5) as client:
        assert client.one() == 1
        server.shutdown()
        with pytest.raises(ConnectionLost, match="connection closed by the server"):
            client.one()


def test_pipe_abort_resets_both_ends():
    a, b = pipe_pair()
    a.send(b"unread")
    a.send_at(b"in flight", time.monotonic() + 3600)
    b.send(b"never read")
    a.abort()
    # As over TCP: the peer reads what had arrived before the RST, then the reset;
    # what was still in flight is lost, and so is what the aborting end had not read.
    assert b.recv(100, 1.0) == b"unread"
    with pytest.raises(ConnectionResetError):
        b.recv(10, 1.0)
    with pytest.raises(ConnectionResetError):
        a.recv(10, 1.0)
    with pytest.raises(ConnectionResetError):
        b.send(b"x")
    assert a.closed


# -- FaultyTransport --------------------------------------------------------------


def test_faulty_send_splits_into_seeded_chunks():
    a, b = pipe_pair()
    plan = FaultPlan(seed=3, max_chunk=5)
    FaultyTransport(a, plan).send(b"x" * 100)
    pieces = drain(b, 0.05)
    assert b"".join(pieces) == b"x" * 100
    assert all(1 <= len(p) <= 5 for p in pieces)
    a2, b2 = pipe_pair()
    FaultyTransport(a2, plan).send(b"x" * 100)
    assert [len(p) for p in drain(b2, 0.05)] == [len(p) for p in pieces]


def test_faulty_recv_returns_partial_reads_deterministically():
    sizes = []
    for _ in range(2):
        a, b = pipe_pair()
        b.send(b"y" * 200)
        b.close()
        faulty = FaultyTransport(a, FaultPlan(seed=8, max_chunk=6))
        pieces = drain(faulty)
        assert b"".join(pieces) == b"y" * 200
        sizes.append([len(p) for p in pieces])
    assert sizes[0] == sizes[1]
    assert max(sizes[0]) <= 6


def test_faulty_side_picks_the_direction():
    plan = FaultPlan(client_to_server=DirectionFaults(max_chunk=1))
    a, b = pipe_pair()
    FaultyTransport(a, plan, side="server").send(b"abcd")  # server->client: no faults
    assert drain(b, 0.05) == [b"abcd"]
    a, b = pipe_pair()
    FaultyTransport(a, plan, side="client").send(b"abcd")
    assert drain(b, 0.05) == [b"a", b"b", b"c", b"d"]
    with pytest.raises(ValueError):
        FaultyTransport(a, plan, side="middle")  # type: ignore[arg-type]


def test_disconnect_after_closes_both_ends_mid_send():
    # As over a network: the send that crosses the fault goes through (the bytes after
    # it vanish), the peer reads the bytes before it, then EOF; a later send fails.
    a, b = pipe_pair()
    faulty = FaultyTransport(a, FaultPlan(seed=5, disconnect_after=10))
    faulty.send(b"z" * 25)
    assert b"".join(drain(b)) == b"z" * 10  # the peer got 10 bytes, then EOF
    assert faulty.recv(10, 1.0) == b""
    with pytest.raises(BrokenPipeError, match="seed=5"):
        faulty.send(b"more")


def test_reset_after_resets_the_peer():
    a, b = pipe_pair()
    faulty = FaultyTransport(a, FaultPlan(seed=6, reset_after=4))
    faulty.send(b"0123456789")  # goes through: the reset travels behind its 4 bytes
    with pytest.raises(ConnectionResetError, match="seed=6"):
        faulty.send(b"x")  # no delay: it has happened (though the pipe was not used since)
    assert b.recv(10, 1.0) == b"0123"  # the bytes before it arrive first, as before an RST
    with pytest.raises(ConnectionResetError):
        b.recv(10, 1.0)
    with pytest.raises(ConnectionResetError, match="seed=6"):
        faulty.recv(10, 1.0)


def test_inbound_reset_raises_to_the_owner():
    a, b = pipe_pair()
    faulty = FaultyTransport(a, FaultPlan(server_to_client=DirectionFaults(reset_after=3)))
    b.send(b"abcdef")
    assert faulty.recv(100, 1.0) == b"abc"
    with pytest.raises(ConnectionResetError):
        faulty.recv(100, 1.0)
    with pytest.raises(ConnectionResetError):
        b.send(b"x")


def test_half_close_outbound_keeps_the_other_direction():
    a, b = pipe_pair()
    faulty = FaultyTransport(a, FaultPlan(client_to_server=DirectionFaults(half_close_after=3)))
    faulty.send(b"abc")
    faulty.send(b"d")  # vanishes, as where a link stops carrying that direction (the other kits)
    assert b"".join(drain(b)) == b"abc"
    b.send(b"reply")
    assert faulty.recv(100, 1.0) == b"reply"


def test_half_close_inbound_gives_eof_and_peer_writes_fail():
    a, b = pipe_pair()
    faulty = FaultyTransport(a, FaultPlan(server_to_client=DirectionFaults(half_close_after=2)))
    b.send(b"abcdef")
    assert faulty.recv(100, 1.0) == b"ab"
    assert faulty.recv(100, 1.0) == b""
    with pytest.raises(BrokenPipeError):
        b.send(b"x")
    faulty.send(b"still")
    assert b.recv(100, 1.0) == b"still"


def test_stall_swallows_outbound_and_times_out_inbound():
    a, b = pipe_pair()
    faulty = FaultyTransport(a, FaultPlan(stall_after=2))
    faulty.send(b"abcdef")  # no error: the bytes just never arrive
    assert drain(b, 0.05) == [b"ab"]
    b.send(b"123")
    assert faulty.recv(100, 1.0) == b"12"
    with pytest.raises(TimeoutError, match="stall"):
        faulty.recv(100, 0.05)
    closer = threading.Timer(0.05, faulty.close)
    closer.start()
    assert faulty.recv(100, None) == b""  # close wakes a stalled reader
    closer.join()


def test_latency_connect_delay_and_close_delay_take_time():
    a, b = pipe_pair()
    plan = FaultPlan(latency=0.02, connect_delay=0.05, close_delay=0.03, max_chunk=50)
    faulty = FaultyTransport(a, plan)
    start = time.monotonic()
    faulty.send(b"x" * 100)  # in flight until the connection is up (50 ms), then 20 ms more
    pieces: list[bytes] = []
    while sum(map(len, pieces)) < 100 and len(pieces) < 100:
        pieces.append(b.recv(100, 5.0))
    # The chunks (2 or more) are in flight together: the reader waits for both delays.
    assert time.monotonic() - start >= 0.065  # (lower bounds only: sleeps never end early by more than a tick)
    assert b"".join(pieces) == b"x" * 100
    start = time.monotonic()
    faulty.close()  # in flight for close_delay (close() returns at once): the peer's EOF comes then
    assert b.recv(100, 5.0) == b""
    assert time.monotonic() - start >= 0.025


def test_connect_delay_bounds_recv_by_its_timeout():
    a, _ = pipe_pair()
    faulty = FaultyTransport(a, FaultPlan(connect_delay=5.0))
    with pytest.raises(TimeoutError, match="not established"):
        faulty.recv(10, 0.02)
    faulty.close()
    assert faulty.recv(10, 0.02) == b""


def test_close_wakes_a_blocked_recv():
    a, b = pipe_pair()
    cond = CountedWaits.on(a, b)
    faulty = FaultyTransport(a, FaultPlan(max_chunk=2))
    got = []
    # (a timeout past the join's: a read that only its timeout ends, 5 s on, is not woken)
    reader = threading.Thread(target=lambda: got.append(faulty.recv(10, 30.0)), daemon=True)
    reader.start()
    wait_for(lambda: cond.waits == 1, "the reader to wait")  # (then close() must wake it)
    faulty.close()
    reader.join(5.0)
    assert got == [b""]
    with pytest.raises(OSError):
        faulty.send(b"x")


def test_send_at_holds_a_segment_until_it_is_due_and_keeps_the_order():
    a, b = pipe_pair()
    soon = time.monotonic() + 0.5
    a.send_at(b"first", soon)
    a.send_at(b"second", 0.0)  # due at once, but after the first: it waits for it
    try:
        early: bytes | None = b.recv(10, 0.01)  # nothing is due yet...
    except TimeoutError:
        early = None
    # ...unless this thread stalled past `soon` (a full run on a loaded machine did):
    # then "first" was due, and reading it proves nothing but that it came first.
    assert early is None or time.monotonic() >= soon, f"{early!r} was read before it was due"
    assert (b.recv(10, 5.0) if early is None else early) == b"first"
    assert time.monotonic() >= soon
    assert b.recv(10, 5.0) == b"second"
    a.shutdown_write()
    assert b.recv(10, 5.0) == b""
