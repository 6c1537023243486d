"""``close_delay`` holds the plan's own close and half-close too, on the blocking kits as on the asyncio ones.

README: a close or half-close reaches the other end ``close_delay`` seconds after it
was made, on every kit. The asyncio kits' link waits it out for the plan's faults
(``disconnect_after``, ``half_close_after``, ...) as for an end's close; a
``FaultyTransport`` (so ``loopback()`` and ``LoopbackServer``'s proxy) applied them
at once: with ``FaultPlan(disconnect_after=10, close_delay=0.4)`` a call with a 0.2 s
timeout raised ``ConnectionLost`` at once on ``loopback()`` and ``LoopbackServer`` but
``RPCTimeout`` after 0.2 s on ``aio_loopback()`` and ``AioLoopbackServer``, and a
call cut by the client's half-close got its parse error at once on the blocking kits,
after 0.4 s on the asyncio ones. The delays are an hour here: nothing a test does
outlasts one, so no test depends on timing.
"""

from __future__ import annotations

import socket
import struct
import threading

import pytest
from _driver_helpers import WAIT, wait_for
from _proxy_linked import HOLDING, linked, note_holding

from jsonrpc_mini import ConnectionLost, RPCServer, SocketTransport
from jsonrpc_mini.testing import (
    DirectionFaults,
    FaultPlan,
    FaultyTransport,
    _relay,
    loopback,
    pipe_pair,
)

pytestmark = pytest.mark.timeout(60)

HOUR = 3600.0
# The plan's close and half-close, each after 4 bytes of the direction (the link, for the close).
OUT = {  # of the client's bytes (a FaultyTransport's sends on the "client" side)
    "close": FaultPlan(seed=1, disconnect_after=4, close_delay=HOUR),
    "half_close": FaultPlan(seed=1, client_to_server=DirectionFaults(half_close_after=4), close_delay=HOUR),
}
IN = {  # of the server's bytes (what that FaultyTransport reads)
    "close": FaultPlan(seed=1, disconnect_after=4, close_delay=HOUR),
    "half_close": FaultPlan(seed=1, server_to_client=DirectionFaults(half_close_after=4), close_delay=HOUR),
}


@pytest.mark.parametrize("fault", sorted(OUT))
def test_a_plans_close_of_sent_bytes_reaches_the_peer_after_close_delay(fault: str) -> None:
    # Over the pipe the fault travels behind the bytes before it; the peer reads those,
    # then nothing for close_delay. The old code closed (half-closed) the pipe when
    # the bytes arrived: the peer's next read got EOF at once.
    a, b = pipe_pair()
    try:
        faulty = FaultyTransport(a, OUT[fault])
        faulty.send(b"abcdefgh")  # (the send that crosses the fault goes through)
        assert b.recv(100, WAIT) == b"abcd"
        with pytest.raises(TimeoutError):
            b.recv(100, 0.05)
    finally:
        a.close()
        b.close()


def test_over_a_socket_the_writer_waits_out_a_plans_close_delay() -> None:
    # A socket carries no bytes in flight: the writer sleeps through the plan's delays,
    # this one too, and the peer reads the bytes before the fault, then nothing. The
    # old code closed the socket at once (the peer read EOF). abort() ends the wait.
    near, far = socket.socketpair()
    faulty = FaultyTransport(SocketTransport(near), OUT["close"])
    failed: list[OSError] = []

    def send() -> None:
        try:
            faulty.send(b"abcdefgh")
        except OSError as exc:  # (the bytes after the fault are not sent)
            failed.append(exc)

    sending = threading.Thread(target=send, daemon=True)
    sending.start()
    try:
        far.settimeout(WAIT)
        assert far.recv(100) == b"abcd"
        far.settimeout(0.05)
        with pytest.raises(TimeoutError):
            far.recv(100)
    finally:
        faulty.abort()
        sending.join(WAIT)
        far.close()
    assert not sending.is_alive()
    assert len(failed) == 1, failed


@pytest.mark.parametrize("fault", sorted(IN))
def test_a_plans_close_of_read_bytes_reaches_this_end_after_close_delay(fault: str) -> None:
    # The reader gets the bytes before the fault, then its reads time out (naming
    # close_delay) instead of returning EOF at once, as the old code's did.
    a, b = pipe_pair()
    try:
        faulty = FaultyTransport(a, IN[fault])
        b.send(b"abcdefgh")
        assert faulty.recv(100, WAIT) == b"abcd"
        with pytest.raises(TimeoutError, match="close_delay"):
            faulty.recv(100, 0.0)
        with pytest.raises(TimeoutError, match="close_delay"):
            faulty.recv(100, 0.0)  # still
    finally:
        a.close()
        b.close()


def test_a_plans_close_of_read_bytes_reaches_the_writer_after_close_delay() -> None:
    # The writer (the pipe's other end) sees nothing either: the old code closed the
    # wrapped end when the reader met the fault, and the writer read EOF at once.
    a, b = pipe_pair()
    try:
        faulty = FaultyTransport(a, IN["close"])
        b.send(b"abcdefgh")
        assert faulty.recv(100, WAIT) == b"abcd"
        with pytest.raises(TimeoutError):
            faulty.recv(100, 0.0)
        with pytest.raises(TimeoutError):
            b.recv(100, 0.05)
    finally:
        a.close()
        b.close()


