"""Leaving a test-kit block does not wait for bytes a fault plan still holds in flight.

Review10 r5: after a call timed out under a slow plan (latency 10 s), leaving
``aio_loopback()`` took 6 s (a warning logged, the server's side forced closed) and
``AioLoopbackServer`` 5.5 s (the link broken, then its task waited for); since the
in-flight pipe (02f1619) ``loopback()`` took 5 s too. In the end what was still in
flight was dropped all the same (tests/testing/test_faulty_send_deadline.py asserts the
server ran none of it). Now leaving drops it at once: the server's side reads what had
arrived, sees the end and finishes. No timing is asserted: the kit's waits are made an
hour long here, so the old code hangs (pytest-timeout fails it), and a forced close
would log a warning.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest
from _aio_support import WAIT, run, spin_until
from _driver_helpers import wait_for
from _kits_support import CountedWaits

from jsonrpc_mini import RPCServer, RPCTimeout, aio
from jsonrpc_mini.testing import (
    AioLoopbackServer,
    DirectionFaults,
    FaultPlan,
    _aio_loopback,
    _aio_loopback_server,
    _loopback,
    aio_loopback,
    loopback,
    pipe_pair,
)
from jsonrpc_mini.testing._aio_links import Link, memory_link

pytestmark = pytest.mark.timeout(30)

HOUR = 3600.0
# An hour on the way to the server: nothing crosses before the test ends.
SLOW = FaultPlan(seed=5, client_to_server=DirectionFaults(latency=HOUR))


@pytest.fixture
def patient_kit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kit's bounds on waiting for the server's side, made an hour: waiting for the delays would hang."""
    monkeypatch.setattr(_loopback, "_JOIN", HOUR)
    monkeypatch.setattr(_aio_loopback, "_JOIN", HOUR)
    monkeypatch.setattr(_aio_loopback_server, "_JOIN", HOUR)
    monkeypatch.setattr(_aio_loopback_server, "_LINGER", HOUR)


def kit_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What jsonrpc_mini logged at WARNING or above (a forced close says so)."""
    records = caplog.records
    return [r.getMessage() for r in records if r.name.startswith("jsonrpc_mini") and r.levelno >= logging.WARNING]


@pytest.mark.usefixtures("patient_kit")
def test_leaving_loopback_drops_what_is_in_flight(caplog: pytest.LogCaptureFixture) -> None:
    server = RPCServer()
    seen: list[object] = []
    server.register_function(seen.append, "note")
    with caplog.at_level(logging.WARNING, logger="jsonrpc_mini"), loopback(server, faults=SLOW) as client:
        with pytest.raises(RPCTimeout):
            client.with_timeout(0.2).note("timed out")
        client.notify("note", "bye")
    assert seen == []
    assert kit_warnings(caplog) == []


def test_leaving_loopback_without_delays_still_delivers_a_last_notification() -> None:
    server = RPCServer()
    seen: list[object] = []
    server.register_function(seen.append, "note")
    with loopback(server, faults=FaultPlan(seed=6, max_chunk=3)) as client:
        client.notify("note", "bye")
    assert seen == ["bye"]  # (the exit joins the server's side: it ran)


def aio_server() -> tuple[aio.RPCServer, list[object]]:
    server = aio.RPCServer()
    seen: list[object] = []

    @server.register
    async def note(value: object) -> None:
        seen.append(value)

    return server, seen


@pytest.mark.usefixtures("patient_kit")
def test_leaving_aio_loopback_drops_what_is_in_flight(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        server, seen = aio_server()
        async with aio_loopback(server, faults=SLOW) as client:
            with pytest.raises(RPCTimeout):
                await client.with_timeout(0.2).note("timed out")
            await client.notify("note", "bye")
        await server.shutdown()
        assert seen == []

    with caplog.at_level(logging.WARNING, logger="jsonrpc_mini"):
        run(main)
    assert kit_warnings(caplog) == []


@pytest.mark.usefixtures("patient_kit")
def test_leaving_an_aio_loopback_server_drops_what_is_in_flight(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        server, seen = aio_server()
        async with AioLoopbackServer(server, SLOW) as lb:
            client = await lb.client()
            with pytest.raises(RPCTimeout):
                await client.with_timeout(0.2).note("timed out")
            await client.notify("note", "bye")
        assert server.address is None  # started by the kit, shut down on leaving
        assert seen == []

    with caplog.at_level(logging.WARNING, logger="jsonrpc_mini"):
        run(main)
    assert kit_warnings(caplog) == []


class Recorder(asyncio.Protocol):
    """Keeps what it receives and whether the EOF came."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.eof = asyncio.Event()

    def data_received(self, data: bytes) -> None:
        self.data += data

    def eof_received(self) -> bool:
        self.eof.set()
        return False


