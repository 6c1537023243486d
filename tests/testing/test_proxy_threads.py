"""LoopbackServer's proxy stops every thread it started, also when a connection cannot be relayed.

A relay that could not start all its threads (here: its reader of the server's end,
as when Python cannot start a new thread) left the reader of the client's end
running and the client's connection open, and the exception ended the proxy's
accept thread, so later connections were never relayed. Now the relay stops and
joins what it started and closes both sockets; the proxy logs it and goes on.
Joining a relay's threads waits its timeout once for all of them.
(The reader holding its bound when the kit closes: test_proxy_back_pressure.py.)
"""

from __future__ import annotations

import logging
import socket
import threading

import pytest
from _driver_helpers import WAIT

from jsonrpc_mini import RPCServer
from jsonrpc_mini.testing import FaultPlan, LoopbackServer, _relay

pytestmark = pytest.mark.timeout(60)


def test_a_connection_whose_relay_cannot_start_is_closed_and_its_threads_stopped(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real_reader = _relay.EagerReader

    def reader(inner: _relay.SocketTransport, name: str) -> _relay.EagerReader:
        if name == "jsonrpc_mini-proxy-0-server-reader":
            raise RuntimeError("can't start new thread")
        return real_reader(inner, name)

    monkeypatch.setattr(_relay, "EagerReader", reader)
    server = RPCServer()
    server.register_function(lambda a, b: a + b, name="add")
    before = set(threading.enumerate())
    with caplog.at_level(logging.ERROR, "jsonrpc_mini.testing"):
        with LoopbackServer(server, faults=FaultPlan(seed=1, max_chunk=64)) as kit:
            with socket.create_connection(kit.address, timeout=WAIT) as first:
                assert first.recv(1) == b""  # closed by the proxy (the old code left it open)
            # The proxy goes on: the next connection (number 1) is relayed.
            assert kit.client().add(1, 2) == 3
        proxy = [t.name for t in threading.enumerate() if t not in before and t.name.startswith("jsonrpc_mini-proxy")]
        assert not proxy, f"threads of the proxy still running after close(): {proxy}"
    assert "cannot relay connection 0" in caplog.text


class Clock:
    """A stopped clock for ``_relay``: it moves only when a thread below waits on it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class Stuck:
    """A started thread that never ends: each join waits out its whole timeout (on ``clock``)."""

    ident = 1

    def __init__(self, clock: Clock, waits: list[float]) -> None:
        self.clock = clock
        self.waits = waits
        self.thread = self  # (as an EagerReader's, for the relay's readers)

    def join(self, timeout: float | None = None) -> None:
        assert timeout is not None
        self.waits.append(timeout)
        self.clock.now += timeout

    def is_alive(self) -> bool:
        return True


def test_joining_a_relay_waits_its_timeout_once_for_all_its_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    # Two direction threads and two readers, none of which ends: join(5) gives the first
    # the 5 s and the others what is left of them (nothing), so closing a kit waits 5 s
    # per relay, not 5 s per thread. Each thread waiting its own 5 s (the mutant
    # "_Relay.join ignores the shared deadline", which survived session 24) gave 5 s each.
    clock = Clock()
    waits: list[float] = []
    monkeypatch.setattr(_relay, "time", clock)
    relay = _relay._Relay.__new__(_relay._Relay)  # (no sockets, no threads: only join's bookkeeping)
    relay.threads = [Stuck(clock, waits), Stuck(clock, waits)]  # type: ignore[list-item]
    relay.readers = [Stuck(clock, waits), Stuck(clock, waits)]  # type: ignore[list-item]
    assert relay.join(5.0) is False
    assert waits == [5.0, 0.0, 0.0, 0.0]
    assert clock.now == 1005.0
