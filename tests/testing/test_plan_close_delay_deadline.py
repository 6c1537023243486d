"""A send within a deadline is bounded by it when the plan holds its own close for ``close_delay``.

Over a transport that carries no bytes in flight (a socket) the writer sleeps out the
plan's delays, within ``send_within``'s timeout: a chunk whose delay would end after
the deadline makes the send raise TimeoutError at the deadline (README: a client's
call timeout also bounds sending its request through a slow plan). 872ddf6 made the
writer sleep out the plan's held close or half-close too, but for the whole
``close_delay`` whatever the deadline (probe: close_delay 3 s, ``send_within(...,
0.2)`` returned or failed after 3.0 s). The delay is an hour here: a send that waits
it out is a hang (pytest-timeout), not a slow pass.
"""

from __future__ import annotations

import socket
import threading

import pytest
from _driver_helpers import WAIT

from jsonrpc_mini import SocketTransport
from jsonrpc_mini.testing import DirectionFaults, FaultPlan, FaultyTransport

pytestmark = pytest.mark.timeout(60)

HOUR = 3600.0
PLANS = {
    "close": FaultPlan(seed=1, disconnect_after=4, close_delay=HOUR),
    "half_close": FaultPlan(seed=1, client_to_server=DirectionFaults(half_close_after=4), close_delay=HOUR),
}


@pytest.mark.parametrize("fault", sorted(PLANS))
def test_a_held_close_does_not_outlast_the_sends_deadline(fault: str) -> None:
    near, far = socket.socketpair()
    faulty = FaultyTransport(SocketTransport(near), PLANS[fault])
    outcome: list[BaseException | None] = []

    def send() -> None:
        try:
            faulty.send_within(b"abcdefgh", 0.05)
            outcome.append(None)
        except OSError as exc:
            outcome.append(exc)

    sending = threading.Thread(target=send, daemon=True)
    sending.start()
    try:
        far.settimeout(WAIT)
        assert far.recv(100) == b"abcd"  # (the bytes before the fault went out)
        sending.join(WAIT * 3)  # (shorter than the hour; a send waiting it out fails here)
        assert not sending.is_alive(), "the send waited out close_delay past its deadline"
    finally:
        faulty.abort()
        sending.join(WAIT)
        far.close()
    (exc,) = outcome
    assert isinstance(exc, TimeoutError), exc
    assert "close_delay" in str(exc)