def holding(link: Link) -> bool:
    """Whether the client-to-server task holds the bytes written: waiting out the plan's delay with them.

    (Started and waiting, with the bytes in flight or, during the connect delay, still
    queued: the loop runs one task at a time, so it cannot be anywhere in between.)
    """
    return link.c2s.queued > 0 and link.tasks[0].get_coro().cr_await is not None


def test_a_link_broken_during_a_delay_ends_at_once() -> None:
    # A link broken while a chunk waits out its delay ends now; its task used to sleep
    # on through the delay (AioLoopbackServer's exit waited 5 s for it, then cancelled it).
    async def main() -> None:
        client, _, link = memory_link(asyncio.Protocol(), Recorder(), SLOW)
        client.write(b"abc")
        await spin_until(lambda: holding(link) and link.c2s.flight)  # taken, held for an hour
        link.break_link(None)
        done, _ = await asyncio.wait(link.tasks, timeout=WAIT)
        assert len(done) == 2

    run(main)


@pytest.mark.parametrize("plan", [SLOW, FaultPlan(seed=7, connect_delay=HOUR)], ids=["latency", "connect_delay"])
def test_a_link_dropping_what_is_in_flight_ends_with_the_eof(plan: FaultPlan) -> None:
    async def main() -> None:
        receiver = Recorder()
        client, _, link = memory_link(asyncio.Protocol(), receiver, plan)
        client.write(b"abc")
        await spin_until(lambda: holding(link))  # held for an hour (in flight, or until connected)
        client.close()  # EOF after the bytes
        link.drop_in_flight()
        await asyncio.wait_for(receiver.eof.wait(), WAIT)
        assert receiver.data == b""
        await link.wait_closed(WAIT)

    run(main)


def test_a_link_dropping_what_is_in_flight_still_moves_bytes_without_a_delay() -> None:
    async def main() -> None:
        receiver = Recorder()
        client, _, link = memory_link(asyncio.Protocol(), receiver, FaultPlan(seed=8, max_chunk=2))
        client.write(b"abcde")
        client.close()
        link.drop_in_flight()
        await asyncio.wait_for(receiver.eof.wait(), WAIT)
        assert receiver.data == b"abcde"
        await link.wait_closed(WAIT)

    run(main)


def test_a_pipe_drops_only_the_segments_still_in_flight() -> None:
    a, b = pipe_pair()
    a.send_at(b"due", 0.0)
    far = time.monotonic() + HOUR
    a.send_at(b"one", far)
    a.send_at(b"two", far)
    a.drop_in_flight()
    assert b.recv(100, 0.0) == b"due"  # (a zero timeout: readable without waiting)
    a.close()
    assert b.recv(100, 0.0) == b""  # the EOF, with nothing in flight before it


def test_dropping_what_is_in_flight_wakes_a_reader_waiting_for_it() -> None:
    a, b = pipe_pair()
    cond = CountedWaits.on(a, b)
    a.send_at(b"one", time.monotonic() + HOUR)
    got: list[bytes | BaseException] = []

    def read() -> None:
        try:
            got.append(b.recv(100, None))  # no timeout: only a wake-up ends the wait
        except BaseException as exc:  # (reported by the assertion below)
            got.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        wait_for(lambda: cond.waits == 1, "the reader to wait for the segment")
        a.close()  # (the EOF waits behind the segment in flight)
        wait_for(lambda: cond.waits == 2, "the reader, woken by the close, to wait for the segment again")
        a.drop_in_flight()  # wakes the reader: nothing is left before the EOF
        reader.join(WAIT)
        assert got == [b""]
    finally:
        a.abort()  # (wakes the reader if it is still waiting)
        reader.join(WAIT)
