"""FaultyTransport.close() over loopback()'s pipe: the close travels, the closer goes on.

The client closes its transport when it reads the end of the connection, in the
thread of the call that read it, and close() slept the plan's ``close_delay``
there before closing: on ``loopback()`` a call meeting a server->client
half-close failed 2 x ``close_delay`` after it was made, on ``aio_loopback()``
after 1 x (probe, close_delay 0.3 s: 0.61 s vs 0.31 s; client->server half-close
0.90 s vs 0.63 s). Now, over a transport with ``call_at`` (the pipe), the close is
in flight that long and close() returns at once (0.31 s and 0.60 s, as
``aio_loopback()``). No timing is asserted: the delays are an hour, so a close()
that waits hangs (pytest-timeout fails it).
"""

from __future__ import annotations

import logging

import pytest
from _aio_support import WAIT

from jsonrpc_mini import ConnectionLost, RPCServer
from jsonrpc_mini.testing import DirectionFaults, FaultPlan, FaultyTransport, _loopback, loopback, pipe_pair

pytestmark = pytest.mark.timeout(30)

HOUR = 3600.0


def test_close_over_the_pipe_returns_at_once_and_its_close_is_in_flight() -> None:
    a, b = pipe_pair()
    faulty = FaultyTransport(a, FaultPlan(seed=1, close_delay=HOUR))
    faulty.close()  # (slept the hour)
    assert faulty.recv(10, timeout=0) == b""  # this end is closed at once
    with pytest.raises(TimeoutError):
        b.recv(10, timeout=0)  # the peer sees nothing yet: the close is on its way
    b.send(b"meanwhile")  # and can still send (nobody reads it)
    faulty.close()  # again: nothing more


def test_the_close_reaches_the_peer_after_the_bytes_sent_before_it() -> None:
    a, b = pipe_pair()
    faulty = FaultyTransport(a, FaultPlan(seed=1, close_delay=0.01))
    faulty.send(b"last")
    faulty.close()
    assert b.recv(10, timeout=WAIT) == b"last"
    assert b.recv(10, timeout=WAIT) == b""


def test_leaving_loopback_waits_for_a_close_still_in_flight(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The call meets the server's half-close and the client closes its end: that
    # close is in flight when the block is left. The exit drops what the plan still
    # holds in flight, but not an end's close: the server's side must see it and
    # finish (the kit's join is an hour here; a forced close would log a warning).
    monkeypatch.setattr(_loopback, "_JOIN", HOUR)
    server = RPCServer()
    server.register_function(lambda: 1, name="one")
    plan = FaultPlan(seed=1, server_to_client=DirectionFaults(half_close_after=0), close_delay=0.01)
    with (
        caplog.at_level(logging.WARNING, logger="jsonrpc_mini"),
        loopback(server, faults=plan) as client,
        pytest.raises(ConnectionLost),
    ):
        client.one()
    assert [r.getMessage() for r in caplog.records if r.name.startswith("jsonrpc_mini")] == []