def test_a_plans_close_is_reached_once_close_delay_is_over() -> None:
    a, b = pipe_pair()
    try:
        faulty = FaultyTransport(a, IN["close"].replace(close_delay=0.01))
        b.send(b"abcdefgh")
        assert faulty.recv(100, WAIT) == b"abcd"
        assert faulty.recv(100, WAIT) == b""
        assert b.recv(100, WAIT) == b""  # (the wrapped end is closed now)
    finally:
        a.close()
        b.close()


def test_bytes_still_buffered_when_the_plans_close_happened_are_not_held_for_it_again() -> None:
    # The client's close (its plan's, of the link) happens close_delay after its bytes;
    # bytes the server sent before are still buffered in the client's FaultyTransport.
    # Its next read meets the close already made: EOF at once, not close_delay later
    # again (the wait is over once, as on the asyncio kits, where the link closes both
    # ends together).
    a, b = pipe_pair()
    try:
        faulty = FaultyTransport(a, FaultPlan(seed=1, disconnect_after=6, close_delay=0.2))
        b.send(b"reply-reply")
        assert faulty.recv(2, WAIT) == b"re"  # (the rest stays buffered)
        faulty.send(b"abcdefgh")  # (the link closes after "abcd": 6 bytes with "re")
        assert b.recv(100, WAIT) == b"abcd"
        assert b.recv(100, WAIT) == b""  # the close reaches the server (after 0.2 s)
        assert faulty.recv(100, 0.0) == b""
    finally:
        a.close()
        b.close()


def test_a_call_on_a_link_the_plan_reset_fails_without_waiting_close_delay() -> None:
    # The client closes its transport before it fails its calls with ConnectionLost: a
    # FaultyTransport whose link the plan closed or reset already has nothing left to
    # reach the peer, so its close() does not wait close_delay (an hour here: the old
    # code's call hung until pytest-timeout failed it), as on aio_loopback().
    server = RPCServer()
    server.register_function(lambda a, b: a + b, name="add")
    plan = FaultPlan(seed=1, reset_after=10, close_delay=HOUR)
    with loopback(server, plan) as client, pytest.raises(ConnectionLost, match="reset"):
        client.add(1, 2)


class Watched(_relay.FaultyTransport):
    """The proxy's FaultyTransport, noting when a read timed out on a close the plan delays."""

    def recv(self, max_bytes: int, timeout: float | None) -> bytes:
        try:
            return super().recv(max_bytes, timeout)
        except TimeoutError as exc:
            if "the fault plan delays its" in str(exc):
                note_holding()
            raise


@pytest.mark.parametrize("fault", sorted(OUT))
def test_the_proxy_holds_a_plans_close_for_close_delay(monkeypatch: pytest.MonkeyPatch, fault: str) -> None:
    # The proxy reads the client's bytes, meets the fault after 4 and holds it: the
    # server reads the 4 bytes and then nothing. The old code closed (half-closed) the
    # server's end at once (no read timed out holding it: this wait_for failed).
    with linked(monkeypatch, OUT[fault], Watched, close_wait=0.0) as (ends, kit):
        ends["client"].sendall(b"abcdefgh")
        assert ends["server"].recv(100) == b"abcd"
        wait_for(lambda: "jsonrpc_mini-proxy-0-c2s" in HOLDING, "the proxy holding the plan's close")
        ends["server"].settimeout(0.05)
        with pytest.raises(TimeoutError):
            ends["server"].recv(100)
        kit.close()


def test_the_proxy_closes_both_ends_once_a_plans_close_delay_is_over(monkeypatch: pytest.MonkeyPatch) -> None:
    # Then the link closes as the plan says: the server reads EOF after the 4 bytes,
    # and so does the client (its end is closed too, not half-closed).
    with linked(monkeypatch, OUT["close"].replace(close_delay=0.01), Watched, close_wait=0.0) as (ends, _):
        ends["client"].sendall(b"abcdefgh")
        assert ends["server"].recv(100) == b"abcd"
        assert ends["server"].recv(100) == b""
        assert ends["client"].recv(100) == b""


@pytest.mark.parametrize(("side", "direction"), [("client", "c2s"), ("server", "s2c")])
def test_a_reset_met_by_writing_is_not_held_behind_a_plans_close(
    monkeypatch: pytest.MonkeyPatch, side: str, direction: str
) -> None:
    # The plan half-closed the direction from ``side`` (held for an hour) when ``side``
    # resets: that direction hands on nothing more, so the reset the proxy meets by
    # writing to ``side`` reaches the other end at once, without the wait for held bytes
    # (_FLUSH, made longer than the other end's read timeout: waiting it out fails the read).
    other = "server" if side == "client" else "client"
    monkeypatch.setattr(_relay, "_FLUSH", WAIT * 3)
    faults = DirectionFaults(half_close_after=4)
    plan = FaultPlan(seed=1, close_delay=HOUR).replace(**{f"{side}_to_{other}": faults})
    with linked(monkeypatch, plan, Watched, close_wait=0.0) as (ends, _):
        ends[side].sendall(b"abcdefgh")
        assert ends[other].recv(100) == b"abcd"
        wait_for(lambda: f"jsonrpc_mini-proxy-0-{direction}" in HOLDING, "the proxy holding the plan's half-close")
        ends[side].setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        ends[side].close()  # (a reset)
        ends[other].sendall(b"reply")
        with pytest.raises(ConnectionResetError):
            while ends[other].recv(4096):
                pass
