"""A reset LoopbackServer's proxy meets by writing to the reset end (see test_proxy_link_ends.py).

The other end gets it as a reset, after the bytes the reset end sent before it (held
for the plan's delay, or not yet written), as an RST arrives after them on a real
link, waiting for them at most ``_relay._FLUSH`` seconds, for no close_delay and no
stalled direction; where the write took the reset, the read that follows gets EOF,
and passes on no half-close.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading

import pytest
from _driver_helpers import WAIT, wait_for
from _proxy_link_support import (
    EARLY,
    FROM,
    GIVEN,
    HOLD,
    OTHER,
    SIDES,
    gate_client_reads,
    linked,
    read_until_reset,
    reset,
    waits,
)

from jsonrpc_mini.testing import DirectionFaults, FaultPlan, LoopbackServer, _proxy, _relay

pytestmark = pytest.mark.timeout(60)


def meeting_the_reset(kit: LoopbackServer, writer: socket.socket, aborted: list[object]) -> bool:
    """Whether the proxy's write met the reset: it waits for the held bytes, or (old code) reset.

    Until then ``writer`` sends a byte each poll (the proxy may take one more before the
    reset reaches it). Nothing the sockets see tells it: this reads the relay's internals.
    """
    with contextlib.suppress(OSError):
        writer.send(b"r")
    return bool(aborted) or bool(kit._relays and kit._relays[0]._reset_met)


@pytest.mark.parametrize("plan", [None, FaultPlan(seed=10, max_chunk=2)], ids=["no plan", "plan"])
@pytest.mark.parametrize("side", SIDES)
def test_a_reset_met_by_writing_reaches_the_other_end_after_the_bytes_before_it(
    monkeypatch: pytest.MonkeyPatch, side: str, plan: FaultPlan | None
) -> None:
    # ``side`` sends EARLY, then resets. The proxy's direction from ``side`` holds EARLY:
    # its write to the other end waits at a gate. The other end's bytes are then written
    # to the reset end, and that write fails. The gate opens once the writing direction
    # met the reset (the old code had reset the other end by then): the other end must
    # read EARLY, then the reset, as over a real link, where bytes sent before an RST
    # arrive before it (the old code reset it first: EARLY was lost). Without a plan
    # nothing reads the reset end meanwhile, so the failed write takes its reset and the
    # read after EARLY gets EOF: that is a reset too, on any system (``was_reset``, which
    # tells it from the connection's state, is made to know nothing, as off Linux).
    monkeypatch.setattr(_relay, "was_reset", lambda sock: False)
    entered, gate = threading.Event(), threading.Event()
    aborted: list[object] = []
    real_abort = _relay.abort_transport

    real_send = _relay._Relay._send

    def gated(relay: _relay._Relay, sock: socket.socket, data: bytes) -> None:
        if threading.current_thread().name == f"jsonrpc_mini-proxy-0-{GIVEN[side]}":
            entered.set()
            gate.wait(WAIT)
        real_send(relay, sock, data)

    def abort(transport: _relay.Transport) -> None:
        aborted.append(transport)
        real_abort(transport)

    monkeypatch.setattr(_relay._Relay, "_send", gated)
    monkeypatch.setattr(_relay, "abort_transport", abort)
    with linked(plan) as (ends, kit):
        ends[side].sendall(EARLY)
        assert entered.wait(WAIT), "the proxy passing EARLY on"
        reset(ends[side])
        wait_for(lambda: meeting_the_reset(kit, ends[OTHER[side]], aborted), "the proxy's write meeting the reset")
        gate.set()
        assert read_until_reset(ends[OTHER[side]]) == EARLY


@pytest.mark.parametrize("side", SIDES)
def test_a_reset_met_by_writing_waits_for_a_chunk_the_plan_delays(monkeypatch: pytest.MonkeyPatch, side: str) -> None:
    # As above, with EARLY held by the plan's latency (30 s) instead of a gate; made due at
    # once when the writing direction met the reset (its direction looks again at its next
    # poll, made short). The other end reads EARLY, then the reset (the old code reset it
    # at once: EARLY was lost).
    aborted: list[object] = []
    real_abort = _relay.abort_transport

    def abort(transport: _relay.Transport) -> None:
        aborted.append(transport)
        real_abort(transport)

    monkeypatch.setattr(_relay, "abort_transport", abort)
    monkeypatch.setattr(_relay, "_POLL", 0.05)
    with linked(FaultPlan(seed=11, **{FROM[side]: HOLD})) as (ends, kit):
        ends[side].sendall(EARLY)
        wait_for(lambda: waits(kit, side), "EARLY held")
        reset(ends[side])
        wait_for(lambda: meeting_the_reset(kit, ends[OTHER[side]], aborted), "the proxy's write meeting the reset")
        relay = kit._relays[0]
        source = relay.down if side == "client" else relay.up_in
        assert isinstance(source, _relay.FaultyTransport)
        held = source._held
        if held is not None:  # (None once an abort woke its wait: the old code)
            source._held = (held[0], held[1], 0.0)  # due now
        assert read_until_reset(ends[OTHER[side]]) == EARLY


def test_a_reset_met_by_writing_is_not_held_for_close_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    # The proxy's write of the server's bytes takes the client's reset (its reader of the
    # client's socket is held back until then); that reader then reads EOF, which the
    # plan's FaultyTransport holds for close_delay (an hour) as it would a close. The
    # server must get the reset without that wait, nor the one for held bytes (_FLUSH,
    # made longer than the server's read timeout: waiting it out fails the read).
    gate, failed = gate_client_reads(monkeypatch)
    monkeypatch.setattr(_relay, "_FLUSH", WAIT * 3)
    monkeypatch.setattr(_relay, "_POLL", 0.05)
    monkeypatch.setattr(_proxy, "_CLOSE_WAIT", 0.0)  # (leaving the kit: no wait for the hour)
    with linked(FaultPlan(seed=13, close_delay=3600.0)) as (ends, _):
        reset(ends["client"])
        ends["server"].sendall(b"reply")
        assert failed.wait(WAIT), "the proxy's write meeting the reset"
        gate.set()
        assert read_until_reset(ends["server"]) == b""


@pytest.mark.parametrize("side", SIDES)
def test_a_reset_met_by_writing_waits_for_no_stalled_direction(monkeypatch: pytest.MonkeyPatch, side: str) -> None:
    # The plan stalled the direction from the resetting end: it hands on nothing more, so
    # the reset reaches the other end without the wait for held bytes (_FLUSH, made longer
    # than the other end's read timeout: waiting it out fails the read with a timeout).
    monkeypatch.setattr(_relay, "_FLUSH", WAIT * 3)
    with linked(FaultPlan(seed=12, **{FROM[side]: DirectionFaults(stall_after=0)})) as (ends, kit):
        ends[side].sendall(EARLY)
        wait_for(lambda: waits(kit, side), "the direction stalled")
        reset(ends[side])
        ends[OTHER[side]].sendall(b"reply")
        assert read_until_reset(ends[OTHER[side]]) == b""


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the proxy tells an EOF that hides a reset only on Linux (TCP_INFO)"
)
@pytest.mark.parametrize("plan", [None, FaultPlan(seed=7, max_chunk=1 << 16)], ids=["no plan", "plan"])
def test_a_reset_the_writing_direction_took_is_no_eof_for_the_reading_one(
    monkeypatch: pytest.MonkeyPatch, plan: FaultPlan | None
) -> None:
    # The kernel reports an RST once, to the first call that meets it. Here the proxy's
    # write of the server's bytes to the client takes the client's reset (the read of the
    # client's socket is held back until then; the writing direction's reset of the
    # server's end waits until the reading direction has ended, for the bytes it may
    # hold); the read that follows gets EOF. That EOF must not reach the server as a
    # half-close: it read EOF before the reset (the old code half-closed the server's
    # end: 1 to 3 runs of 200 under a flood).
    gate, resetting = gate_client_reads(monkeypatch)
    with linked(plan) as (ends, _):
        reset(ends["client"])
        ends["server"].sendall(b"reply")
        wait_for(resetting.is_set, "the server->client direction meeting the reset")
        gate.set()
        with pytest.raises(ConnectionResetError):
            ends["server"].recv(4096)
